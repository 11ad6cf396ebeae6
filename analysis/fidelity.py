"""Fidelity versus perception: do PSNR and SSIM rank the methods the way people do?"""

from __future__ import annotations

import warnings

import pandas as pd
from scipy import stats

from analysis.scale import Scale

METRICS = ("psnr", "ssim")


def fidelity_correlation(methods: pd.DataFrame, scale: Scale) -> dict:
    """Spearman and Kendall correlations across methods between each fidelity metric and MOS.

    `methods` has columns method, mos and any of psnr, ssim. Besides the raw coefficients,
    `agreement` is the Spearman rho oriented so that +1 means the metric orders the methods
    exactly as the viewers did (PSNR and SSIM are higher-is-better)."""
    out: dict = {}
    for metric in METRICS:
        if metric not in methods:
            continue
        d = methods[["mos", metric]].astype(float).dropna()
        entry = {"n_methods": int(len(d)), "spearman": None, "spearman_p": None,
                 "kendall": None, "kendall_p": None, "agreement": None}
        if len(d) >= 3 and d[metric].nunique() > 1 and d["mos"].nunique() > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rho = stats.spearmanr(d[metric], d["mos"])
                tau = stats.kendalltau(d[metric], d["mos"])
            entry.update(spearman=float(rho.statistic), spearman_p=float(rho.pvalue),
                         kendall=float(tau.statistic), kendall_p=float(tau.pvalue),
                         agreement=float(rho.statistic) * scale.sign)
        out[metric] = entry
    return out
