"""Adaptive allocation on simulated studies: what it saves, and that stopping early does not
inflate false positives.

A study is simulated once at the full budget (analysis.calibration.simulate: the AIM 2019 shape,
sparse HITs, R workers per HIT). Uniform allocation analyses all of it. Adaptive allocation sees,
round by round, the first n ratings of each item (the first n workers of its HIT, as extending a
HIT adds workers), starting at `initial` and raised where analysis.allocation.look says, until
the look says stop; its verdict is the final analysis of the ratings it saw."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import allocation as _al
from analysis.calibration import Design, _frozen_heap, simulate


def _rank_in_item(full: pd.DataFrame) -> np.ndarray:
    return full.groupby(["image", "method"]).cumcount().to_numpy()


def run_adaptive(full: pd.DataFrame, ratings_per_item: int, initial: int, alpha: float = 0.05,
                 target_se: float = 0.0, max_rounds: int = 20) -> dict:
    """Rounds of adaptive allocation over one simulated study's ratings."""
    rank = _rank_in_item(full)
    item = list(zip(full["image"], full["method"]))
    wanted = {it: initial for it in set(item)}
    rounds = 0
    while True:
        rounds += 1
        limit = np.array([wanted[it] for it in item])
        seen = full[rank < limit]
        lk = _al.look(seen, ratings_per_item=ratings_per_item, alpha=alpha, target_se=target_se)
        if lk.stop or rounds >= max_rounds:
            return {"look": lk, "ratings": len(seen), "rounds": rounds,
                    "verdict": _al.verdict(lk, alpha), "stop": lk.stop or "round limit"}
        wanted = lk.wanted


def compare(design: Design, components: dict, gaps, n_studies: int, initial: int = 3,
            seed: int = 0, alpha: float = 0.05) -> dict:
    """Per study: uniform's verdict at the full budget, adaptive's verdict and its share of the
    ratings. `needed` is that share where adaptive reached uniform's verdict, else inf."""
    rng = np.random.default_rng(seed)
    rows = []
    with _frozen_heap():
        for _ in range(n_studies):
            full = simulate(design, components, gaps, rng)
            uni = _al.look(full, ratings_per_item=design.ratings_per_item, alpha=alpha)
            ad = run_adaptive(full, design.ratings_per_item, initial, alpha)
            same = ad["verdict"] == _al.verdict(uni, alpha)
            share = ad["ratings"] / len(full)
            rows.append({"share": share, "same": same, "needed": share if same else np.inf,
                         "rounds": ad["rounds"], "stop": ad["stop"],
                         "images_needed": ad["look"].images_needed})
    needed = np.array([r["needed"] for r in rows])
    return {"studies": n_studies, "median_needed": float(np.median(needed)),
            "median_share": float(np.median([r["share"] for r in rows])),
            "same": float(np.mean([r["same"] for r in rows])),
            "too_small": float(np.mean([r["images_needed"] is not None for r in rows])),
            "images_needed": [r["images_needed"] for r in rows if r["images_needed"]],
            "rows": rows}


def family_wise_error(design: Design, components: dict, n_studies: int, initial: int = 3,
                      seed: int = 0, alpha: float = 0.05) -> dict:
    """Share of studies with no method effect where adaptive allocation's final analysis
    separated any pair."""
    rng = np.random.default_rng(seed)
    hits = 0
    shares = []
    with _frozen_heap():
        for _ in range(n_studies):
            full = simulate(design, components, np.zeros(design.n_methods), rng)
            ad = run_adaptive(full, design.ratings_per_item, initial, alpha)
            hits += bool(ad["verdict"])
            shares.append(ad["ratings"] / len(full))
    rate = hits / n_studies
    se = float(np.sqrt(alpha * (1 - alpha) / n_studies))
    return {"studies": n_studies, "fwer": rate, "mc_se": se, "limit": alpha + 2 * se,
            "ok": rate <= alpha + 2 * se, "median_share": float(np.median(shares))}


def uniform_early(design: Design, components: dict, gaps, n_studies: int, ratings: int,
                  seed: int = 0, alpha: float = 0.05) -> float:
    """Share of studies where uniform allocation stopped at `ratings` per item reaches the
    verdict it reaches at the full budget: how much the full-budget verdict depends on the
    last ratings, whoever allocates them."""
    rng = np.random.default_rng(seed)
    same = 0
    with _frozen_heap():
        for _ in range(n_studies):
            full = simulate(design, components, gaps, rng)
            early = full[_rank_in_item(full) < ratings]
            same += (_al.verdict(_al.look(early, ratings_per_item=design.ratings_per_item,
                                          alpha=alpha), alpha)
                     == _al.verdict(_al.look(full, ratings_per_item=design.ratings_per_item,
                                             alpha=alpha), alpha))
    return same / n_studies
