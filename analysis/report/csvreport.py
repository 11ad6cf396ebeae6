"""CSV report: methods.csv, items.csv, workers.csv and pairwise_p.csv (adjusted p-values)."""

from __future__ import annotations

import io

from analysis.report.jsonreport import ITEM_FIELDS, METHOD_FIELDS, WORKER_FIELDS


def _csv(frame, fields) -> str:
    cols = [f for f in fields if f in frame]
    buf = io.StringIO()
    frame[cols].to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def render_csv(report) -> dict[str, str]:
    p = report.pairwise["p_adjusted"].copy()
    buf = io.StringIO()
    p.to_csv(buf, lineterminator="\n")
    return {"methods.csv": _csv(report.methods, METHOD_FIELDS),
            "items.csv": _csv(report.items, ITEM_FIELDS),
            "workers.csv": _csv(report.workers, WORKER_FIELDS),
            "pairwise_p.csv": buf.getvalue()}
