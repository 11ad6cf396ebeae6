"""One self-contained HTML file: tables and inline SVG plots, no scripts, no external assets.

The page is the Jinja2 template `templates/report.html`, rendered with autoescaping: every text
from the data is escaped by the template; the plots come from `svg` as already-escaped markup,
the only values the template marks safe."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from analysis.report import svg
from analysis.report.common import (ci_label, correction_name, counts_sentence, fidelity_lines,
                                    finite, method_sentence, pairwise_test_name, power_line,
                                    pvalue_table,
                                    ranking_notes, ranking_table, reliability_lines,
                                    scatter_points, summary_lines, worker_sentence, worker_table)

_ENV = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

METRIC_LABEL = {"psnr": "PSNR, dB", "ssim": "SSIM"}


def _fidelity_plots(report) -> list[dict]:
    """A METRIC–MOS plot per metric the study has, with the methods left out said in words."""
    plots = []
    for metric in ("psnr", "ssim"):
        if metric not in report.methods or not report.methods[metric].notna().any():
            continue
        points, left_out = scatter_points(report, metric)
        name = metric.upper()
        plots.append({"metric": metric,
                      "svg": svg.scatter(points, METRIC_LABEL[metric], f"MOS {report.scale.arrow}",
                                         title=f"{name} vs MOS", x_quantity=metric),
                      "caption": f"{len(points)} of {len(report.methods)} methods shown."
                                 + (f" Not shown: {'; '.join(left_out)}." if left_out else "")})
    return plots


def _significant(report) -> list[list[bool]]:
    """Per cell of the p-value table (first column: the method name), p < alpha."""
    p = report.pairwise["p_adjusted"].to_numpy()
    alpha = report.settings["alpha"]
    return [[False] + [i != j and p[i, j] == p[i, j] and p[i, j] < alpha
                       for j in range(p.shape[1])] for i in range(p.shape[0])]


def _worker_plot(report) -> str | None:
    rows = [r for r in report.workers.to_dict("records")
            if finite(r["bias"]) and finite(r["inconsistency"])]
    if not rows:
        return None
    points = [{"method": str(r["worker"]), "x": float(r["bias"]), "y": float(r["inconsistency"])}
              for r in rows]
    colours = ["#c0392b" if r["screening"] != "kept" else "#1b3b6f" for r in rows]
    return svg.scatter(points, "bias", "inconsistency", "Worker bias vs inconsistency",
                       x_quantity="bias", y_quantity="inconsistency", colours=colours,
                       labels=False)


def render_html(report) -> str:
    n_images = report.items["image"].nunique()
    return _ENV.get_template("report.html").render(
        counts=counts_sentence(report),
        ranking=ranking_table(report),
        ranking_notes=ranking_notes(report),
        method_sentence=method_sentence(report),
        mos_plot=svg.mos_ci_plot(report.methods, report.scale, ci_label(report)),
        summary=summary_lines(report),
        correction=correction_name(report),
        pairwise_test=pairwise_test_name(report),
        alpha=report.settings["alpha"],
        pvalues=pvalue_table(report),
        significant=_significant(report),
        heatmap=svg.heatmap(report.items, report.method_order, report.scale),
        heatmap_shown=min(n_images, svg.HEATMAP_MAX_IMAGES), n_images=n_images,
        fidelity=fidelity_lines(report) if report.fidelity else [],
        fidelity_plots=_fidelity_plots(report),
        workers_sentence=worker_sentence(report),
        worker_plot=_worker_plot(report),
        workers=worker_table(report),
        reliability=reliability_lines(report),
        power=power_line(report),
        notes=list(report.notes),
    )
