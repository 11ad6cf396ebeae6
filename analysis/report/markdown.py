"""Markdown report. Every text that comes from the data (method, team, worker names, reasons,
notes) is escaped, so a name cannot add markup, links or HTML to the rendered page."""

from __future__ import annotations

import re

from analysis.report.common import (Table, counts_sentence, fidelity_lines, method_sentence,
                                    power_line, pvalue_table, ranking_notes, ranking_table,
                                    reliability_lines, summary_lines, worker_sentence, worker_table)

# Backslash escapes for Markdown's inline syntax (emphasis, code, links, table cells).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")
# A "<" that could open an HTML tag, comment or declaration becomes an entity ("p < 0.001"
# stays as it is); every ">" does, so no tag and no block quote can be formed.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def escape(s) -> str:
    s = _MD_SPECIAL.sub(r"\\\1", str(s))
    s = _TAG_OPEN.sub("&lt;", s).replace(">", "&gt;")
    return " ".join(s.splitlines())


def _table(t: Table) -> list[str]:
    out = ["| " + " | ".join(escape(h) for h in t.header) + " |",
           "|" + "|".join("---:" if n else "---" for n in t.numeric) + "|"]
    # Numeric cells are written by `fmt` (digits, brackets, "—", "<0.001"): nothing to escape.
    out += ["| " + " | ".join(c if n else escape(c) for c, n in zip(r, t.numeric)) + " |"
            for r in t.rows]
    return out


def render_markdown(report) -> str:
    L = ["# MOS ranking report", "", escape(counts_sentence(report)), "", "## Ranking", ""]
    L += _table(ranking_table(report))
    for note in ranking_notes(report):
        L += ["", escape(note)]
    L += ["", escape(method_sentence(report))]
    L += ["", "## Significance", ""]
    L += [f"- {escape(line)}" for line in summary_lines(report)]
    L += ["", "### Pairwise p-values (adjusted)", ""]
    L += _table(pvalue_table(report))
    L += ["", "## Workers and screening", "", escape(worker_sentence(report))]
    flagged = worker_table(report, flagged_only=True)
    if flagged.rows:
        L += [""] + _table(flagged)
    L += ["", "## Reliability", ""]
    L += [f"- {escape(line)}" for line in reliability_lines(report)]
    if report.fidelity:
        L += ["", "## Fidelity vs perception", ""]
        L += [f"- {escape(line)}" for line in fidelity_lines(report)]
    L += ["", "## Power", "", escape(power_line(report))]
    if report.notes:
        L += ["", "## Notes", ""] + [f"- {escape(n)}" for n in report.notes]
    return "\n".join(L) + "\n"
