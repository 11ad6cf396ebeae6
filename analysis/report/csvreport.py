"""CSV report: methods.csv, items.csv, workers.csv and pairwise_p.csv (adjusted p-values).

Numbers are written with the report's decimals (`common.fmt`); undefined values are empty
cells. A text cell that a spreadsheet would run as a formula (it starts with =, +, -, @, a tab
or a carriage return) is prefixed with ' so it is shown as text."""

from __future__ import annotations

import csv
import io
import re

from analysis.report.common import fmt, method_rows, mos_decimals
from analysis.report.jsonreport import ITEM_FIELDS, METHOD_FIELDS, WORKER_FIELDS

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What a spreadsheet cannot run: a plain number, or a lone dash (a factsheet's "unknown").
_INERT = re.compile(r"[-+]?\d+(\.\d+)?|-")

# How each column is written: a quantity for `fmt`, or None for text.
QUANTITY = {
    "rank": "rank", "psnr_rank": "rank", "ssim_rank": "rank", "n_images": "count",
    "n_ratings": "count", "n": "count", "n_total": "count", "n_gold": "count",
    "mos": "mos", "ci95_low": "mos", "ci95_high": "mos", "boot_se": "mos", "std_images": "mos",
    "std": "mos", "quality": "mos", "quality_ci95_low": "mos", "quality_ci95_high": "mos",
    "runtime_s": "runtime_s", "psnr": "psnr", "ssim": "ssim", "gold_accuracy": "share",
    "bias": "bias", "bias_ci95_low": "bias", "bias_ci95_high": "bias",
    "inconsistency": "inconsistency", "inconsistency_ci95_low": "inconsistency",
    "inconsistency_ci95_high": "inconsistency",
}


def safe_text(v) -> str:
    s = "" if v is None or (isinstance(v, float) and v != v) else str(v)
    return "'" + s if s.startswith(FORMULA_START) and not _INERT.fullmatch(s) else s


def _cell(v, field: str, report) -> str:
    q = QUANTITY.get(field)
    if q is None:
        return safe_text(v)
    decimals = mos_decimals(report.scale) if q == "mos" else None
    return fmt(v, q, decimals=decimals, undefined="")


def _write(header, rows) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(header)
    out.writerows(rows)
    return buf.getvalue()


def _csv(report, frame, fields) -> str:
    cols = [f for f in fields if f in frame]
    rows = [[_cell(r[f], f, report) for f in cols] for r in frame[cols].to_dict("records")]
    return _write(cols, rows)


def render_csv(report) -> dict[str, str]:
    p = report.pairwise["p_adjusted"]
    # Full p-values here (3 significant digits), not the "<0.001" of the tables.
    pairs = [[safe_text(a)] + ["" if p.at[a, b] != p.at[a, b] else f"{float(p.at[a, b]):.3g}"
                               for b in p.columns] for a in p.index]
    return {"methods.csv": _csv(report, method_rows(report), METHOD_FIELDS),
            "items.csv": _csv(report, report.items, ITEM_FIELDS),
            "workers.csv": _csv(report, report.workers, WORKER_FIELDS),
            "pairwise_p.csv": _write([""] + [safe_text(c) for c in p.columns], pairs)}
