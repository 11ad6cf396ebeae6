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
