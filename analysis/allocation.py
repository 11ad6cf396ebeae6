"""Where the next ratings should go: adaptive allocation between collection rounds.

After each round the crossed mixed model (analysis.mixed_model) is fitted to every rating so
far, and each pair of methods is judged by what the full budget would do to it. The images are
fixed, so what the remaining ratings can still move is only the rating noise in the item means:
with n ratings of an item now and R at the full budget, a method's mean moves by a normal
amount of variance s2 / I^2 * sum over its items of (1/n - 1/R) (s2 = residual + worker
variance, the noise a contrast does not cancel in a sparse design), independently of what it
is now. The image:method variance, often the larger part of a contrast's SE, stays as it is.
The look draws the full-budget estimates from that, runs the final analysis on each draw (the
pairwise tests at alpha with the same correction, on the SE projected to the full budget), and
calls a pair:

- separated: separated now, and at the full budget in all but `FLIP_SEPARATED` of the draws;
- out of reach: not separated now, nor at the full budget in all but `FLIP` of the draws: more
  ratings would likely not change its verdict, only more images could;
- undecided: neither; its order or letter could still change, and its items get more ratings
  (those of the undecided pairs likeliest to change first: FOCUS).

The letters rest on every pair, so every pair is judged; the plan reports the adjacent ones (in
the model's order) because those are the gaps a reader looks at. Collection stops when no pair
is undecided, or every adjacent difference is as precise as `target_se`, or the budget of
ratings is spent, and says which. Whatever happened in between, the verdict is the ordinary
final analysis of all ratings at `alpha` (analysis.verdicts). A pair is let go only when the
verdict it has now is likely the one the full budget would give it, so stopping early aims at
the verdict of uniform allocation at the full budget without adding false positives; the
benchmark benchmarks/bench_allocation.py measures how often it gets there, what it spends and
the family-wise error.

Projections for the plan: for a contrast of two methods over I images with r ratings per item,
Var ~ 2 (sigma2_im + s2 / r) / I. The projection is anchored on the model's own SE now:
SE(r', I') = SE_now * sqrt((sigma2_im + s2/r') / (sigma2_im + s2/r) * I / I')."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis import mixed_model as _mm

# A pair is let go once the full budget would change its verdict in at most this share of the
# draws: FLIP for a pair not separated now, FLIP_SEPARATED for one separated now. Stopping on
# a separated pair is what could add false positives (under no effect, a gap that looks real
# early tends to shrink), so that side is stricter. Smaller keeps uniform's verdict more often
# and saves less (benchmarks/bench_allocation.py --flip; docs/allocation.md).
FLIP = 0.2
FLIP_SEPARATED = 0.05
# Collection also goes on while the full budget would change some verdict (any pair, hence the
# ranking claims or the letters) in more than CHANGE of the draws: the study's verdict, not
# each pair's, is what should be settled; meanwhile every pair with a chance of a change of at
# least PAIR_FLOOR stays undecided. 1.0 judges pairs one by one only: on held-out simulated
# studies a limit of 0.2-0.8 kept uniform's verdict no more often for more ratings
# (docs/allocation.md).
CHANGE = 1.0
PAIR_FLOOR = 0.02
# The next round rates the items of the undecided pairs whose chance of a change is at least
# FOCUS times the largest (0: every undecided pair's items): the ratings go where the verdict
# is least settled. With 0.5 and STEP 1.3 the held-out simulated studies needed fewer ratings
# for uniform's verdict at every gap than with 0 and 1.5 (docs/allocation.md).
FOCUS = 0.0
# Draws of the full-budget estimates per look (seeded: a look is a function of the ratings).
DRAWS = 4000
# Each round multiplies an undecided item's ratings by this (at least one more, at most the
# full budget). Smaller steps stop closer to the point where the verdict is settled, at the
# price of more rounds.
STEP = 1.5
# More ratings "stop helping" once the image:method variance is this many times the rating
# noise left in an item's mean (s2 / r): the SE is then within 5% of its floor (infinitely
# many ratings per item). The plan says so; it does not stop a pair whose verdict could change.
DOMINANCE = 10.0
# Power the image counts in the plan are sized for.
PLAN_POWER = 0.8
MAX_IMAGES = 100_000

SEPARATED, OUT_OF_REACH, UNDECIDED = "separated", "out of reach", "undecided"


@dataclass
class Pair:
    a: str                    # the better of the two in the model's order
    b: str
    estimate: float           # a - b
    se: float
    p_adjusted: float
    state: str
    adjacent: bool
    se_full: float            # projected at the full budget on these images
    images_needed: int | None = None   # for an out-of-reach gap: images that would separate it
    p_change: float = 0.0     # share of the draws in which the full budget changes its verdict

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in self.__dict__.items()}


@dataclass
class Look:
    """One look at the ratings: the pairs, the wanted ratings per item, why to stop (or None)."""
    order: list
    pairs: list[Pair]
    variance: dict
    ratings: int
    budget_ratings: int
    wanted: dict              # (image, method) -> ratings wanted in total after the next round
    contribution: dict        # (image, method) -> share of the undecided pairs' variance
    stop: str | None
    projections: list[dict] = field(default_factory=list)
    ratings_stop_helping: int | None = None
    images_needed: int | None = None    # for the largest adjacent gap out of reach
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict, repr=False)   # (image, method) -> ratings now
    p_change: float = 0.0     # share of the draws in which the full budget changes any verdict

    @property
    def next_ratings(self) -> int:
        return int(sum(self.wanted.values())) - self.ratings

    def undecided(self, adjacent_only: bool = False) -> list[Pair]:
        return [p for p in self.pairs if p.state == UNDECIDED and (p.adjacent or not adjacent_only)]

    def lines(self) -> list[str]:
        """What the next round buys and what money cannot buy, in words."""
        out = []
        adj = [p for p in self.pairs if p.adjacent]
        out.append(f"  ratings      {self.ratings} so far of {self.budget_ratings} at the full "
                   f"budget")
        projected = {(r["a"], r["b"]): r for r in self.projections}
        for p in adj:
            out.append(f"  {p.a} - {p.b}: {p.estimate:+.3f} ± {p.se:.3f} (SE), {p.state}"
                       + (f" (the full budget would change its verdict with probability "
                          f"{p.p_change:.2f})" if p.state == UNDECIDED else "")
                       + (f"; about {p.images_needed} images would separate it"
                          if p.images_needed else ""))
            row = projected.get((p.a, p.b), {})
            se = ", ".join(f"{_label(k)} {v:.3f}" for k, v in row.items()
                           if k.startswith("se_") and k != "se_now")
            if se:
                out.append(f"      projected SE: {se}")
        if self.stop:
            out.append(f"  stop         {self.stop}")
        else:
            undecided = self.undecided()
            named = ", ".join(f"{p.a} - {p.b}" for p in undecided[:6])
            more = f" and {len(undecided) - 6} more" if len(undecided) > 6 else ""
            out.append(f"  next round   at least {self.next_ratings} more ratings on "
                       f"{sum(1 for k, v in self.wanted.items() if v > self.counts.get(k, 0))} "
                       f"items, for {len(undecided)} undecided pair(s): {named}{more}")
        if self.ratings_stop_helping:
            out.append(f"  more ratings stop helping beyond about {self.ratings_stop_helping} per "
                       "item (the image:method variance dominates); beyond that only more "
                       "images help")
        out.extend(f"  note         {n}" for n in self.notes)
        return out



def _label(key: str) -> str:
    """se_r6 -> "6 ratings/item", se_r_inf -> "unlimited ratings/item", se_images20 -> "20 images ..."."""
    if key == "se_r_inf":
        return "unlimited ratings/item"
    if key.startswith("se_r"):
        return f"{key.removeprefix('se_r')} ratings/item"
    return f"{key.removeprefix('se_images')} images at today's ratings/item"


def _noise(variance: dict) -> tuple[float, float]:
    """(image:method variance, per-rating noise a contrast does not cancel)."""
    im = float(variance.get("image:method", variance.get("image_method", 0.0)) or 0.0)
    s2 = float(variance.get("residual", 0.0)) + float(variance.get("worker", 0.0))
    return im, s2


def projected_se(se_now: float, variance: dict, r_now: float, r_new: float,
                 images_now: int, images_new: int) -> float:
    """SE of a contrast with r_new ratings per item on images_new images (see the module doc)."""
    im, s2 = _noise(variance)
    now = im + s2 / max(r_now, 1e-9)
    new = im + (0.0 if not np.isfinite(r_new) else s2 / max(r_new, 1e-9))
    if now <= 0:
        return float(se_now)
    return float(se_now * np.sqrt(new / now * images_now / images_new))


def ratings_stop_helping(variance: dict) -> int | None:
    """Ratings per item beyond which the image:method variance dominates (DOMINANCE); None when
    it was estimated at 0 (then more ratings keep helping)."""
    im, s2 = _noise(variance)
    if im <= 0:
        return None
    return max(1, int(np.ceil(DOMINANCE * s2 / im)))


def images_needed(gap: float, se_now: float, variance: dict, r_now: float, r_max: int,
                  images_now: int, crit: float, power: float = PLAN_POWER) -> int | None:
    """Images that would separate a true gap `gap` with `power` at r_max ratings per item."""
    if not gap or not np.isfinite(gap) or se_now <= 0:
        return None
    se_one = projected_se(se_now, variance, r_now, r_max, images_now, 1)
    need = ((crit + stats.norm.ppf(power)) * se_one / abs(gap)) ** 2
    return int(min(MAX_IMAGES, max(images_now + 1, np.ceil(need))))


def look(data: pd.DataFrame, *, ratings_per_item: int, alpha: float = 0.05,
         correction: str = "holm", target_se: float = 0.0, step: float | None = None,
         flip: float | None = None, change: float | None = None) -> Look:
    """Judge every pair from the ratings so far (columns image, method, worker, score) and say
    how many ratings each item should have after the next round. `ratings_per_item` is the
    full budget per item (what uniform allocation gives every item)."""
    step = STEP if step is None else step
    flip = FLIP if flip is None else flip
    change_limit = CHANGE if change is None else change
    f = _mm.fit_frame(data)
    shared = _mm.shared_images(data)
    pw = _mm.pairwise(f, shared, correction)
    methods = list(f.methods)
    order = [methods[i] for i in np.argsort(-f.beta, kind="stable")]
    counts = data.groupby(["image", "method"]).size()
    items = list(counts.index)
    n_images = int(data["image"].nunique())
    r_now = float(np.median(counts.to_numpy()))
    variance = dict(f.variance)
    budget = ratings_per_item * len(items)
    moves = _moves(counts, variance, ratings_per_item)
    # Holm's multiplier for each pair, from its rank among the tested pairs' raw p (for the
    # number of images the plan names).
    raw = {(a, b): float(pw["p"].at[a, b]) for i, a in enumerate(order) for b in order[i + 1:]}
    ranked = sorted((p, key) for key, p in raw.items() if np.isfinite(p))
    multiplier = {key: len(ranked) - j for j, (_, key) in enumerate(ranked)}
    keys, est, se, se_full, dfs, var_move = [], [], [], [], [], []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if not np.isfinite(float(pw["p_adjusted"].at[a, b])):
                continue
            e, s = float(pw["estimate"].at[a, b]), float(pw["se"].at[a, b])
            v = moves.get(a, 0.0) + moves.get(b, 0.0)
            keys.append((a, b))
            est.append(e)
            se.append(s)
            # What the full budget leaves: today's variance less what the ratings still to
            # come take away (never below a tenth of it, should the model's SE be smaller
            # than the rating noise alone suggests).
            se_full.append(float(np.sqrt(max(s * s - v, 0.01 * s * s))))
            dfs.append(float(pw["df"].at[a, b]))
            var_move.append(v)
    now = np.array([float(pw["p_adjusted"].at[a, b]) < alpha for a, b in keys], dtype=bool)
    change, any_change = _changes(keys, np.array(est), np.array(se_full), np.array(dfs), moves,
                                  now, alpha, correction)
    position = {m: i for i, m in enumerate(order)}
    # While the study's verdict is not settled, every pair whose verdict the full budget could
    # still change (in at least PAIR_FLOOR of the draws, or the likeliest to) stays undecided.
    floor = (min(PAIR_FLOOR, float(change.max())) if any_change > change_limit and len(keys)
             else np.inf)
    pairs = []
    for j, (a, b) in enumerate(keys):
        if (change[j] > (min(flip, FLIP_SEPARATED) if now[j] else flip)
                or change[j] >= floor):
            state, need = UNDECIDED, None
        elif now[j]:
            state, need = SEPARATED, None
        else:
            state = OUT_OF_REACH
            crit = stats.norm.ppf(1 - alpha / (2 * multiplier.get((a, b), 1)))
            need = images_needed(est[j], se[j], variance, r_now, ratings_per_item, n_images,
                                 crit)
        pairs.append(Pair(a, b, est[j], se[j], float(pw["p_adjusted"].at[a, b]), state,
                          position[b] == position[a] + 1, se_full[j], need,
                          float(change[j])))
    contribution, wanted = _allocate(pairs, counts, variance, ratings_per_item, step)
    stop = None
    ratings = int(counts.sum())
    adjacent = [p for p in pairs if p.adjacent]
    if not any(p.state == UNDECIDED for p in pairs):
        stop = ("every pair is decided (separated, or out of reach of the budget on these "
                "images): the full budget is unlikely to change its verdict")
    elif target_se > 0 and adjacent and all(p.se <= target_se for p in adjacent):
        stop = f"the precision target is met (every adjacent difference has SE <= {target_se:g})"
    elif ratings >= budget or sum(wanted.values()) <= ratings:
        stop = "the budget of ratings is spent"
    if stop:
        wanted = {it: int(n) for it, n in counts.items()}
    out = Look(order=order, pairs=pairs, variance=variance, ratings=ratings,
               budget_ratings=budget, wanted=wanted, contribution=contribution, stop=stop,
               ratings_stop_helping=ratings_stop_helping(variance), p_change=any_change)
    out.counts = {it: int(n) for it, n in counts.items()}
    out.projections = _projections(adjacent, variance, r_now, ratings_per_item, n_images)
    if "image:method" in f.boundary:
        out.notes.append("the image:method variance was estimated at 0: the projections assume "
                         "more ratings keep helping, which more data may contradict")
    far = [p for p in adjacent if p.state == OUT_OF_REACH and p.images_needed]
    if far:
        out.images_needed = min(p.images_needed for p in far)
        out.notes.append(f"{len(far)} adjacent gap(s) are too small for the budget on "
                         f"{n_images} images: more ratings cannot separate them; about "
                         f"{out.images_needed} images would separate the largest of them, "
                         f"if it is as large as it looks now (power {PLAN_POWER:g})")
    return out


def _moves(counts: pd.Series, variance: dict, r_max: int) -> dict:
    """method -> variance of how far its mean can still move before every item has r_max
    ratings (the rating noise of the ratings still to come; see the module doc)."""
    _, s2 = _noise(variance)
    frame = counts.rename("n").reset_index()
    frame["left"] = np.maximum(1.0 / frame["n"] - 1.0 / r_max, 0.0)
    per = frame.groupby("method").agg(left=("left", "sum"), images=("image", "nunique"))
    return {m: float(s2 * row.left / row.images ** 2) for m, row in per.iterrows()}


def _changes(keys: list, est: np.ndarray, se_full: np.ndarray, dfs: np.ndarray, moves: dict,
             now: np.ndarray, alpha: float, correction: str) -> tuple[np.ndarray, float]:
    """Share of the draws of the full-budget estimates in which each pair's verdict differs
    from `now`, and in which any does."""
    if not keys:
        return np.zeros(0), 0.0
    methods = sorted({m for k in keys for m in k}, key=str)
    col = {m: i for i, m in enumerate(methods)}
    rng = np.random.default_rng(0)
    sd = np.sqrt([moves.get(m, 0.0) for m in methods])
    shift = rng.standard_normal((DRAWS, len(methods))) * sd
    ia = np.array([col[a] for a, _ in keys])
    ib = np.array([col[b] for _, b in keys])
    d = est + shift[:, ia] - shift[:, ib]
    t = np.abs(d) / se_full
    p = 2 * stats.t.sf(t, np.where(np.isfinite(dfs), dfs, 1e12))
    separated = _adjusted(p, correction) < alpha
    differ = separated != now
    return differ.mean(axis=0), float(differ.any(axis=1).mean())


def _adjusted(p: np.ndarray, correction: str) -> np.ndarray:
    """Holm or Benjamini-Hochberg adjusted p along the last axis (as analysis.significance.adjust
    on each row, without a call per row)."""
    m = p.shape[-1]
    idx = np.argsort(p, axis=-1)
    ps = np.take_along_axis(p, idx, axis=-1)
    if correction == "holm":
        adj = np.maximum.accumulate(ps * (m - np.arange(m)), axis=-1)
    elif correction in ("bh", "fdr_bh"):
        adj = np.minimum.accumulate((ps * m / np.arange(1, m + 1))[..., ::-1], axis=-1)[..., ::-1]
    else:
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    out = np.empty_like(adj)
    np.put_along_axis(out, idx, np.minimum(adj, 1.0), axis=-1)
    return out


def _allocate(pairs: list[Pair], counts: pd.Series, variance: dict, r_max: int, step: float):
    """Which items the next round rates: those of the methods in the undecided pairs likeliest
    to change (FOCUS; all undecided pairs if their items are all at r_max), each raised to
    `step` times its count (at least one more, at most r_max). An item's contribution: the
    share of each such pair's variance that its rating noise makes, summed over the pairs it
    is in; the other items have 0."""
    _, s2 = _noise(variance)
    n_images = counts.index.get_level_values(0).nunique()
    undecided = [p for p in pairs if p.state == UNDECIDED]
    top = max((p.p_change for p in undecided), default=0.0)
    for focus in (FOCUS, 0.0):
        contribution = {it: 0.0 for it in counts.index}
        for p in undecided:
            if p.p_change < focus * top:
                continue
            for it, n in counts.items():
                if it[1] in (p.a, p.b):
                    contribution[it] += (s2 / n / n_images ** 2) / max(p.se ** 2, 1e-12)
        if any(c > 0 and counts[it] < r_max for it, c in contribution.items()):
            break
    wanted = {}
    for it, n in counts.items():
        n = int(n)
        more = max(n + 1, int(np.ceil(n * step)))
        wanted[it] = max(n, min(r_max, more)) if contribution[it] > 0 else n
    return contribution, wanted


def _projections(adjacent: list[Pair], variance: dict, r_now: float, r_max: int,
                 n_images: int) -> list[dict]:
    """The SE of each adjacent difference now, with more ratings per item, and with more images."""
    out = []
    for p in adjacent:
        row = {"a": p.a, "b": p.b, "se_now": p.se}
        for r in sorted({round(r_now * 2), r_max}):
            row[f"se_r{r}"] = projected_se(p.se, variance, r_now, r, n_images, n_images)
        row["se_r_inf"] = projected_se(p.se, variance, r_now, np.inf, n_images, n_images)
        row[f"se_images{2 * n_images}"] = projected_se(p.se, variance, r_now, r_now, n_images,
                                                       2 * n_images)
        out.append(row)
    return out


def verdict(lk: Look, alpha: float = 0.05) -> frozenset:
    """The pairs the final analysis separates, each as (better, worse): the ranking claims and
    the letters rest on exactly these."""
    return frozenset((p.a, p.b) if p.estimate > 0 else (p.b, p.a)
                     for p in lk.pairs if p.p_adjusted < alpha)
