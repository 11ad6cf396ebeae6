"""A simulated study with a planted ranking, planted spammers and planted ties is recovered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_sim import simulate  # noqa: E402

from analysis.pipeline import analyse  # noqa: E402
from analysis.report import write  # noqa: E402
from analysis.scale import Scale  # noqa: E402

# Lower is better (0..4 similarity). m01 and m02 are planted as an exact tie.
PLANTED = [0.6, 1.2, 1.2, 1.9, 2.6, 3.3]
SPAMMERS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def study():
    df = simulate(quality=PLANTED, spammers=SPAMMERS, seed=1)
    # Gold: each worker rates 12 reference-vs-reference pairs (known answer 0); spammers guess.
    rng = np.random.default_rng(5)
    gold = []
    for w in range(40):
        for g in range(12):
            s = rng.integers(0, 5) if w in SPAMMERS else (0 if rng.random() < 0.9 else 1)
            gold.append((f"img{g:03d}", "reference", f"w{w:03d}", float(s)))
    gold = pd.DataFrame(gold, columns=["image", "method", "worker", "score"])
    df = pd.concat([df.assign(gold=False), gold.assign(gold=True)], ignore_index=True)
    df["valid"] = True
    factsheets = {f"m{k:02d}": {"team": f"Team {k}", "author": f"a{k}", "framework": "PyTorch",
                                "hardware": "CPU", "runtime_s": 0.1 * (k + 1)} for k in range(6)}
    fidelity = {f"m{k:02d}": {"psnr": 20 + k, "ssim": 0.9 - 0.01 * k} for k in range(6)}
    return analyse(df, Scale.similarity(), factsheets=factsheets, fidelity=fidelity,
                   bootstrap=400, seed=3)


def test_planted_ranking_recovered(study):
    m = study.methods
    order = list(m["method"])
    assert order[0] == "m00" and order[3:] == ["m03", "m04", "m05"]
    assert set(order[1:3]) == {"m01", "m02"}
    assert m["mos"].is_monotonic_increasing  # lower is better: best first
    assert list(m["rank"])[:1] == [1]


def test_planted_tie_shares_a_group_and_gaps_separate(study):
    g = study.methods.set_index("method")["group"]
    assert set(g["m01"]) & set(g["m02"])
    for a, b in (("m00", "m01"), ("m02", "m03"), ("m03", "m04"), ("m04", "m05")):
        assert not set(g[a]) & set(g[b]), (a, b, g.to_dict())
    assert study.friedman["p"] < 1e-6


def test_planted_spammers_flagged(study):
    w = study.workers.set_index("worker")
    spam = {f"w{k:03d}" for k in SPAMMERS}
    acc = w["gold_accuracy"]
    assert set(acc.nsmallest(len(spam)).index) == spam
    assert (acc.drop(index=list(spam)) >= 0.5).all()
    incons = w["inconsistency"].astype(float)
    assert set(incons.nlargest(len(spam)).index) == spam
    assert set(study.screening["excluded"]) <= spam
    out = w.loc[list(study.screening["excluded"])]
    assert (out["screening"] == "excluded").all() and (out["excluded_by"] == "screening").all()


def test_report_contract_and_table_one(study, tmp_path):
    paths = write(study, tmp_path, ["json", "md", "tex", "html", "csv"])
    rep = json.loads((tmp_path / "report.json").read_text())
    first = rep["methods"][0]
    assert first["team"] == "Team 0" and first["psnr"] == 20 and first["psnr_rank"] == 6
    # PSNR planted to rise as perceived quality falls: the report must say they disagree.
    # (m01 and m02 are tied in truth, so their MOS order may go either way.)
    assert rep["fidelity"]["psnr"]["spearman"] > 0.9
    assert rep["fidelity"]["psnr"]["agreement"] < -0.9
    assert rep["counts"]["gold"] == 480
    assert all(i["method"] != "reference" for i in rep["items"])
    assert rep["power"]["r"] is None or rep["power"]["r"] >= 1
    md = (tmp_path / "report.md").read_text()
    assert "| Method | Team | Author | Framework | Hardware | Runtime, s | PSNR↑ | SSIM↑ | MOS↓" in md
    tex = (tmp_path / "report.tex").read_text()
    assert r"MOS$\downarrow$" in tex and "Team 0" in tex
    methods_csv = pd.read_csv(tmp_path / "methods.csv")
    assert list(methods_csv["method"]) == list(study.methods["method"])
    assert len(paths) == 8


def test_scale_direction_flips_the_ranking():
    df = simulate(quality=[3.5, 2.5, 1.5], n_images=10, n_workers=12, ratings_per_item=6,
                  seed=2, low=1, high=5)
    rep = analyse(df, Scale.acr(), bootstrap=100, screening=False, subject_models=False)
    assert list(rep.methods["method"]) == ["m00", "m01", "m02"]
    assert list(rep.methods["rank"]) == [1, 2, 3]
    # Without subject models the worker and item columns exist and are empty.
    d = rep.to_dict()
    assert all(w["bias"] is None and w["inconsistency"] is None for w in d["workers"])
    assert all(i["quality"] is None for i in d["items"])
    assert all(w["screening"] == "kept" for w in d["workers"])
