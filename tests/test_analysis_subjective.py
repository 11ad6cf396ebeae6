"""Worker screening and subject models: known answers, properties, and agreement with SUREAL."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import subjective as sj
from analysis._subjective_sureal import max_abs_diff, run_sureal, sureal_frames, to_sureal_dataset

from conftest import SUBJECTIVE_DATA as DATA
DATASETS = ["vqeg_hd3_raw.csv", "nflx_public_raw.csv"]
TOL = 1e-6


def _ratings(rows):
    return pd.DataFrame(rows, columns=["image", "method", "worker", "score"])


def _assert_agree(ours: pd.DataFrame, theirs: pd.DataFrame, what: str):
    assert set(ours.index) == set(theirs.index), what
    diffs = max_abs_diff(ours, theirs)
    assert diffs, what
    for col, d in diffs.items():
        assert d <= TOL, f"{what} {col}: max abs difference {d:g}"


# ---------------------------------------------------------------------------------------------
# agreement with SUREAL on the real datasets

@pytest.fixture(scope="module", params=DATASETS)
def real(request):
    path = DATA / request.param
    if not path.exists():
        pytest.skip(f"{path} not available")
    pytest.importorskip("sureal")
    df = pd.read_csv(path)
    return request.param, df, to_sureal_dataset(df)


def _sureal(ds, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_sureal(ds, model)


MODELS = [
    (sj.p910_annex_e, "P910AnnexEModel", ["quality", "bias", "inconsistency"]),
    (sj.mle_content_oblivious, "MaximumLikelihoodEstimationModelContentOblivious",
     ["quality", "bias", "inconsistency"]),
    (sj.mle_full, "MaximumLikelihoodEstimationModel",
     ["quality", "bias", "inconsistency", "ambiguity"]),
]


@pytest.mark.parametrize("ours,theirs,parts", MODELS, ids=["p910", "mle_co", "mle_full"])
def test_subject_models_agree_with_sureal_on_real_data(real, ours, theirs, parts):
    name, df, ds = real
    res = ours(df)
    ref = _sureal(ds, theirs)
    frames = sureal_frames(ref)
    assert res.converged
    assert res.iterations == ref["num_iter"]
    for part in parts:
        got = getattr(res, part)
        # estimates, standard errors and both CI ends
        assert {"estimate", "std", "ci95_low", "ci95_high"} <= set(frames[part].columns)
        _assert_agree(got, frames[part], f"{name} {theirs} {part}")
    if "ambiguity" not in parts:
        assert res.ambiguity is None


# SUREAL screens every worker and counts every item, even one whose raters all agree.
SUREAL_SCREENING = {"min_ratings": 0, "skip_constant": False}


def test_bt500_and_p913_agree_with_sureal_on_real_data(real):
    name, df, ds = real
    ref = sureal_frames(_sureal(ds, "BT500Model"))
    expected = set(ref["rejected"][ref["rejected"]].index)
    for per in ("rated", "items"):   # complete designs: both denominators are the same
        kept, rejected = sj.bt500_screening(df, per=per, **SUREAL_SCREENING)
        assert set(rejected) == expected
        assert all("BT.500" in reason for reason in rejected.values())
        assert set(kept["worker"]) == set(df["worker"]) - expected
        _assert_agree(sj.mos_model(kept).quality, ref["quality"], f"{name} BT.500 MOS")

    ref = sureal_frames(_sureal(ds, "P913124Model"))
    res = sj.p913_model(df, **SUREAL_SCREENING)
    assert set(res.rejected) == set(ref["rejected"][ref["rejected"]].index)
    _assert_agree(res.quality, ref["quality"], f"{name} P.913 quality")
    _assert_agree(res.bias, ref["bias"], f"{name} P.913 bias")

    ref = sureal_frames(_sureal(ds, "BiasremvMosModel"))
    _assert_agree(sj.p913_model(df, screen=False).quality, ref["quality"], f"{name} bias-removed")
    _assert_agree(sj.mos_model(sj.p913_bias_removal(df)).quality, ref["quality"],
                  f"{name} p913_bias_removal")
    ref = sureal_frames(_sureal(ds, "MosModel"))
    _assert_agree(sj.mos_model(df).quality, ref["quality"], f"{name} MOS")


def _incomplete_design():
    """Unbalanced ratings with repetitions and one worker whose rounded scores match the model
    exactly (inconsistency -> 0), the hard case for the numerics."""
    rng = np.random.default_rng(1)
    rows = []
    for img in range(5):
        for meth in range(6):
            q = rng.uniform(1, 5)
            for w in range(15):
                if rng.random() < 0.7:
                    for _ in range(1 + (rng.random() < 0.15)):
                        s = np.clip(np.rint(q + rng.normal(0, 0.3 + w * 0.1)), 1, 5)
                        rows.append((f"i{img}", f"m{meth}", f"w{w:02d}", float(s)))
    return _ratings(rows)


def test_agree_with_sureal_on_incomplete_design_with_repetitions():
    pytest.importorskip("sureal")
    df = _incomplete_design()
    assert sj.build_matrix(df).R == 2
    ds = to_sureal_dataset(df)
    for ours, theirs, parts in MODELS:
        res = ours(df)
        frames = sureal_frames(_sureal(ds, theirs))
        for part in parts:
            _assert_agree(getattr(res, part), frames[part], f"incomplete {theirs} {part}")
    ref = sureal_frames(_sureal(ds, "BT500Model"))
    kept, rejected = sj.bt500_screening(df, per="items", **SUREAL_SCREENING)
    assert set(rejected) == set(ref["rejected"][ref["rejected"]].index)
    _assert_agree(sj.mos_model(kept).quality, ref["quality"], "incomplete BT.500 MOS")


# ---------------------------------------------------------------------------------------------
# known answers and properties

def test_gold_accuracy_counts_ratings_inside_expected_range():
    df = _ratings([
        ("a", "reference", "w1", 0), ("b", "reference", "w1", 1), ("a", "input", "w1", 4),
        ("a", "reference", "w2", 3), ("b", "reference", "w2", 0), ("a", "input", "w2", 1),
        ("a", "m1", "w3", 2),
    ])
    expected = {("a", "reference"): (0, 1), ("b", "reference"): (0, 1), ("a", "input"): (3, 4)}
    acc = sj.gold_accuracy(df, expected)
    assert acc["w1"] == 1.0
    assert acc["w2"] == pytest.approx(1 / 3)
    assert np.isnan(acc["w3"])
    frame = pd.DataFrame([("a", "reference", 0, 1), ("b", "reference", 0, 1), ("a", "input", 3, 4)],
                         columns=["image", "method", "low", "high"])
    pd.testing.assert_series_equal(sj.gold_accuracy(df, frame), acc)
    # with a gold flag, only flagged rows count
    flagged = df.assign(gold=[True, True, False, False, True, True, False])
    acc2 = sj.gold_accuracy(flagged, expected)
    assert acc2["w1"] == 1.0 and acc2["w2"] == 0.5
    # validity flags do not hide gold ratings
    pd.testing.assert_series_equal(sj.gold_accuracy(df.assign(valid=False), expected), acc)


def test_p913_bias_removal_known_answer():
    df = _ratings([("a", "m", "A", 1), ("b", "m", "A", 3), ("a", "m", "B", 3), ("b", "m", "B", 5)])
    bias = sj.p913_subject_bias(df)
    assert bias["A"] == -1.0 and bias["B"] == 1.0
    out = sj.p913_bias_removal(df)
    assert list(out.columns) == list(df.columns) and len(out) == len(df)
    assert out["score"].tolist() == [2.0, 4.0, 2.0, 4.0]


def _spammer_study(seed=3, n_workers=20, spammers=("w00", "w01")):
    rng = np.random.default_rng(seed)
    rows = []
    for img in range(8):
        for meth in range(5):
            q = 0.5 + meth * 0.7 + rng.normal(0, 0.2)
            for w in range(n_workers):
                name = f"w{w:02d}"
                if name in spammers:   # answers the mirror image of the truth
                    s = 4 - np.clip(np.rint(q), 0, 4)
                else:
                    s = np.clip(np.rint(q + rng.normal(0, 0.5)), 0, 4)
                rows.append((f"i{img}", f"m{meth}", name, float(s)))
    return _ratings(rows)


def test_bt500_rejects_planted_spammers_and_keeps_their_rows_out():
    df = _spammer_study()
    kept, rejected = sj.bt500_screening(df)
    assert set(rejected) == {"w00", "w01"}
    assert "5%" in rejected["w00"]
    assert not kept["worker"].isin(["w00", "w01"]).any()
    assert len(kept) == len(df) - 2 * 40
    stats = sj.bt500_statistics(df)
    assert stats.loc["w00", "outside_fraction"] > 0.05 and stats.loc["w00", "asymmetry"] < 0.3
    flags = _bt500_flags(df)
    np.testing.assert_array_equal(stats["P"], (flags == 1).groupby(df["worker"]).sum()[stats.index])
    np.testing.assert_array_equal(stats["Q"], (flags == -1).groupby(df["worker"]).sum()[stats.index])
    assert not stats.drop(["w00", "w01"])["rejected"].any()


def _bt500_flags(df):
    """Per rating: +1 above the item's upper bound, -1 below the lower bound (BT.500 rules,
    computed independently with scipy)."""
    from scipy import stats
    out = pd.Series(0, index=df.index)
    for _, g in df.groupby(["image", "method"]):
        x = g["score"].to_numpy(float)
        mu, sd, k = x.mean(), x.std(), stats.kurtosis(x, fisher=False)
        f = 2.0 if 2 <= k <= 4 else np.sqrt(20)
        out[g.index] = np.where(x >= mu + f * sd, 1, np.where(x <= mu - f * sd, -1, 0))
    return out


def test_bt500_denominator_matters_only_for_incomplete_designs():
    df = _spammer_study()
    flags = _bt500_flags(df)[df["worker"] == "w01"]
    # w01 keeps one rating above and one below the bounds; the items keep their other ratings,
    # so their bounds do not move
    keep_rows = [flags.index[flags == 1][0], flags.index[flags == -1][0]]
    sub = df[(df["worker"] != "w01") | df.index.isin(keep_rows)]
    rated = sj.bt500_statistics(sub, per="rated", min_ratings=0)
    items = sj.bt500_statistics(sub, per="items", min_ratings=0)
    assert (rated.loc["w01", ["n", "P", "Q"]].tolist()) == [2, 1, 1]
    assert rated.loc["w01", "outside_fraction"] == 1.0
    assert items.loc["w01", "outside_fraction"] == pytest.approx(2 / 40)
    assert rated.loc["w01", "rejected"] and not items.loc["w01", "rejected"]
    np.testing.assert_allclose(rated["outside_fraction"] * rated["n"],
                               items["outside_fraction"] * 40)
    with pytest.raises(ValueError):
        sj.bt500_statistics(sub, per="everything")


def test_bt500_never_rejects_everyone():
    # two workers who always disagree at the extremes: both would fail, so none is rejected
    rows = [(f"i{i}", "m", w, s) for i in range(10) for w, s in (("a", 0), ("b", 4))]
    kept, rejected = sj.bt500_screening(_ratings(rows))
    assert rejected == {} and len(kept) == 20


def _planted(seed=0, n_items=60, n_workers=25, noise=True):
    rng = np.random.default_rng(seed)
    q = rng.uniform(1, 4, n_items)
    b = rng.normal(0, 0.4, n_workers)
    b -= b.mean()
    v = rng.uniform(0.2, 0.8, n_workers)
    rows = []
    for j in range(n_items):
        for i in range(n_workers):
            e = rng.normal(0, v[i]) if noise else 0.0
            rows.append((f"img{j % 12}", f"m{j // 12}", f"w{i:02d}", q[j] + b[i] + e))
    df = _ratings(rows)
    items = pd.MultiIndex.from_tuples([(f"img{j % 12}", f"m{j // 12}") for j in range(n_items)],
                                      names=["image", "method"])
    workers = pd.Index([f"w{i:02d}" for i in range(n_workers)], name="worker")
    return df, pd.Series(q, items), pd.Series(b, workers), pd.Series(v, workers)


@pytest.mark.parametrize("model", [sj.p910_annex_e, sj.mle_content_oblivious, sj.mle_full])
def test_models_recover_planted_quality_bias_and_inconsistency(model):
    df, q, b, v = _planted()
    res = model(df)
    assert res.converged
    est = res.quality["estimate"].reindex(q.index)
    # 25 ratings per item, 60 per worker: standard errors are about 0.1 and 0.07
    assert np.abs(est - q).max() < 0.5
    assert np.corrcoef(est, q)[0, 1] > 0.98
    assert np.abs(res.bias["estimate"].reindex(b.index) - b).max() < 0.3
    assert np.corrcoef(res.inconsistency["estimate"].reindex(v.index), v)[0, 1] > 0.9
    assert res.bias["estimate"].mean() == pytest.approx(0, abs=1e-12)
    for part in (res.quality, res.bias, res.inconsistency):
        assert (part["ci95_low"] <= part["estimate"]).all()
        assert (part["estimate"] <= part["ci95_high"]).all()
    # most true values lie in their 95 % intervals
    covered = ((res.quality["ci95_low"] <= q.reindex(res.quality.index))
               & (q.reindex(res.quality.index) <= res.quality["ci95_high"])).mean()
    assert covered > 0.8


def test_noise_free_ratings_give_exact_answer():
    df, q, b, _ = _planted(noise=False)
    res = sj.p910_annex_e(df)
    np.testing.assert_allclose(res.quality["estimate"].reindex(q.index), q + 0, atol=1e-9)
    np.testing.assert_allclose(res.bias["estimate"].reindex(b.index), b, atol=1e-9)


@pytest.mark.parametrize("model", [sj.p910_annex_e, sj.mle_content_oblivious, sj.mle_full])
def test_models_are_scale_neutral_under_reversal(model):
    # a reversed scale (higher-better vs lower-better) mirrors quality and bias, keeps spreads
    df, *_ = _planted(seed=4, n_items=30, n_workers=12)
    a = model(df)
    b = model(df.assign(score=5 - df["score"]))
    np.testing.assert_allclose(b.quality["estimate"], 5 - a.quality["estimate"], atol=1e-7)
    np.testing.assert_allclose(b.quality["std"], a.quality["std"], atol=1e-7)
    np.testing.assert_allclose(b.bias["estimate"], -a.bias["estimate"], atol=1e-7)
    np.testing.assert_allclose(b.inconsistency["estimate"], a.inconsistency["estimate"], atol=1e-7)


def test_row_order_does_not_matter_and_labels_are_kept():
    df, *_ = _planted(seed=2, n_items=24, n_workers=8)
    a = sj.p910_annex_e(df)
    b = sj.p910_annex_e(df.sample(frac=1.0, random_state=0))
    pd.testing.assert_frame_equal(a.quality, b.quality, atol=1e-12, rtol=0)
    assert a.quality.index.names == ["image", "method"]
    assert a.bias.index.name == "worker"
    assert list(a.quality.columns[:4]) == ["estimate", "std", "ci95_low", "ci95_high"]
    assert a.quality["n"].sum() == len(df)


def test_invalid_rows_are_ignored_and_bad_input_is_explained():
    df, *_ = _planted(seed=2, n_items=24, n_workers=8)
    junk = df.iloc[:5].assign(score=99.0)
    both = pd.concat([df.assign(valid=True), junk.assign(valid=False)], ignore_index=True)
    pd.testing.assert_frame_equal(sj.p910_annex_e(both).quality, sj.p910_annex_e(df).quality)
    with pytest.raises(ValueError, match="finite"):
        sj.p910_annex_e(df.assign(score=df["score"].where(df.index != 3)))
    with pytest.raises(ValueError, match="column"):
        sj.mos_model(df.drop(columns="worker"))


def test_repeated_ratings_are_all_used():
    df = _ratings([("a", "m", "w1", 1), ("a", "m", "w1", 2), ("a", "m", "w2", 4),
                   ("b", "m", "w1", 3), ("b", "m", "w2", 2)])
    mos = sj.mos_model(df).quality
    assert mos.loc[("a", "m"), "n"] == 3
    assert mos.loc[("a", "m"), "estimate"] == pytest.approx(7 / 3)
    res = sj.p910_annex_e(df)
    assert res.bias.loc["w1", "n"] == 3


def test_per_content_conditions_design_and_ambiguity_per_image():
    # each image has its own methods (like the Netflix dataset); image i1 is far more ambiguous
    rng = np.random.default_rng(7)
    rows = []
    for img, spread in (("i0", 0.1), ("i1", 1.2)):
        for k in range(6):
            q = rng.uniform(1, 4)
            for w in range(15):
                rows.append((img, f"{img}_c{k}", f"w{w:02d}", q + rng.normal(0, 0.3) + rng.normal(0, spread)))
    res = sj.mle_full(_ratings(rows))
    assert list(res.ambiguity.index) == ["i0", "i1"]
    assert res.ambiguity.loc["i1", "estimate"] > 3 * res.ambiguity.loc["i0", "estimate"]
    assert len(res.quality) == 12


# ---------------------------------------------------------------------------------------------
# model-based inconsistency screening (the report's default in every design)

@pytest.mark.parametrize("name", DATASETS)
def test_inconsistency_screening_keeps_real_subjects_and_drops_loose_raters(name):
    """The rule's limit (0.8 level on a five-level scale) lies above 49 of the 50 real lab
    subjects of the two datasets; raters planted among them who answer near the middle of the
    scale, weakly following the pictures, are excluded."""
    from analysis.pipeline import INCONSISTENCY_LIMIT, analyse
    from analysis.scale import Scale

    real = pd.read_csv(DATA / name).astype({"image": str, "method": str, "worker": str})
    rep = analyse(real, Scale.acr(), bootstrap=0)
    excluded = rep.screening["inconsistency"]["excluded"]
    assert rep.screening["inconsistency"]["limit"] == pytest.approx(INCONSISTENCY_LIMIT * 4)
    assert len(excluded) <= (1 if name.startswith("nflx") else 0), excluded
    assert "model-based inconsistency" in rep.screening["method"]

    rng = np.random.default_rng(3)
    mean = real.groupby(["image", "method"])["score"].transform("mean")
    loose = real[real["worker"].isin(sorted(real["worker"].unique())[:3])].copy()
    middle = 3 + 0.3 * (mean[loose.index] - 3) + rng.normal(0, 0.9, len(loose))
    loose["score"] = np.clip(np.round(middle), 1, 5)
    loose["worker"] = "loose-" + loose["worker"]
    rep = analyse(pd.concat([real, loose], ignore_index=True), Scale.acr(), bootstrap=0)
    workers = rep.workers.set_index("worker")
    assert set(loose["worker"]) <= set(rep.screening["excluded"])
    assert (workers.loc[sorted(set(loose["worker"])), "excluded_by"] == "screening").all()
    assert workers.loc[sorted(set(loose["worker"])), "rejected"].isna().all()
