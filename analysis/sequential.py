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
from analysis.calibration import Design, _frozen_heap, draw, simulate


def _rank_in_item(full: pd.DataFrame) -> np.ndarray:
    return full.groupby(["image", "method"]).cumcount().to_numpy()


def run_adaptive(full: pd.DataFrame, ratings_per_item: int, initial: int, alpha: float = 0.05,
                 target_se: float = 0.0, max_rounds: int = 20) -> dict:
    """Rounds of adaptive allocation over one simulated study's ratings; `seen` marks the
    ratings it collected."""
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
            return {"look": lk, "ratings": len(seen), "rounds": rounds, "seen": rank < limit,
                    "verdict": _al.verdict(lk, alpha), "stop": lk.stop or "round limit"}
        wanted = lk.wanted


def compare(design: Design, components: dict, gaps, n_studies: int, initial: int = 3,
            seed: int = 0, alpha: float = 0.05, ceiling: int = 0) -> dict:
    """Per study: uniform's verdict at the full budget, adaptive's verdict and its share of the
    ratings. `needed` is that share where adaptive reached uniform's verdict, else inf. With
    `ceiling` > 0, also the most any analysis of the ratings adaptive collected could reach
    uniform's verdict, knowing the study's every effect: the share of the modal full-budget
    verdict over `ceiling` new draws of the noise of the ratings adaptive did not collect
    (see `stability`)."""
    rng = np.random.default_rng(seed)
    sd = float(np.sqrt(max(components["residual"], 0.0)))
    rows = []
    with _frozen_heap():
        for k in range(n_studies):
            layout, mean, noise = _study(design, components, gaps, rng)
            full = ratings(design, layout, mean, noise)
            uni = _al.verdict(_al.look(full, ratings_per_item=design.ratings_per_item,
                                       alpha=alpha), alpha)
            ad = run_adaptive(full, design.ratings_per_item, initial, alpha)
            same = ad["verdict"] == uni
            share = ad["ratings"] / len(full)
            row = {"share": share, "same": same, "needed": share if same else np.inf,
                   "rounds": ad["rounds"], "stop": ad["stop"],
                   "images_needed": ad["look"].images_needed}
            if ceiling:
                own = np.random.default_rng([seed, k, 1])
                finals = [uni] + [final_verdict(ratings(
                    design, layout, mean, np.where(ad["seen"], noise,
                                                   own.normal(0, sd, len(noise)))), alpha)
                    for _ in range(ceiling - 1)]
                row["ceiling"] = _modal_share(finals)
            rows.append(row)
    needed = np.array([r["needed"] for r in rows])
    out = {"studies": n_studies, "median_needed": float(np.median(needed)),
           "median_share": float(np.median([r["share"] for r in rows])),
           "same": float(np.mean([r["same"] for r in rows])),
           "too_small": float(np.mean([r["images_needed"] is not None for r in rows])),
           "images_needed": [r["images_needed"] for r in rows if r["images_needed"]],
           "rows": rows}
    if ceiling:
        out["ceiling"] = float(np.mean([r["ceiling"] for r in rows]))
    return out


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


def _study(design: Design, components: dict, gaps, rng: np.random.Generator):
    """One simulated study split into what is fixed (the layout, the image, image:method and
    worker effects: the study) and the rating noise, drawing from `rng` exactly as
    analysis.calibration.simulate does (so `ratings(layout, mean, noise)` is its study).
    Returns (layout frame without scores, the latent mean of each rating, the noise drawn)."""
    layout, mean, noise, n_workers = draw(design, components, gaps, rng)
    rng.permutation(n_workers)          # simulate's draws for bad workers (none here)
    rng.integers(design.low, design.high + 1, len(layout))
    return layout, mean, noise


def ratings(design: Design, layout: pd.DataFrame, mean: np.ndarray,
            noise: np.ndarray) -> pd.DataFrame:
    out = layout.copy()
    out["score"] = np.clip(np.rint(mean + noise), design.low, design.high).astype(float)
    return out


def final_verdict(data: pd.DataFrame, alpha: float = 0.05, correction: str = "holm"):
    """The final analysis's verdict (as analysis.allocation.verdict of a look), without the
    look's draws: the pairs separated at alpha, each as (better, worse)."""
    from analysis import mixed_model as _mm

    pw = _mm.pairwise(_mm.fit_frame(data), _mm.shared_images(data), correction)
    est, padj = pw["estimate"], pw["p_adjusted"]
    return frozenset((a, b) for a in est.index for b in est.columns
                     if a != b and padj.at[a, b] < alpha and est.at[a, b] > 0)


def stability(design: Design, components: dict, gaps, n_studies: int, ratings_seen: int,
              redraws: int = 20, seed: int = 0, alpha: float = 0.05) -> dict:
    """How much uniform allocation's full-budget verdict rests on rating noise, per study (the
    same studies as `compare` with the same seed):

    - `early`: uniform stopped at `ratings_seen` per item (the first workers of each HIT, a
      random subset of its workers) reaches its own full-budget verdict;
    - `modal`: the share of the modal full-budget verdict when the study (images, image:method
      effects, worker biases, who rates what) is kept and all rating noise is drawn anew: the
      most any rule whose ratings were independent of uniform's could match it;
    - `bound`: given the study and the ratings seen, the share of the modal full-budget
      verdict over new draws of the noise of the ratings not seen. No rule that sees only
      those ratings can reach uniform's full-budget verdict more often, even knowing the
      study's every effect: the ceiling for stopping there."""
    rng = np.random.default_rng(seed)
    sd = float(np.sqrt(max(components["residual"], 0.0)))
    rows = []
    with _frozen_heap():
        for k in range(n_studies):
            layout, mean, noise = _study(design, components, gaps, rng)
            own = np.random.default_rng([seed, k])
            full = ratings(design, layout, mean, noise)
            verdict = final_verdict(full, alpha)
            seen = _rank_in_item(full) < ratings_seen
            early = final_verdict(full[seen], alpha) == verdict
            anew, rest = [verdict], [verdict]
            for _ in range(redraws - 1):
                fresh = own.normal(0, sd, len(noise))
                anew.append(final_verdict(ratings(design, layout, mean, fresh), alpha))
                rest.append(final_verdict(ratings(design, layout, mean,
                                                  np.where(seen, noise, fresh)), alpha))
            rows.append({"early": early, "modal": _modal_share(anew),
                         "bound": _modal_share(rest)})
    return {"studies": n_studies, "early": float(np.mean([r["early"] for r in rows])),
            "modal": float(np.mean([r["modal"] for r in rows])),
            "bound": float(np.mean([r["bound"] for r in rows])), "rows": rows}


def _modal_share(verdicts: list) -> float:
    from collections import Counter
    return Counter(verdicts).most_common(1)[0][1] / len(verdicts)


def predicted_change(design: Design, components: dict, gaps, n_studies: int, seen: tuple,
                     seed: int = 0, alpha: float = 0.05) -> dict:
    """Whether the look's chance that the full budget changes some verdict is calibrated: for
    uniform allocation stopped at each number of ratings per item in `seen`, the look's mean
    chance against the share of studies whose full-budget verdict differs (same studies as
    `compare` with the same seed)."""
    rng = np.random.default_rng(seed)
    out = {n: {"predicted": [], "changed": []} for n in seen}
    with _frozen_heap():
        for _ in range(n_studies):
            full = simulate(design, components, gaps, rng)
            verdict = final_verdict(full, alpha)
            rank = _rank_in_item(full)
            for n in seen:
                lk = _al.look(full[rank < n], ratings_per_item=design.ratings_per_item,
                              alpha=alpha)
                out[n]["predicted"].append(lk.p_change)
                out[n]["changed"].append(_al.verdict(lk, alpha) != verdict)
    return {n: {k: float(np.mean(v)) for k, v in r.items()} for n, r in out.items()}
