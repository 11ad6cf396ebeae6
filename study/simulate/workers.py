"""Simulated workers: who they are and how they answer.

Everything a worker decides is drawn from random streams keyed by (seed, worker, what it
decides about), never from a shared stream, so a worker's answers to a HIT are the same
whichever order things happen in.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

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
# Honest workers whose ratings are noisier than any real subject's (sloppy: noise SD 0.8-1.2
# against 0.45-0.75): a study may exclude them for inconsistency or keep them, and neither is
# an error of its quality control.
NOISY = (SLOPPY,)

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
# A satisficer satisfices weakly (Krosnick 1991): it goes through every step of the task, each
# with less effort than it asks for. Here that is a quick look at the overview, a middle-of-the-
# scale answer that follows weakly what it saw, at a careful worker's pace:
# - it presses "whole photo" as each HIT opens and keeps the page there, so it never looks at a
#   pair at 1:1 or closer (only the first pair, which the page opens at 1:1, is recorded as seen
#   so) and never flips; where a photo fits its screen at 1:1 or more, the overview is that;
# - its impression is the pair's difference at a glance: the same dissimilarity as the true score
#   on the photos brought down to SATISFICER_GLANCE_SIDE pixels, where what sets bokeh methods
#   apart (a sharp background, halos at the subject's edges) is mostly lost;
# - pairs that look identical at a glance get the "identical" end (it passes the reference-vs-
#   itself gold), pairs glaringly different at a glance the other end; the rest stay near the
#   middle of the scale (slope SATISFICER_SLOPE) with noise SATISFICER_NOISE_SD, about half as
#   much again as a careful worker's.
# These are a model of the behaviour, not figures fitted to data: no public dataset labels its
# satisficers.
SATISFICER_GLANCE_SIDE = 64
SATISFICER_SLOPE = 0.3
SATISFICER_NOISE_SD = 0.9
SATISFICER_OBVIOUS = (0.3, 3.0)   # glance scores below / above which the difference is obvious

# The screens simulated workers use: the window's inside in CSS pixels (a maximised browser on a
# common desktop screen, less its toolbars and the taskbar) and the device-pixel ratio, with
# their shares (assumed, after the common desktop resolutions of public screen statistics).
SCREENS = (
    ((1920, 945, 1.0), 0.30),    # 1920x1080
    ((1536, 730, 1.25), 0.15),   # 1920x1080 at 125 %
    ((1366, 645, 1.0), 0.15),    # 1366x768 laptop
    ((1440, 790, 2.0), 0.10),    # 2880x1800 laptop at 200 %
    ((1280, 600, 1.5), 0.10),    # 1920x1080 at 150 %
    ((1600, 770, 1.0), 0.10),    # 1600x900
    ((2560, 1300, 1.0), 0.10),   # 2560x1440
)
# The rating page's two photo panes, side by side, in CSS pixels: the window less the page's
# margins, header, tools and scale (measured in Chromium at 1366x768: two panes of 672x500).
PANE_MARGIN = (22, 268)
# A careful worker opens each pair at 1:1 (the page's default) and zooms in to 2:1 on some.
CAREFUL_ZOOM_IN_PROBABILITY = 0.3
CAREFUL_MEAN_FLIPS = 1.5

# Rating a photo without its reference (ACR), a worker judges how far it is from what a good
# bokeh photo looks like with the careful workers' noise above: that noise was fitted to real
# subjects rating ACR (the two datasets), so the similarity and DCR pages, which show the
# reference, reuse an ACR fit rather than the other way round. Whether a reference makes raters
# steadier is not in any data here; no extra spread is assumed for ACR.

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
    # position -> the page's viewing record (view_P): {"s", "z", "f", "w", "h", "r"}
    views: dict[int, dict] = field(default_factory=dict)
    # How each answer lands on a page's own scale (pages.TaskItem.level / picked): for a worker
    # who looked, the difference it saw on the 0..4 scale before rounding (a page of five
    # levels gets `ratings` from it); for one who did not look, where on the page's row of
    # levels it clicked (0 first .. 1 last).
    differences: dict[int, float] = field(default_factory=dict)
    picks: dict[int, float] = field(default_factory=dict)


def draw_screen(rng: np.random.Generator) -> tuple[int, int, float]:
    """One of SCREENS by its share: (window width, height in CSS pixels, device-pixel ratio)."""
    shares = np.array([share for _, share in SCREENS])
    return SCREENS[int(rng.choice(len(SCREENS), p=shares / shares.sum()))][0]


def fit_zoom(screen: tuple[int, int, float], size: tuple[int, int] | None) -> float:
    """The zoom (screen pixels per image pixel) at which the page's "whole photo" shows a photo
    of `size` (width, height) on `screen`; 1 when the size is unknown."""
    if not size or not size[0] or not size[1]:
        return 1.0
    w, h, ratio = screen
    pane_w, pane_h = (w - PANE_MARGIN[0]) / 2, h - PANE_MARGIN[1]
    return min(pane_w / size[0], pane_h / size[1]) * ratio


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
    screen: tuple[int, int, float] = SCREENS[0][0]

    @classmethod
    def create(cls, worker_id: str, kind: str, seed: int) -> "WorkerModel":
        if kind not in KINDS:
            raise ValueError(f"unknown worker kind {kind!r}")
        rng = stream(seed, "traits", worker_id)
        screen = draw_screen(stream(seed, "screen", worker_id))
        bias = float(rng.normal(0.0, CAREFUL_BIAS_SD))
        if kind in (CAREFUL, RETURNER, ABANDONER):
            # Returners and abandoners rate carefully whenever they do finish a HIT.
            return cls(worker_id, kind, seed, bias=bias,
                       noise_sd=float(rng.uniform(*CAREFUL_NOISE_SD)),
                       seconds_range=(5.0, 20.0), comment_rate=0.15, screen=screen)
        if kind == SATISFICER:
            return cls(worker_id, kind, seed, bias=float(rng.normal(0.0, 0.3)),
                       noise_sd=SATISFICER_NOISE_SD, seconds_range=(4.0, 15.0),
                       comment_rate=0.05, screen=screen)
        if kind == SLOPPY:
            return cls(worker_id, kind, seed, bias=float(rng.normal(0.0, 0.5)),
                       noise_sd=float(rng.uniform(0.8, 1.2)), seconds_range=(2.0, 7.0),
                       comment_rate=0.05, screen=screen)
        if kind == SPAMMER:
            return cls(worker_id, kind, seed, seconds_range=(0.4, 1.8), screen=screen)
        return cls(worker_id, kind, seed, straight_level=int(rng.integers(0, LEVELS)),
                   seconds_range=(0.5, 2.5), screen=screen)

    @property
    def low_quality(self) -> bool:
        return self.kind in LOW_QUALITY

    def answer(self, hit_key: str, true_scores: dict[int, float],
               glances: dict[int, float] | None = None,
               sizes: dict[int, tuple[int, int]] | None = None) -> Answer:
        """Ratings for one HIT, and what the page records of how each pair was viewed.
        `true_scores` maps each item's position to its true score; `glances` to its score at
        a glance (scoring.glance_score; the true score when not given); `sizes` to the photos'
        (width, height) in pixels (unknown: they fit the screen at 1:1). `hit_key` names the
        HIT (the same HIT gives the same answer)."""
        rng = stream(self.seed, "answer", self.worker_id, hit_key)
        positions = sorted(true_scores)
        ratings: dict[int, int] = {}
        differences: dict[int, float] = {}
        picks: dict[int, float] = {}
        seconds: dict[int, float] = {}
        lo, hi = self.seconds_range
        for p in positions:
            noise = rng.normal()
            uniform = int(rng.integers(0, LEVELS))
            # Log-uniform time on the item: most quick, a few slow.
            secs = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            if self.kind == SPAMMER:
                r = uniform
                picks[p] = r / (LEVELS - 1)
            elif self.kind == STRAIGHTLINER:
                r = self.straight_level
                picks[p] = r / (LEVELS - 1)
            elif self.kind == SATISFICER:
                seen = (true_scores[p] if glances is None else glances[p])
                r, differences[p] = self._impression(seen, noise)
            else:
                differences[p] = true_scores[p] + self.bias + self.noise_sd * noise
                r = int(np.clip(round(differences[p]), 0, LEVELS - 1))
            ratings[p] = r
            seconds[p] = round(secs, 2)
        comments = ""
        if self.comment_rate and rng.random() < self.comment_rate:
            comments = COMMENTS[int(rng.integers(1, len(COMMENTS)))]
        views = self._views(hit_key, positions, seconds, sizes or {})
        return Answer(ratings, seconds, comments, views, differences, picks)

    def _views(self, hit_key: str, positions: list[int], seconds: dict[int, float],
               sizes: dict[int, tuple[int, int]]) -> dict[int, dict]:
        """The page's viewing record of each pair (its own stream: the ratings do not depend
        on it). The page opens the first pair at 1:1 and keeps the zoom the worker chose."""
        rng = stream(self.seed, "view", self.worker_id, hit_key)
        w, h, ratio = self.screen
        views = {}
        for i, p in enumerate(positions):
            zoom_in = rng.random() < CAREFUL_ZOOM_IN_PROBABILITY
            flips = int(rng.poisson(CAREFUL_MEAN_FLIPS))
            if self.kind == SATISFICER:
                # "Whole photo" from the first pair on; that pair was on screen at 1:1 first.
                z = fit_zoom(self.screen, sizes.get(p))
                z, flips = (max(1.0, z) if i == 0 else z), 0
            elif self.kind in (SPAMMER, STRAIGHTLINER):
                z, flips = 1.0, 0         # the page's default, untouched
            else:
                z = 2.0 if zoom_in else 1.0
            views[p] = {"s": round(seconds[p], 1), "z": round(z, 2), "f": flips,
                        "w": w, "h": h, "r": ratio}
        return views

    def _impression(self, seen: float, noise: float) -> tuple[int, float]:
        """The rating and the difference behind it."""
        obvious_same, obvious_different = SATISFICER_OBVIOUS
        if seen < obvious_same:
            return 0, 0.0
        if seen > obvious_different:
            r = LEVELS - 1 - int(noise > 1.0)
            return r, float(r)
        middle = (LEVELS - 1) / 2
        r = middle + SATISFICER_SLOPE * (seen - middle) + self.bias + self.noise_sd * noise
        return int(np.clip(round(r), 0, LEVELS - 1)), r

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
