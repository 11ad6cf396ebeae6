"""The JSON report: a stable contract for other programs. Schema: SCHEMA.md next to this file."""

from __future__ import annotations

import json

import pandas as pd

from analysis.jsonsafe import clean

SCHEMA_VERSION = 1

METHOD_FIELDS = ("method", "rank", "mos", "ci95_low", "ci95_high", "boot_se", "group",
                 "n_images", "n_ratings", "std_images", "team", "author", "framework",
                 "hardware", "runtime_s", "psnr", "psnr_rank", "ssim", "ssim_rank")
ITEM_FIELDS = ("image", "method", "mos", "n", "std", "ci95_low", "ci95_high", "quality",
               "quality_ci95_low", "quality_ci95_high")
WORKER_FIELDS = ("worker", "n", "n_total", "n_gold", "gold_accuracy", "bias", "bias_ci95_low",
                 "bias_ci95_high", "inconsistency", "inconsistency_ci95_low",
                 "inconsistency_ci95_high", "screening", "excluded_by", "rejected", "reason")
INT_FIELDS = {"rank", "n_images", "n_ratings", "psnr_rank", "ssim_rank", "n", "n_total", "n_gold"}


def _records(frame: pd.DataFrame, fields) -> list[dict]:
    out = []
    cols = {f: (frame[f].tolist() if f in frame else [None] * len(frame)) for f in fields}
    for i in range(len(frame)):
        rec = {}
        for f in fields:
            v = clean(cols[f][i])
            if f in INT_FIELDS and v is not None:
                v = int(v)
            rec[f] = v
        out.append(rec)
    return out


def _signed_rank(report) -> dict:
    """The secondary per-image signed-rank tests: adjusted p per pair."""
    sr = report.signed_rank or {}
    padj = sr.get("p_adjusted")
    if padj is None:
        return {}
    return {"test": sr.get("test"), "correction": sr.get("correction"),
            "p_values": {m: {o: clean(padj.at[m, o]) for o in padj.columns if o != m}
                         for m in padj.index}}


def report_dict(report) -> dict:
    from analysis.report.common import method_rows
    methods = _records(method_rows(report), METHOD_FIELDS)
    padj, praw = report.pairwise["p_adjusted"], report.pairwise["p"]
    for rec in methods:
        m = rec["method"]
        rec["p_values"] = {o: clean(padj.at[m, o]) for o in padj.columns if o != m}
        rec["p_values_raw"] = {o: clean(praw.at[m, o]) for o in praw.columns if o != m}
    return {
        "schema": "study-report",
        "schema_version": SCHEMA_VERSION,
        "scale": report.scale.to_dict(),
        "settings": clean(report.settings),
        "counts": clean(report.counts),
        "methods": methods,
        "items": _records(report.items, ITEM_FIELDS),
        "workers": _records(report.workers, WORKER_FIELDS),
        "friedman": clean(report.friedman),
        "pairwise": {"test": report.pairwise.get("test"),
                     "correction": report.pairwise.get("correction"),
                     "alpha": report.settings.get("alpha")},
        "signed_rank": _signed_rank(report),
        "mixed_model": clean(report.mixed_model),
        "reliability": clean(report.reliability),
        "screening": clean(report.screening),
        "fidelity": clean(report.fidelity),
        "power": clean(report.power),
        "subject_model": clean(report.subject_model),
        "notes": list(report.notes),
    }


def render_json(report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
