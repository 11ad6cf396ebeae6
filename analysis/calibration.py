"""How often the verdicts are wrong: simulated studies with a known truth.

A simulated study has the AIM 2019 shape by default (10 images x 9 methods) and the sparse
layout that publishing makes: the image x method items are shuffled into HITs of about 10
items, each HIT is asked of R distinct workers, and each worker does several HITs. Ratings are
mean + method gap + image + image:method + worker + noise, with variance components taken from
a fitted study, rounded to the integer scale and clipped to it.

`family_wise_error` counts the studies in which any pair of equal methods was declared
different; `power` the share of pairs at a given gap that were separated."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import mixed_model as _mm
from analysis.significance import adjust


# Raters who agree closely (as careful workers do on clear differences): many items get the
# same rating from everyone, the case that breaks BT.500 screening as published.
CALM_CROWD = {"worker": 0.02, "image": 0.3, "image:method": 0.1, "residual": 0.05}


@dataclass(frozen=True)
class Design:
    n_images: int = 10
    n_methods: int = 9
    ratings_per_item: int = 20
    items_per_hit: int = 10
    hits_per_worker: float = 3.0       # on average; each worker does a HIT at most once
    complete: bool = False             # every worker rates every item once (a lab panel)
    low: int = 1
    high: int = 5


def components_of(df: pd.DataFrame) -> dict:
    """Variance components of the crossed model fitted to a tidy ratings table."""
    f = _mm.fit_frame(df, satterthwaite=False)
    return dict(f.variance)


def draw(design: Design, components: dict, gaps, rng: np.random.Generator) -> tuple:
    """One study split into what is fixed and the rating noise: (layout frame of image, method
    and worker per rating, each rating's latent mean, its noise, the number of workers). The
    layout, image, image:method and worker effects are the study; mean + noise, rounded, is a
    rating. `simulate` and analysis.sequential draw their studies here, in this order."""
    I, M, R = design.n_images, design.n_methods, design.ratings_per_item
    if design.complete:
        n_workers = R
        item = np.repeat(np.arange(I * M), R)
        worker = np.tile(np.arange(R), I * M)
    else:
        items = rng.permutation(I * M)
        n_hits = int(np.ceil(len(items) / design.items_per_hit))
        hits = [items[h::n_hits] for h in range(n_hits)]
        n_workers = max(R, int(round(n_hits * R / design.hits_per_worker)))
        rows_item, rows_worker = [], []
        for hit in hits:
            workers = rng.choice(n_workers, size=R, replace=False)
            rows_item.append(np.repeat(hit, R))
            rows_worker.append(np.tile(workers, len(hit)))
        item = np.concatenate(rows_item)
        worker = np.concatenate(rows_worker)
    image, method = item // M, item % M
    sd = {k: np.sqrt(max(v, 0.0)) for k, v in components.items()}
    u_image = rng.normal(0, sd["image"], I)
    u_cell = rng.normal(0, sd["image:method"], I * M)
    u_worker = rng.normal(0, sd["worker"], n_workers)
    mean = ((design.low + design.high) / 2 + np.asarray(gaps, dtype=float)[method]
            + u_image[image] + u_cell[item] + u_worker[worker])
    noise = rng.normal(0, sd["residual"], len(item))
    layout = pd.DataFrame({"image": image, "method": method, "worker": worker})
    return layout, mean, noise, n_workers


def simulate(design: Design, components: dict, gaps, rng: np.random.Generator,
             bad_fraction: float = 0.0) -> pd.DataFrame:
    """One study's ratings. `gaps`: true offset of each method (length n_methods). A share
    `bad_fraction` of the workers answer uniformly at random (column `bad`)."""
    layout, mean, noise, n_workers = draw(design, components, gaps, rng)
    worker = layout["worker"].to_numpy()
    score = np.clip(np.rint(mean + noise), design.low, design.high)
    bad = np.zeros(n_workers, dtype=bool)
    bad[rng.permutation(n_workers)[:int(round(bad_fraction * n_workers))]] = True
    score = np.where(bad[worker], rng.integers(design.low, design.high + 1, len(worker)), score)
    return layout.assign(score=score.astype(float), bad=bad[worker])


def verdicts(data: pd.DataFrame, correction: str = "holm", model: str = "crossed") -> np.ndarray:
    """Adjusted p of every pair (upper triangle, row-major) from the crossed model, or from the
    model without the image:method term (`model="no-interaction"`, to show what it does)."""
    m = data["method"].to_numpy()
    w = data["worker"].to_numpy()
    i = data["image"].to_numpy()
    methods = sorted(set(m))
    M = len(methods)
    codes = [w, i]
    sizes = [int(w.max()) + 1, int(i.max()) + 1]
    names: tuple = ("worker", "image")
    if model == "crossed":
        cell = i * M + m
        c, cells = pd.factorize(cell, sort=True)
        codes.append(c.astype(np.int64))
        sizes.append(len(cells))
        names = _mm.RANDOM
    f = _mm.fit(data["score"].to_numpy(dtype=float), m, methods, codes, sizes, names=names)
    iu, ju = np.triu_indices(M, 1)
    L = np.zeros((len(iu), M))
    L[np.arange(len(iu)), iu] = 1.0
    L[np.arange(len(iu)), ju] = -1.0
    var, df = _mm.contrast_df(f, L)
    from scipy import stats
    t = (L @ f.beta) / np.sqrt(var)
    p = 2 * stats.t.sf(np.abs(t), np.where(np.isfinite(df), df, 1e12))
    return adjust(p, correction)


class _frozen_heap:
    """statsmodels' Holm adjustment runs a full garbage collection on every call, which costs
    a tenth of a second in a process that has imported pandas; with the objects alive at the
    start moved out of the collector's sight, a study's collection is cheap."""

    def __enter__(self):
        gc.freeze()

    def __exit__(self, *exc):
        gc.unfreeze()


def family_wise_error(design: Design, components: dict, n_studies: int, seed: int = 0,
                      alpha: float = 0.05, correction: str = "holm", model: str = "crossed") -> dict:
    """Share of studies with no method effect in which any pair came out significant."""
    rng = np.random.default_rng(seed)
    hits = 0
    with _frozen_heap():
        for _ in range(n_studies):
            data = simulate(design, components, np.zeros(design.n_methods), rng)
            hits += bool((verdicts(data, correction, model) < alpha).any())
    rate = hits / n_studies
    se = np.sqrt(alpha * (1 - alpha) / n_studies)
    return {"studies": n_studies, "fwer": rate, "mc_se": float(se),
            "limit": alpha + 2 * se, "ok": rate <= alpha + 2 * se}


def power(design: Design, components: dict, gap: float, n_studies: int, seed: int = 0,
          alpha: float = 0.05, correction: str = "holm") -> dict:
    """One method better by `gap`, the others equal: the share of its pairs that are separated
    (power), and the share of studies where any pair of equal methods was (FWER under this
    partial null)."""
    rng = np.random.default_rng(seed)
    M = design.n_methods
    gaps = np.zeros(M)
    gaps[0] = gap
    iu, ju = np.triu_indices(M, 1)
    with_gap = iu == 0
    found = wrong = 0
    with _frozen_heap():
        for _ in range(n_studies):
            sig = verdicts(simulate(design, components, gaps, rng), correction) < alpha
            found += int(sig[with_gap].sum())
            wrong += bool(sig[~with_gap].any())
    return {"gap": gap, "studies": n_studies, "power": found / (n_studies * with_gap.sum()),
            "fwer_equal_pairs": wrong / n_studies}


def screening_accuracy(design: Design, components: dict, bad_fraction: float, n_studies: int,
                       seed: int = 0, **bt500) -> dict:
    """BT.500 flags against the truth on simulated crowds with honest and random workers:
    precision (flagged workers who were bad), recall (bad workers flagged), and the share of
    honest workers flagged, pooled over `n_studies`. `bt500`: options of bt500_screening."""
    from analysis.subjective import bt500_screening
    rng = np.random.default_rng(seed)
    flagged_bad = flagged = bad_total = good_total = 0
    for _ in range(n_studies):
        data = simulate(design, components, np.zeros(design.n_methods), rng, bad_fraction)
        data["worker"] = data["worker"].astype(str)
        _, rejected = bt500_screening(data, **bt500)
        truth = data.groupby("worker")["bad"].first()
        hit = truth.reindex(list(rejected)).to_numpy(dtype=bool)
        flagged_bad += int(hit.sum())
        flagged += len(rejected)
        bad_total += int(truth.sum())
        good_total += int((~truth).sum())
    return {"studies": n_studies, "precision": flagged_bad / flagged if flagged else None,
            "recall": flagged_bad / bad_total if bad_total else None,
            "honest_flagged": (flagged - flagged_bad) / good_total if good_total else None,
            "flagged": flagged}
