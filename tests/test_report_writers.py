"""The report writers on a small study with hostile names, an undefined PSNR and methods
without a runtime: one way of writing numbers everywhere, "—" for what is undefined, escaping
in every format, and plots that say what they leave out."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from analysis.pipeline import analyse
from analysis.report import render
from analysis.report.common import UNDEFINED, fmt
from analysis.report.csvreport import safe_text
from analysis.report.markdown import escape as md_escape
from analysis.report.tex import escape as tex_escape
from analysis.scale import Scale

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://x.invalid","y")'
PIPE = "left|right"
TEX = "a_b&c%d$#{}~^\\"
METHODS = {"reference": 0.3, "good": 1.0, SCRIPT: 1.8, FORMULA: 2.5, PIPE: 3.0, TEX: 3.5}


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(1)
    rows = []
    for w in range(10):
        worker = "@SUM(1+1)" if w == 0 else f"w{w}"
        for img in range(6):
            for m, mu in METHODS.items():
                rows.append({"image": f"img{img}", "method": m, "worker": worker,
                             "score": float(np.clip(np.rint(mu + rng.normal(0, 0.6)), 0, 4))})
    df = pd.DataFrame(rows)
    fidelity = {"reference": {"psnr": float("inf"), "ssim": 1.0},
                "good": {"psnr": 31.23456, "ssim": 0.987654},
                SCRIPT: {"psnr": 28.5, "ssim": 0.9},
                FORMULA: {"psnr": 25.0, "ssim": 0.8},
                PIPE: {"psnr": None, "ssim": 0.7}}
    factsheets = {"good": {"team": "-HACK", "runtime_s": 0.0123456},
                  SCRIPT: {"team": SCRIPT, "runtime_s": 1.5}}
    return analyse(df, Scale.similarity(), factsheets=factsheets, fidelity=fidelity,
                   bootstrap=100, seed=0, mixed_model_max_ratings=0)


@pytest.fixture(scope="module")
def files(report):
    out = {}
    for fmt_ in ("md", "html", "csv", "tex", "json"):
        out.update(render(report, fmt_))
    return out


def test_one_way_of_writing_numbers():
    assert fmt(1.41949, "mos") == "1.42" and fmt(0.4, "mos") == "0.40"
    assert fmt(31.23456, "psnr") == "31.23" and fmt(0.987654, "ssim") == "0.9877"
    assert fmt(0.0004, "p") == "<0.001" and fmt(0.04567, "p") == "0.046"
    assert fmt(0.0123456, "runtime_s") == "0.0123" and fmt(12.3456, "runtime_s") == "12.3"
    for undefined in (None, float("nan"), float("inf"), -float("inf"), np.inf):
        assert fmt(undefined, "psnr") == UNDEFINED
    assert fmt(None, "mos", undefined="") == ""


def test_ranking_table_has_consistent_digits_and_no_inf(files):
    md = files["report.md"]
    table = [line for line in md.splitlines() if line.startswith("| good ")][0]
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", table)[1:-1]]
    # Method, Team, Runtime, PSNR (rank), SSIM (rank), MOS (rank), CI, Group
    assert cells[2] == "0.0123"
    assert re.fullmatch(r"31\.23 \(1\)", cells[3]), cells
    assert re.fullmatch(r"0\.9877 \(\d\)", cells[4]), cells
    assert re.fullmatch(r"\d\.\d\d \(\d\)", cells[5]), cells
    assert re.fullmatch(r"\[\d\.\d\d, \d\.\d\d\]", cells[6]), cells
    ref = [line for line in md.splitlines() if line.startswith("| reference ")][0]
    ref_cells = [c.strip() for c in re.split(r"(?<!\\)\|", ref)[1:-1]]
    assert ref_cells[2] == UNDEFINED and ref_cells[3] == UNDEFINED  # runtime, PSNR
    assert "reference: PSNR undefined (identical images)." in md
    for name, text in files.items():
        assert not re.search(r"\binf\b|\bnan\b|inf\(", text, re.I), name


def test_fidelity_ranks_skip_the_undefined_psnr(files):
    methods = {m["method"]: m for m in json.loads(files["report.json"])["methods"]}
    assert methods["reference"]["psnr"] is None and methods["reference"]["psnr_rank"] is None
    assert methods["good"]["psnr_rank"] == 1
    assert methods["reference"]["ssim_rank"] == 1
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(files["methods.csv"]))}
    assert rows["reference"]["psnr"] == "" and rows["reference"]["psnr_rank"] == ""
    assert rows["good"]["psnr"] == "31.23" and rows["good"]["ssim"] == "0.9877"


def test_csv_cells_cannot_run_as_formulas(files):
    assert safe_text("=1+2") == "'=1+2" and safe_text("\tx") == "'\tx"
    assert safe_text("-0.5") == "-0.5" and safe_text("-") == "-" and safe_text("a=b") == "a=b"
    for name in ("methods.csv", "items.csv", "workers.csv", "pairwise_p.csv"):
        for row in csv.reader(io.StringIO(files[name])):
            for cell in row:
                if cell.startswith(("=", "+", "@", "\t", "\r")) or (
                        cell.startswith("-") and not re.fullmatch(r"-(\d+(\.\d+)?)?", cell)):
                    pytest.fail(f"{name}: {cell!r} would run in a spreadsheet")
    methods = list(csv.DictReader(io.StringIO(files["methods.csv"])))
    assert "'" + FORMULA in {r["method"] for r in methods}
    assert "'-HACK" in {r["team"] for r in methods}
    assert "'@SUM(1+1)" in {r["worker"] for r in csv.DictReader(io.StringIO(files["workers.csv"]))}
    assert "'" + FORMULA in next(csv.reader(io.StringIO(files["pairwise_p.csv"])))
    # Negative numbers stay numbers.
    biases = [r["bias"] for r in csv.DictReader(io.StringIO(files["workers.csv"]))]
    assert any(b.startswith("-") and float(b) < 0 for b in biases)


def test_markdown_lets_no_markup_through(files):
    md = files["report.md"]
    assert "<script" not in md and "&lt;script&gt;" in md
    assert md_escape("a|b") == "a\\|b" and md_escape("[x](javascript:y)") == "\\[x\\](javascript:y)"
    assert md_escape("p < 0.001") == "p < 0.001"
    # Every table row has as many cells as its header.
    lines = md.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("|---") or line.startswith("|---:"):
            width = len(re.split(r"(?<!\\)\|", lines[k - 1]))
            j = k + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert len(re.split(r"(?<!\\)\|", lines[j])) == width, lines[j]
                j += 1


def test_html_is_escaped_self_contained_and_well_formed(files):
    html = files["report.html"]
    assert "<script" not in html and SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'src="http' not in html and "<link" not in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) >= 5  # MOS, heatmap, PSNR–MOS, SSIM–MOS, workers
    for s in svgs:
        ET.fromstring(s.replace("&nbsp;", " "))  # well-formed XML, so no name broke out


def test_plots_show_every_method_with_both_values_and_say_who_is_left_out(files):
    html = files["report.html"]
    psnr = re.search(r'<figure id="psnr-mos">(.*?)</figure>', html, re.S).group(1)
    ssim = re.search(r'<figure id="ssim-mos">(.*?)</figure>', html, re.S).group(1)
    assert psnr.count("<circle") == 3  # good, script, formula
    assert "Not shown: reference (PSNR undefined: identical images); " in psnr
    assert "left|right (no PSNR)" in psnr
    assert ssim.count("<circle") == 5 and "Not shown" in ssim  # TEX has no SSIM
    assert "(no SSIM)" in ssim
    heat = re.search(r'<div class="fig" id="heatmap">(.*?)</div>', html, re.S).group(1)
    assert "worse" in heat and "better" in heat  # the colour scale
    values = re.findall(r">(\d\.\d\d)</text>", heat)
    assert len(values) == 6 * len(METHODS)  # every cell carries its MOS


def test_tex_compiles_as_given(files):
    tex = files["report.tex"]
    assert tex.splitlines()[0] == r"% requires \usepackage{booktabs} in the preamble"
    assert tex_escape(TEX) == r"a\_b\&c\%d\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert tex_escape(SCRIPT) == r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}"
    assert tex_escape(PIPE) in tex and "---" in tex
    assert tex.isascii()
    body = re.sub(r"\\[{}%$#&_]", "", tex)
    assert body.count("{") == body.count("}")
    rows = [line for line in tex.splitlines() if line.endswith(r"\\")]
    widths = {len(re.split(r"(?<!\\)&", line)) for line in rows}
    assert len(widths) == 1, widths


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex (texlive-latex-base, "
                    "texlive-latex-recommended)")
def test_tex_compiles_with_pdflatex(files, tmp_path):
    (tmp_path / "report.tex").write_text(files["report.tex"])
    (tmp_path / "paper.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n"
                                        "\\begin{document}\n\\input{report.tex}\n\\end{document}\n")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 0
    assert "Missing character" not in (tmp_path / "paper.log").read_text()
