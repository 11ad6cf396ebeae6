"""The verdicts behind the letters: the crossed mixed model's pairwise tests, checked against
closed forms and statsmodels, and the letters they give on real human ratings."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_sim import simulate  # noqa: E402
from conftest import SUBJECTIVE_DATA as DATA  # noqa: E402

from analysis.letters import letters, share_letter  # noqa: E402
from analysis.mixed_model import fit_frame, mixed_model  # noqa: E402
from analysis.significance import signed_rank_floor  # noqa: E402


def _vqeg() -> pd.DataFrame:
    return pd.read_csv(DATA / "vqeg_hd3_raw.csv", dtype={"worker": str}).astype({"score": float})


def test_reml_equals_anova_on_a_balanced_design_and_df_are_exact():
    # VQEG HD3: every subject rated every (image, method) once. For this balanced design REML
    # equals the ANOVA (expected mean squares) estimates, and the contrast of two methods is an
    # exact t test on the image:method mean square with (I-1)(M-1) degrees of freedom.
    df = _vqeg()
    I, M, W = 8, 9, 24
    y = df["score"]
    g = y.mean()
    wm = df.groupby("worker")["score"].mean()
    im = df.groupby("image")["score"].mean()
    mm = df.groupby("method")["score"].mean()
    cm = df.groupby(["image", "method"])["score"].mean()
    inter = cm - im.reindex(cm.index.get_level_values(0)).to_numpy() \
        - mm.reindex(cm.index.get_level_values(1)).to_numpy() + g
    ms_w = I * M * ((wm - g) ** 2).sum() / (W - 1)
    ms_i = W * M * ((im - g) ** 2).sum() / (I - 1)
    ms_im = W * (inter ** 2).sum() / ((I - 1) * (M - 1))
    fitted = df["worker"].map(wm).to_numpy() + cm.loc[list(zip(df["image"], df["method"]))].to_numpy() - g
    df_e = len(df) - 1 - (W - 1) - (I - 1) - (M - 1) - (I - 1) * (M - 1)
    ms_e = float(((y.to_numpy() - fitted) ** 2).sum() / df_e)
    f = fit_frame(df)
    assert f.converged and not f.boundary
    assert f.variance["residual"] == pytest.approx(ms_e, rel=1e-5)
    assert f.variance["worker"] == pytest.approx((ms_w - ms_e) / (I * M), rel=1e-4)
    assert f.variance["image:method"] == pytest.approx((ms_im - ms_e) / W, rel=1e-4)
    assert f.variance["image"] == pytest.approx((ms_i - ms_im) / (W * M), rel=1e-3)
    res = mixed_model(df)
    pw = res["pairwise"]
    a, b = "hrc04", "hrc21"
    t = (mm[a] - mm[b]) / np.sqrt(2 * ms_im / (I * W))
    assert pw["estimate"].at[a, b] == pytest.approx(mm[a] - mm[b], abs=1e-9)
    assert pw["t"].at[a, b] == pytest.approx(t, rel=1e-4)
    assert pw["df"].at[a, b] == pytest.approx((I - 1) * (M - 1), rel=1e-3)
    assert pw["p"].at[a, b] == pytest.approx(2 * stats.t.sf(abs(t), (I - 1) * (M - 1)), rel=1e-3)


def test_reml_agrees_with_statsmodels_on_an_unbalanced_design():
    import statsmodels.formula.api as smf

    df = simulate(n_methods=4, n_images=8, n_workers=20, ratings_per_item=5, seed=3, image_sd=0.4)
    rng = np.random.default_rng(1)
    gap = {k: rng.normal(0, 0.3) for k in set(zip(df["image"], df["method"]))}
    df["score"] = df["score"] + [gap[k] for k in zip(df["image"], df["method"])]
    df = df.sample(frac=0.85, random_state=2)
    f = fit_frame(df)
    d = df.assign(group=1, cell=df["image"] + ":" + df["method"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm("score ~ 0 + C(method)", d, groups="group", re_formula="0",
                            vc_formula={"worker": "0 + C(worker)", "image": "0 + C(image)",
                                        "cell": "0 + C(cell)"})
        ref = model.fit(reml=True, method=["nm", "lbfgs"], maxiter=5000)
    assert ref.converged and f.converged
    vc = dict(zip(model.exog_vc.names, ref.vcomp))
    for ours, theirs in (("worker", "worker"), ("image", "image"), ("image:method", "cell")):
        assert f.variance[ours] == pytest.approx(vc[theirs], rel=2e-3, abs=1e-4)
    assert f.variance["residual"] == pytest.approx(ref.scale, rel=1e-3)
    assert f.beta == pytest.approx(ref.fe_params.to_numpy(), abs=1e-5)
    assert np.sqrt(np.diag(f.cov_beta)) == pytest.approx(ref.bse_fe.to_numpy(), rel=5e-3)


def test_a_component_at_zero_is_on_the_boundary_and_named():
    # No image effects: that estimate ends on the boundary and the model is fitted without it.
    rng = np.random.default_rng(0)
    rows = [(f"i{i}", m, f"w{w}", float(q + b + rng.normal(0, 0.5)))
            for i in range(6) for m, q in (("A", 1.0), ("B", 2.0), ("C", 2.1))
            for w, b in enumerate(rng.normal(0, 0.4, 8))]
    df = pd.DataFrame(rows, columns=["image", "method", "worker", "score"])
    res = mixed_model(df)
    assert res["converged"]
    assert "image" in res["boundary"] and res["variance"]["image"] == 0.0
    # From the usual start the search runs into theta = 0 for every component (a stationary
    # point of the even criterion); the fit must step back in to the optimum, found here by
    # Nelder-Mead on the same criterion.
    assert res["variance"]["image_method"] == pytest.approx(0.036618, rel=1e-3)
    assert res["pairwise"]["p_adjusted"].at["A", "B"] < 0.05


def test_signed_rank_floor():
    # 10 images, 36 pairs: 36 * 2/2^10 = 0.07 > 0.05 even for the exact test.
    f = signed_rank_floor(np.full(36, 10), "holm")
    assert f["raw"] <= 2 / 2 ** 10 and f["adjusted"] > 0.05
    assert signed_rank_floor(np.full(3, 12), "holm")["adjusted"] < 0.05
    assert signed_rank_floor(np.full(36, 10), "bh")["adjusted"] == pytest.approx(f["raw"])


def test_letters_beyond_the_alphabet_stay_readable():
    k = 60
    groups = letters([f"m{i}" for i in range(k)], ~np.eye(k, dtype=bool))
    labels = list(groups.values())
    assert len(set(labels)) == k
    assert not any(share_letter(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])
    assert share_letter("a.b2", "b2.c") and not share_letter("ab", "c")


def _far_apart(a: dict, b: dict) -> bool:
    """The gap between two intervals is at least the two widths together. An interval of zero
    width (every rating the same, e.g. all at the bottom of the scale) measures nothing: the
    report notes such methods, and they are left out here."""
    wa, wb = a["ci95_high"] - a["ci95_low"], b["ci95_high"] - b["ci95_low"]
    gap = max(a["ci95_low"] - b["ci95_high"], b["ci95_low"] - a["ci95_high"])
    return wa > 0 and wb > 0 and gap >= wa + wb


@pytest.mark.parametrize("name", ["vqeg_hd3_raw.csv", "nflx_public_raw.csv"])
def test_letters_follow_the_model_on_real_data(run_cli, tmp_path, name):
    out = tmp_path / "out"
    res = run_cli("report", "--ratings", DATA / name, "--scale", "1..5", "--higher-is-better",
                  "--out", out, "--format", "json", cwd=tmp_path)
    rep = json.loads((out / "report.json").read_text())
    ms = rep["methods"]
    alpha = rep["settings"]["alpha"]
    assert rep["mixed_model"]["converged"] is True
    contrasts = {(c["a"], c["b"]): c for c in rep["mixed_model"]["contrasts"]}
    n_sep = n_far = 0
    for i, a in enumerate(ms):
        for b in ms[i + 1:]:
            shared = share_letter(a["group"], b["group"])
            p = a["p_values"][b["method"]]
            c = contrasts[(a["method"], b["method"])]
            assert p == c["p_adjusted"]
            if p is not None:
                assert (p < alpha) == (not shared), (a["method"], b["method"], p)
                n_sep += p < alpha
            else:
                assert c["n_images"] == 0 and not shared
            if _far_apart(a, b):
                n_far += 1
                assert not shared, (a, b)
    assert n_sep > 0 and n_far > 0
    notes = " ".join(rep["notes"])
    assert "signed-rank tests (secondary analysis) cannot reach" in notes
    assert "cannot reach" in res.output
    if name.startswith("vqeg"):
        by = {m["method"]: m for m in ms}
        # The example: far apart, never one group.
        assert not share_letter(by["hrc04"]["group"], by["hrc16"]["group"])
        assert n_sep >= 20
    else:
        assert "incomplete design" in notes and "share no image" in notes
        assert "rated on one image only" in notes and "zero width" in notes


def test_disagreements_are_explained():
    from analysis.verdicts import MODEL_TEST, _story
    idx = pd.Index(["A", "B", "C"], name="method")
    none_sig = pd.DataFrame(np.where(np.eye(3, dtype=bool), np.nan, 0.4), index=idx, columns=idx)
    primary = {"test": MODEL_TEST, "p_adjusted": none_sig}
    sr = {"p_adjusted": none_sig}
    fr = {"p": 0.001, "n_images": 10}
    notes = _story(fr, {"omnibus": {"p": 0.002}}, primary, sr, 0.05, "holm")
    assert any("differ overall, but no single pair is separated" in n for n in notes)
    notes = _story({"p": 0.3, "n_images": 10}, {"omnibus": {"p": 0.001}}, primary, sr, 0.05, "holm")
    assert any("Friedman (p = 0.3) sees no overall difference" in n for n in notes)
    agree = _story({"p": 0.3, "n_images": 10}, {"omnibus": {"p": 0.4}}, primary, sr, 0.05, "holm")
    assert agree == []


def test_without_the_model_the_letters_say_where_they_come_from():
    from analysis.pipeline import analyse
    from analysis.scale import Scale
    df = simulate(quality=[1.0, 2.0, 3.0], n_images=12, n_workers=15, ratings_per_item=5, seed=4)
    rep = analyse(df, Scale.similarity(), bootstrap=0, mixed_model_max_ratings=0,
                  subject_models=False)
    assert rep.pairwise["test"].startswith("wilcoxon")
    assert rep.mixed_model["converged"] is None
    assert any("letters come from the per-image signed-rank tests" in n for n in rep.notes)
    full = analyse(df, Scale.similarity(), bootstrap=0, subject_models=False)
    assert full.pairwise["test"].startswith("crossed mixed model")
    assert full.signed_rank["test"].startswith("wilcoxon")


def test_sparse_cross_products_give_the_same_fit(monkeypatch):
    # Large studies keep the eliminated factor's cross-products sparse; same answer.
    import analysis.mixed_model as mm
    df = pd.read_csv(DATA / "nflx_public_raw.csv", dtype={"worker": str}).astype({"score": float})
    dense = fit_frame(df)
    monkeypatch.setattr(mm, "_DENSE_LIMIT", 0)
    sparse = fit_frame(df)
    for key, value in dense.variance.items():
        assert sparse.variance[key] == pytest.approx(value, rel=1e-3, abs=1e-5)
    assert sparse.beta == pytest.approx(dense.beta, abs=1e-4)
    assert np.sqrt(np.diag(sparse.cov_beta)) == pytest.approx(np.sqrt(np.diag(dense.cov_beta)), rel=1e-3)


@pytest.mark.parametrize("dense_limit", [None, 0])
def test_reml_gradient_is_exact(monkeypatch, dense_limit):
    # The optimiser is given the analytic gradient of the profiled criterion; it must be the
    # derivative of the criterion, for the dense and the sparse cross-products alike.
    import analysis.mixed_model as mm
    if dense_limit is not None:
        monkeypatch.setattr(mm, "_DENSE_LIMIT", dense_limit)
    df = pd.read_csv(DATA / "nflx_public_raw.csv", dtype={"worker": str}).astype({"score": float})
    m, methods = mm._codes(df["method"])
    w, workers = mm._codes(df["worker"])
    i, images = mm._codes(df["image"])
    c, cells = pd.factorize(i * len(methods) + m, sort=True)
    eq = mm._Equations(df["score"].to_numpy(float), m, len(methods), [w, i, c.astype(np.int64)],
                       [len(workers), len(images), len(cells)])
    theta = np.array([0.6, 0.2, 0.4])
    _, g = eq.profiled_and_gradient(theta)
    h = 1e-6
    num = [(eq.profiled(theta + e) - eq.profiled(theta - e)) / (2 * h) for e in np.eye(3) * h]
    assert g == pytest.approx(num, rel=1e-5, abs=1e-4)
