"""Pairwise comparison: the scores are the Bradley-Terry / Thurstone maximum-likelihood ones
(checked against choix and a probit GLM), a planted order is recovered and separated, the
tests hold the family-wise error with no method effect (fast version of
benchmarks/bench_pairwise.py), the letters follow the tests, the design compares what the
ratings left undecided with A/B balanced per worker, and the simulated judge prefers as a
careful rater perceives."""

from __future__ import annotations

import choix
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis import pairwise as pw
from analysis.letters import share_letter
from analysis.table import RatingsError
from study.simulate import pairwise as sim

ALPHA = 0.05


def _study(gaps, image_method_sd=0.1, judgements=10, seed=0, n_images=10, pairs=None,
           per_worker=20, noise_sd=(0.45, 0.75)):
    rng = np.random.default_rng(seed)
    methods = list(range(len(gaps)))
    tasks = pw.plan(pairs or pw.all_pairs(methods), range(n_images), judgements=judgements,
                    per_worker=per_worker, seed=seed)
    quality = sim.latent_quality(n_images, gaps, image_method_sd, rng)
    return sim.simulate(tasks, quality, noise_sd, rng)


# ---------------------------------------------------------------- known answers

def test_bradley_terry_scores_are_choix_maximum_likelihood():
    data = _study([0.6, 0.3, 0.0, -0.2], judgements=6)
    coded = pw.encode(data)
    wins = pw.win_matrix(coded)
    pairs = list(zip(coded.winner.tolist(), coded.loser.tolist()))
    ours = pw.fit_wins(wins, "bradley-terry", prior=0.0)
    theirs = choix.ilsr_pairwise(len(coded.methods), pairs)
    assert np.allclose(ours, theirs - theirs.mean(), atol=1e-6)
    # With the prior: choix's MAP estimate under the same penalty alpha * sum(s^2).
    ours = pw.fit_wins(wins, "bradley-terry", prior=0.5)
    theirs = choix.opt_pairwise(len(coded.methods), pairs, alpha=0.5, tol=1e-10)
    assert np.allclose(ours, theirs - theirs.mean(), atol=1e-5)


def test_thurstone_scores_are_a_probit_glm():
    data = _study([0.6, 0.3, 0.0, -0.2], judgements=6, seed=1)
    coded = pw.encode(data)
    ours = pw.fit_wins(pw.win_matrix(coded), "thurstone", prior=0.0)
    # The same model written as a GLM: outcome 1, design +1 for the winner, -1 for the
    # loser, method 0 as the reference; each judgement also as its mirror image (outcome 0)
    # so that the intercept-free probit sees both outcomes.
    M, N = len(coded.methods), len(coded.winner)
    X = np.zeros((2 * N, M))
    X[np.arange(N), coded.winner] += 1
    X[np.arange(N), coded.loser] -= 1
    X[N + np.arange(N)] = -X[:N]
    y = np.r_[np.ones(N), np.zeros(N)]
    fit = sm.GLM(y, X[:, 1:], family=sm.families.Binomial(sm.families.links.Probit())).fit()
    theirs = np.r_[0.0, fit.params]
    assert np.allclose(ours, theirs - theirs.mean(), atol=1e-5)


def test_a_planted_order_is_recovered_and_separated():
    gaps = [0.9, 0.6, 0.3, 0.0]
    res = pw.analyse(_study(gaps, image_method_sd=0.05, judgements=15, seed=2), bootstrap=300)
    assert list(res.methods["method"]) == ["0", "1", "2", "3"]
    assert all(a["separated"] for a in res.adjacent)
    assert len(set(res.methods["group"])) == 4
    # Scores on the Thurstone scale are the latent gaps over the SD of a perceived
    # difference (noise_sd * sqrt 2, here 0.6 * sqrt 2).
    th = pw.analyse(_study(gaps, image_method_sd=0.0, judgements=40, seed=3,
                           noise_sd=0.6), "thurstone", bootstrap=100)
    est = th.methods.set_index("method")["score"]
    expected = (np.array(gaps) - np.mean(gaps)) / (0.6 * np.sqrt(2))
    assert np.allclose(est.loc[["0", "1", "2", "3"]].to_numpy(), expected, atol=0.08)


def test_intervals_and_tests_count_the_images_not_only_the_judgements():
    # Large image:method variation, few images: more judgements narrow the intervals only
    # down to the image-to-image spread.
    few = pw.analyse(_study([0.0] * 4, image_method_sd=0.5, judgements=5, seed=4), bootstrap=200)
    many = pw.analyse(_study([0.0] * 4, image_method_sd=0.5, judgements=80, seed=4),
                      bootstrap=200)
    assert many.dispersion["image_method"] > 0
    se_few = few.pairwise["se"].to_numpy()[0, 1]
    se_many = many.pairwise["se"].to_numpy()[0, 1]
    assert se_many > 0.5 * se_few      # not the 1/4 that 16x the judgements would give
    assert many.pairwise["df"].to_numpy()[0, 1] < 60  # about (10 - 1) x (4 - 1) = 27


# ---------------------------------------------------------------- calibration (fast)

@pytest.mark.parametrize("pairs", ["all", "neighbours"])
def test_family_wise_error_with_no_method_effect_is_at_most_alpha(pairs):
    # A chain of neighbours is the case a variance proportional to the model's got wrong
    # (FWER 0.20 over 1000 studies): the noise grows along the chain, the image part does not.
    res = sim.family_wise_error(6, 0.39, 6 if pairs == "all" else 15, 200, seed=5, alpha=ALPHA,
                               bootstrap=100, pairs=pairs)
    assert res["fwer"] <= ALPHA + 3 * res["mc_se"], res


def test_neighbours_of_a_clear_order_are_separated():
    res = sim.separation([0.6, 0.3, 0.0], 0.05, 30, 20, seed=6, bootstrap=100)
    assert res["power"] >= 0.9 and res["ranked_right"] >= 0.9


# ---------------------------------------------------------------- letters and notes

def _far_apart(a, b) -> bool:
    wa, wb = a["ci95_high"] - a["ci95_low"], b["ci95_high"] - b["ci95_low"]
    gap = max(a["ci95_low"] - b["ci95_high"], b["ci95_low"] - a["ci95_high"])
    return gap >= 0.5 * (wa + wb)


def test_letters_never_join_methods_whose_intervals_lie_far_apart():
    checked = 0
    for seed in range(6):
        gaps = np.random.default_rng(seed).normal(0, 0.4, 6)
        res = pw.analyse(_study(gaps, image_method_sd=0.2, judgements=8, seed=seed),
                         bootstrap=200)
        rows = res.methods.to_dict("records")
        padj = res.pairwise["p_adjusted"]
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                joined = share_letter(a["group"], b["group"])
                # Letters are the Holm-adjusted tests, exactly.
                assert joined == (padj.loc[a["method"], b["method"]] >= ALPHA)
                if _far_apart(a, b):
                    checked += 1
                    assert not joined, (a, b)
    assert checked >= 10


def test_one_image_cannot_separate_anything_and_says_so():
    res = pw.analyse(_study([1.0, 0.0, -1.0], n_images=1, judgements=60), bootstrap=50)
    assert not any(a["separated"] for a in res.adjacent)
    assert any("one image only" in n and "cannot be estimated" in n for n in res.notes)
    assert len(set("".join(res.methods["group"]))) == 1


def test_methods_never_compared_are_kept_apart_and_named():
    data = _study([0.2, 0.0, 0.1, -0.1], pairs=[("0", "1"), ("2", "3")], judgements=5)
    data[["method_a", "method_b"]] = data[["method_a", "method_b"]].astype(str)
    res = pw.analyse(data, bootstrap=50)
    g = res.methods.set_index("method")["group"]
    assert not share_letter(g["0"], g["2"]) and not share_letter(g["1"], g["3"])
    assert any("not linked by any chain of comparisons" in n for n in res.notes)


def test_no_preference_is_left_out_by_default_or_counted_half():
    data = pd.DataFrame({"worker": ["w1", "w2", "w3", "w4"], "image": ["i"] * 4,
                         "method_a": ["x", "y", "x", "x"], "method_b": ["y", "x", "y", "y"],
                         "preferred": ["A", "B", "none", None]})
    dropped = pw.encode(data)
    assert len(dropped.winner) == 2 and dropped.n_none == 2
    half = pw.encode(data, ties="half")
    assert np.isclose(half.weight.sum(), 4.0)
    assert np.isclose(pw.win_matrix(half)[0, 1], 3.0)   # x: 2 wins + 2 halves
    res = pw.analyse(data, bootstrap=0)
    assert any("2 'no preference' judgement(s) left out" in n for n in res.notes)


def test_a_malformed_table_is_a_message():
    with pytest.raises(RatingsError, match="lacks column"):
        pw.encode(pd.DataFrame({"worker": ["w"], "image": ["i"]}))
    bad = pd.DataFrame({"worker": ["w"], "image": ["i"], "method_a": ["x"], "method_b": ["y"],
                        "preferred": ["left"]})
    with pytest.raises(RatingsError, match="preferred"):
        pw.encode(bad)
    with pytest.raises(RatingsError, match="with itself"):
        pw.encode(bad.assign(method_b="x", preferred="A"))


# ---------------------------------------------------------------- which pairs to show

def test_undecided_neighbours_come_from_a_rating_studys_verdict():
    from analysis.calibration import Design, simulate
    from analysis.pipeline import analyse
    from analysis.scale import Scale
    gaps = np.array([-1.5, -1.45, 0.0, 0.05, 1.5])    # two near-ties among clear gaps
    data = simulate(Design(n_images=10, n_methods=5, ratings_per_item=15),
                    {"worker": 0.1, "image": 0.1, "image:method": 0.02, "residual": 0.3},
                    gaps, np.random.default_rng(7))
    data = data.drop(columns="bad").astype({"image": str, "method": str, "worker": str})
    rep = analyse(data, Scale.acr(), bootstrap=0, subject_models=False)
    order = rep.method_order
    follow_up = pw.undecided_neighbours(rep)
    assert set(map(frozenset, follow_up)) == {frozenset({"0", "1"}), frozenset({"2", "3"})}
    assert all(order.index(b) == order.index(a) + 1 for a, b in follow_up)
    # The verdict dict analysis.verdicts.decide returns gives the same.
    assert pw.undecided_neighbours({"pairwise": rep.pairwise}) == follow_up


def test_plan_balances_a_b_within_each_worker_and_covers_every_task():
    pairs = pw.all_pairs(["p", "q", "r", "s"])
    tasks = pw.plan(pairs, [f"img{i}" for i in range(7)], judgements=5, per_worker=12, seed=3)
    key = tasks.apply(lambda r: (r["image"], frozenset((r["method_a"], r["method_b"]))), axis=1)
    assert key.value_counts().eq(5).all() and len(key.unique()) == 6 * 7
    assert not pd.DataFrame({"w": tasks["worker"], "k": key}).duplicated().any()
    for _, g in tasks.groupby("worker"):
        assert list(g["position"]) == list(range(len(g)))
        for pair in pairs:
            shown = g[g[["method_a", "method_b"]].apply(frozenset, axis=1) == frozenset(pair)]
            first = (shown["method_a"] == pair[0]).sum()
            assert abs(2 * first - len(shown)) <= 1
    # Across the study, each method is shown first about as often as second.
    first = tasks["method_a"].value_counts()
    second = tasks["method_b"].value_counts()
    assert ((first - second).abs() <= 0.1 * (first + second)).all()
    # Randomised: another seed gives another plan.
    other = pw.plan(pairs, [f"img{i}" for i in range(7)], judgements=5, per_worker=12, seed=4)
    assert not other.equals(tasks)


def test_position_bias_cancels_in_a_balanced_plan():
    gaps = [0.3, 0.0]
    rng = np.random.default_rng(8)
    tasks = pw.plan([(0, 1)], range(10), judgements=200, per_worker=10, seed=8)
    q = sim.latent_quality(10, gaps, 0.0, rng)
    biased = sim.simulate(tasks, q, (0.45, 0.75), rng, position_bias=0.5)
    res = pw.analyse(biased, "thurstone", bootstrap=50)
    assert res.counts["shown_first_won"] > 0.6          # the bias is there
    est = res.pairwise["estimate"].loc["0", "1"]
    assert abs(est - 0.3 / (0.6 * np.sqrt(2))) < 0.1     # and cancels


# ---------------------------------------------------------------- the simulated judge

def test_careful_judge_prefers_as_its_rating_noise_predicts():
    from study.simulate.workers import CAREFUL, WorkerModel
    worker = WorkerModel.create("AWORKER0000001", CAREFUL, seed=1)
    diff = 0.4     # B looks 0.4 further from the reference than A
    pairs = {p: (1.0, 1.0 + diff) for p in range(4000)}
    ans = sim.judge(worker, "hit-1", pairs)
    share = np.mean([v == "A" for v in ans.preferred.values()])
    expected = sim.preference_probability(diff, worker.noise_sd)
    assert abs(share - expected) < 3 * np.sqrt(expected * (1 - expected) / 4000)
    # The same HIT gives the same answers; the worker's bias plays no part.
    assert sim.judge(worker, "hit-1", pairs) == ans
    biased = WorkerModel(worker.worker_id, CAREFUL, 1, bias=2.0, noise_sd=worker.noise_sd,
                         seconds_range=worker.seconds_range)
    assert sim.judge(biased, "hit-1", pairs).preferred == ans.preferred
    with_none = sim.judge(worker, "hit-1", {p: (1.0, 1.0) for p in range(500)},
                          no_preference=True)
    assert 0.02 < np.mean([v == "none" for v in with_none.preferred.values()]) < 0.3


def test_other_kinds_judge_as_their_kind():
    from study.simulate.workers import SPAMMER, STRAIGHTLINER, WorkerModel
    pairs = {p: (0.5, 3.5) for p in range(400)}                 # A is plainly closer
    spam = sim.judge(WorkerModel.create("ASPAM", SPAMMER, 2), "h", pairs).preferred.values()
    assert 0.4 < np.mean([v == "A" for v in spam]) < 0.6
    straight = sim.judge(WorkerModel.create("ASTRAIGHT", STRAIGHTLINER, 2), "h", pairs)
    assert len(set(straight.preferred.values())) == 1


def test_a_pair_one_method_always_wins_is_separated():
    """120 wins to 0 over 10 images and 12 workers: without smoothing the maximum-likelihood
    difference is infinite and the Wald test had p = 0.09 (Hauck-Donner); half a win per side
    keeps the test's power."""
    rows = [{"worker": f"w{k % 12}", "image": f"i{k % 10}",
             "method_a": "good" if k % 2 else "bad", "method_b": "bad" if k % 2 else "good",
             "preferred": "A" if k % 2 else "B"} for k in range(120)]
    res = pw.analyse(pd.DataFrame(rows), bootstrap=200, seed=1)
    assert res.methods["method"].tolist() == ["good", "bad"]
    assert res.pairwise["p_adjusted"].loc["good", "bad"] < 0.001
    assert list(res.methods["group"]) == ["a", "b"]
    # Two judgements, both won, prove nothing.
    res = pw.analyse(pd.DataFrame(rows[:2]), bootstrap=200, seed=1)
    assert not res.pairwise["p_adjusted"].loc["good", "bad"] < 0.05
