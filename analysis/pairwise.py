"""Forced-choice pairwise comparison: which pairs to show, and what the preferences say.

Input: one row per judgement, columns `worker`, `image`, `method_a`, `method_b` (the two
methods as shown, A first) and `preferred` ("A", "B", or "none" where the page offered no
preference). "none" judgements are left out by default (`ties="half"` counts each as half a
win for both).

The preferences are put on one scale with Bradley-Terry (P(A over B) = logistic(s_A - s_B)) or
Thurstone Case V (P = Phi(s_A - s_B), unit: the SD of a perceived difference), fitted by
Newton's method on the win counts; a weak Gaussian prior (choix's `alpha`) keeps the score of
a method that wins every comparison finite.

Uncertainty treats both images and workers as samples, as the ratings' crossed model does: a
method's advantage changes from image to image (image:method variation), and no number of
judgements on 10 images averages that away. A difference's variance is the model's (as if every
judgement were independent) for the judgement noise, plus one image:method (and worker:method)
variance pooled over the pairs, both measured by cluster bootstraps of images, workers and a
worker's judgements of one image (`two_way_variance` says why this shape). Differences are
tested with t = d / SE on Satterthwaite degrees of freedom; Holm over all pairs (the letters)
and, for the neighbours, over the adjacent pairs. The intervals use the same SE and df, so they
tell the tests' story.
docs/pairwise.md shows the family-wise error and power of this by simulation
(study/simulate/pairwise.py simulates the judges)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from analysis.letters import letters as _letters
from analysis.significance import adjust
from analysis.table import RatingsError

COLUMNS = ("worker", "image", "method_a", "method_b", "preferred")
MODELS = {"bradley-terry": "Bradley-Terry", "thurstone": "Thurstone Case V"}
# choix's `alpha`: the penalty alpha * sum(s^2), a Gaussian prior on the scores. Negligible
# against a few judgements per pair; it only matters for a method that wins (or loses) all.
PRIOR = 0.01
# Half a win added to each side of every compared pair (Haldane-Anscombe), in the fit and in
# every bootstrap fit. A pair one method won every time has no finite maximum-likelihood
# difference: the weak prior alone leaves it near +-8, where the model's information vanishes
# and the Wald test loses all power (120 wins to 0 over 10 images tested p = 0.09, the
# Hauck-Donner effect). Half a win keeps such a difference near log(2n + 1) with a sensible SE,
# and is negligible beside a few judgements per pair otherwise.
PSEUDO = 0.5
NEWTON_STEPS = 60


# ---------------------------------------------------------------- the judgements table

@dataclass(frozen=True)
class Coded:
    """Judgements as integer codes: each one a win of `winner` over `loser` with a weight."""
    methods: list
    images: list
    workers: list
    image: np.ndarray
    worker: np.ndarray
    winner: np.ndarray
    loser: np.ndarray
    weight: np.ndarray
    shown_first: np.ndarray   # 1 where the winner was shown as A
    n_none: int
    n_none_dropped: int


def encode(df: pd.DataFrame, ties: str = "drop") -> Coded:
    """Check and code a judgements table. `ties`: "drop" leaves out "none" judgements,
    "half" counts each as half a win for both methods."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RatingsError(f"the judgements table lacks column(s) {missing}", where="columns",
                           hint=f"give one row per judgement with columns {list(COLUMNS)}")
    if ties not in ("drop", "half"):
        raise ValueError(f"ties must be 'drop' or 'half', not {ties!r}")
    d = df.loc[:, list(COLUMNS)].copy()
    for c in ("worker", "image", "method_a", "method_b"):
        if d[c].isna().any():
            raise RatingsError(f"{int(d[c].isna().sum())} judgement(s) have no {c}", where=c)
        d[c] = d[c].astype(str)
    pref = d["preferred"].fillna("none").astype(str).str.strip().str.lower()
    pref = pref.replace({"": "none", "tie": "none", "no preference": "none"})
    bad = ~pref.isin(["a", "b", "none"])
    if bad.any():
        raise RatingsError(f"{int(bad.sum())} judgement(s) have preferred = "
                           f"{sorted(set(d['preferred'][bad].astype(str)))[:3]}",
                           where="preferred", hint='use "A", "B" or "none"')
    same = d["method_a"] == d["method_b"]
    if same.any():
        raise RatingsError(f"{int(same.sum())} judgement(s) compare a method with itself",
                           where="method_a, method_b")
    mcodes, methods = pd.factorize(pd.concat([d["method_a"], d["method_b"]]), sort=True)
    a, b = mcodes[:len(d)].astype(np.int64), mcodes[len(d):].astype(np.int64)
    img, images = pd.factorize(d["image"], sort=True)
    wrk, workers = pd.factorize(d["worker"], sort=True)
    methods, images, workers = list(methods), list(images), list(workers)
    img, wrk = img.astype(np.int64), wrk.astype(np.int64)
    p = pref.to_numpy()
    none = p == "none"
    won_a = p == "a"
    winner = np.where(won_a, a, b)
    loser = np.where(won_a, b, a)
    weight = np.ones(len(d))
    first = won_a.astype(np.int8)
    if ties == "half" and none.any():
        # Each "none" becomes half a win for A and half a win for B.
        n = np.flatnonzero(none)
        winner = np.concatenate([winner[~none], a[n], b[n]])
        loser = np.concatenate([loser[~none], b[n], a[n]])
        weight = np.concatenate([weight[~none], np.full(2 * len(n), 0.5)])
        img = np.concatenate([img[~none], img[n], img[n]])
        wrk = np.concatenate([wrk[~none], wrk[n], wrk[n]])
        first = np.concatenate([first[~none], np.ones(len(n), np.int8), np.zeros(len(n), np.int8)])
        dropped = 0
    else:
        keep = ~none
        winner, loser, weight, img, wrk, first = (x[keep] for x in (winner, loser, weight, img,
                                                                     wrk, first))
        dropped = int(none.sum())
    return Coded(methods, images, workers, img, wrk, winner.astype(np.int64),
                 loser.astype(np.int64), weight, first, int(none.sum()), dropped)


# ---------------------------------------------------------------- scaling

def _link(model: str):
    """(F, f): the probability of a win given the score difference, and its derivative."""
    if model == "bradley-terry":
        def F(x):
            return 1.0 / (1.0 + np.exp(-x))
        return F, lambda x: F(x) * (1.0 - F(x))
    if model == "thurstone":
        return stats.norm.cdf, stats.norm.pdf
    raise ValueError(f"unknown model {model!r}; use one of {list(MODELS)}")


def smoothed(wins: np.ndarray, pseudo: float) -> np.ndarray:
    """`wins` with `pseudo` wins added to each side of every pair compared at least once."""
    W = np.asarray(wins, dtype=float)
    if not pseudo:
        return W
    return W + pseudo * ((W + np.swapaxes(W, -1, -2)) > 0)


def fit_wins(wins: np.ndarray, model: str = "bradley-terry", prior: float = PRIOR,
             pseudo: float = 0.0) -> np.ndarray:
    """Scores (mean 0) from win counts. `wins[..., i, j]`: (weighted) wins of i over j; leading
    axes are fitted independently, all at once. Fisher scoring (Newton's method for
    Bradley-Terry) on log L - prior * sum(s^2) after `smoothed(wins, pseudo)`; the sum
    constraint is added to the curvature so that the system stays solvable when prior = 0."""
    W = smoothed(wins, pseudo)
    single = W.ndim == 2
    if single:
        W = W[None]
    B, M, _ = W.shape
    F, f = _link(model)
    n = W + np.swapaxes(W, 1, 2)
    s = np.zeros((B, M))
    ones = np.ones((M, M)) / M
    for _ in range(NEWTON_STEPS):
        d = s[:, :, None] - s[:, None, :]
        P = np.clip(F(d), 1e-12, 1 - 1e-12)
        dens = f(d)
        resid = (W - n * P) * dens / (P * (1 - P))
        g = resid.sum(axis=2) - 2 * prior * s
        info = n * dens ** 2 / (P * (1 - P))
        H = info.copy()
        idx = np.arange(M)
        H[:, idx, idx] = -info.sum(axis=2) - 2 * prior
        H = H - ones                      # the curvature of -(sum s)^2 / (2M): pins the mean
        step = np.linalg.solve(H, -g[..., None])[..., 0]
        # A damped step: far from the optimum (one method winning everything) a full scoring
        # step can overshoot; scores beyond +-10 are certainties either way.
        big = np.abs(step).max(axis=1, keepdims=True)
        step = step * np.minimum(1.0, 2.0 / np.maximum(big, 1e-300))
        s = s + step
        s = s - s.mean(axis=1, keepdims=True)
        if big.max() < 1e-9:
            break
    return s[0] if single else s


def win_matrix(coded: Coded, codes: np.ndarray | None = None) -> np.ndarray:
    """wins[i, j]: weighted wins of method i over method j; with cluster `codes` (one per
    judgement, 0..n-1) one such matrix per cluster, shape (n, M, M)."""
    M = len(coded.methods)
    cell = coded.winner * M + coded.loser
    if codes is None:
        return np.bincount(cell, weights=coded.weight, minlength=M * M).reshape(M, M)
    n = int(codes.max()) + 1
    return np.bincount(codes * M * M + cell, weights=coded.weight,
                       minlength=n * M * M).reshape(n, M, M)


def _cluster_variance(coded: Coded, codes: np.ndarray, n_boot: int, model: str, prior: float,
                      pseudo: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap variances of the scores and of their differences when the clusters `codes`
    (images, workers, or image x worker cells) are resampled with replacement, each scaled by
    n / (n - 1): a cluster bootstrap's variance of a mean falls short by that factor."""
    n = int(codes.max()) + 1
    if n < 2:
        M = len(coded.methods)
        return np.zeros(M), np.zeros((M, M))
    draws = rng.integers(0, n, size=(n_boot, n)) + np.arange(n_boot)[:, None] * n
    counts = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n)
    per_cluster = win_matrix(coded, codes)
    M = per_cluster.shape[1]
    wins = (counts @ per_cluster.reshape(n, M * M)).reshape(n_boot, M, M)
    boot = fit_wins(wins, model, prior, pseudo)
    diff = boot[:, :, None] - boot[:, None, :]
    k = n / (n - 1)
    return boot.var(axis=0, ddof=1) * k, diff.var(axis=0, ddof=1) * k


def model_covariance(wins: np.ndarray, score: np.ndarray, model: str) -> np.ndarray:
    """Covariance of the (mean-0) scores if every judgement were independent: the
    pseudo-inverse of the Fisher information at the fitted scores."""
    F, f = _link(model)
    d = score[:, None] - score[None, :]
    P = np.clip(F(d), 1e-12, 1 - 1e-12)
    info = (wins + wins.T) * f(d) ** 2 / (P * (1 - P))
    L = np.diag(info.sum(axis=1)) - info
    return np.linalg.pinv(L, hermitian=True)


def two_way_variance(coded: Coded, wins: np.ndarray, score: np.ndarray, linked: np.ndarray,
                     n_boot: int, model: str, prior: float, rng: np.random.Generator,
                     pseudo: float = PSEUDO) -> dict:
    """Covariance of the scores with images and workers both random, and the degrees of
    freedom of each difference.

    Two parts. The judgement noise: the model's covariance (every judgement independent,
    `model_covariance`) times r >= 1, r measured by resampling cells (a worker's judgements of
    one image) and pooled over the pairs. The image:method variation (and a worker:method
    one): a method's advantage changes from image to image, adding the same variance 2 tau to
    every difference whatever the design (in a chain of neighbours the image terms of the
    steps telescope: s_0 - s_8 carries delta_0 - delta_8, as s_0 - s_1 does), so it enters as
    tau (identity - 1/M); tau is what resampling images adds to a difference beyond the noise,
    averaged over the pairs, as the ratings' crossed model pools one image:method variance
    over all pairs. Per pair, 10 images would give each SE 9 df, and Holm's far tail on such
    SEs is anti-conservative; a variance proportional to the model's alone is wrong for a
    chain design, where the noise grows along the chain and the image part does not (both
    measured, docs/pairwise.md).

    Resampling images catches the image part and the noise, resampling workers the worker part
    and the noise again; the noise is subtracted from each, so it is counted once (two-way
    clustering, Cameron, Gelbach and Miller 2011; the pigeonhole bootstrap, images and workers
    resampled at once, counts it about three times, Owen 2007). Degrees of freedom by
    Satterthwaite: (images - 1)(methods - 1) for the image part, as the image:method term of a
    two-way layout, (workers - 1)(methods - 1) for the worker part, many for the noise.
    `linked[a, b]`: the pairs joined by a chain of comparisons, the only ones pooled."""
    M = len(coded.methods)
    cov = model_covariance(smoothed(wins, pseudo), score, model)
    model_var = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    iu, ju = np.triu_indices(M, 1)
    keep = linked[iu, ju]
    iu, ju = iu[keep], ju[keep]
    cell = np.unique(coded.image * len(coded.workers) + coded.worker, return_inverse=True)[1]
    v_image, v_worker, v_cell = (_cluster_variance(coded, codes, n_boot, model, prior, pseudo,
                                                   rng)[1]
                                 for codes in (coded.image, coded.worker, cell))
    r = max(float(v_cell[iu, ju].sum() / model_var[iu, ju].sum()), 1.0)
    noise = r * model_var
    tau_image = max(float(np.mean(v_image[iu, ju] - noise[iu, ju])) / 2, 0.0)
    tau_worker = max(float(np.mean(v_worker[iu, ju] - noise[iu, ju])) / 2, 0.0)
    # Contrasts per image: methods less one per group of linked methods.
    free = max(M - len({tuple(row) for row in linked}), 1)
    I, W, C = len(coded.images), len(coded.workers), int(cell.max()) + 1
    centre = np.eye(M) - 1.0 / M
    covariance = r * cov + (tau_image + tau_worker) * centre
    pair_var = noise + 2 * (tau_image + tau_worker)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (noise ** 2 / max(C - 1, 1) + (2 * tau_image) ** 2 / max((I - 1) * free, 1)
               + (2 * tau_worker) ** 2 / max((W - 1) * free, 1))
        df = np.where(den > 0, pair_var ** 2 / den, np.inf)
    return {"covariance": covariance, "df": np.maximum(df, 1.0), "noise_ratio": r,
            "image_method": tau_image, "worker_method": tau_worker}


# ---------------------------------------------------------------- the analysis

@dataclass
class Preferences:
    """What `analyse` found. `methods`: one row per method, best first (score, se, CI, rank,
    group, wins, judgements). `pairwise`: DataFrames in that order (estimate = row minus
    column, se, p, p_adjusted over all pairs, compared = judgements of the pair, share = share
    of them won by the row). `adjacent`: one record per neighbouring pair, with its p adjusted
    over the adjacent pairs only."""
    model: str
    methods: pd.DataFrame
    pairwise: dict
    adjacent: list
    counts: dict
    settings: dict
    dispersion: dict          # noise_ratio (over the model's), image_method, worker_method
    notes: list = field(default_factory=list)


def analyse(df: pd.DataFrame, model: str = "bradley-terry", *, bootstrap: int = 1000,
            alpha: float = 0.05, correction: str = "holm", ties: str = "drop",
            prior: float = PRIOR, pseudo: float = PSEUDO, seed: int = 0) -> Preferences:
    """Scale the judgements in `df`, with bootstrap intervals over images and workers,
    significance of every pair and of the neighbours, and letters."""
    coded = encode(df, ties)
    if len(coded.winner) == 0:
        raise RatingsError("no judgement with a preference is left to analyse",
                           where="preferred", hint='at least one row needs "A" or "B"')
    _link(model)
    return _analyse(coded, model, bootstrap, alpha, correction, prior, seed, pseudo)


def _analyse(coded: Coded, model: str, bootstrap: int, alpha: float, correction: str,
             prior: float, seed: int, pseudo: float = PSEUDO) -> Preferences:
    M, I = len(coded.methods), len(coded.images)
    notes: list[str] = []
    wins = win_matrix(coded)
    score = fit_wins(wins, model, prior, pseudo)
    order = [int(k) for k in np.lexsort((np.arange(M), -score))]
    se_pair = np.full((M, M), np.nan)
    se_score = np.full(M, np.nan)
    df_pair = np.full((M, M), np.nan)
    df_score = np.full(M, np.nan)
    compared = wins + wins.T
    _, component = connected_components(sparse.csr_matrix(compared > 0), directed=False)
    linked = component[:, None] == component[None, :]
    spread: dict = {}
    if I >= 2 and bootstrap > 1 and linked[np.triu_indices(M, 1)].any():
        spread = two_way_variance(coded, wins, score, linked, bootstrap, model, prior,
                                  np.random.default_rng(seed), pseudo)
        cov = spread["covariance"]
        se_score = np.sqrt(np.maximum(np.diag(cov), 0.0))
        se_pair = np.sqrt(np.maximum(np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov,
                                     0.0))
        df_pair = spread["df"]
        # A score's df: that of its differences from the others (they share its terms).
        df_score = np.array([np.median(np.delete(df_pair[k], k)) if M > 1 else np.inf
                             for k in range(M)])
    est = score[:, None] - score[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se_pair
        p = np.where(se_pair > 0, 2 * stats.t.sf(np.abs(t), np.nan_to_num(df_pair, nan=1.0)),
                     np.where(est == 0, 1.0, 0.0))
    testable = linked & np.isfinite(se_pair) & ~np.eye(M, dtype=bool)
    p = np.where(testable, p, np.nan)
    iu, ju = np.triu_indices(M, 1)
    padj = np.full((M, M), np.nan)
    padj[iu, ju] = padj[ju, iu] = adjust(p[iu, ju], correction)

    sig = np.nan_to_num(padj, nan=0.0) < alpha
    sig &= testable
    untested = ~linked
    # As in the ratings' verdicts: methods that were never linked by comparisons are not
    # comparable, and a shared letter would claim they are alike.
    letters = _letters([coded.methods[k] for k in order], (sig | untested)[np.ix_(order, order)])

    tcrit = stats.t.ppf(0.975, np.nan_to_num(df_score, nan=1.0))
    names = [coded.methods[k] for k in order]
    idx = pd.Index(names, name="method")
    n_judged = compared.sum(axis=1)
    methods = pd.DataFrame({
        "method": names, "score": score[order], "se": se_score[order],
        "ci95_low": (score - tcrit * se_score)[order],
        "ci95_high": (score + tcrit * se_score)[order], "df": df_score[order],
        "rank": np.arange(1, M + 1), "group": [letters[m] for m in names],
        "wins": wins.sum(axis=1)[order], "judgements": n_judged[order]})
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(compared > 0, wins / compared, np.nan)

    def frame(x):
        return pd.DataFrame(np.asarray(x)[np.ix_(order, order)], index=idx, columns=idx)

    pairwise = {"estimate": frame(est), "se": frame(se_pair), "p": frame(p),
                "p_adjusted": frame(padj), "compared": frame(compared), "share": frame(share),
                "df": frame(df_pair), "correction": correction}
    adjacent = _adjacent(order, coded.methods, est, se_pair, p, compared, correction, alpha)

    name = "Holm" if correction == "holm" else "Benjamini-Hochberg"
    if spread:
        notes.append(f"scores: {MODELS[model]} fitted to {int(round(coded.weight.sum()))} "
                     f"judgements; intervals and tests treat images and workers as random "
                     f"({bootstrap} bootstrap resamples each of images, workers and a worker's "
                     f"judgements of one image), t tests on Satterthwaite df, "
                     f"{name} over the {int(np.isfinite(p[iu, ju]).sum())} pairs tested")
    else:
        notes.append(f"scores: {MODELS[model]} fitted to {int(round(coded.weight.sum()))} "
                     "judgements; no intervals or tests (" + ("bootstrap = 0" if bootstrap <= 1
                                                              else "see below") + ")")
    if coded.n_none:
        notes.append(f"{coded.n_none} 'no preference' judgement(s) "
                     + ("left out" if coded.n_none_dropped else "counted as half a win for each "
                        "method"))
    notes.extend(_reach_notes(I, len(coded.workers), int(untested[iu, ju].sum()), len(iu),
                              alpha))
    counts = {"judgements": int(round(coded.weight.sum())),
              "images": I, "workers": len(coded.workers), "methods": M,
              "no_preference": coded.n_none,
              "shown_first_won": float(np.average(coded.shown_first, weights=coded.weight))}
    settings = {"model": model, "bootstrap": bootstrap, "alpha": alpha,
                "correction": correction, "prior": prior, "pseudo": pseudo, "seed": seed}
    dispersion = ({k: spread[k] for k in ("noise_ratio", "image_method", "worker_method")}
                  if spread else {})
    return Preferences(model, methods, pairwise, adjacent, counts, settings, dispersion, notes)


def _adjacent(order, methods, est, se, p, compared, correction, alpha) -> list[dict]:
    pairs = list(zip(order[:-1], order[1:]))
    raw = np.array([p[a, b] for a, b in pairs]) if pairs else np.array([])
    adj = adjust(raw, correction) if len(raw) else raw
    return [{"a": methods[a], "b": methods[b], "estimate": float(est[a, b]),
             "se": float(se[a, b]), "p": float(raw[k]), "p_adjusted": float(adj[k]),
             "compared": int(round(compared[a, b])),
             "separated": bool(np.isfinite(adj[k]) and adj[k] < alpha)}
            for k, (a, b) in enumerate(pairs)]


def _reach_notes(n_images, n_workers, n_unlinked, n_pairs, alpha) -> list[str]:
    """Where the design cannot reach alpha by construction, say so."""
    out = []
    if n_images < 2:
        out.append(f"one image only: the image-to-image variation of the differences cannot be "
                   f"estimated, so no pair can be declared different at α = {alpha:g} on this "
                   "design, whatever the judgements say; judge more images")
    if n_workers < 2:
        out.append("one worker only: how workers differ cannot be estimated, and the intervals "
                   "speak for this worker alone")
    if n_unlinked:
        out.append(f"{n_unlinked} of {n_pairs} method pairs are not linked by any chain of "
                   "comparisons and were not compared; such methods never share a letter, so "
                   "there a different letter means 'not compared', not 'different'")
    return out


# ---------------------------------------------------------------- which pairs to show

def all_pairs(methods) -> list[tuple]:
    """Every pair of methods, each once."""
    m = list(methods)
    return [(m[i], m[j]) for i in range(len(m)) for j in range(i + 1, len(m))]


def undecided_neighbours(verdict, alpha: float = 0.05) -> list[tuple]:
    """The neighbouring methods (in the rating study's order) that its verdict left apart by
    less than alpha: a follow-up pairwise round compares exactly these. `verdict`: what
    analysis.verdicts.decide returns, its `pairwise` entry, or a report with `.pairwise`; the
    order is that of its p_adjusted matrix (best first). Pairs the ratings never compared
    count as undecided."""
    pw = getattr(verdict, "pairwise", verdict)
    if isinstance(pw, dict) and "pairwise" in pw:
        pw = pw["pairwise"]
    padj = pw["p_adjusted"]
    order = list(padj.index)
    a = padj.to_numpy(dtype=float)
    return [(order[k], order[k + 1]) for k in range(len(order) - 1)
            if not (np.isfinite(a[k, k + 1]) and a[k, k + 1] < alpha)]


def plan(pairs, images, *, judgements: int, per_worker: int, seed: int = 0) -> pd.DataFrame:
    """Tasks for a pairwise round: every pair on every image `judgements` times, dealt to
    workers in lots of `per_worker` tasks (a worker never judges the same pair on the same
    image twice), with the A/B order balanced within each worker and each pair (half shown
    one way, half the other, the odd one at random) and the task order shuffled per worker.
    Columns: worker (0, 1, ...), position, image, method_a, method_b."""
    rng = np.random.default_rng(seed)
    pairs = [tuple(p) for p in pairs]
    images = list(images)
    if not pairs or not images or judgements < 1 or per_worker < 1:
        raise ValueError("a plan needs at least one pair, one image, judgements >= 1 and "
                         "per_worker >= 1")
    tasks = [(i, k) for k in range(len(pairs)) for i in range(len(images))]
    n_tasks = len(tasks)
    per_worker = min(per_worker, n_tasks)
    rows = []
    worker = 0
    for _ in range(judgements):
        # One pass over all tasks per repetition: within a pass a worker's lot holds distinct
        # tasks, and a worker belongs to one pass only.
        perm = rng.permutation(n_tasks)
        for start in range(0, n_tasks, per_worker):
            lot = perm[start:start + per_worker]
            rows.extend((worker, tasks[t][0], tasks[t][1]) for t in lot)
            worker += 1
    frame = pd.DataFrame(rows, columns=["worker", "image", "pair"])
    return _balance(frame, pairs, images, rng)


def _balance(frame: pd.DataFrame, pairs, images, rng) -> pd.DataFrame:
    w = frame["worker"].to_numpy()
    k = frame["pair"].to_numpy()
    # Within each (worker, pair): a random rank; the lower half is shown reversed, and the
    # middle one of an odd group by coin.
    order = np.lexsort((rng.random(len(frame)), k, w))
    group = np.r_[True, (w[order][1:] != w[order][:-1]) | (k[order][1:] != k[order][:-1])]
    start = np.maximum.accumulate(np.where(group, np.arange(len(frame)), 0))
    rank = np.arange(len(frame)) - start
    size = np.bincount(np.cumsum(group) - 1)[np.cumsum(group) - 1]
    coin = rng.random(len(frame)) < 0.5
    flip_sorted = (rank < size // 2) | ((size % 2 == 1) & (rank == size // 2) & coin)
    flip = np.empty(len(frame), dtype=bool)
    flip[order] = flip_sorted
    first = np.array([p[0] for p in pairs], dtype=object)[k]
    second = np.array([p[1] for p in pairs], dtype=object)[k]
    # Each worker's tasks in a random order.
    shown = np.lexsort((rng.random(len(frame)), w))
    ws = w[shown]
    head = np.r_[True, ws[1:] != ws[:-1]]
    position = np.arange(len(ws)) - np.maximum.accumulate(np.where(head, np.arange(len(ws)), 0))
    return pd.DataFrame({"worker": ws, "position": position,
                         "image": np.array(images, dtype=object)[frame["image"].to_numpy()][shown],
                         "method_a": np.where(flip, second, first)[shown],
                         "method_b": np.where(flip, first, second)[shown]})
