"""Worker screening and subject models over a tidy ratings table.

Input: a DataFrame with columns ``image, method, worker, score`` (rows with ``valid == False``
are ignored when a ``valid`` column exists). An item (stimulus) is an (image, method) pair, an
image is a content. The models work on raw scores and are scale-neutral.

Models follow the definitions of Netflix's SUREAL (v0.9) so that results can be checked
against it:

- ``bt500_screening``: ITU-R BT.500 kurtosis-based observer screening (SUREAL ``BT500Model``).
- ``p913_bias_removal`` / ``p913_model``: ITU-T P.913 subject bias removal, optionally followed
  by BT.500 screening (SUREAL ``BiasremvMosModel`` / ``P913124Model``).
- ``p910_annex_e``: ITU-T P.910 Annex E, x_ji = psi_j + Delta_i + upsilon_i X, solved by
  alternating projection (SUREAL ``P910AnnexEModel``).
- ``mle_content_oblivious``: the same model solved by damped Newton maximum likelihood
  (SUREAL ``MaximumLikelihoodEstimationModelContentOblivious``).
- ``mle_full``: adds content ambiguity phi_k per image (SUREAL ``MaximumLikelihoodEstimationModel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis._subjective_core import (Z95, Estimates, RatingMatrix, _valid_rows, build_matrix,
                                       mle_solve, projection_solve)

__all__ = [
    "SubjectModelResult", "gold_accuracy", "bt500_statistics", "bt500_screening",
    "p913_subject_bias", "p913_bias_removal", "p913_model", "mos_model", "p910_annex_e",
    "mle_content_oblivious", "mle_full", "build_matrix",
]


@dataclass
class SubjectModelResult:
    """Estimates of a subject model.

    quality: indexed by (image, method); columns estimate, std (standard error), ci95_low,
        ci95_high, n (ratings).
    bias, inconsistency: indexed by worker; columns estimate, std, ci95_low, ci95_high, n
        (None when the model has no such parameter).
    ambiguity: indexed by image, same columns, or None.
    """
    model: str
    quality: pd.DataFrame
    bias: pd.DataFrame | None = None
    inconsistency: pd.DataFrame | None = None
    ambiguity: pd.DataFrame | None = None
    iterations: int = 0
    converged: bool = True
    rejected: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# gold accuracy

def _expected_frame(expected) -> pd.DataFrame:
    if isinstance(expected, pd.DataFrame):
        exp = expected.copy()
        if not {"image", "method"} <= set(exp.columns):
            exp = exp.reset_index()
        lo = next((c for c in ("low", "lo", "min") if c in exp.columns), None)
        hi = next((c for c in ("high", "hi", "max") if c in exp.columns), None)
        if lo is None or hi is None or not {"image", "method"} <= set(exp.columns):
            raise ValueError("expected gold ranges need columns image, method, low, high")
        return pd.DataFrame({"image": exp["image"], "method": exp["method"],
                             "low": exp[lo].astype(float), "high": exp[hi].astype(float)})
    if isinstance(expected, Mapping):
        rows = [(img, meth, float(rng[0]), float(rng[1])) for (img, meth), rng in expected.items()]
        return pd.DataFrame(rows, columns=["image", "method", "low", "high"])
    raise TypeError("expected must be a DataFrame (image, method, low, high) or a mapping "
                    "(image, method) -> (low, high)")


def gold_accuracy(df: pd.DataFrame, expected) -> pd.Series:
    """Per worker, the fraction of their gold ratings that fall inside the expected range
    (inclusive). Gold ratings are the ratings of items listed in ``expected`` (and, when the table
    has a ``gold`` column, flagged gold). Workers without gold ratings get NaN. The ``valid``
    column is not applied: gold accuracy is an input to deciding validity."""
    missing = {"image", "method", "worker", "score"} - set(df.columns)
    if missing:
        raise ValueError(f"ratings table lacks column(s) {sorted(missing)}")
    exp = _expected_frame(expected)
    if exp.duplicated(["image", "method"]).any():
        raise ValueError("expected gold ranges list an item twice")
    rows = df
    if "gold" in df.columns:
        rows = df[df["gold"].fillna(False).astype(bool)]
    m = rows[["image", "method", "worker", "score"]].merge(exp, on=["image", "method"], how="inner")
    score = m["score"].astype(float)
    hit = (score >= m["low"]) & (score <= m["high"])
    acc = hit.groupby(m["worker"]).mean()
    workers = pd.Index(pd.unique(df["worker"]), name="worker")
    return acc.reindex(workers).astype(float).rename("gold_accuracy")


# ---------------------------------------------------------------------------------------------
# ITU-R BT.500 screening

# Below this many ratings a worker is not screened: one rating outside an item's bounds out of
# fewer than 20 is already more than BT.500's 5%, so the rule would reject on a single rating.
MIN_RATINGS = 20


def _bt500_counts(X: np.ndarray, S: int, skip_constant: bool = True):
    """P (ratings at or above the upper bound) and Q (at or below the lower bound) per worker,
    and the ratings that could be tested. Bounds per item are mean +/- 2 sd when the item's
    scores have kurtosis in [2, 4], else mean +/- sqrt(20) sd (moments over all the item's
    ratings, population sd). An item whose raters all agree (sd = 0) has bounds [mu, mu]: every
    rating of it would count as both above and below. With `skip_constant` such items are left
    out (they say nothing about a rater); SUREAL keeps them (`skip_constant=False`)."""
    mask = ~np.isnan(X)
    n = mask.sum(axis=1)
    X0 = np.where(mask, X, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = X0.sum(axis=1) / n
        dev = np.where(mask, X - mu[:, None], 0.0)
        d2 = dev * dev
        m2 = d2.sum(axis=1) / n
        m4 = (d2 * d2).sum(axis=1) / n
        sigma = np.sqrt(m2)
        # scipy.stats.kurtosis gives NaN for (numerically) constant data
        zero = m2 <= (np.finfo(float).resolution * mu) ** 2
        kurt = np.where(zero, np.nan, m4 / m2 ** 2)
    k = np.where((kurt >= 2) & (kurt <= 4), 2.0, np.sqrt(20.0))
    upper = (mu + k * sigma)[:, None]
    lower = (mu - k * sigma)[:, None]
    tested = mask & ~zero[:, None] if skip_constant else mask
    p = (tested & (X >= upper)).sum(axis=0)
    q = (tested & (X <= lower)).sum(axis=0)
    R = X.shape[1] // S
    n_items = int((~zero).sum()) if skip_constant else X.shape[0]
    return (p.reshape(R, S).sum(0), q.reshape(R, S).sum(0),
            tested.sum(axis=0).reshape(R, S).sum(0), n_items)


def _bt500_table(m: RatingMatrix, per: str, min_ratings: int = MIN_RATINGS,
                 skip_constant: bool = True) -> pd.DataFrame:
    if per not in ("rated", "items"):
        raise ValueError("per must be 'rated' (ratings the worker gave) or 'items' "
                         "(all items x repetitions, as SUREAL)")
    p, q, n, n_items = _bt500_counts(m.X, m.S, skip_constant)
    denom = n if per == "rated" else np.full(m.S, n_items * m.R)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = (p + q) / denom
        second = np.abs((p - q) / (p + q))
    screened = n >= min_ratings
    reject = (first > 0.05) & (second < 0.3) & screened
    if reject[screened].all():
        reject[:] = False   # the procedure never rejects everyone
    return pd.DataFrame({"n": n, "P": p, "Q": q, "outside_fraction": first,
                         "asymmetry": second, "screened": screened, "rejected": reject},
                        index=m.workers)


def bt500_statistics(df: pd.DataFrame, *, per: str = "rated", min_ratings: int = MIN_RATINGS,
                     skip_constant: bool = True) -> pd.DataFrame:
    """Per worker: n (ratings on items that can be tested), P, Q, outside_fraction =
    (P+Q)/denominator, asymmetry = |P-Q|/(P+Q), screened = n >= min_ratings, rejected =
    screened and outside_fraction > 0.05 and asymmetry < 0.3.

    ``per="rated"`` divides by the number of ratings the worker gave (right for crowd studies
    where each worker sees a subset); ``per="items"`` divides by items x repetitions as BT.500
    and SUREAL do for complete designs. Both agree on complete designs. SUREAL's own numbers
    come with ``min_ratings=0, skip_constant=False``."""
    return _bt500_table(build_matrix(df), per, min_ratings, skip_constant)


def bt500_screening(df: pd.DataFrame, *, per: str = "rated", min_ratings: int = MIN_RATINGS,
                    skip_constant: bool = True):
    """ITU-R BT.500 observer screening. Returns (kept rows, {worker: reason}) where kept rows
    are the input rows of the workers that were not rejected. Workers with fewer than
    `min_ratings` testable ratings are kept unscreened."""
    table = bt500_statistics(df, per=per, min_ratings=min_ratings, skip_constant=skip_constant)
    rejected = {}
    for worker, row in table[table["rejected"]].iterrows():
        rejected[worker] = (
            f"BT.500 screening: {row['outside_fraction']:.1%} of ratings outside the item "
            f"bounds (P={int(row['P'])} above, Q={int(row['Q'])} below; limit 5%), "
            f"|P-Q|/(P+Q)={row['asymmetry']:.2f} < 0.3")
    kept = df[~df["worker"].isin(list(rejected))]
    return kept, rejected


# ---------------------------------------------------------------------------------------------
# MOS and ITU-T P.913 bias removal

def _quality_frame(m: RatingMatrix, est, std, n, low=None, high=None) -> pd.DataFrame:
    low = est - Z95 * std if low is None else low
    high = est + Z95 * std if high is None else high
    return pd.DataFrame({"estimate": est, "std": std, "ci95_low": low, "ci95_high": high,
                         "n": n.astype(int)}, index=m.items)


def _mos_stats(X: np.ndarray):
    n = (~np.isnan(X)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mos = np.nansum(X, axis=1) / n
        sd = np.sqrt(np.nansum((X - mos[:, None]) ** 2, axis=1) / (n - 1))
        se = sd / np.sqrt(n)
    return mos, se, n


def mos_model(df: pd.DataFrame) -> SubjectModelResult:
    """Plain MOS per item with its standard error sd/sqrt(n) and normal 95 % CI
    (SUREAL ``MosModel``)."""
    m = build_matrix(df)
    mos, se, n = _mos_stats(m.X)
    return SubjectModelResult("MOS", _quality_frame(m, mos, se, n))


def _p913_bias(m: RatingMatrix) -> np.ndarray:
    mask = ~np.isnan(m.X)
    mos = np.nansum(m.X, axis=1) / mask.sum(axis=1)
    dev = np.where(mask, m.X - mos[:, None], 0.0).sum(axis=0)
    cnt = mask.sum(axis=0)
    R = m.R
    return dev.reshape(R, m.S).sum(0) / cnt.reshape(R, m.S).sum(0)


def p913_subject_bias(df: pd.DataFrame) -> pd.Series:
    """ITU-T P.913 subject bias: a worker's mean deviation from the items' MOS."""
    m = build_matrix(df)
    return pd.Series(_p913_bias(m), index=m.workers, name="bias")


def p913_bias_removal(df: pd.DataFrame) -> pd.DataFrame:
    """The table with each worker's P.913 bias subtracted from their scores (same rows, same
    columns; scores become floats; rows with ``valid == False`` keep their score)."""
    bias = p913_subject_bias(df)
    out = df.copy()
    rows = _valid_rows(df).index
    out["score"] = out["score"].astype(float)
    out.loc[rows, "score"] = out.loc[rows, "score"] - out.loc[rows, "worker"].map(bias).to_numpy()
    return out


def p913_model(df: pd.DataFrame, *, screen: bool = True, per: str = "rated",
               min_ratings: int = MIN_RATINGS, skip_constant: bool = True) -> SubjectModelResult:
    """MOS after P.913 bias removal, with BT.500 screening of the bias-removed scores when
    ``screen`` (SUREAL ``P913124Model`` with ``min_ratings=0, skip_constant=False``;
    ``screen=False`` is ``BiasremvMosModel``). Screening skips items whose bias-removed scores
    all agree and workers with fewer than `min_ratings` testable ratings."""
    m = build_matrix(df)
    bias = _p913_bias(m)
    X = m.X - np.tile(bias, m.R)[None, :]
    rejected = {}
    keep = np.ones(m.S, dtype=bool)
    if screen:
        mb = RatingMatrix(m.items, m.workers, m.images, m.content, X, m.S, m.R)
        table = _bt500_table(mb, per, min_ratings, skip_constant)
        keep = ~table["rejected"].to_numpy()
        for w in table.index[~keep]:
            rejected[w] = "BT.500 screening after P.913 bias removal"
    mos, se, n = _mos_stats(X[:, np.tile(keep, m.R)])
    nanv = np.full(m.S, np.nan)
    bias_df = pd.DataFrame({"estimate": bias, "std": nanv, "ci95_low": nanv, "ci95_high": nanv,
                            "n": _p913_counts(m)}, index=m.workers)
    return SubjectModelResult("P913", _quality_frame(m, mos, se, n), bias=bias_df,
                              rejected=rejected)


def _p913_counts(m: RatingMatrix) -> np.ndarray:
    return (~np.isnan(m.X)).sum(axis=0).reshape(m.R, m.S).sum(0)


# ---------------------------------------------------------------------------------------------
# P.910 Annex E and maximum likelihood models

def _worker_frames(m: RatingMatrix, e: Estimates):
    n = e.n_worker
    bias = pd.DataFrame({"estimate": e.bias, "std": e.bias_std,
                         "ci95_low": e.bias - Z95 * e.bias_std,
                         "ci95_high": e.bias + Z95 * e.bias_std, "n": n.astype(int)},
                        index=m.workers)
    from scipy.stats import chi2  # scipy.stats takes seconds to import; only the models need it

    v = e.inconsistency
    with np.errstate(divide="ignore", invalid="ignore"):
        # chi-square interval for a standard deviation estimated from n ratings
        low = v * np.sqrt(n / chi2.ppf(1 - 0.025, df=n))
        high = v * np.sqrt(n / chi2.ppf(0.025, df=n))
    inc = pd.DataFrame({"estimate": v, "std": e.inconsistency_std, "ci95_low": low,
                        "ci95_high": high, "n": n.astype(int)}, index=m.workers)
    return bias, inc


def _result(name: str, m: RatingMatrix, e: Estimates) -> SubjectModelResult:
    n = (~np.isnan(m.X)).sum(axis=1)
    quality = _quality_frame(m, e.quality, e.quality_std, n)
    bias, inc = _worker_frames(m, e)
    amb = None
    if e.ambiguity is not None:
        cnt = np.bincount(m.content, weights=n, minlength=m.C)
        amb = pd.DataFrame({"estimate": e.ambiguity, "std": e.ambiguity_std,
                            "ci95_low": e.ambiguity - Z95 * e.ambiguity_std,
                            "ci95_high": e.ambiguity + Z95 * e.ambiguity_std,
                            "n": cnt.astype(int)}, index=m.images)
    return SubjectModelResult(name, quality, bias=bias, inconsistency=inc, ambiguity=amb,
                              iterations=e.iterations, converged=e.converged)


def p910_annex_e(df: pd.DataFrame, *, max_iterations: int = 1000, tolerance: float = 1e-8,
                 zero_mean_bias: bool = True) -> SubjectModelResult:
    """ITU-T P.910 Annex E: true quality psi_j per item, bias Delta_i and inconsistency
    upsilon_i per worker, by alternating projection until the quality vector moves less than
    ``tolerance`` (Euclidean norm). CIs: normal for quality (per-item residual sd / sqrt(n)) and
    bias, chi-square for inconsistency. ``zero_mean_bias`` shifts biases to mean zero."""
    m = build_matrix(df)
    e = projection_solve(m.X, m.S, max_iterations=max_iterations, tolerance=tolerance,
                         zero_mean_bias=zero_mean_bias)
    return _result("P910", m, e)


def mle_content_oblivious(df: pd.DataFrame, *, max_iterations: int = 10000,
                          tolerance: float = 1e-8, zero_mean_bias: bool = True) -> SubjectModelResult:
    """The P.910 Annex E model solved by damped Newton maximum likelihood (step 0.1), as
    SUREAL's MaximumLikelihoodEstimationModelContentOblivious. CIs from the Fisher information
    (quality, bias) and chi-square (inconsistency)."""
    m = build_matrix(df)
    e = mle_solve(m.X, m.S, m.content, m.C, ambiguity=False, max_iterations=max_iterations,
                  tolerance=tolerance, zero_mean_bias=zero_mean_bias)
    return _result("MLE_CO", m, e)


def mle_full(df: pd.DataFrame, *, max_iterations: int = 10000, tolerance: float = 1e-8,
             zero_mean_bias: bool = True) -> SubjectModelResult:
    """Full maximum likelihood model with content ambiguity phi_k per image:
    x = psi_item + Delta_worker + N(0, upsilon_worker^2 + phi_image^2) (SUREAL's
    MaximumLikelihoodEstimationModel)."""
    m = build_matrix(df)
    e = mle_solve(m.X, m.S, m.content, m.C, ambiguity=True, max_iterations=max_iterations,
                  tolerance=tolerance, zero_mean_bias=zero_mean_bias)
    return _result("MLE", m, e)
