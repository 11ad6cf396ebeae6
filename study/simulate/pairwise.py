"""Simulated workers judging pairs: which of two outputs looks closer to the reference.

The same workers as the rating simulator (study/simulate/workers.py), asked another question.
A careful worker perceives each output's true score (0 almost identical ... 4 mostly different)
with Gaussian noise of its own SD, as it does when rating; shown two outputs it prefers the one
that looks closer, so P(prefer A) = Phi((score_B - score_A) / (noise_sd * sqrt 2)) (the noise of
two perceptions, analysis.pairwise.preference_probability). Its bias shifts both perceptions
alike and cancels; its rounding to a level does not happen, as no level is asked for. Where
the page offers "no preference", it answers so when the two look closer than NO_PREFERENCE.

Other kinds: a sloppy worker is a careful one with more noise; a satisficer follows the
difference only weakly (its rating slope) unless it is obvious; a spammer picks at random; a
straight-liner always picks the same side. Returners and abandoners judge as careful workers
whenever they finish a HIT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from study.simulate.workers import (SATISFICER, SATISFICER_SLOPE, SPAMMER,
                                    STRAIGHTLINER, WorkerModel, stream)

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

