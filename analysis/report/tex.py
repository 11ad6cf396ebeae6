"""LaTeX table in the shape of the paper's Table 1, ready for \\input{report.tex}.

It uses booktabs rules (\\toprule, \\midrule, \\bottomrule); the file's first line says so. Every
text from the data is escaped, and the symbols the other writers use (—, ↑, α, ...) are written
as LaTeX commands, so the file is plain ASCII for ASCII names and compiles with pdflatex."""

from __future__ import annotations

from analysis.report.common import (ci_label, correction_name, pairwise_test_name,
                                    ranking_notes, ranking_table)

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
            "|": r"\textbar{}", "—": "---", "–": "--", "−": "-", "↑": r"$\uparrow$",
            "↓": r"$\downarrow$", "α": r"$\alpha$", "×": r"$\times$", "’": "'"}


def escape(s) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(s))


def render_tex(report) -> str:
    t = ranking_table(report)
    align = "".join("r" if n else "l" for n in t.numeric)
    s = report.scale
    lines = [r"% requires \usepackage{booktabs} in the preamble",
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(escape(h) for h in t.header) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(c) for c in r) + r" \\" for r in t.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = " ".join(escape(n) for n in ranking_notes(report))
    lines += [rf"\caption{{Results sorted by MOS (scale {s.low}--{s.high}, "
              rf"{'higher' if s.higher_is_better else 'lower'} is better). "
              rf"{escape(ci_label(report))} by bootstrap over images and workers; methods sharing "
              rf"a letter are not significantly different ({escape(pairwise_test_name(report))}, "
              rf"{escape(correction_name(report))}-adjusted, "
              rf"$\alpha={report.settings['alpha']}$)." + (f" {notes}" if notes else "") + "}",
              r"\label{tab:mos-ranking}", r"\end{table}"]
    return "\n".join(lines) + "\n"
