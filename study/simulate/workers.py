"""Simulated workers: who they are and how they answer.

Everything a worker decides is drawn from random streams keyed by (seed, worker, what it
decides about), never from a shared stream, so a worker's answers to a HIT are the same
whichever order things happen in.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

CAREFUL = "careful"
SLOPPY = "sloppy"
SATISFICER = "satisficer"
SPAMMER = "spammer"
STRAIGHTLINER = "straightliner"
RETURNER = "returner"
ABANDONER = "abandoner"

KINDS = (CAREFUL, SLOPPY, SATISFICER, SPAMMER, STRAIGHTLINER, RETURNER, ABANDONER)
# Kinds whose ratings carry (almost) no information about the images: a study's quality
# control should exclude them.
LOW_QUALITY = (SATISFICER, SPAMMER, STRAIGHTLINER)

DEFAULT_MIX: dict[str, float] = {
    CAREFUL: 0.60,
    SLOPPY: 0.15,
    SPAMMER: 0.10,
    STRAIGHTLINER: 0.05,
    RETURNER: 0.05,
    ABANDONER: 0.05,
}

LEVELS = 5  # ratings 0..4

# Careful workers are matched to the real subjects of the two shared datasets
# (tests/data/subjective: Netflix public, 26 subjects x 79 items; VQEG HD3, 24 x 72; both 5-level
# ACR like this 0..4 scale). Measured there: SD of the subjects' biases (mean deviation from the
# item means) 0.30 and 0.42; mean residual SD after the bias ("inconsistency") 0.61 and 0.60;
# mean correlation of a subject with the mean of the others 0.88 and 0.86. Fitted by letting
# crowds of careful workers of each dataset's size rate its items, with the dataset's item
# means as true scores (answers rounded and clipped as here), over a grid of latent bias SD and
# noise range: bias ~ N(0, 0.45) and noise SD ~ U(0.45, 0.75) give 0.35 and 0.38, 0.56 and
# 0.60, 0.88 and 0.85 (tests/test_simulate.py holds them within 0.05 of the real figures).
# Rounding and clipping shrink the latent bias and add to the noise, hence the latent values.
CAREFUL_BIAS_SD = 0.45
CAREFUL_NOISE_SD = (0.45, 0.75)
# A satisficer answers from a coarse impression: it sees when two photos are identical or
# glaringly different (so it passes the gold checks) and otherwise stays near the middle,
# weakly following the truth, at a careful worker's pace.
SATISFICER_SLOPE = 0.3
SATISFICER_NOISE_SD = 0.9
SATISFICER_OBVIOUS = (0.3, 3.2)   # true scores below / above which the difference is obvious

# Probability that a returner returns a HIT it accepted (the first one always: it looked
# at the task, found it longer than it wanted, and handed it back).
RETURN_PROBABILITY = 0.35

# Seconds spent on a HIT besides its items (instructions, loading), and between two HITs.
OVERHEAD_S = (5.0, 20.0)
PAUSE_S = (2.0, 15.0)

COMMENTS = (
    "",
    "Some pairs were hard to tell apart.",
    "The zoom helped a lot.",
    "Nice photos <3",
    "Images took a while to load & some looked the same.",
)


def stream(seed: int, *key: object) -> np.random.Generator:
    """A random stream that depends only on the seed and the key."""
    text = "\x1f".join([str(int(seed)), *map(str, key)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32).tolist())


def worker_ids(seed: int, n: int) -> list[str]:
    """MTurk-looking worker ids (A + 13 upper-case letters/digits), unique and deterministic."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        rng = stream(seed, "worker-id", i)
        wid = "A" + "".join(alphabet[j] for j in rng.integers(0, len(alphabet), size=13))
        if wid not in seen:
            seen.add(wid)
            out.append(wid)
        i += 1
    return out


def apportion(n: int, mix: dict[str, float] | None = None) -> dict[str, int]:
    """How many of n workers are of each kind (largest remainders; ties go to kinds listed
    first). Every kind with a positive share gets at least one worker when n allows, so a
    crowd of 30 always contains each kind the mix names."""
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(mix) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown worker kind(s) {unknown}; known: {list(KINDS)}")
    if any(v < 0 or not math.isfinite(v) for v in mix.values()):
        raise ValueError("worker mix shares must be finite and >= 0")
    total = sum(mix.values())
    if n < 0:
        raise ValueError("the number of workers must be >= 0")
    if total <= 0:
        raise ValueError("the worker mix has no positive share")
    kinds = [k for k in KINDS if mix.get(k, 0) > 0]
    quotas = {k: n * mix[k] / total for k in kinds}
    counts = {k: int(math.floor(q)) for k, q in quotas.items()}
    order = sorted(kinds, key=lambda k: (-(quotas[k] - counts[k]), kinds.index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    if n >= len(kinds):
        # Take from the largest group for any kind left empty.
        for k in kinds:
            if counts[k] == 0:
                donor = max(kinds, key=lambda d: (counts[d], -kinds.index(d)))
                counts[donor] -= 1
                counts[k] += 1
    return {k: counts.get(k, 0) for k in KINDS}


@dataclass(frozen=True)
class Answer:
    ratings: dict[int, int]           # position -> 0..4
    seconds: dict[int, float]         # position -> seconds spent on the item
    comments: str = ""


@dataclass
class WorkerModel:
    """One simulated worker: its kind and personal traits (bias, noise, pace)."""

    worker_id: str
    kind: str
    seed: int
    bias: float = 0.0
    noise_sd: float = 0.0
    straight_level: int = 2
    seconds_range: tuple[float, float] = (5.0, 20.0)
    comment_rate: float = 0.0

    @classmethod
    def create(cls, worker_id: str, kind: str, seed: int) -> "WorkerModel":
        if kind not in KINDS:
            raise ValueError(f"unknown worker kind {kind!r}")
        rng = stream(seed, "traits", worker_id)
        bias = float(rng.normal(0.0, CAREFUL_BIAS_SD))
        if kind in (CAREFUL, RETURNER, ABANDONER):
            # Returners and abandoners rate carefully whenever they do finish a HIT.
            return cls(worker_id, kind, seed, bias=bias,
                       noise_sd=float(rng.uniform(*CAREFUL_NOISE_SD)),
                       seconds_range=(5.0, 20.0), comment_rate=0.15)
        if kind == SATISFICER:
            return cls(worker_id, kind, seed, bias=float(rng.normal(0.0, 0.3)),
                       noise_sd=SATISFICER_NOISE_SD, seconds_range=(4.0, 15.0),
                       comment_rate=0.05)
        if kind == SLOPPY:
            return cls(worker_id, kind, seed, bias=float(rng.normal(0.0, 0.5)),
                       noise_sd=float(rng.uniform(0.8, 1.2)), seconds_range=(2.0, 7.0),
                       comment_rate=0.05)
        if kind == SPAMMER:
            return cls(worker_id, kind, seed, seconds_range=(0.4, 1.8))
        return cls(worker_id, kind, seed, straight_level=int(rng.integers(0, LEVELS)),
                   seconds_range=(0.5, 2.5))

    @property
    def low_quality(self) -> bool:
        return self.kind in LOW_QUALITY

    def answer(self, hit_key: str, true_scores: dict[int, float]) -> Answer:
        """Ratings for one HIT. `true_scores` maps each item's position to its true score;
        `hit_key` names the HIT (the same HIT gives the same answer)."""
        rng = stream(self.seed, "answer", self.worker_id, hit_key)
        positions = sorted(true_scores)
        ratings: dict[int, int] = {}
        seconds: dict[int, float] = {}
        lo, hi = self.seconds_range
        for p in positions:
            noise = rng.normal()
            uniform = int(rng.integers(0, LEVELS))
            # Log-uniform time on the item: most quick, a few slow.
            secs = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            if self.kind == SPAMMER:
                r = uniform
            elif self.kind == STRAIGHTLINER:
                r = self.straight_level
            elif self.kind == SATISFICER:
                r = self._impression(true_scores[p], noise)
            else:
                r = int(np.clip(round(true_scores[p] + self.bias + self.noise_sd * noise),
                                0, LEVELS - 1))
            ratings[p] = r
            seconds[p] = round(secs, 2)
        comments = ""
        if self.comment_rate and rng.random() < self.comment_rate:
            comments = COMMENTS[int(rng.integers(1, len(COMMENTS)))]
        return Answer(ratings, seconds, comments)

    def _impression(self, truth: float, noise: float) -> int:
        obvious_same, obvious_different = SATISFICER_OBVIOUS
        if truth < obvious_same:
            return 0
        if truth > obvious_different:
            return LEVELS - 1 - int(noise > 1.0)
        middle = (LEVELS - 1) / 2
        r = middle + SATISFICER_SLOPE * (truth - middle) + self.bias + self.noise_sd * noise
        return int(np.clip(round(r), 1, LEVELS - 2))

    def hit_seconds(self, hit_key: str, answer: Answer) -> float:
        """Simulated seconds from accepting a HIT to submitting it: the items' times plus
        reading the page and waiting for it to load."""
        rng = stream(self.seed, "overhead", self.worker_id, hit_key)
        return sum(answer.seconds.values()) + float(rng.uniform(*OVERHEAD_S))

    def pause(self, key: str) -> float:
        """Simulated seconds before this worker looks for its next HIT."""
        return float(stream(self.seed, "pause", self.worker_id, key).uniform(*PAUSE_S))

    def leaves(self, hit_key: str, nth: int) -> str | None:
        """What this worker does with the nth HIT it accepted (0-based), before working on it:
        None (works on it), "return" (returns it), or "abandon" (walks away, the assignment
        expires)."""
        if self.kind == RETURNER:
            if nth == 0:
                return "return"
            rng = stream(self.seed, "return", self.worker_id, hit_key)
            return "return" if rng.random() < RETURN_PROBABILITY else None
        if self.kind == ABANDONER:
            return "abandon"
        return None


def build_crowd(n: int, seed: int = 0, mix: dict[str, float] | None = None) -> list[WorkerModel]:
    """n workers with kinds apportioned by the mix, shuffled so ids do not reveal kinds."""
    counts = apportion(n, mix)
    kinds = [k for k in KINDS for _ in range(counts[k])]
    order = stream(seed, "kinds").permutation(len(kinds))
    ids = worker_ids(seed, n)
    return [WorkerModel.create(ids[i], kinds[j], seed) for i, j in enumerate(order)]
