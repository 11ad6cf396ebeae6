"""Formatting shared by the writers: the ranking table in the shape of the paper's Table 1."""

from __future__ import annotations

import math

import numpy as np


def num(v, digits: int = 2) -> str:
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return ""
    return f"{f:.{digits}f}"


def pval(v) -> str:
    if v is None:
        return ""
    f = float(v)
    if math.isnan(f):
        return ""
    if f < 0.001:
        return "<0.001"
    return f"{f:.3f}"


def p_is(v) -> str:
    """'p = 0.012' or 'p < 0.001' for sentences."""
    s = pval(v)
    return f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}"


def text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v)


def rank(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(int(v))


def has(report, col: str) -> bool:
    return col in report.methods and report.methods[col].notna().any()


def ci_label(report) -> str:
    """"95% CI" at the default alpha; the intervals are computed at level 1 - alpha."""
    return f"{100 * (1 - float(report.settings['alpha'])):g}% CI"


def ranking_rows(report) -> tuple[list[str], list[list[str]]]:
    """Header and rows: Method, Team, Author, Framework, Hardware, Runtime s, PSNR↑ (rank),
    SSIM↑, MOS (rank) with the arrow of the scale, 95% CI, Group. Columns with no data are
    left out."""
    m = report.methods
    level = ci_label(report)
    arrow = report.scale.arrow
    cols: list[tuple[str, callable]] = [("Method", lambda r: text(r["method"]))]
    for col, title in (("team", "Team"), ("author", "Author"), ("framework", "Framework"),
                       ("hardware", "Hardware"), ("runtime_s", "Runtime, s")):
        if has(report, col):
            cols.append((title, (lambda c: lambda r: text(r[c]) if c != "runtime_s"
                                 else num(r[c], 3).rstrip("0").rstrip("."))(col)))
    if has(report, "psnr"):
        cols.append(("PSNR↑", lambda r: f"{num(r['psnr'])}({rank(r.get('psnr_rank'))})"
                     if num(r["psnr"]) else ""))
    if has(report, "ssim"):
        cols.append(("SSIM↑", lambda r: num(r["ssim"])))
    cols.append((f"MOS{arrow}", lambda r: f"{num(r['mos'])}({rank(r['rank'])})"))
    cols.append((level, lambda r: f"[{num(r['ci95_low'])}, {num(r['ci95_high'])}]"
                 if num(r.get("ci95_low")) else ""))
    cols.append(("Group", lambda r: text(r["group"])))
    header = [c[0] for c in cols]
    rows = [[f(r) for _, f in cols] for r in m.to_dict("records")]
    return header, rows


def pvalue_matrix(report) -> tuple[list[str], list[list[str]]]:
    p = report.pairwise["p_adjusted"]
    header = [""] + list(p.columns)
    rows = []
    for a in p.index:
        rows.append([str(a)] + ["—" if a == b else pval(p.at[a, b]) for b in p.columns])
    return header, rows


def worker_summary(report) -> dict:
    w = report.workers
    out = {"workers": int(len(w)), "kept": int((w["screening"] == "kept").sum()),
           "rejected": int((w["screening"] == "rejected").sum()),
           "excluded": int((w["screening"] == "excluded").sum())}
    if "gold_accuracy" in w and w["gold_accuracy"].notna().any():
        out["gold_accuracy_median"] = float(np.nanmedian(w["gold_accuracy"].astype(float)))
    return out


def summary_lines(report) -> list[str]:
    """Plain sentences for the significance, reliability, fidelity and power summaries."""
    lines = []
    fr = report.friedman
    if fr.get("p") is not None:
        lines.append(f"Friedman test over {fr['n_images']} images × {fr['n_methods']} methods: "
                     f"χ²({fr['df']}) = {fr['statistic']:.2f}, {p_is(fr['p'])}, "
                     f"Kendall's W = {fr['kendall_w']:.3f}.")
    else:
        lines.append(f"Friedman test {fr.get('note') or 'not run'}.")
    mm = report.mixed_model
    if mm.get("converged") is not None:
        conv = "converged" if mm["converged"] else "did NOT converge"
        var = mm.get("variance") or {}
        extra = ""
        if var:
            extra = (f"; variance worker {num(var.get('worker'), 3)}, image "
                     f"{num(var.get('image'), 3)}, residual {num(var.get('residual'), 3)}")
        n_sig = sum(1 for e in mm.get("effects", []) if e["p"] < report.settings["alpha"])
        lines.append(f"Mixed model score ~ method + (1|worker) + (1|image) ({mm.get('engine')}) on "
                     f"{mm.get('n_used')} ratings {conv} ({num(mm.get('seconds'), 1)} s){extra}; {n_sig} of "
                     f"{len(mm.get('effects', []))} methods differ from {mm.get('reference')} "
                     f"at α = {report.settings['alpha']}." + (f" {mm['note']}." if mm.get("note") else ""))
    elif mm.get("note"):
        lines.append(f"Mixed model: {mm['note']}.")
    return lines


def reliability_lines(report) -> list[str]:
    rel = report.reliability
    out = []
    a = rel.get("krippendorff_alpha_ordinal")
    out.append(f"Krippendorff's α (ordinal): {num(a, 3) or 'n/a'}")
    sh = rel.get("split_half") or {}
    out.append(f"Split-half correlation of per-item MOS: r = {num(sh.get('r'), 3) or 'n/a'}, "
               f"Spearman–Brown = {num(sh.get('spearman_brown'), 3) or 'n/a'} "
               f"({sh.get('n_splits', 0)} random splits of the workers)")
    sos = rel.get("sos") or {}
    out.append(f"SOS hypothesis parameter a = {num(sos.get('a'), 3) or 'n/a'} "
               f"(R² = {num(sos.get('r2'), 2) or 'n/a'}, {sos.get('n_cells', 0)} items)")
    return out


def fidelity_lines(report) -> list[str]:
    out = []
    for metric, e in (report.fidelity or {}).items():
        if e.get("spearman") is None:
            out.append(f"{metric.upper()} vs MOS: too few methods with {metric.upper()} "
                       f"({e['n_methods']}).")
            continue
        out.append(f"{metric.upper()} vs MOS over {e['n_methods']} methods: Spearman ρ = "
                   f"{e['spearman']:.3f} ({p_is(e['spearman_p'])}), Kendall τ = "
                   f"{e['kendall']:.3f} ({p_is(e['kendall_p'])}); agreement with viewers "
                   f"{e['agreement']:+.3f} (+1 = same order).")
    return out


def power_line(report) -> str:
    p = report.power
    if p.get("r") is None:
        return f"Power: {p.get('note') or 'not computed'}."
    return (f"Power: to separate two methods whose MOS differ by Δ = {num(p['delta'])} at "
            f"α = {p['alpha']} with power {p['power']:.0%} on {p['n_images']} images, "
            f"{p['r']} ratings per item are needed (this study: "
            f"{num(p.get('pilot_ratings_per_item'), 0)}).")
