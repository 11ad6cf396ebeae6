"""Fidelity versus perception: do PSNR and SSIM rank the methods the way people do?"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from analysis.scale import Scale

METRICS = ("psnr", "ssim")
# Up to this many methods the p-values come from all n! orderings (exact); above, from
# scipy's large-sample approximations.
EXACT_MAX_N = 9


@lru_cache(maxsize=4)
def _orderings(n: int) -> np.ndarray:
    """All n! orderings of range(n), identity first: (n!, n) int8, built by inserting the
    largest element at every position of the orderings of one fewer."""
    perms = np.zeros((1, 1), dtype=np.int8)
    for k in range(1, n):
        m = len(perms)
        out = np.empty((m * (k + 1), k + 1), dtype=np.int8)
        for pos in range(k, -1, -1):
            block = out[(k - pos) * m:(k - pos + 1) * m]
            block[:, :pos] = perms[:, :pos]
            block[:, pos] = k
            block[:, pos + 1:] = perms[:, pos:]
        perms = out
    return perms


def _spearman_all(x: np.ndarray, y_perms: np.ndarray, y: np.ndarray, perms: np.ndarray) -> np.ndarray:
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)[perms]           # ranks move with the values
    rx = rx - rx.mean()
    ry = ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ry @ rx) / np.sqrt((rx @ rx) * (ry * ry).sum(axis=1))


def _kendall_all(x: np.ndarray, y_perms: np.ndarray) -> np.ndarray:
    """Kendall's tau-b for every row of y_perms against x."""
    i, j = np.triu_indices(len(x), 1)
    sx = np.sign(x[j] - x[i])
    sy = np.sign(y_perms[:, j] - y_perms[:, i]).astype(np.float32)
    tx = float((sx != 0).sum())
    ty = (sy != 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sy @ sx.astype(np.float32)).astype(float) / np.sqrt(tx * ty)


def exact_rank_tests(x, y) -> dict:
    """Spearman's rho and Kendall's tau-b with two-sided p-values from all n! orderings of y
    (a permutation test, exact for n <= EXACT_MAX_N; ties are permuted with their values)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    perms = _orderings(n)
    yp = y[perms]
    rho_all = _spearman_all(x, yp, y, perms)
    tau_all = _kendall_all(x, yp)
    rho, tau = rho_all[0], tau_all[0]        # the first permutation is the identity
    eps = 1e-12
    return {"spearman": float(rho), "spearman_p": float(np.mean(np.abs(rho_all) >= abs(rho) - eps)),
            "kendall": float(tau), "kendall_p": float(np.mean(np.abs(tau_all) >= abs(tau) - eps)),
            "p_method": f"exact (all {math.factorial(n)} orderings)"}


def fidelity_correlation(methods: pd.DataFrame, scale: Scale) -> dict:
    """Spearman and Kendall correlations across methods between each fidelity metric and MOS.

    `methods` has columns method, mos and any of psnr, ssim. Besides the raw coefficients,
    `agreement` is the Spearman rho oriented so that +1 means the metric orders the methods
    exactly as the viewers did (PSNR and SSIM are higher-is-better). With few methods the
    p-values are exact: at n = 5 even a perfect ordering has p = 2/120."""
    out: dict = {}
    for metric in METRICS:
        if metric not in methods:
            continue
        d = methods[["mos", metric]].astype(float).dropna()
        entry = {"n_methods": int(len(d)), "spearman": None, "spearman_p": None,
                 "kendall": None, "kendall_p": None, "agreement": None, "p_method": None}
        if len(d) >= 3 and d[metric].nunique() > 1 and d["mos"].nunique() > 1:
            if len(d) <= EXACT_MAX_N:
                entry.update(exact_rank_tests(d[metric].to_numpy(), d["mos"].to_numpy()))
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rho = stats.spearmanr(d[metric], d["mos"])
                    tau = stats.kendalltau(d[metric], d["mos"])
                entry.update(spearman=float(rho.statistic), spearman_p=float(rho.pvalue),
                             kendall=float(tau.statistic), kendall_p=float(tau.pvalue),
                             p_method="large-sample approximation")
            entry["agreement"] = entry["spearman"] * scale.sign
        out[metric] = entry
    return out
