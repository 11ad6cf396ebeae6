"""LaTeX table (booktabs) in the shape of the paper's Table 1, ready for \\input{report.tex}.
Needs \\usepackage{booktabs} in the preamble."""

from __future__ import annotations

from analysis.report.common import ci_label, ranking_rows

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}


def escape(s: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(s))


def _head(h: str) -> str:
    return escape(h).replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")


def render_tex(report) -> str:
    header, rows = ranking_rows(report)
    align = "".join("l" if i == 0 or header[i] in ("Team", "Author", "Framework", "Hardware", "Group")
                    else "r" for i in range(len(header)))
    s = report.scale
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_head(h) for h in header) + r" \\", r"\midrule"]
    for r in rows:
        lines.append(" & ".join(escape(c).replace("−", "-") for c in r) + r" \\")
    level = ci_label(report).replace("%", "\\%")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{Results sorted by MOS (scale {s.low}--{s.high}, "
              rf"{'higher' if s.higher_is_better else 'lower'} is better). {level} by bootstrap "
              rf"over images and workers; methods sharing a letter are not significantly "
              rf"different (pairwise Wilcoxon, {'Holm' if report.settings['correction'] == 'holm' else 'BH'}"
              rf"-adjusted, $\alpha={report.settings['alpha']}$).}}",
              r"\label{tab:mos-ranking}", r"\end{table}"]
    return "\n".join(lines) + "\n"
