"""Known-answer tests of the analysis building blocks, computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.fidelity import fidelity_correlation
from analysis.letters import letters
from analysis.mos import cell_stats, encode, item_table, method_table, mos_tables, rank_with_ties
from analysis.pipeline import gold_accuracy
from analysis.power import power_paired, ratings_needed
from analysis.reliability import krippendorff_alpha_ordinal, sos_parameter, split_half
from analysis.scale import Scale
from analysis.significance import adjust, friedman, pairwise_wilcoxon
from analysis.uncertainty import bootstrap_method_mos


def frame(rows):
    return pd.DataFrame(rows, columns=["image", "method", "worker", "score"]).assign(
        score=lambda d: d["score"].astype(float))


def test_scale_parse_and_direction():
    assert Scale.parse("0..4") == Scale.similarity()
    assert Scale.parse("1..5") == Scale.acr()
    assert Scale.parse("1..5", higher_is_better=False).higher_is_better is False
    assert Scale.similarity().best == 0 and Scale.acr().best == 5
    assert Scale.similarity().arrow == "↓" and Scale.acr().arrow == "↑"
    with pytest.raises(ValueError):
        Scale.parse("five")


def test_mos_is_mean_per_image_then_over_images():
    # A: image x rated 0,0,0 (mean 0), image y rated 4 (mean 4) -> MOS 2 (pooled mean would be 1).
    # B: image x 1,3 (mean 2), image y 2,2,2,2 (mean 2) -> MOS 2 (tie with A).
    # C: x 1, y 1 -> MOS 1 (best on a lower-is-better scale).
    df = frame([("x", "A", "w1", 0), ("x", "A", "w2", 0), ("x", "A", "w3", 0), ("y", "A", "w1", 4),
                ("x", "B", "w1", 1), ("x", "B", "w2", 3), *[("y", "B", f"w{k}", 2) for k in range(4)],
                ("x", "C", "w1", 1), ("y", "C", "w2", 1)])
    methods, items = mos_tables(df, Scale.similarity())
    m = methods.set_index("method")
    assert m.loc["A", "mos"] == pytest.approx(2.0)
    assert m.loc["B", "mos"] == pytest.approx(2.0)
    assert m.loc["C", "mos"] == pytest.approx(1.0)
    assert list(m.loc[["C", "A", "B"], "rank"]) == [1, 2, 2]
    it = items.set_index(["image", "method"])
    assert it.loc[("x", "B"), "n"] == 2
    assert it.loc[("x", "B"), "std"] == pytest.approx(math.sqrt(2))
    assert math.isnan(it.loc[("y", "A"), "std"])
    # Same data on a higher-is-better reading: A and B best, C last.
    methods, _ = mos_tables(df, Scale(0, 4, True))
    assert list(methods.set_index("method").loc[["A", "B", "C"], "rank"]) == [1, 1, 3]


def test_invalid_and_gold_ratings_do_not_count():
    df = frame([("x", "A", "w1", 1), ("x", "A", "w2", 3), ("x", "A", "w3", 4)])
    df["valid"] = [True, True, False]
    df["gold"] = [False, False, False]
    methods, _ = mos_tables(df, Scale.similarity())
    assert methods["mos"].iloc[0] == pytest.approx(2.0)


def test_ranks_competition_style():
    assert list(rank_with_ties([3.0, 1.0, 1.0, 2.0], higher_is_better=False)) == [4, 1, 1, 3]
    assert list(rank_with_ties([3.0, 1.0, 1.0, 2.0], higher_is_better=True)) == [1, 3, 3, 2]


def test_t_confidence_interval_per_item():
    df = frame([("x", "A", "w1", 1), ("x", "A", "w2", 2), ("x", "A", "w3", 3)])
    it = item_table(cell_stats(encode(df)))
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd(=1) / sqrt(3)
    assert it["ci95_low"].iloc[0] == pytest.approx(2 - half)
    assert it["ci95_high"].iloc[0] == pytest.approx(2 + half)


def test_bootstrap_is_seeded_and_brackets_the_mos():
    rng = np.random.default_rng(0)
    rows = [(f"i{i}", m, f"w{w}", float(rng.integers(0, 5)))
            for i in range(10) for m in ("A", "B") for w in range(6)]
    df = frame(rows)
    coded = encode(df)
    a = bootstrap_method_mos(coded, n_boot=300, seed=7)
    b = bootstrap_method_mos(coded, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(a, b)
    mos = method_table(cell_stats(coded), Scale.similarity()).set_index("method")["mos"]
    for r in a.itertuples():
        assert r.ci95_low <= mos[r.method] <= r.ci95_high
        assert r.ci95_high > r.ci95_low


def test_bootstrap_without_variation_has_zero_width():
    df = frame([(f"i{i}", "A", f"w{w}", 2.0) for i in range(5) for w in range(3)])
    ci = bootstrap_method_mos(encode(df), n_boot=50, seed=0)
    assert ci["ci95_low"].iloc[0] == pytest.approx(2.0)
    assert ci["ci95_high"].iloc[0] == pytest.approx(2.0)


def test_friedman_and_kendalls_w_by_hand():
    # Three images rank the three methods identically: chi2 = 12/(3*3*4)*(3^2+6^2+9^2) - 3*3*4 = 6.
    x = np.array([[1.0, 2.0, 3.0], [1.5, 2.5, 3.5], [0.0, 1.0, 4.0]])
    res = friedman(x)
    assert res["statistic"] == pytest.approx(6.0)
    assert res["kendall_w"] == pytest.approx(1.0)
    assert res["p"] == pytest.approx(math.exp(-3.0))  # chi2 sf with 2 df = exp(-x/2)
    # With ties it agrees with scipy's tie-corrected statistic.
    y = np.array([[1, 1, 2], [2, 3, 3], [1, 2, 3], [3, 1, 2]], dtype=float)
    assert friedman(y)["statistic"] == pytest.approx(stats.friedmanchisquare(*y.T).statistic)


def test_friedman_not_applicable_without_shared_images():
    x = np.array([[1.0, np.nan], [np.nan, 2.0]])
    assert friedman(x)["p"] is None and "not applicable" in friedman(x)["note"]


def test_holm_and_bh_by_hand():
    p = np.array([0.01, 0.04, 0.03])
    assert adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust(p, "bh") == pytest.approx([0.03, 0.04, 0.04])
    q = adjust(np.array([0.2, np.nan]), "holm")
    assert q[0] == pytest.approx(0.2) and np.isnan(q[1])


def test_pairwise_wilcoxon_pratt_matches_definition():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(2, 0.5, (30, 3)), 1)
    x[:5, 1] = x[:5, 0]  # zero differences, handled by Pratt's method
    res = pairwise_wilcoxon(x, ["A", "B", "C"], "holm")
    expect = stats.wilcoxon(x[:, 0] - x[:, 1], zero_method="pratt", method="asymptotic").pvalue
    assert res["p"].loc["A", "B"] == pytest.approx(expect)
    assert res["p"].loc["B", "A"] == res["p"].loc["A", "B"]
    assert np.isnan(res["p"].loc["A", "A"])
    raw = [res["p"].loc[a, b] for a, b in (("A", "B"), ("A", "C"), ("B", "C"))]
    adj = [res["p_adjusted"].loc[a, b] for a, b in (("A", "B"), ("A", "C"), ("B", "C"))]
    assert adj == pytest.approx(list(adjust(np.array(raw), "holm")))
    same = pairwise_wilcoxon(np.column_stack([x[:, 0], x[:, 0]]), ["A", "B"])
    assert same["p"].loc["A", "B"] == 1.0


def test_letters_insert_absorb():
    sig = np.zeros((3, 3), bool); sig[0, 2] = sig[2, 0] = True
    assert letters(["A", "B", "C"], sig) == {"A": "a", "B": "ab", "C": "b"}
    sig = np.zeros((4, 4), bool)
    for a, b in ((0, 2), (0, 3), (1, 3)):
        sig[a, b] = sig[b, a] = True
    assert letters(list("ABCD"), sig) == {"A": "a", "B": "ab", "C": "bc", "D": "c"}
    all_diff = ~np.eye(3, dtype=bool)
    assert letters(list("ABC"), all_diff) == {"A": "a", "B": "b", "C": "c"}
    assert set(letters(list("ABC"), np.zeros((3, 3), bool)).values()) == {"a"}


def test_krippendorff_alpha_ordinal_by_hand():
    # Units (1,1), (2,2), (3,3), (1,2): coincidences o11=o22=o33=2, o12=o21=1; n1=n2=3, n3=2.
    # Ordinal deltas: d12=(6-3)^2=9, d13=(8-2.5)^2=30.25, d23=(5-2.5)^2=6.25.
    # alpha = 1 - (n-1) * sum(o*d) / sum(n_c n_k d) = 1 - 7*18/600.
    df = frame([("u1", "A", "a", 1), ("u1", "A", "b", 1), ("u2", "A", "a", 2), ("u2", "A", "b", 2),
                ("u3", "A", "a", 3), ("u3", "A", "b", 3), ("u4", "A", "a", 1), ("u4", "A", "b", 2)])
    assert krippendorff_alpha_ordinal(encode(df)) == pytest.approx(1 - 7 * 18 / 600)
    perfect = frame([(f"u{i}", "A", w, float(i % 5)) for i in range(10) for w in ("a", "b", "c")])
    assert krippendorff_alpha_ordinal(encode(perfect)) == pytest.approx(1.0)


def test_sos_parameter_recovers_planted_a():
    # Cells built so that SD^2 = 0.25 (MOS - 1)(5 - MOS) exactly: two ratings MOS +- SD.
    rows = []
    for k, mos in enumerate((2.0, 3.0, 4.0)):
        sd = math.sqrt(0.25 * (mos - 1) * (5 - mos))
        half = sd / math.sqrt(2)  # two values m +- h have sample SD h*sqrt(2)
        rows += [(f"i{k}", "A", "w1", mos - half), (f"i{k}", "A", "w2", mos + half)]
    res = sos_parameter(cell_stats(encode(frame(rows))), Scale.acr())
    assert res["a"] == pytest.approx(0.25)


def test_split_half_perfect_panel():
    df = frame([(f"i{i}", m, f"w{w}", float(i % 5)) for i in range(8) for m in ("A", "B")
                for w in range(6)])
    res = split_half(encode(df), n_splits=10, seed=0)
    assert res["r"] == pytest.approx(1.0) and res["spearman_brown"] == pytest.approx(1.0)


def test_fidelity_correlation_orientation():
    methods = pd.DataFrame({"method": list("ABCD"), "mos": [0.5, 1.0, 1.5, 2.0],
                            "psnr": [30.0, 28.0, 26.0, 24.0], "ssim": [0.8, 0.9, 0.7, 0.6]})
    res = fidelity_correlation(methods, Scale.similarity())
    assert res["psnr"]["spearman"] == pytest.approx(-1.0)
    assert res["psnr"]["kendall"] == pytest.approx(-1.0)
    assert res["psnr"]["agreement"] == pytest.approx(1.0)
    assert res["ssim"]["spearman"] == pytest.approx(-0.8)


def test_power_known_values():
    # No image-by-method variance: Var(d) = 2 s2 / R. The t-test power must cross 0.8 at R.
    res = ratings_needed(0.5, n_images=20, sigma2_error=1.0, alpha=0.05, power=0.8)
    r = res["r"]
    assert power_paired(0.5, 20, r, 1.0) >= 0.8 > power_paired(0.5, 20, r - 1, 1.0)
    # Normal approximation by hand: R ~ 2 s2 (z.975 + z.8)^2 / (I delta^2) = 2*7.849/(20*0.25) = 3.1
    assert r in (4, 5)
    # Interaction variance caps the power: unreachable with few images.
    res = ratings_needed(0.1, n_images=5, sigma2_error=1.0, sigma2_interaction=0.5)
    assert res["r"] is None and "more images" in res["note"]


def test_gold_accuracy_from_ranges_and_default():
    df = frame([("g", "reference", "w1", 0), ("g", "reference", "w2", 3), ("g", "input", "w1", 4),
                ("g", "input", "w2", 4)])
    df["gold"] = True
    acc = gold_accuracy(df, Scale.similarity()).set_index("worker")["gold_accuracy"]
    assert acc["w1"] == pytest.approx(0.5) and acc["w2"] == pytest.approx(0.0)
    df["expected_min"] = [0, 0, 2, 2]
    df["expected_max"] = [1, 1, 4, 4]
    acc = gold_accuracy(df, Scale.similarity()).set_index("worker")["gold_accuracy"]
    assert acc["w1"] == pytest.approx(1.0) and acc["w2"] == pytest.approx(0.5)


def test_suggest_ratings_per_item_from_pilot():
    from analysis.power import suggest_ratings_per_item
    rng = np.random.default_rng(0)
    gap = rng.normal(0, 0.5, 20)      # B's advantage varies from image to image
    rows = [(f"i{i}", m, f"w{w}", float(np.clip(round(q + (m == "B") * gap[i] + rng.normal(0, 0.8)), 0, 4)))
            for i in range(20) for m, q in (("A", 1.0), ("B", 2.0)) for w in range(5)]
    res = suggest_ratings_per_item(frame(rows), delta=0.5)
    assert res["source"] == "crossed mixed model"
    assert res["r"] is not None and res["r"] >= 1 and res["achieved_power"] >= 0.8
    assert res["pilot_ratings_per_item"] == 5
    assert res["sigma2_error"] > 0 and res["sigma2_interaction"] > 0
    # Without image-to-image variation of the gap the component is not estimable: no advice.
    flat = [(f"i{i}", m, f"w{w}", float(q)) for i in range(6) for m, q in (("A", 1.0), ("B", 2.0))
            for w in range(3)]
    res = suggest_ratings_per_item(frame(flat), delta=0.5)
    assert res["r"] is None and res["note"].startswith("not given")
