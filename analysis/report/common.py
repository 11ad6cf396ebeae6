"""What every writer shares: how a number is written, the ranking table in the shape of the
paper's Table 1, and the sentences of the summaries.

One function, `fmt`, writes every number in every human-readable writer (Markdown, HTML,
LaTeX, CSV), with a fixed number of decimals per quantity, so a value reads the same wherever it
appears. Undefined values (None, NaN, ±inf) are written "—" and never as 0 or "inf". The JSON
report keeps full precision: it is for programs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

UNDEFINED = "—"

# Decimals per quantity. MOS and its intervals get 2 on the usual 5-level scales and 1 on wider
# ones (see `mos_decimals`); the rest are fixed.
DECIMALS = {"mos": 2, "psnr": 2, "ssim": 4, "bias": 2, "inconsistency": 2, "share": 2,
            "variance": 3, "correlation": 3, "statistic": 2, "seconds": 1, "p": 3}
RUNTIME_SIGNIFICANT = 3


def finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def mos_decimals(scale) -> int:
    return 2 if float(scale.high - scale.low) <= 10 else 1


def fmt(v, quantity: str, *, decimals: int | None = None, undefined: str = UNDEFINED) -> str:
    """`v` written as `quantity` ("mos", "psnr", "ssim", "p", "runtime_s", "count", ...).

    p-values: "<0.001" below 0.001, else 3 decimals. Runtimes: 3 significant digits without
    an exponent (0.00123, 1.23, 123). Counts and ranks: integers."""
    if not finite(v):
        if isinstance(v, str) and v:
            return v
        return undefined
    f = float(v)
    if quantity in ("count", "rank"):
        return str(int(round(f)))
    if quantity == "p":
        return "<0.001" if f < 0.001 else f"{f:.3f}"
    if quantity == "runtime_s":
        if f == 0:
            return "0"
        d = max(0, RUNTIME_SIGNIFICANT - 1 - math.floor(math.log10(abs(f))))
        return f"{f:.{d}f}"
    d = decimals if decimals is not None else DECIMALS.get(quantity, 2)
    return f"{f:.{d}f}"


def p_is(v) -> str:
    """'p = 0.012' or 'p < 0.001' for sentences."""
    s = fmt(v, "p")
    return f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}"


def text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def has(report, col: str) -> bool:
    return col in report.methods and report.methods[col].notna().any()


def ci_label(report) -> str:
    """"95% CI" at the default alpha; the intervals are computed at level 1 - alpha."""
    return f"{100 * (1 - float(report.settings['alpha'])):g}% CI"


def correction_name(report) -> str:
    return "Holm" if report.settings["correction"] == "holm" else "Benjamini–Hochberg"


def fidelity_ranks(report, col: str) -> list:
    """Ranks of a fidelity metric among the methods where it is defined (1 = highest). A
    metric that is infinite for one method (PSNR of the reference against itself) is undefined
    there, so that method gets no rank and the others rank from 1."""
    from analysis.mos import rank_with_ties
    v = report.methods[col].to_numpy(dtype=float)
    v = np.where(np.isfinite(v), v, np.nan)
    return list(rank_with_ties(v, higher_is_better=True))


def method_rows(report):
    """The methods table as the writers output it: fidelity ranks among defined values."""
    m = report.methods.copy()
    for col in ("psnr", "ssim"):
        if col in m:
            m[f"{col}_rank"] = fidelity_ranks(report, col)
    return m


def undefined_psnr(report) -> list[str]:
    """Methods whose PSNR is +inf: their output is identical to the reference."""
    if "psnr" not in report.methods:
        return []
    m = report.methods
    return [str(r["method"]) for r in m.to_dict("records")
            if r["psnr"] is not None and not (isinstance(r["psnr"], float) and math.isnan(r["psnr"]))
            and not finite(r["psnr"])]


class Table:
    """Header, rows of strings, and which columns hold numbers (right-aligned)."""

    def __init__(self, header: list[str], rows: list[list[str]], numeric: list[bool]):
        self.header, self.rows, self.numeric = header, rows, numeric


def ranking_table(report) -> Table:
    """Method, Team, Author, Framework, Hardware, Runtime s, PSNR↑, SSIM↑, MOS with the arrow of
    the scale (each value with its rank), CI, Group. Columns with no data are left out."""
    m = report.methods
    records = m.to_dict("records")
    md = mos_decimals(report.scale)
    cols: list[tuple[str, bool, list[str]]] = [("Method", False, [text(r["method"]) for r in records])]
    for col, title in (("team", "Team"), ("author", "Author"), ("framework", "Framework"),
                       ("hardware", "Hardware")):
        if has(report, col):
            cols.append((title, False, [text(r[col]).strip(" -") and text(r[col]) or UNDEFINED
                                        for r in records]))
    if has(report, "runtime_s"):
        cols.append(("Runtime, s", True, [fmt(r["runtime_s"], "runtime_s") for r in records]))
    for col, title in (("psnr", "PSNR↑"), ("ssim", "SSIM↑")):
        if has(report, col):
            ranks = fidelity_ranks(report, col)
            cols.append((title, True,
                         [f"{fmt(r[col], col)} ({fmt(k, 'rank')})" if finite(r[col]) else UNDEFINED
                          for r, k in zip(records, ranks)]))
    cols.append((f"MOS{report.scale.arrow}", True,
                 [f"{fmt(r['mos'], 'mos', decimals=md)} ({fmt(r['rank'], 'rank')})" for r in records]))
    cols.append((ci_label(report), True,
                 [f"[{fmt(r['ci95_low'], 'mos', decimals=md)}, {fmt(r['ci95_high'], 'mos', decimals=md)}]"
                  if finite(r.get("ci95_low")) and finite(r.get("ci95_high")) else UNDEFINED
                  for r in records]))
    cols.append(("Group", False, [text(r["group"]) for r in records]))
    rows = [[c[2][i] for c in cols] for i in range(len(records))]
    return Table([c[0] for c in cols], rows, [c[1] for c in cols])


def ranking_notes(report) -> list[str]:
    """What a "—" in the ranking table means, method by method."""
    out = []
    for name in undefined_psnr(report):
        out.append(f"{name}: PSNR undefined (identical images).")
    if has(report, "runtime_s"):
        missing = [str(r["method"]) for r in report.methods.to_dict("records")
                   if not finite(r["runtime_s"])]
        if missing:
            out.append(f"{', '.join(missing)}: runtime not measured (no processing, or not "
                       f"reported).")
    return out


def pvalue_table(report) -> Table:
    p = report.pairwise["p_adjusted"]
    rows = [[str(a)] + [UNDEFINED if a == b else fmt(p.at[a, b], "p") for b in p.columns]
            for a in p.index]
    return Table([""] + [str(c) for c in p.columns], rows, [False] + [True] * len(p.columns))


def rejected_text(value) -> str:
    """The "Rejected (not paid)" cell: a payment decision, apart from the analysis."""
    if value is None or (isinstance(value, float) and value != value):
        return UNDEFINED
    return "yes" if bool(value) else "no"


def worker_table(report, flagged_only: bool = False) -> Table:
    """One row per worker. "Analysis" says whether its ratings are in the analysis (kept or
    excluded, and by what); "Rejected (not paid)" is the payment decision, a different thing:
    excluded work is paid unless it was also rejected."""
    w = report.workers
    if flagged_only:
        w = w[(w["screening"] != "kept") | (w["rejected"] == True)]  # noqa: E712
    rows = [[text(r["worker"]), fmt(r["n"], "count"), fmt(r["gold_accuracy"], "share"),
             fmt(r["bias"], "bias"), fmt(r["inconsistency"], "inconsistency"),
             analysis_text(r), rejected_text(r["rejected"]), text(r["reason"])]
            for r in w.to_dict("records")]
    return Table(["Worker", "Ratings", "Gold accuracy", "Bias", "Inconsistency", "Analysis",
                  "Rejected (not paid)", "Reason"], rows,
                 [False, True, True, True, True, False, False, False])


def analysis_text(row) -> str:
    if row["screening"] == "kept":
        return "kept"
    by = row.get("excluded_by")
    return f"excluded ({by})" if isinstance(by, str) and by else "excluded"


def worker_summary(report) -> dict:
    w = report.workers
    excluded = w["screening"] == "excluded"
    by = w["excluded_by"] if "excluded_by" in w else pd.Series([None] * len(w), index=w.index)
    out = {"workers": int(len(w)), "kept": int((w["screening"] == "kept").sum()),
           "excluded_by_screening": int((excluded & (by == "screening")).sum()),
           "excluded_at_collect": int((excluded & (by == "collect")).sum()),
           "excluded_other": int((excluded & ~by.isin(["screening", "collect"])).sum()),
           "rejected": (int((w["rejected"] == True).sum())  # noqa: E712
                        if "rejected" in w and w["rejected"].notna().any() else None)}
    if "gold_accuracy" in w and w["gold_accuracy"].notna().any():
        out["gold_accuracy_median"] = float(np.nanmedian(w["gold_accuracy"].astype(float)))
    return out


def worker_sentence(report) -> str:
    ws = worker_summary(report)
    parts = [f"{ws['kept']} kept in the analysis"]
    if ws["excluded_at_collect"]:
        parts.append(f"{ws['excluded_at_collect']} excluded from the analysis at collect "
                     "(quality control of each assignment)")
    if ws["excluded_by_screening"]:
        parts.append(f"{ws['excluded_by_screening']} excluded from the analysis by screening")
    if ws["excluded_other"]:
        parts.append(f"{ws['excluded_other']} without valid ratings")
    s = f"{ws['workers']} workers: " + ", ".join(parts) + "."
    if ws["rejected"] is not None:
        s += (f" Rejected (not paid), a payment decision apart from the analysis: "
              f"{ws['rejected']}.")
    if "gold_accuracy_median" in ws:
        s += f" Median gold accuracy {ws['gold_accuracy_median']:.0%}."
    return s


def counts_sentence(report) -> str:
    s, c = report.scale, report.counts
    return (f"Scale {s.label}. {c['analysed']} ratings analysed ({c['ratings']} in total, "
            f"{c['gold']} gold, {c['invalid']} invalid, {c['screened_out']} from screened-out "
            f"workers) on {c['images']} images × {c['methods']} methods by {c['workers']} workers.")


def pairwise_test_name(report) -> str:
    """The test behind the letters, in a few words."""
    test = str(report.pairwise.get("test") or "")
    if test.startswith("crossed mixed model"):
        return ("pairwise contrasts of the crossed mixed model with random workers, images and "
                "image×method, Satterthwaite df")
    return "pairwise Wilcoxon signed-rank on per-image MOS"


def method_sentence(report) -> str:
    return (f"MOS: mean per image, then over images. {ci_label(report)}: bootstrap over images "
            f"and workers ({report.settings['bootstrap']} replicates). Methods sharing a group "
            f"letter are not significantly different ({pairwise_test_name(report)}, "
            f"{correction_name(report)}-adjusted, α = {report.settings['alpha']}).")


def summary_lines(report) -> list[str]:
    """Plain sentences for the significance summary."""
    lines = []
    fr = report.friedman
    if fr.get("p") is not None:
        lines.append(f"Friedman test over {fr['n_images']} images × {fr['n_methods']} methods: "
                     f"χ²({fr['df']}) = {fmt(fr['statistic'], 'statistic')}, {p_is(fr['p'])}, "
                     f"Kendall's W = {fmt(fr['kendall_w'], 'correlation')}.")
    else:
        lines.append(f"Friedman test {fr.get('note') or 'not run'}.")
    mm = report.mixed_model
    if mm.get("converged") is not None:
        conv = "converged" if mm["converged"] else "did NOT converge"
        var = mm.get("variance") or {}
        extra = ""
        if var:
            extra = (f"; variance worker {fmt(var.get('worker'), 'variance')}, image "
                     f"{fmt(var.get('image'), 'variance')}, image×method "
                     f"{fmt(var.get('image_method'), 'variance')}, residual "
                     f"{fmt(var.get('residual'), 'variance')}")
        n_sig = sum(1 for e in mm.get("effects", []) if e["p"] < report.settings["alpha"])
        lines.append("Mixed model score ~ method + (1|worker) + (1|image) + (1|image:method) "
                     f"({mm.get('engine')}) on "
                     f"{mm.get('n_used')} ratings {conv} ({fmt(mm.get('seconds'), 'seconds')} s)"
                     f"{extra}; {n_sig} of {len(mm.get('effects', []))} methods differ from "
                     f"{mm.get('reference')} at α = {report.settings['alpha']}."
                     + (f" {mm['note']}." if mm.get("note") else ""))
    elif mm.get("note"):
        lines.append(f"Mixed model: {mm['note']}.")
    return lines


def reliability_lines(report) -> list[str]:
    rel = report.reliability
    na = "n/a"
    sh = rel.get("split_half") or {}
    sos = rel.get("sos") or {}
    return [
        f"Krippendorff's α (ordinal): "
        f"{fmt(rel.get('krippendorff_alpha_ordinal'), 'correlation', undefined=na)}",
        f"Split-half correlation of per-item MOS: r = {fmt(sh.get('r'), 'correlation', undefined=na)}, "
        f"Spearman–Brown = {fmt(sh.get('spearman_brown'), 'correlation', undefined=na)} "
        f"({sh.get('n_splits', 0)} random splits of the workers)",
        f"SOS hypothesis parameter a = {fmt(sos.get('a'), 'correlation', undefined=na)} "
        f"(R² = {fmt(sos.get('r2'), 'correlation', undefined=na)}, {sos.get('n_cells', 0)} items)",
    ]


def fidelity_lines(report) -> list[str]:
    out = []
    for metric, e in (report.fidelity or {}).items():
        name = metric.upper()
        if e.get("spearman") is None:
            out.append(f"{name} vs MOS: too few methods with {name} ({e['n_methods']}).")
            continue
        out.append(f"{name} vs MOS over {e['n_methods']} methods: Spearman ρ = "
                   f"{fmt(e['spearman'], 'correlation')} ({p_is(e['spearman_p'])}), Kendall τ = "
                   f"{fmt(e['kendall'], 'correlation')} ({p_is(e['kendall_p'])}); agreement with "
                   f"viewers {e['agreement']:+.3f} (+1 = same order).")
    return out


def scatter_points(report, metric: str) -> tuple[list[dict], list[str]]:
    """The methods a METRIC–MOS plot shows ({method, x, y}) and, in words, each one left out
    and why."""
    shown, left_out = [], []
    for r in report.methods.to_dict("records"):
        x, y = r.get(metric), r.get("mos")
        name = str(r["method"])
        if finite(x) and finite(y):
            shown.append({"method": name, "x": float(x), "y": float(y)})
        elif metric == "psnr" and x is not None and not (isinstance(x, float) and math.isnan(x)) \
                and not finite(x):
            left_out.append(f"{name} (PSNR undefined: identical images)")
        elif not finite(x):
            left_out.append(f"{name} (no {metric.upper()})")
        else:
            left_out.append(f"{name} (no MOS)")
    return shown, left_out


def power_line(report) -> str:
    p = report.power
    if p.get("r") is None:
        return f"Power: {p.get('note') or 'not computed'}."
    return (f"Power: to separate two methods whose MOS differ by Δ = "
            f"{fmt(p['delta'], 'mos', decimals=mos_decimals(report.scale))} at "
            f"α = {p['alpha']} with power {p['power']:.0%} on {p['n_images']} images, "
            f"{p['r']} ratings per item are needed (this study: "
            f"{fmt(p.get('pilot_ratings_per_item'), 'count')}).")
