"""Markdown report."""

from __future__ import annotations

from analysis.report.common import (ci_label, fidelity_lines, num, power_line, pvalue_matrix,
                                    ranking_rows, reliability_lines, summary_lines, text,
                                    worker_summary)


def _esc(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(_esc(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_esc(c) for c in r) + " |" for r in rows]
    return out


def render_markdown(report) -> str:
    s = report.scale
    c = report.counts
    L = ["# MOS ranking report", ""]
    L.append(f"Scale {s.label}. {c['analysed']} ratings analysed ({c['ratings']} in total, "
             f"{c['gold']} gold, {c['invalid']} invalid, {c['screened_out']} from screened-out "
             f"workers) on {c['images']} images × {c['methods']} methods by {c['workers']} workers.")
    L += ["", "## Ranking", ""]
    h, rows = ranking_rows(report)
    L += _table(h, rows)
    L += ["", f"MOS: mean per image, then over images. {ci_label(report)}: bootstrap over images and workers "
          f"({report.settings['bootstrap']} replicates). Methods sharing a group letter are not "
          f"significantly different (pairwise Wilcoxon signed-rank on per-image MOS, "
          f"{report.settings['correction'].upper() if report.settings['correction'] == 'bh' else 'Holm'}"
          f"-adjusted, α = {report.settings['alpha']})."]
    L += ["", "## Significance", ""]
    L += [f"- {line}" for line in summary_lines(report)]
    L += ["", "### Pairwise p-values (adjusted)", ""]
    h, rows = pvalue_matrix(report)
    L += _table(h, rows)
    L += ["", "## Workers and screening", ""]
    ws = worker_summary(report)
    L.append(f"{ws['workers']} workers: {ws['kept']} kept, {ws['rejected']} rejected, "
             f"{ws['excluded']} without valid ratings."
             + (f" Median gold accuracy {ws['gold_accuracy_median']:.0%}."
                if "gold_accuracy_median" in ws else ""))
    w = report.workers
    flagged = w[w["screening"] != "kept"]
    if len(flagged):
        L += [""]
        L += _table(["Worker", "Ratings", "Gold accuracy", "Bias", "Inconsistency", "Outcome", "Reason"],
                    [[text(r["worker"]), str(r["n"]), num(r["gold_accuracy"]), num(r["bias"]),
                      num(r["inconsistency"]), text(r["screening"]), text(r["reason"])]
                     for r in flagged.to_dict("records")])
    L += ["", "## Reliability", ""]
    L += [f"- {line}" for line in reliability_lines(report)]
    if report.fidelity:
        L += ["", "## Fidelity vs perception", ""]
        L += [f"- {line}" for line in fidelity_lines(report)]
    L += ["", "## Power", "", power_line(report)]
    if report.notes:
        L += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(L) + "\n"
