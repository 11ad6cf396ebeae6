"""Everything the report says, computed in one call: `analyse(df, scale) -> Report`."""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import fidelity as _fidelity
from analysis import power as _power
from analysis import reliability as _rel
from analysis import subjective as _subjective
from analysis import verdicts as _verdicts
from analysis.mos import analysed, cell_stats, encode, item_table, method_table
from analysis.scale import Scale
from analysis.table import RatingsError, validate
from analysis.uncertainty import bootstrap_method_mos

FACTSHEET_FIELDS = ("team", "author", "framework", "hardware", "runtime_s")


@dataclass
class Report:
    """What `analyse` found. Tables are DataFrames; summaries are plain dicts (JSON-ready)."""
    scale: Scale
    methods: pd.DataFrame            # one row per method, best first
    items: pd.DataFrame              # one row per (image, method)
    workers: pd.DataFrame            # one row per worker
    pairwise: dict                   # the verdicts: {'p', 'p_adjusted', 'n', ...} DataFrames
                                     # in method order, 'test', 'correction'
    friedman: dict
    mixed_model: dict
    reliability: dict
    screening: dict
    fidelity: dict
    power: dict
    subject_model: dict
    counts: dict
    settings: dict
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    signed_rank: dict = field(default_factory=dict)  # secondary: per-image signed-rank tests

    @property
    def method_order(self) -> list[str]:
        return list(self.methods["method"])

    def to_dict(self) -> dict:
        """The JSON report (schema in analysis/report/SCHEMA.md)."""
        from analysis.report.jsonreport import report_dict
        return report_dict(self)


def _worker_frame(frame: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
    """A subject model's per-worker estimates as columns worker, NAME, NAME_ci95_low/high."""
    if frame is None:
        return None
    out = frame[["estimate", "ci95_low", "ci95_high"]].rename(columns={
        "estimate": name, "ci95_low": f"{name}_ci95_low", "ci95_high": f"{name}_ci95_high"})
    out = out.rename_axis("worker").reset_index()
    out["worker"] = out["worker"].astype(str)
    return out


def _quality_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["estimate", "ci95_low", "ci95_high"]].rename(columns={
        "estimate": "quality", "ci95_low": "quality_ci95_low", "ci95_high": "quality_ci95_high"})
    out = out.reset_index()
    out["image"] = out["image"].astype(str)
    out["method"] = out["method"].astype(str)
    return out


def _factsheet_frame(factsheets) -> pd.DataFrame | None:
    if factsheets is None:
        return None
    if isinstance(factsheets, pd.DataFrame):
        fs = factsheets.copy()
        if "method" not in fs:
            fs = fs.reset_index().rename(columns={"index": "method"})
    else:
        fs = pd.DataFrame([{"method": str(m), **(v or {})} for m, v in dict(factsheets).items()])
    if "runtime" in fs and "runtime_s" not in fs:
        fs = fs.rename(columns={"runtime": "runtime_s"})
    if "runtime_reported" in fs and "runtime_s" not in fs:
        fs = fs.rename(columns={"runtime_reported": "runtime_s"})
    fs["method"] = fs["method"].astype(str)
    return fs[["method"] + [c for c in FACTSHEET_FIELDS if c in fs]]


def _fidelity_frame(fidelity) -> pd.DataFrame | None:
    if fidelity is None:
        return None
    if isinstance(fidelity, pd.DataFrame):
        fd = fidelity.copy()
        if "method" not in fd:
            fd = fd.reset_index().rename(columns={"index": "method"})
    else:
        fd = pd.DataFrame([{"method": str(m), **(v or {})} for m, v in dict(fidelity).items()])
    fd.columns = [str(c).lower() for c in fd.columns]
    fd["method"] = fd["method"].astype(str)
    cols = [c for c in ("psnr", "ssim") if c in fd]
    if not cols:
        return None
    fd = fd[["method"] + cols]
    for c in cols:
        fd[c] = pd.to_numeric(fd[c], errors="coerce")
    return fd


def gold_accuracy(df: pd.DataFrame, scale: Scale, tolerance: float = 0.0) -> pd.DataFrame:
    """Per worker: n_gold and gold_accuracy (share of gold ratings with the known answer).

    The known answer is `gold_correct` when given, else `expected`, else the scale's best value
    (a reference shown against itself); a rating within `tolerance` of it counts as correct."""
    if "gold" not in df or not df["gold"].any():
        return pd.DataFrame(columns=["worker", "n_gold", "gold_accuracy"])
    g = df[df["gold"].to_numpy(dtype=bool)]
    score = g["score"].to_numpy(dtype=float)
    if "gold_correct" in g:
        # NaN = correctness unknown for that rating: left out of the accuracy.
        correct = pd.to_numeric(g["gold_correct"].astype("object").map(
            lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else float(bool(v))),
            errors="coerce").to_numpy(dtype=float)
    elif "expected_min" in g or "expected_max" in g:
        lo = g["expected_min"].to_numpy(dtype=float) if "expected_min" in g else np.full(len(g), -np.inf)
        hi = g["expected_max"].to_numpy(dtype=float) if "expected_max" in g else np.full(len(g), np.inf)
        lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        correct = ((score >= lo - 1e-9) & (score <= hi + 1e-9)).astype(float)
    else:
        expected = g["expected"].to_numpy(dtype=float) if "expected" in g else np.full(len(g), np.nan)
        expected = np.where(np.isnan(expected), scale.best, expected)
        correct = (np.abs(score - expected) <= tolerance + 1e-9).astype(float)
    out = pd.DataFrame({"worker": g["worker"].to_numpy(), "c": correct})
    out = out.groupby("worker", sort=True)["c"].agg(["size", "mean"]).reset_index()
    return out.rename(columns={"size": "n_gold", "mean": "gold_accuracy"})


def analyse(df: pd.DataFrame, scale: Scale, *, factsheets=None, fidelity=None, gold=None,
            seed: int = 0, bootstrap: int = 2000, alpha: float = 0.05, correction: str = "holm",
            mixed_model_max_ratings: int | None = 50_000, power_delta: float | None = None,
            power_target: float = 0.8, gold_tolerance: float = 0.0,
            screening: bool | str = "auto", subject_models: bool = True) -> Report:
    """Run every analysis on the tidy ratings table.

    factsheets: {method: {team, author, framework, hardware, runtime_s}} or a DataFrame.
    fidelity:   {method: {psnr, ssim}} or a DataFrame with columns method, psnr, ssim.
    gold:       optional DataFrame of gold ratings (same columns) when they are not in `df`
                with gold=True.
    screening:  "auto" (default; also True) excludes workers whose model-based inconsistency
                (P.910 Annex E) exceeds INCONSISTENCY_LIMIT of the scale's span, in any design
                (needs subject_models), and screens by ITU-R BT.500 a dense design, where the
                median worker rated at least half of the items and at least
                analysis.subjective.MIN_RATINGS of them; "bt500" screens any design by BT.500
                alone; False or "none" screens nobody. BT.500 leaves a worker with fewer than
                analysis.subjective.MIN_RATINGS testable ratings unscreened.
    Gold ratings and ratings with valid=False never enter the MOS."""
    if correction not in ("holm", "bh"):
        raise RatingsError(f"unknown correction {correction!r}", where="correction",
                           hint="use 'holm' or 'bh'")
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    df = validate(df, scale)
    if gold is not None and len(gold):
        gold = validate(gold, scale).assign(gold=True)
        df = pd.concat([df, gold], ignore_index=True)
    n_total = len(df)
    n_gold = int(df["gold"].sum())
    n_invalid = int((~df["valid"] & ~df["gold"]).sum())
    base = analysed(df)
    if len(base) == 0:
        raise RatingsError("no valid non-gold ratings to analyse", where="ratings",
                           hint="every rating is gold or marked invalid")

    # Subject model (P.910 Annex E): quality per item, bias and inconsistency per worker.
    sm_info: dict[str, Any] = {"model": None}
    quality = bias = incons = None
    if subject_models:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sm = _subjective.p910_annex_e(base)
        quality = _quality_frame(sm.quality)
        bias = _worker_frame(sm.bias, "bias")
        incons = _worker_frame(sm.inconsistency, "inconsistency")
        sm_info.update(model="ITU-T P.910 Annex E", name=sm.model, converged=bool(sm.converged),
                       iterations=int(sm.iterations))
        if not sm.converged:
            notes.append(f"the P.910 Annex E subject model did not converge in {sm.iterations} "
                         "iterations; its quality, bias and inconsistency estimates are the last "
                         "iterate's and may be off")
        timings["p910"] = time.perf_counter() - t

    # Screening decides whose ratings count: model-based inconsistency in every design, and
    # ITU-R BT.500 where the design is dense enough for it.
    t = time.perf_counter()
    judged = incons if sm_info.get("converged") else None
    kept, excluded, screening_info = screen(base, screening, judged, scale)
    timings["screening"] = time.perf_counter() - t
    if screening_info.get("note"):
        notes.append("screening " + screening_info["note"])
    for col, label in (("method", "method"), ("image", "image")):
        dropped = sorted(set(base[col]) - set(kept[col]), key=str)
        if dropped:
            notes.append(f"{label}(s) {', '.join(map(str, dropped))} had ratings only from "
                         "screened-out workers and are not in the ranking")

    # MOS, ranks, CIs.
    t = time.perf_counter()
    coded = encode(kept)
    cs = cell_stats(coded)
    methods = method_table(cs, scale)
    items = item_table(cs, alpha, scale)
    if (items["n"] < 2).any() or ((items["ci95_low"] == scale.low) | (items["ci95_high"] == scale.high)).any():
        notes.append(f"per-item intervals are t intervals cut to the scale {scale.spec}; "
                     f"{int((items['n'] < 2).sum())} of {len(items)} items have fewer than 2 "
                     f"ratings and no interval; ratings per item: {int(items['n'].min())} to "
                     f"{int(items['n'].max())} (column n)")
    timings["mos"] = time.perf_counter() - t
    t = time.perf_counter()
    if bootstrap and bootstrap > 0:
        ci = bootstrap_method_mos(coded, n_boot=bootstrap, seed=seed, alpha=alpha)
        methods = methods.merge(ci, on="method", how="left")
    else:
        methods["ci95_low"] = methods["ci95_high"] = methods["boot_se"] = np.nan
    timings["bootstrap"] = time.perf_counter() - t
    notes.extend(_interval_notes(methods, coded.n_images))

    # Which methods differ: the crossed model's pairwise tests, with the letters from them.
    order_idx = np.lexsort((methods["method"].to_numpy(), methods["rank"].fillna(np.inf).to_numpy()))
    methods = methods.iloc[order_idx].reset_index(drop=True)
    order = list(methods["method"])
    t = time.perf_counter()
    v = _verdicts.decide(kept, cs.mean, list(coded.methods), order, alpha=alpha,
                         correction=correction, max_ratings=mixed_model_max_ratings, seed=seed)
    timings["tests"] = time.perf_counter() - t
    notes.extend(v["notes"])
    methods["group"] = [v["groups"][m] for m in order]
    mm = v["mixed_model"]

    # Reliability.
    t = time.perf_counter()
    rel = {"krippendorff_alpha_ordinal": _rel.krippendorff_alpha_ordinal(coded),
           "split_half": _rel.split_half(coded, n_splits=20, seed=seed),
           "sos": _rel.sos_parameter(cs, scale)}
    timings["reliability"] = time.perf_counter() - t

    # Factsheets and fidelity.
    fs = _factsheet_frame(factsheets)
    if fs is not None:
        methods = methods.merge(fs, on="method", how="left")
    fd = _fidelity_frame(fidelity)
    fid: dict = {}
    if fd is not None:
        methods = methods.merge(fd, on="method", how="left")
        if "psnr" in methods:
            methods["psnr_rank"] = _rank_desc(methods["psnr"])
        if "ssim" in methods:
            methods["ssim_rank"] = _rank_desc(methods["ssim"])
        fid = _fidelity.fidelity_correlation(methods, scale)

    # Power for the next study.
    delta = power_delta if power_delta is not None else 0.05 * (scale.high - scale.low)
    pow_ = _power.from_model(mm, cs, delta, alpha=alpha, power=power_target)
    if pow_.get("note"):
        notes.append("power advice: " + pow_["note"])

    # Items with the subject model's quality estimate.
    if quality is not None:
        items = items.merge(quality, on=["image", "method"], how="left")
    else:
        items["quality"] = np.nan
    for c in ("quality_ci95_low", "quality_ci95_high"):
        if c not in items:
            items[c] = np.nan

    workers = _worker_table(df, base, kept, excluded, scale, gold_tolerance, bias, incons)
    counts = {"ratings": n_total, "gold": n_gold, "invalid": n_invalid,
              "analysed": int(len(kept)), "screened_out": int(len(base) - len(kept)),
              "images": coded.n_images, "methods": coded.n_methods, "workers": coded.n_workers,
              "workers_total": int(df["worker"].nunique())}
    settings = {"seed": seed, "bootstrap": bootstrap, "alpha": alpha, "correction": correction,
                "scale": scale.to_dict(), "power_delta": delta, "power_target": power_target,
                "mixed_model_max_ratings": mixed_model_max_ratings, "gold_tolerance": gold_tolerance}
    timings["total"] = time.perf_counter() - t0
    return Report(scale=scale, methods=methods, items=items, workers=workers,
                  pairwise=v["pairwise"], friedman=v["friedman"], mixed_model=mm,
                  reliability=rel, screening=screening_info, fidelity=fid, power=pow_,
                  subject_model=sm_info, counts=counts, settings=settings, notes=notes,
                  timings=timings, signed_rank=v["signed_rank"])


# Model-based screening: a worker whose ratings stray from the subject model (P.910 Annex E
# inconsistency: the SD of its ratings around item quality plus its own bias) by more than this
# share of the scale's span, 0.8 level on a five-level scale, is excluded from the analysis. The
# 50 real lab subjects of the two shared datasets (tests/data/subjective) stray 0.45 to 0.88, one
# of them above 0.8; ratings that follow the pictures only loosely (answered from a glance, near
# the middle of the scale, or at random) stray more. Judged only on workers with enough ratings
# for the estimate to hold.
INCONSISTENCY_LIMIT = 0.2
MIN_INCONSISTENCY_RATINGS = 10


def screen(base: pd.DataFrame, how: bool | str = "auto", inconsistency: pd.DataFrame | None = None,
           scale: Scale | None = None):
    """(kept ratings, {worker: reason}, summary).

    "auto": a worker whose model-based inconsistency (`inconsistency`, the subject model's
    per-worker frame) exceeds INCONSISTENCY_LIMIT of the scale's span on at least
    MIN_INCONSISTENCY_RATINGS ratings is excluded, in any design; BT.500 then screens a dense
    design. BT.500 compares each rating with the bounds of its item; it was made for panels that
    rate every item, and in a sparse crowd design it judges a worker on a handful of items, so
    "auto" leaves it out there ("bt500" applies it anyway). "none": nobody is screened."""
    how = {True: "auto", False: "none", None: "none"}.get(how, how)
    if how not in ("auto", "bt500", "none"):
        raise RatingsError(f"unknown screening {how!r}", where="screening",
                           hint="use 'auto', 'bt500' or 'none'")
    n_items = int(base.groupby(["image", "method"]).ngroups)
    per_worker = base.drop_duplicates(["image", "method", "worker"]).groupby("worker").size()
    median = float(per_worker.median())
    info: dict[str, Any] = {"method": None, "applicable": None, "excluded": {}, "n_excluded": 0,
                            "n_workers": int(len(per_worker)), "n_screened": 0,
                            "median_items_per_worker": median, "items": n_items,
                            "min_ratings": _subjective.MIN_RATINGS, "inconsistency": None,
                            "note": None}
    if how == "none":
        info["note"] = "not applied (switched off)"
        return base, {}, info
    methods: list[str] = []
    notes: list[str] = []
    excluded: dict[str, str] = {}
    if how == "auto":
        rule = _inconsistency_rule(base, inconsistency, scale)
        info["inconsistency"] = rule
        if rule is not None:
            methods.append("model-based inconsistency")
            excluded.update(rule["excluded"])
        else:
            notes.append("by model-based inconsistency not applied: no converged subject model")
    dense = median >= n_items / 2 and median >= _subjective.MIN_RATINGS
    info["applicable"] = bool(dense)
    if how == "auto" and not dense:
        notes.append(f"by ITU-R BT.500 not applicable: sparse design, the median worker rated "
                     f"{median:g} of {n_items} items (it needs workers who rated at least half "
                     f"of the items and at least {_subjective.MIN_RATINGS})")
    else:
        rest = base[~base["worker"].isin(excluded)]
        table = _subjective.bt500_statistics(rest)
        _, rejected = _subjective.bt500_screening(rest)
        for w, why in rejected.items():
            excluded.setdefault(str(w), str(why))
        methods.append("ITU-R BT.500")
        info["n_screened"] = int(table["screened"].sum())
        unscreened = int((~table["screened"]).sum())
        if unscreened:
            notes.append(f"by ITU-R BT.500 left {unscreened} worker(s) with fewer than "
                         f"{_subjective.MIN_RATINGS} testable ratings unscreened")
        if not dense:
            notes.append(f"by ITU-R BT.500 was asked for on a sparse design (median worker rated "
                         f"{median:g} of {n_items} items): its verdicts rest on few items per "
                         "worker")
    kept = base[~base["worker"].isin(excluded)]
    info.update(method=" + ".join(methods) or None, excluded=excluded, n_excluded=len(excluded),
                note="; ".join(notes) or None)
    return kept, excluded, info


def _inconsistency_rule(base: pd.DataFrame, inconsistency: pd.DataFrame | None,
                        scale: Scale | None) -> dict | None:
    """Who the model-based inconsistency rule excludes, and its limit; None without a model."""
    if inconsistency is None or scale is None or "inconsistency" not in inconsistency:
        return None
    limit = INCONSISTENCY_LIMIT * (scale.high - scale.low)
    n = base.groupby("worker").size()
    excluded = {}
    for w, value in zip(inconsistency["worker"], inconsistency["inconsistency"]):
        if np.isfinite(value) and value > limit and n.get(w, 0) >= MIN_INCONSISTENCY_RATINGS:
            excluded[str(w)] = (f"ratings stray from the subject model (inconsistency "
                                f"{value:.2f} above {limit:.2f})")
    return {"limit": limit, "min_ratings": MIN_INCONSISTENCY_RATINGS, "excluded": excluded}


def _interval_notes(methods: pd.DataFrame, n_images: int) -> list[str]:
    """Where a method's interval cannot show what it claims to."""
    out = []
    single = methods.loc[methods["n_images"] == 1, "method"].tolist()
    if single and n_images > 1:
        out.append(f"{len(single)} method(s) were rated on one image only: their interval shows "
                   "how the workers varied, not how the method would fare on other images "
                   "(the pairwise tests do include that)")
    flat = methods.loc[methods["ci95_high"] - methods["ci95_low"] == 0, "method"].tolist()
    if flat:
        out.append(f"{len(flat)} method(s) have an interval of zero width ({', '.join(map(str, flat[:5]))}"
                   f"{', ...' if len(flat) > 5 else ''}): every rating was the same, which "
                   "measures no uncertainty")
    return out


def _rank_desc(values: pd.Series) -> np.ndarray:
    from analysis.mos import rank_with_ties
    return rank_with_ties(values.to_numpy(dtype=float), higher_is_better=True)


def _worker_table(df, base, kept, excluded, scale, tol, bias, incons) -> pd.DataFrame:
    workers = pd.DataFrame({"worker": sorted(df["worker"].unique())})
    n_all = df.groupby("worker").size().rename("n_total")
    n_base = base.groupby("worker").size().rename("n")
    workers = workers.merge(n_base, on="worker", how="left").merge(n_all, on="worker", how="left")
    workers["n"] = workers["n"].fillna(0).astype(int)
    ga = gold_accuracy(df, scale, tol)
    workers = workers.merge(ga, on="worker", how="left")
    workers["n_gold"] = workers["n_gold"].fillna(0).astype(int)
    for frame, name in ((bias, "bias"), (incons, "inconsistency")):
        if frame is not None:
            workers = workers.merge(frame, on="worker", how="left")
        else:
            workers[name] = np.nan
        for c in (f"{name}_ci95_low", f"{name}_ci95_high"):
            if c not in workers:
                workers[c] = np.nan
    kept_workers = set(kept["worker"].unique())
    decisions = _collect_decisions(df)
    outcome, by, why, rejected = [], [], [], []
    for w, n in zip(workers["worker"], workers["n"]):
        collected = decisions.get(w, {})
        rejected.append(collected.get("rejected"))
        if w in excluded:
            outcome.append("excluded"); by.append("screening"); why.append(excluded[w])
        elif n == 0:
            outcome.append("excluded"); by.append("collect" if collected.get("reason") else None)
            why.append(collected.get("reason") or "no valid non-gold ratings")
        elif w in kept_workers:
            outcome.append("kept"); by.append(None); why.append(None)
        else:
            outcome.append("excluded"); by.append("screening"); why.append("removed by screening")
    # "screening": whether the worker's ratings are in the analysis ("kept" or "excluded");
    # "rejected": whether any of its work was rejected (not paid), a payment decision that the
    # ratings table records only for a study's own ratings (None: not known).
    workers["screening"] = outcome
    workers["excluded_by"] = by
    workers["reason"] = why
    workers["rejected"] = rejected
    return workers


# How collect marks the ratings of an assignment it did not approve: "exclude: why" (paid, not
# analysed) or "reject: why" (not paid), in the rating's reason.
_DECISION = re.compile(r"(?:^|; )(exclude|reject): (.*)$")


def _collect_decisions(df: pd.DataFrame) -> dict[str, dict]:
    """Per worker, from the ratings' reasons: {"rejected": bool, "reason": why its ratings were
    left out at collect}; empty without a reason column (payments unknown)."""
    if "reason" not in df:
        return {}
    out: dict[str, dict] = {}
    for w, reason in zip(df["worker"], df["reason"]):
        entry = out.setdefault(w, {"rejected": False, "reason": None})
        m = _DECISION.search(reason) if isinstance(reason, str) else None
        if m:
            entry["rejected"] = entry["rejected"] or m.group(1) == "reject"
            if entry["reason"] is None or m.group(1) == "reject":
                entry["reason"] = ("rejected (not paid)" if m.group(1) == "reject"
                                   else "excluded at collect") + ": " + m.group(2)
    return out
