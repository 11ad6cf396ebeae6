"""Tests on the image x method matrix of per-image MOS: Friedman with Kendall's W, and pairwise
Wilcoxon signed-rank tests (Pratt's treatment of zero differences, ties being common on a
5-point scale) with Holm or Benjamini-Hochberg correction.

These use one number per image and method. They are the secondary analysis: the verdicts come
from the crossed mixed model (analysis.mixed_model). An exact signed-rank test over n images
cannot go below p = 2/2^n, so with few images and many pairs it can never separate a pair;
`signed_rank_floor` says when."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests


def complete_matrix(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (images) where every method has a MOS, and the mask of rows kept."""
    keep = ~np.isnan(mean).any(axis=1)
    return mean[keep], keep


def friedman(mean: np.ndarray) -> dict:
    """Friedman test over the complete rows of an (images x methods) MOS matrix, with tie
    correction, and Kendall's coefficient of concordance W = chi2 / (n (k - 1))."""
    x, _ = complete_matrix(mean)
    n, k = x.shape
    res = {"statistic": None, "df": k - 1, "p": None, "kendall_w": None, "n_images": int(n),
           "n_methods": int(k), "note": None}
    if k < 2 or n < 2:
        res["note"] = (f"not applicable: needs at least 2 methods rated on the same images "
                       f"(complete images: {n}, methods: {k})")
        return res
    r = stats.rankdata(x, axis=1)
    rsum = r.sum(axis=0)
    # Tie correction as in Conover / scipy.stats.friedmanchisquare.
    ties = 0.0
    for row in x:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts ** 3 - counts).sum())
    c = 1 - ties / (k * (k * k - 1) * n)
    if c <= 0:
        res.update(statistic=0.0, p=1.0, kendall_w=0.0,
                   note="every image gave every method the same MOS")
        return res
    chi2 = (12.0 / (n * k * (k + 1)) * float((rsum ** 2).sum()) - 3 * n * (k + 1)) / c
    res.update(statistic=chi2, p=float(stats.chi2.sf(chi2, k - 1)),
               kendall_w=float(chi2 / (n * (k - 1))))
    return res


def adjust(p: np.ndarray, correction: str = "holm") -> np.ndarray:
    """Holm step-down or Benjamini-Hochberg adjusted p-values (statsmodels' multipletests) over
    the entries that are not NaN; NaN entries (pairs not tested) stay NaN."""
    methods = {"holm": "holm", "bh": "fdr_bh", "fdr_bh": "fdr_bh"}
    if correction not in methods:
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=methods[correction])[1]
    return out


def pairwise_wilcoxon(mean: np.ndarray, methods, correction: str = "holm") -> dict:
    """Wilcoxon signed-rank tests for every pair of methods on the images both were rated on.

    Returns {'p': DataFrame, 'p_adjusted': DataFrame, 'n': DataFrame} (methods x methods,
    symmetric, NaN on the diagonal and where a pair shares fewer than 2 images)."""
    k = mean.shape[1]
    p = np.full((k, k), np.nan)
    nn = np.zeros((k, k), dtype=int)
    iu, ju = np.triu_indices(k, 1)
    for a, b in zip(iu, ju):
        both = ~np.isnan(mean[:, a]) & ~np.isnan(mean[:, b])
        n = int(both.sum())
        nn[a, b] = nn[b, a] = n
        if n < 2:
            continue
        d = mean[both, a] - mean[both, b]
        if np.allclose(d, 0, atol=1e-12):
            p[a, b] = p[b, a] = 1.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Exact null distribution for small samples without zeros or ties; otherwise the
            # normal approximation with tie correction (scipy's permutation fallback is slow).
            absd = np.abs(d)
            exact = n <= 50 and not np.any(absd == 0) and len(np.unique(absd)) == n
            p[a, b] = p[b, a] = float(stats.wilcoxon(
                d, zero_method="pratt", method="exact" if exact else "asymptotic").pvalue)
    padj = np.full((k, k), np.nan)
    adj = adjust(p[iu, ju], correction)
    padj[iu, ju] = adj
    padj[ju, iu] = adj
    idx = pd.Index(methods, name="method")
    return {"p": pd.DataFrame(p, index=idx, columns=idx),
            "p_adjusted": pd.DataFrame(padj, index=idx, columns=idx),
            "n": pd.DataFrame(nn, index=idx, columns=idx),
            "correction": correction}


def signed_rank_floor(n_shared: np.ndarray, correction: str = "holm") -> dict:
    """The smallest adjusted p the pairwise signed-rank tests can reach on this design.

    n_shared: images shared by each tested pair. With all n differences of one sign the exact
    two-sided p is 2/2^n; the normal approximation (used when differences tie) can go no lower
    than 2 Phi(-sqrt(n)), reached when all |differences| tie. Holm multiplies the smallest p by
    the number of pairs m; Benjamini-Hochberg can at best leave it as it is (all pairs at the
    floor)."""
    n = np.asarray(n_shared, dtype=float)
    n = n[n >= 2]
    m = len(n)
    if m == 0:
        return {"pairs": 0, "images": None, "raw": None, "adjusted": None}
    top = n.max()
    best = float(min(2.0 ** (1 - top), 2 * stats.norm.sf(np.sqrt(top))))
    adjusted = min(1.0, best * m) if correction == "holm" else best
    return {"pairs": int(m), "images": int(n.max()), "raw": best, "adjusted": adjusted}
