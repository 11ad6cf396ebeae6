"""One self-contained HTML file: tables plus inline SVG plots; no scripts, no external assets."""

from __future__ import annotations

from html import escape

from analysis.report import svg
from analysis.report.common import (ci_label, fidelity_lines, num, power_line, pvalue_matrix,
                                    ranking_rows, reliability_lines, summary_lines, text,
                                    worker_summary)

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}
th{border-bottom:2px solid #444}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.sig{background:#e6f2e6}.note{color:#555}.fig{overflow-x:auto}
h2{margin-top:1.8em;border-bottom:1px solid #ccc}
"""


def _table(header, rows, numeric_from: int = 1, cls_fn=None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(r):
            cls = []
            if j >= numeric_from:
                cls.append("n")
            if cls_fn and cls_fn(i, j):
                cls.append("sig")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{escape(str(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report) -> str:
    s, c = report.scale, report.counts
    alpha = report.settings["alpha"]
    P = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width,initial-scale=1">',
         "<title>MOS ranking report</title>", f"<style>{CSS}</style></head><body>",
         "<h1>MOS ranking report</h1>",
         f"<p>Scale {escape(s.label)}. {c['analysed']} ratings analysed ({c['ratings']} in total, "
         f"{c['gold']} gold, {c['invalid']} invalid, {c['screened_out']} from screened-out workers) "
         f"on {c['images']} images × {c['methods']} methods by {c['workers']} workers.</p>",
         "<h2>Ranking</h2>"]
    h, rows = ranking_rows(report)
    P.append(_table(h, rows, numeric_from=len(h) - 5 if len(h) > 5 else 1))
    P.append(f'<p class="note">MOS: mean per image, then over images. {ci_label(report)}: bootstrap over '
             f'images and workers ({report.settings["bootstrap"]} replicates). Methods sharing a '
             f'group letter are not significantly different (α = {alpha}).</p>')
    P.append('<div class="fig">' + svg.mos_ci_plot(report.methods, s, ci_label(report)) + "</div>")
    P.append("<h2>Significance</h2><ul>" + "".join(f"<li>{escape(l)}</li>" for l in summary_lines(report)) + "</ul>")
    P.append(f"<h3>Pairwise p-values (Wilcoxon signed-rank on per-image MOS, "
             f"{'Holm' if report.settings['correction'] == 'holm' else 'Benjamini–Hochberg'}-adjusted; "
             f"shaded: p &lt; {alpha})</h3>")
    h, rows = pvalue_matrix(report)
    padj = report.pairwise["p_adjusted"].to_numpy()

    def sig(i, j):
        if j == 0 or i == j - 1:
            return False
        v = padj[i, j - 1]
        return v == v and v < alpha
    P.append('<div class="fig">' + _table(h, rows, cls_fn=sig) + "</div>")
    P.append("<h2>Per-image MOS</h2>")
    P.append('<div class="fig">' + svg.heatmap(report.items, report.method_order, s) + "</div>")
    if report.fidelity:
        P.append("<h2>Fidelity vs perception</h2><ul>"
                 + "".join(f"<li>{escape(l)}</li>" for l in fidelity_lines(report)) + "</ul>")
        m = report.methods
        if "psnr" in m and m["psnr"].notna().any():
            P.append('<div class="fig">' + svg.scatter(m["psnr"], m["mos"], m["method"], "PSNR, dB",
                                                        f"MOS {s.arrow}", title="PSNR vs MOS") + "</div>")
    P.append("<h2>Workers and screening</h2>")
    ws = worker_summary(report)
    P.append(f"<p>{ws['workers']} workers: {ws['kept']} kept, {ws['rejected']} rejected, "
             f"{ws['excluded']} without valid ratings."
             + (f" Median gold accuracy {ws['gold_accuracy_median']:.0%}." if "gold_accuracy_median" in ws else "")
             + "</p>")
    w = report.workers
    if w["bias"].notna().any():
        colours = ["#c0392b" if o == "rejected" else "#1b3b6f" for o in w["screening"]]
        P.append('<div class="fig">' + svg.scatter(w["bias"], w["inconsistency"], w["worker"],
                                                    "bias", "inconsistency", colours=colours,
                                                    title="Worker bias vs inconsistency")
                 + '</div><p class="note">Red: rejected by screening.</p>')
    rows = [[text(r["worker"]), str(r["n"]), num(r["gold_accuracy"]), num(r["bias"]),
             num(r["inconsistency"]), text(r["screening"]), text(r["reason"])]
            for r in w.to_dict("records")]
    P.append(_table(["Worker", "Ratings", "Gold accuracy", "Bias", "Inconsistency", "Outcome", "Reason"],
                    rows))
    P.append("<h2>Reliability</h2><ul>" + "".join(f"<li>{escape(l)}</li>" for l in reliability_lines(report)) + "</ul>")
    P.append(f"<h2>Power</h2><p>{escape(power_line(report))}</p>")
    if report.notes:
        P.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    P.append("</body></html>")
    return "\n".join(P) + "\n"
