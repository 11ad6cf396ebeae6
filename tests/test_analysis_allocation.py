"""Adaptive allocation: a look at the ratings separates clear gaps, leaves gaps the budget
cannot buy and says how many images would, sends the next ratings only to undecided pairs, and
stopping early does not inflate the final analysis's false positives (a fast version of
benchmarks/bench_allocation.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SUBJECTIVE_DATA

from analysis import allocation, sequential
from analysis.calibration import Design, components_of, simulate

ALPHA = 0.05


@pytest.fixture(scope="module")
def vqeg_components():
    return components_of(pd.read_csv(SUBJECTIVE_DATA / "vqeg_hd3_raw.csv",
                                     dtype={"worker": str}).astype({"score": float}))


def test_a_look_separates_clear_gaps_and_names_images_for_tiny_ones(vqeg_components):
    d = Design(ratings_per_item=6, n_methods=3)
    data = simulate(d, vqeg_components, np.array([2.0, 0.0, 0.01]), np.random.default_rng(0))
    lk = allocation.look(data, ratings_per_item=20, alpha=ALPHA)
    states = {(p.a, p.b): p for p in lk.pairs}
    assert lk.order[0] == 0
    assert all(p.state == allocation.SEPARATED for (a, b), p in states.items() if 0 in (a, b))
    tiny = next(p for p in lk.pairs if {p.a, p.b} == {1, 2})
    if tiny.state == allocation.OUT_OF_REACH:
        assert tiny.images_needed and tiny.images_needed > 10
    else:   # undecided: the next round rates only the items of methods 1 and 2
        assert all(lk.wanted[it] > 6 for it in lk.wanted if it[1] in (1, 2))
    assert all(lk.wanted[it] == 6 for it in lk.wanted if it[1] == 0)
    # The projections: more ratings help less and less, more images keep helping.
    row = lk.projections[0]
    assert row["se_r_inf"] < row["se_r20"] < row["se_now"]
    assert lk.ratings_stop_helping and lk.lines()


def test_stops_and_says_why(vqeg_components):
    d = Design(ratings_per_item=4, n_methods=3)
    data = simulate(d, vqeg_components, np.array([2.0, 0.0, -2.0]), np.random.default_rng(1))
    lk = allocation.look(data, ratings_per_item=20, alpha=ALPHA)
    assert lk.stop.startswith("every pair is decided") and lk.next_ratings == 0
    data = simulate(d, vqeg_components, np.array([0.3, 0.0, 0.15]), np.random.default_rng(2))
    assert allocation.look(data, ratings_per_item=4, alpha=ALPHA).stop.startswith(
        ("the budget of ratings is spent", "every pair is decided"))
    # A study with a pair still undecided stops once the adjacent differences are precise enough.
    data = simulate(Design(ratings_per_item=3), vqeg_components,
                    0.3 * (np.arange(9) - 4), np.random.default_rng(1))
    assert allocation.look(data, ratings_per_item=20, alpha=ALPHA).stop is None
    assert "precision target" in allocation.look(data, ratings_per_item=20, alpha=ALPHA,
                                                 target_se=5.0).stop


def test_adaptive_stopping_keeps_the_family_wise_error(vqeg_components):
    res = sequential.family_wise_error(Design(ratings_per_item=12), vqeg_components, 20,
                                       initial=3, seed=5, alpha=ALPHA)
    assert res["fwer"] <= res["limit"], res
    assert res["median_share"] < 1.0


def test_the_draws_use_the_final_analysis_correction():
    from analysis.significance import adjust
    p = np.random.default_rng(3).uniform(0, 0.2, (5, 12))
    for correction in ("holm", "bh"):
        expected = np.vstack([adjust(row, correction) for row in p])
        assert np.allclose(allocation._adjusted(p, correction), expected)


def test_a_pair_is_let_go_once_the_full_budget_cannot_change_its_verdict(vqeg_components):
    """With every item at the full budget nothing can move: every pair is decided, and its
    state is the final analysis's verdict at alpha (no stricter interim threshold)."""
    d = Design(ratings_per_item=8, n_methods=4)
    data = simulate(d, vqeg_components, np.array([0.0, 0.3, 0.6, 0.9]), np.random.default_rng(4))
    lk = allocation.look(data, ratings_per_item=8, alpha=ALPHA)
    assert lk.stop.startswith("every pair is decided") and lk.p_change == 0
    for p in lk.pairs:
        assert p.p_change == 0
        assert (p.state == allocation.SEPARATED) == (p.p_adjusted < ALPHA)
    # With 2 of 8 ratings per item, the same data leave some pair undecided, and the next round
    # rates only the items of methods in the undecided pairs likeliest to change (those of the
    # likeliest one at least), one more each (1.3 x 2, rounded up).
    rank = data.groupby(["image", "method"]).cumcount()
    early = allocation.look(data[rank < 2], ratings_per_item=8, alpha=ALPHA)
    undecided = early.undecided()
    assert undecided and early.stop is None
    top = max(undecided, key=lambda p: p.p_change)
    focused = {m for p in undecided for m in (p.a, p.b)
               if p.p_change >= allocation.FOCUS * top.p_change}
    assert {top.a, top.b} <= focused
    for it, n in early.wanted.items():
        assert n == (3 if it[1] in focused else 2)


def test_the_study_verdict_stays_undecided_while_the_full_budget_could_change_it(
        vqeg_components):
    """With the joint limit, collection goes on while the full budget would change any verdict
    in more than `change` of the draws, even when no single pair is that likely to change."""
    d = Design(ratings_per_item=8, n_methods=4)
    data = simulate(d, vqeg_components, np.array([0.0, 0.3, 0.6, 0.9]), np.random.default_rng(4))
    early = data[data.groupby(["image", "method"]).cumcount() < 2]
    loose = allocation.look(early, ratings_per_item=8, alpha=ALPHA, flip=1.0, change=1.0)
    assert loose.stop.startswith("every pair is decided") and loose.p_change > 0.01
    strict = allocation.look(early, ratings_per_item=8, alpha=ALPHA, flip=1.0, change=0.01)
    assert strict.stop is None and strict.undecided()
    assert all(p.p_change >= min(allocation.PAIR_FLOOR, max(q.p_change for q in strict.pairs))
               for p in strict.undecided())
    assert strict.next_ratings > 0


def test_the_benchmark_studies_split_into_the_study_and_its_rating_noise(vqeg_components):
    """sequential._study draws exactly what calibration.simulate draws, so the ceiling figures
    (sequential.stability) are measured on the very studies the comparison uses."""
    d = Design(ratings_per_item=6, n_methods=4, n_images=4)
    gaps = np.array([0.0, 0.3, 0.6, 0.9])
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(2):
        layout, mean, noise = sequential._study(d, vqeg_components, gaps, b)
        assert simulate(d, vqeg_components, gaps, a).drop(columns="bad").equals(
            sequential.ratings(d, layout, mean, noise))
    res = sequential.stability(d, vqeg_components, gaps, 2, 4, redraws=3, seed=1)
    for key in ("early", "modal", "bound"):
        assert 0 <= res[key] <= 1
    assert all(r["bound"] >= 1 / 3 and r["modal"] >= 1 / 3 for r in res["rows"])
    # The look's chance of a change is set against what happened; with every rating seen
    # nothing can change.
    pred = sequential.predicted_change(d, vqeg_components, gaps, 2, (2, 6), seed=1)
    assert pred[6] == {"predicted": 0.0, "changed": 0.0}
    assert 0 <= pred[2]["predicted"] <= 1 and 0 <= pred[2]["changed"] <= 1
