"""Simulated workers judging pairs: which of two outputs looks closer to the reference.

The same workers as the rating simulator (study/simulate/workers.py), asked another question.
A careful worker perceives each output's true score (0 almost identical ... 4 mostly different)
with Gaussian noise of its own SD, as it does when rating; shown two outputs it prefers the one
that looks closer, so P(prefer A) = Phi((score_B - score_A) / (noise_sd * sqrt 2)) (the noise
of two perceptions, `preference_probability`). Its bias shifts both perceptions alike and
cancels, and no rounding to a level enters, as no level is asked for. Where the page offers
"no preference", it answers so when the two look closer than NO_PREFERENCE.

Other kinds: a sloppy worker is a careful one with more noise; a satisficer follows the
difference only weakly (its rating slope) unless it is obvious; a spammer picks at random; a
straight-liner always picks the same side. Returners and abandoners judge as careful workers
whenever they finish a HIT.

`simulate` draws a careful crowd's preferences for a whole plan at once, and
`family_wise_error` / `separation` measure the pairwise analysis on such studies
(benchmarks/bench_pairwise.py, docs/pairwise.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import pairwise as pw
from analysis.calibration import _frozen_heap
from study.simulate.workers import (SATISFICER, SATISFICER_SLOPE, SPAMMER, STRAIGHTLINER,
                                    WorkerModel, stream)

# Perceived differences (0-4 scale) smaller than this read as "no preference" where offered.
NO_PREFERENCE = 0.15
# A difference the satisficer cannot miss (as SATISFICER_OBVIOUS spans for ratings).
SATISFICER_OBVIOUS_GAP = 1.5
# A pair shows two outputs: a little longer per item than a rating.
SECONDS_FACTOR = 1.3

A, B, NONE = "A", "B", "none"


@dataclass(frozen=True)
class PairAnswer:
    preferred: dict[int, str]         # position -> "A", "B" or "none"
    seconds: dict[int, float]         # position -> seconds spent on the pair


def preference_probability(difference, noise_sd):
    """P(prefer A) for a worker whose perception of each image carries Gaussian noise of SD
    `noise_sd` (as a careful worker's rating does): the difference of two such perceptions has
    SD noise_sd * sqrt(2), so P = Phi((quality_A - quality_B) / (noise_sd sqrt 2)). A worker's
    bias shifts both perceptions alike and cancels."""
    return stats.norm.cdf(np.asarray(difference) / (np.asarray(noise_sd) * np.sqrt(2.0)))


def judge(worker: WorkerModel, hit_key: str, pairs: dict[int, tuple[float, float]],
          no_preference: bool = False) -> PairAnswer:
    """Preferences for one HIT. `pairs` maps each position to the true scores of the outputs
    shown as A and B (lower is closer to the reference, hence preferred); `hit_key` names the
    HIT (the same HIT gives the same answer)."""
    rng = stream(worker.seed, "pair-answer", worker.worker_id, hit_key)
    lo, hi = worker.seconds_range
    side = A if stream(worker.seed, "pair-side", worker.worker_id).random() < 0.5 else B
    preferred: dict[int, str] = {}
    seconds: dict[int, float] = {}
    for p in sorted(pairs):
        score_a, score_b = pairs[p]
        z = rng.normal()
        coin = rng.random()
        secs = math.exp(rng.uniform(math.log(lo), math.log(hi))) * SECONDS_FACTOR
        # How much closer A looks than B, as this worker perceives it.
        closer = score_b - score_a
        if worker.kind == SPAMMER:
            choice = A if coin < 0.5 else B
        elif worker.kind == STRAIGHTLINER:
            choice = side
        else:
            if worker.kind == SATISFICER and abs(closer) < SATISFICER_OBVIOUS_GAP:
                closer *= SATISFICER_SLOPE
            perceived = closer + worker.noise_sd * math.sqrt(2.0) * z
            if no_preference and abs(perceived) < NO_PREFERENCE:
                choice = NONE
            else:
                choice = A if perceived > 0 else B
        preferred[p] = choice
        seconds[p] = round(secs, 2)
    return PairAnswer(preferred, seconds)


def answer_page(worker: WorkerModel, hit_key: str, contents: dict[int, tuple[str, str, str]],
                images, task, sizes: dict[int, tuple[int, int]]):
    """A simulated worker's answers to a pairwise HIT page, as the crowd submits them:
    `contents` maps each position to the content ids of the reference, A and B; each output's
    true score against the reference is what a careful eye sees (study/simulate/scoring), and
    `judge` chooses. Returns (Answer with the page's radio values and viewing records, the
    true score of B minus that of A per position: how much closer A is)."""
    from study.simulate.workers import Answer

    pairs = {p: (images.true_score(ref, a), images.true_score(ref, b))
             for p, (ref, a, b) in contents.items()}
    judged = judge(worker, hit_key, pairs)
    values = {it.position: it.choices for it in task.items}
    ratings = {p: int(values[p].get("a" if judged.preferred[p] == A else "b",
                                    "1" if judged.preferred[p] == A else "0")) for p in pairs}
    views = worker._views(hit_key, sorted(pairs), judged.seconds, sizes)
    return (Answer(ratings, judged.seconds, "", views),
            {p: round(b - a, 4) for p, (a, b) in pairs.items()})


# ---------------------------------------------------------------- whole simulated studies

def simulate(tasks: pd.DataFrame, quality: pd.DataFrame, noise_sd, rng: np.random.Generator,
             position_bias: float = 0.0) -> pd.DataFrame:
    """Judgements of `tasks` (a plan) by simulated careful workers. `quality`: latent quality
    (higher is preferred), images x methods; `noise_sd`: one SD for all, one per worker (an array
    indexed by the plan's worker), or (low, high) to draw each worker's from a uniform as
    study/simulate/workers.py does for careful workers. `position_bias`: added to A's side (a preference for the first shown)."""
    workers = tasks["worker"].to_numpy()
    n_workers = int(workers.max()) + 1
    if isinstance(noise_sd, tuple):
        noise_sd = rng.uniform(*noise_sd, size=n_workers)
    sd = np.asarray(noise_sd, dtype=float)
    sd = np.full(len(workers), float(sd)) if sd.ndim == 0 else sd[workers]
    q = quality.to_numpy(dtype=float)
    ri = quality.index.get_indexer(tasks["image"])
    diff = (q[ri, quality.columns.get_indexer(tasks["method_a"])]
            - q[ri, quality.columns.get_indexer(tasks["method_b"])])
    prob = preference_probability(diff + position_bias, sd)
    out = tasks.copy()
    out["preferred"] = np.where(rng.random(len(out)) < prob, "A", "B")
    return out


def latent_quality(n_images: int, gaps, image_method_sd: float, rng: np.random.Generator,
                   image_sd: float = 0.0) -> pd.DataFrame:
    """Latent quality of each image x method: the method's gap + an image effect + an
    image:method effect (the same terms as analysis.calibration's ratings)."""
    gaps = np.asarray(gaps, dtype=float)
    q = (gaps[None, :] + rng.normal(0, image_sd, (n_images, 1))
         + rng.normal(0, image_method_sd, (n_images, len(gaps))))
    return pd.DataFrame(q, index=pd.Index(range(n_images), name="image"),
                        columns=pd.Index(range(len(gaps)), name="method"))


# ---------------------------------------------------------------- error rates by simulation

def simulated_study(gaps, image_method_sd: float, judgements: int, rng: np.random.Generator, *,
                    n_images: int = 10, pairs: str = "all", per_worker: int = 20,
                    noise_sd=(0.45, 0.75), model: str = "bradley-terry", bootstrap: int = 200,
                    alpha: float = 0.05) -> pw.Preferences:
    """One simulated pairwise study: methods 0..M-1 with latent quality `gaps` (higher is
    preferred), `judgements` per pair and image, pairs "all" or "neighbours" (adjacent in the
    true order), careful workers (noise SD drawn per worker from `noise_sd`)."""
    M = len(gaps)
    order = list(np.argsort(-np.asarray(gaps, dtype=float), kind="stable"))
    chosen = (pw.all_pairs(range(M)) if pairs == "all"
              else [(order[k], order[k + 1]) for k in range(M - 1)])
    tasks = pw.plan(chosen, range(n_images), judgements=judgements, per_worker=per_worker,
                    seed=int(rng.integers(2 ** 32)))
    quality = latent_quality(n_images, gaps, image_method_sd, rng)
    data = simulate(tasks, quality, noise_sd, rng)
    return pw.analyse(data, model, bootstrap=bootstrap, alpha=alpha,
                      seed=int(rng.integers(2 ** 32)))


def family_wise_error(n_methods: int, image_method_sd: float, judgements: int, n_studies: int,
                      seed: int = 0, alpha: float = 0.05, **study) -> dict:
    """Share of studies with no method effect in which any pair came out separated."""
    rng = np.random.default_rng(seed)
    hits = 0
    with _frozen_heap():
        for _ in range(n_studies):
            res = simulated_study(np.zeros(n_methods), image_method_sd, judgements, rng,
                                  alpha=alpha, **study)
            padj = res.pairwise["p_adjusted"].to_numpy()
            hits += bool((np.nan_to_num(padj, nan=1.0) < alpha).any())
    rate = hits / n_studies
    se = float(np.sqrt(alpha * (1 - alpha) / n_studies))
    return {"studies": n_studies, "fwer": rate, "mc_se": se, "limit": alpha + 2 * se,
            "ok": rate <= alpha + 2 * se}


def separation(gaps, image_method_sd: float, judgements: int, n_studies: int, seed: int = 0,
               alpha: float = 0.05, **study) -> dict:
    """Share of truly neighbouring pairs (adjacent in the order of `gaps`, which must differ)
    separated at alpha after Holm over all pairs (the letters' family), and the share of
    studies that ranked every method right."""
    rng = np.random.default_rng(seed)
    g = np.asarray(gaps, dtype=float)
    order = [str(k) for k in np.argsort(-g, kind="stable")]
    found = right = 0
    with _frozen_heap():
        for _ in range(n_studies):
            res = simulated_study(g, image_method_sd, judgements, rng, alpha=alpha, **study)
            padj = res.pairwise["p_adjusted"]
            found += sum(bool(padj.loc[a, b] < alpha) for a, b in zip(order[:-1], order[1:]))
            right += list(res.methods["method"]) == order
    return {"studies": n_studies, "power": found / (n_studies * (len(g) - 1)),
            "ranked_right": right / n_studies}
