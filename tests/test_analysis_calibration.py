"""The verdicts are calibrated: on simulated studies of the AIM 2019 shape (10 images x 9
methods, sparse HIT layout) with variance components fitted to real data, the family-wise
type-I error of the crossed model's pairwise tests stays at alpha, the model without the
image:method term does not, and real gaps are found. The full table is in docs/calibration.md
(benchmarks/bench_calibration.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SUBJECTIVE_DATA as DATA

from analysis.calibration import Design, components_of, family_wise_error, power, simulate

ALPHA = 0.05


@pytest.fixture(scope="module")
def vqeg_components():
    df = pd.read_csv(DATA / "vqeg_hd3_raw.csv", dtype={"worker": str}).astype({"score": float})
    return components_of(df)


def test_simulated_layout_is_the_sparse_hit_design(vqeg_components):
    d = Design(ratings_per_item=12)
    data = simulate(d, vqeg_components, np.zeros(d.n_methods), np.random.default_rng(0))
    per_item = data.groupby(["image", "method"]).size()
    assert len(per_item) == 90 and (per_item == 12).all()
    # No worker rates an item twice; workers rate a subset, in whole HITs of 10 items.
    assert not data.duplicated(["image", "method", "worker"]).any()
    per_worker = data.groupby("worker").size()
    assert (per_worker % 10 == 0).all() and per_worker.max() < 90
    assert data["score"].between(1, 5).all()


def test_family_wise_error_at_most_alpha(vqeg_components):
    res = family_wise_error(Design(ratings_per_item=15), vqeg_components, 200, seed=3, alpha=ALPHA)
    assert res["fwer"] <= ALPHA + 3 * res["mc_se"], res


def test_model_without_image_by_method_is_anti_conservative(vqeg_components):
    res = family_wise_error(Design(ratings_per_item=15), vqeg_components, 30, seed=4,
                            alpha=ALPHA, model="no-interaction")
    assert res["fwer"] > 0.5


def test_a_large_gap_is_found(vqeg_components):
    res = power(Design(ratings_per_item=20), vqeg_components, 1.0, 20, seed=5, alpha=ALPHA)
    assert res["power"] > 0.8


def test_bt500_keeps_honest_raters_of_a_sparse_calm_crowd():
    # Careful raters agree, many items have sd 0; each worker rates 10-30 items. The rule as
    # published flags a quarter of the honest workers; with sd-0 items skipped and at least 20
    # testable ratings asked of a worker, the flags are nearly all right.
    from analysis.calibration import CALM_CROWD, screening_accuracy
    design = Design(ratings_per_item=10)
    old = screening_accuracy(design, CALM_CROWD, 0.2, 10, seed=1, min_ratings=0,
                             skip_constant=False)
    new = screening_accuracy(design, CALM_CROWD, 0.2, 10, seed=1)
    assert old["honest_flagged"] > 0.1 and old["precision"] < 0.5
    assert new["honest_flagged"] < 0.02 and new["precision"] > 0.85


def test_screening_is_not_applied_to_a_sparse_design_by_default():
    from analysis.pipeline import analyse
    from analysis.scale import Scale
    from analysis.calibration import CALM_CROWD
    data = simulate(Design(ratings_per_item=10), CALM_CROWD, np.zeros(9),
                    np.random.default_rng(2), bad_fraction=0.2)
    data = data.drop(columns="bad").astype({"image": str, "method": str, "worker": str})
    rep = analyse(data, Scale.acr(), bootstrap=0, subject_models=False)
    assert rep.screening["method"] is None and rep.screening["applicable"] is False
    assert rep.screening["n_excluded"] == 0
    assert any("by ITU-R BT.500 not applicable: sparse design" in n for n in rep.notes)
    forced = analyse(data, Scale.acr(), bootstrap=0, subject_models=False, screening="bt500")
    assert forced.screening["method"] == "ITU-R BT.500"
    assert any("was asked for on a sparse design" in n for n in forced.notes)
