"""Where the next ratings should go: adaptive allocation between collection rounds.

After each round the crossed mixed model (analysis.mixed_model) is fitted to every rating so
far. Each pair of methods is then, by a rule fixed in advance:

- separated: Holm-adjusted p below `alpha * INTERIM_SHARE` (stricter than the final alpha, so
  that looking after every round does not buy false positives: the Haybittle-Peto idea);
- out of reach: even its optimistic gap (|estimate| + 1 SE) would not be separated at the full
  budget on these images (projected SE at `ratings_per_item` ratings for every item), so more
  ratings cannot change its verdict, only more images can;
- undecided: neither. Its order or letter could still change, and its items get more ratings.

The letters rest on every pair, so every pair is judged; the plan reports the adjacent ones (in
the model's order) because those are the gaps a reader looks at. Collection stops when no pair
is undecided, or every adjacent difference is as precise as `target_se`, or the budget of
ratings is spent, and says which. Whatever happened in between, the verdict is the ordinary
final analysis of all ratings at `alpha` (analysis.verdicts); the rule above only decides where
ratings go and when to stop, and the benchmark benchmarks/bench_allocation.py shows that the
family-wise error of that final analysis stays at alpha.

Projections: for a contrast of two methods over I images with r ratings per item,
Var ~ 2 (sigma2_im + s2 / r) / I, s2 = residual + worker variance (a rating's noise that a
contrast does not cancel in a sparse design). The projection is anchored on the model's own SE
now: SE(r', I') = SE_now * sqrt((sigma2_im + s2/r') / (sigma2_im + s2/r) * I / I')."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis import mixed_model as _mm

# Interim looks separate a pair only below alpha * INTERIM_SHARE; the final analysis uses alpha.
INTERIM_SHARE = 0.2
# More ratings "stop helping" once the image:method variance is this many times the rating
# noise left in an item's mean (s2 / r): the SE is then within 5% of its floor (infinitely
# many ratings per item). A lower value (3: within 15%) saves more ratings but, measured in
# benchmarks/bench_allocation.py, changes the verdict of borderline pairs far more often.
DOMINANCE = 10.0
# An undecided pair is out of reach when |estimate| + OPTIMISM * SE would not be separated at
# the full budget. 0 (judge the estimate as it is) saves more ratings and changes more
# borderline verdicts (docs/allocation.md).
OPTIMISM = 1.0
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
            out.append(f"  next round   at least {self.next_ratings} more ratings on "
                       f"{sum(1 for k, v in self.wanted.items() if v > self.counts.get(k, 0))} "
                       f"items, for {len(self.undecided())} undecided pair(s)")
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
         correction: str = "holm", target_se: float = 0.0, step: float = 2.0) -> Look:
    """Judge every pair from the ratings so far (columns image, method, worker, score) and say
    how many ratings each item should have after the next round. `ratings_per_item` is the
    full budget per item (what uniform allocation gives every item)."""
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
    k = len(order)
    # Holm's multiplier for each pair, from its rank among the tested pairs' raw p.
    raw = {(a, b): float(pw["p"].at[a, b]) for i, a in enumerate(order) for b in order[i + 1:]}
    ranked = sorted((p, key) for key, p in raw.items() if np.isfinite(p))
    multiplier = {key: len(ranked) - j for j, (_, key) in enumerate(ranked)}
    pairs = []
    for i, a in enumerate(order):
        for j in range(i + 1, k):
            b = order[j]
            est, se = float(pw["estimate"].at[a, b]), float(pw["se"].at[a, b])
            padj = float(pw["p_adjusted"].at[a, b])
            if not np.isfinite(padj):
                continue
            se_full = projected_se(se, variance, r_now, max(ratings_per_item, r_now), n_images,
                                   n_images)
            crit = stats.norm.ppf(1 - alpha / (2 * multiplier.get((a, b), 1)))
            need = None
            if padj < alpha * INTERIM_SHARE:
                state = SEPARATED
            elif (abs(est) + OPTIMISM * se) / max(se_full, 1e-12) < crit:
                state = OUT_OF_REACH
                need = images_needed(est, se, variance, r_now, ratings_per_item, n_images, crit)
            else:
                state = UNDECIDED
            pairs.append(Pair(a, b, est, se, padj, state, j == i + 1, se_full, need))
    # Holm steps down: a pair can be separated only if every pair with a smaller p is, so once
    # one pair is out of reach, so is every weaker one.
    by_key = {(p.a, p.b): p for p in pairs}
    reached = True
    for _, key in ranked:
        p = by_key.get(key)
        if p is None or p.state == SEPARATED:
            continue
        if p.state == OUT_OF_REACH:
            reached = False
        elif not reached:
            crit = stats.norm.ppf(1 - alpha / (2 * multiplier[key]))
            p.state = OUT_OF_REACH
            p.images_needed = images_needed(p.estimate, p.se, variance, r_now,
                                            ratings_per_item, n_images, crit)
    contribution, wanted = _allocate(pairs, counts, variance, ratings_per_item, step)
    stop = None
    ratings = int(counts.sum())
    adjacent = [p for p in pairs if p.adjacent]
    if not any(p.state == UNDECIDED for p in pairs):
        stop = "every pair is decided (separated, or out of reach of the budget on these images)"
    elif target_se > 0 and adjacent and all(p.se <= target_se for p in adjacent):
        stop = f"the precision target is met (every adjacent difference has SE <= {target_se:g})"
    elif ratings >= budget:
        stop = "the budget of ratings is spent"
    elif sum(wanted.values()) <= ratings:
        stop = (f"more ratings cannot decide the undecided pairs: beyond about "
                f"{ratings_stop_helping(variance)} per item the image:method variance "
                "dominates, and only more images can")
    if stop:
        wanted = {it: int(n) for it, n in counts.items()}
    out = Look(order=order, pairs=pairs, variance=variance, ratings=ratings,
               budget_ratings=budget, wanted=wanted, contribution=contribution, stop=stop,
               ratings_stop_helping=ratings_stop_helping(variance))
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


def _allocate(pairs: list[Pair], counts: pd.Series, variance: dict, r_max: int, step: float):
    """Which items the next round rates: those of the methods in undecided pairs, each raised
    by `step` times its count (at most r_max, and not past the point where ratings stop
    helping). An item's contribution: the share of each undecided pair's variance that its
    rating noise makes, summed over the pairs it is in; the items of no undecided pair have 0."""
    _, s2 = _noise(variance)
    n_images = counts.index.get_level_values(0).nunique()
    contribution = {it: 0.0 for it in counts.index}
    for p in pairs:
        if p.state != UNDECIDED:
            continue
        for it, n in counts.items():
            if it[1] in (p.a, p.b):
                contribution[it] += (s2 / n / n_images ** 2) / max(p.se ** 2, 1e-12)
    cap = r_max
    floor_r = ratings_stop_helping(variance)
    if floor_r:
        cap = min(cap, max(floor_r, int(counts.max())))
    wanted = {}
    for it, n in counts.items():
        n = int(n)
        wanted[it] = min(cap, max(n, int(np.ceil(n * step)))) if contribution[it] > 0 else n
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
