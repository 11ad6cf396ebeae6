"""`study report --ratings` end to end on real human ratings, and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.scale import Scale
from analysis.table import RatingsError, parse_column_map, read_ratings, tidy

from conftest import SUBJECTIVE_DATA as DATA


def expected_mos(csv: Path, kept_workers: set[str]) -> pd.Series:
    df = pd.read_csv(csv, dtype={"worker": str})
    df = df[df["worker"].isin(kept_workers)]
    return df.groupby(["image", "method"])["score"].mean().groupby("method").mean()


@pytest.mark.parametrize("name", ["vqeg_hd3_raw.csv", "nflx_public_raw.csv"])
def test_real_dataset_report(run_cli, tmp_path, name):
    out = tmp_path / "out"
    res = run_cli("report", "--ratings", DATA / name, "--scale", "1..5", "--higher-is-better",
                  "--out", out, "--bootstrap", "200", cwd=tmp_path)
    assert "Ranked" in res.output
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.html", "report.tex", "report.json", "methods.csv", "items.csv",
            "workers.csv", "pairwise_p.csv"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema_version"] == 1 and rep["scale"]["higher_is_better"] is True
    kept = {w["worker"] for w in rep["workers"] if w["screening"] == "kept"}
    expect = expected_mos(DATA / name, kept)
    got = {m["method"]: m["mos"] for m in rep["methods"]}
    assert set(got) == set(expect.index)
    for method, mos in expect.items():
        assert got[method] == pytest.approx(mos, abs=1e-12)
    # Higher is better: rank 1 holds the highest MOS and ranks follow MOS.
    ms = rep["methods"]
    assert ms[0]["rank"] == 1 and ms[0]["mos"] == max(got.values())
    assert all(a["mos"] >= b["mos"] for a, b in zip(ms, ms[1:]))
    assert all(m["ci95_low"] <= m["mos"] + 1e-12 and m["mos"] <= m["ci95_high"] + 1e-12 for m in ms)
    assert all(set(m["p_values"]) == set(got) - {m["method"]} for m in ms)
    item = rep["items"][0]
    assert {"image", "method", "mos", "n", "std", "quality"} <= set(item)
    w = rep["workers"][0]
    assert {"worker", "n", "gold_accuracy", "bias", "inconsistency", "screening", "reason"} <= set(w)
    html = (out / "report.html").read_text()
    assert "<svg" in html and "<script" not in html and 'src="http' not in html
    tex = (out / "report.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"MOS$\uparrow$" in tex
    md = (out / "report.md").read_text()
    assert "MOS↑" in md and "Krippendorff" in md


def test_vqeg_significance_and_reliability(tmp_path, run_cli):
    out = tmp_path / "out"
    run_cli("report", "--ratings", DATA / "vqeg_hd3_raw.csv", "--scale", "1..5", "--format",
            "json", "--out", out, "--bootstrap", "100", "--correction", "bh", cwd=tmp_path)
    rep = json.loads((out / "report.json").read_text())
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert rep["friedman"]["n_images"] == 8 and rep["friedman"]["p"] < 1e-6
    assert 0.8 < rep["friedman"]["kendall_w"] <= 1
    assert rep["mixed_model"]["converged"] is True
    assert 0.5 < rep["reliability"]["krippendorff_alpha_ordinal"] < 0.8
    assert rep["reliability"]["split_half"]["spearman_brown"] > 0.9
    assert rep["settings"]["correction"] == "bh"


def test_column_mapping_and_mturk_batch(tmp_path, run_cli):
    src = pd.read_csv(DATA / "vqeg_hd3_raw.csv").head(300)
    renamed = src.rename(columns={"image": "Input.src", "method": "Input.algo",
                                  "worker": "WorkerId", "score": "Answer.quality"})
    path = tmp_path / "batch.csv"
    renamed.to_csv(path, index=False)
    run_cli("report", "--ratings", path, "--scale", "1..5", "--columns",
            "image=Input.src,method=Input.algo,score=Answer.quality", "--format", "json",
            "--out", tmp_path / "o1", "--bootstrap", "50", cwd=tmp_path)
    # Wide MTurk batch results: one row per assignment, items _1.._K.
    wide = pd.DataFrame({"HITId": ["H1", "H2"], "WorkerId": ["A1", "A2"],
                         "AssignmentStatus": ["Approved", "Rejected"],
                         "Input.image_1": ["x", "x"], "Input.method_1": ["m1", "m1"],
                         "Answer.rating_1": [1, 3],
                         "Input.image_2": ["x", "x"], "Input.method_2": ["m2", "m2"],
                         "Answer.rating_2": [2, 4]})
    t = tidy(wide.astype(str), scale=Scale.similarity())
    assert len(t) == 4 and set(t["worker"]) == {"A1", "A2"}
    assert t["valid"].tolist().count(False) == 2


def test_parse_column_map_errors():
    assert parse_column_map("image=a, score=b") == {"image": "a", "score": "b"}
    with pytest.raises(RatingsError, match="unknown column"):
        parse_column_map("picture=a")
    with pytest.raises(RatingsError):
        parse_column_map("image")


def _write(tmp_path, text):
    p = tmp_path / "r.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,scale,needle", [
    ("image,method,worker\nx,A,w1\n", "0..4", "missing column(s): score"),
    ("image,method,worker,score\nx,A,w1,2\nx,B,w1,good\n", "0..4", "not a number"),
    ("image,method,worker,score\nx,A,w1,2\nx,B,w1,5\n", "0..4", "outside the scale 0..4"),
    ("image,method,worker,score\n,A,w1,2\n", "0..4", "empty image"),
    ("image,method,worker,score\n", "0..4", "no ratings"),
])
def test_cli_errors_are_clear_and_write_nothing(tmp_path, run_cli, text, scale, needle):
    path = _write(tmp_path, text)
    out = tmp_path / "out"
    res = run_cli("report", "--ratings", path, "--scale", scale, "--out", out, expect=2, cwd=tmp_path)
    assert needle in res.output
    assert "Traceback" not in res.output
    assert not out.exists()


def test_cli_error_points_at_rows_and_fix(tmp_path, run_cli):
    path = _write(tmp_path, "image,method,worker,score\nx,A,w1,2\nx,B,w1,5\n")
    res = run_cli("report", "--ratings", path, "--out", tmp_path / "o", expect=2, cwd=tmp_path)
    assert "rows 3" in res.output and "--scale" in res.output
    res = run_cli("report", "--ratings", tmp_path / "nope.csv", expect=2, cwd=tmp_path)
    assert "not found" in res.output
    res = run_cli("report", "--ratings", path, "--format", "pdf", expect=2, cwd=tmp_path)
    assert "unknown report format" in res.output
    res = run_cli("report", "--ratings", path, "--columns", "score=Answer.x", expect=2, cwd=tmp_path)
    assert "Answer.x" in res.output and "not in the file" in res.output


def test_report_outside_a_study_without_ratings(tmp_path, run_cli):
    res = run_cli("report", expect=2, cwd=tmp_path)
    assert "not inside a study folder" in res.output


def test_read_ratings_defaults(tmp_path):
    p = _write(tmp_path, "image,method,worker,score,gold\nx,A,w1,2,0\nx,A,w2,0,1\n")
    df = read_ratings(p, scale=Scale.similarity())
    assert df["gold"].tolist() == [False, True] and df["valid"].all()
    assert df["score"].dtype == float


def test_report_in_a_study_without_ratings(study_dir, run_cli):
    res = run_cli("report", expect=2, cwd=study_dir)
    assert "no ratings collected yet" in res.output and "Traceback" not in res.output
    assert not (study_dir / "reports" / "report.json").exists()


def test_report_inside_a_study(study_dir, run_cli):
    """Ratings stored the way `study collect` stores them, plus factsheets and fidelity from
    the methods and renders tables: `study report` ranks, joins Table 1 and writes reports/."""
    import sqlite3
    rng = np.random.default_rng(0)
    con = sqlite3.connect(study_dir / "study.db")
    images = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY image_id")]
    truth = {"good": 0.5, "fair": 1.8, "poor": 3.2}
    for k, m in enumerate(truth):
        con.execute("INSERT INTO methods (name, kind, spec_json, team, author, framework, hardware, "
                    "runtime_reported) VALUES (?, 'builtin', '{}', ?, ?, 'PyTorch', 'CPU', ?)",
                    (m, f"Team {m}", f"author{k}", 0.5 + k))
        for img in images:
            con.execute("INSERT INTO renders (method, image_id, status, psnr, ssim, runtime_s) "
                        "VALUES (?, ?, 'done', ?, ?, 0.1)", (m, img, 25.0 - k, 0.9 - 0.05 * k))
    item_ids = {}
    for img in images:
        for m in truth:
            cur = con.execute("INSERT INTO items (image_id, method, kind, reference_path, result_path) "
                              "VALUES (?, ?, 'test', 'r', 'x')", (img, m))
            item_ids[(img, m)] = cur.lastrowid
        cur = con.execute("INSERT INTO items (image_id, method, kind, reference_path, result_path, "
                          "expected_min, expected_max) VALUES (?, 'reference', 'gold_reference', "
                          "'r', 'r', 0, 1)", (img,))
        item_ids[(img, "reference")] = cur.lastrowid
    for w in range(8):
        aid = f"A{w}"
        con.execute("INSERT INTO assignments (assignment_id, realm, hit_id, hit_index, worker_id, "
                    "status) VALUES (?, 'sandbox', 'H', 0, ?, 'Approved')", (aid, f"W{w}"))
        for pos, (key, item) in enumerate(sorted(item_ids.items()), 1):
            img, m = key
            score = 0 if m == "reference" else int(np.clip(np.rint(truth[m] + rng.normal(0, 0.5)), 0, 4))
            con.execute("INSERT INTO ratings (assignment_id, position, item_id, worker_id, score, "
                        "seconds, valid) VALUES (?, ?, ?, ?, ?, 3.0, 1)", (aid, pos, item, f"W{w}", score))
    con.commit()
    con.close()
    res = run_cli("report", "--format", "json,md", "--bootstrap", "100", cwd=study_dir)
    rep = json.loads((study_dir / "reports" / "report.json").read_text())
    assert [m["method"] for m in rep["methods"]] == ["good", "fair", "poor"]
    good = rep["methods"][0]
    assert good["team"] == "Team good" and good["runtime_s"] == 0.5
    assert good["psnr"] == pytest.approx(25.0) and good["psnr_rank"] == 1
    assert rep["counts"]["gold"] == 8 * len(images)
    assert rep["scale"] == {"low": 0, "high": 4, "higher_is_better": False,
                            "labels": ["almost identical", "mostly similar", "similar",
                                       "somewhat similar", "mostly different"]}
    assert "MOS↓" in (study_dir / "reports" / "report.md").read_text()
    assert "wrote" in res.output


def test_interval_label_follows_alpha(tmp_path, run_cli):
    out = tmp_path / "r"
    run_cli("report", "--ratings", DATA / "vqeg_hd3_raw.csv", "--scale", "1..5",
            "--higher-is-better", "--alpha", "0.1", "--out", out, cwd=tmp_path)
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        assert "90% CI" in text and "95% CI" not in text
    assert "90\\% CI" in (out / "report.tex").read_text()


def test_unknown_format_in_study_toml_is_a_clear_error(tmp_path, run_cli, study_dir):
    toml = study_dir / "study.toml"
    toml.write_text(toml.read_text().replace(
        'formats = ["md", "html", "csv", "tex", "json"]', 'formats = ["pdf"]'))
    res = run_cli("report", "--out", tmp_path / "o", expect=2, cwd=study_dir)
    assert 'report.formats = "pdf" is not one of' in res.output
    assert "study.toml" in res.output
    assert not (tmp_path / "o").exists()
