"""The report says no more than the data support: exact small-n p-values, intervals inside the
scale, and no power advice from a variance component that could not be estimated."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.fidelity import exact_rank_tests, fidelity_correlation
from analysis.mos import cell_stats, encode, item_table
from analysis.pipeline import analyse
from analysis.scale import Scale


def test_rank_correlation_p_is_exact_for_few_methods():
    # The case: five methods in reverse order. Only 2 of the 120 orderings are as
    # extreme, so p = 1/60, not "< 0.001".
    methods = pd.DataFrame({"method": list("ABCDE"), "mos": [0.5, 1.0, 1.5, 2.0, 2.5],
                            "psnr": [30.0, 28.0, 26.0, 24.0, 22.0]})
    e = fidelity_correlation(methods, Scale.similarity())["psnr"]
    assert e["spearman"] == pytest.approx(-1.0)
    assert e["spearman_p"] == pytest.approx(2 / 120) and e["kendall_p"] == pytest.approx(2 / 120)
    assert e["p_method"].startswith("exact")


@pytest.mark.parametrize("seed", range(3))
def test_exact_kendall_matches_scipy_and_spearman_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.permutation(8).astype(float), rng.permutation(8).astype(float)
    r = exact_rank_tests(x, y)
    ref = stats.kendalltau(x, y, method="exact")
    assert r["kendall"] == pytest.approx(ref.statistic)
    assert r["kendall_p"] == pytest.approx(ref.pvalue)
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)


def test_item_intervals_stay_inside_the_scale():
    df = pd.DataFrame({"image": ["x"] * 2 + ["y"], "method": ["A"] * 3, "worker": ["w1", "w2", "w1"],
                       "score": [0.0, 4.0, 2.0]})
    it = item_table(cell_stats(encode(df)), scale=Scale.similarity()).set_index("image")
    assert it.loc["x", "ci95_low"] == 0 and it.loc["x", "ci95_high"] == 4
    assert it.loc["x", "n"] == 2
    assert math.isnan(it.loc["y", "ci95_low"])


def test_no_power_advice_without_an_estimable_image_by_method_variance():
    # Every image orders the methods alike (no image:method variation): the component is
    # estimated at 0 and the report refuses to compute power with it fixed there.
    rng = np.random.default_rng(1)
    rows = [(f"i{i}", m, f"w{w}", float(np.clip(round(q + rng.normal(0, 0.7)), 0, 4)))
            for i in range(8) for m, q in (("A", 1.0), ("B", 2.0), ("C", 3.0)) for w in range(10)]
    df = pd.DataFrame(rows, columns=["image", "method", "worker", "score"])
    rep = analyse(df, Scale.similarity(), bootstrap=50, subject_models=False, screening=False)
    assert "image_method" in rep.mixed_model["boundary"]
    assert rep.power["r"] is None and "could not be estimated" in rep.power["note"]
    assert any(n.startswith("power advice: not given") for n in rep.notes)
