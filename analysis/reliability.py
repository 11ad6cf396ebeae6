"""How reliable the panel was: Krippendorff's alpha (ordinal), split-half reliability with the
Spearman-Brown correction, and the SOS hypothesis parameter a (Hossfeld et al., QoMEX 2011)."""

from __future__ import annotations

import numpy as np

from analysis.mos import Coded, CellStats
from analysis.scale import Scale


def krippendorff_alpha_ordinal(coded: Coded) -> float | None:
    """Alpha over units = (image, method) cells, coders = workers, ordinal metric.

    Built from the coincidence matrix; units with a single rating carry no pairable values.
    Every rating counts (a worker rating a cell twice contributes two values)."""
    values, v = np.unique(coded.score, return_inverse=True)
    L = len(values)
    if L < 2:
        return None
    unit = coded.cell
    uniq_units, u = np.unique(unit, return_inverse=True)
    counts = np.bincount(u * L + v, minlength=len(uniq_units) * L).reshape(-1, L).astype(float)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    if len(m) == 0:
        return None
    wts = 1.0 / (m - 1)
    o = (counts * wts[:, None]).T @ counts - np.diag((counts * wts[:, None]).sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    # Ordinal distance: (sum of marginals between c and k, minus half of each end)^2.
    cum = np.cumsum(n_c)
    c_idx, k_idx = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    lo, hi = np.minimum(c_idx, k_idx), np.maximum(c_idx, k_idx)
    between = cum[hi] - np.where(lo > 0, cum[lo - 1], 0.0)
    delta = (between - (n_c[lo] + n_c[hi]) / 2.0) ** 2
    d_o = float((o * delta).sum())
    d_e = float((np.outer(n_c, n_c) * delta).sum()) / (n - 1)
    if d_e == 0:
        return None
    return 1.0 - d_o / d_e


def split_half(coded: Coded, n_splits: int = 100, seed: int = 0) -> dict:
    """Workers split at random into two halves, MOS per cell from each half, Pearson correlation
    across cells rated by both halves; the mean r over splits and its Spearman-Brown step-up
    2r / (1 + r) estimate the reliability of the full panel's per-cell MOS."""
    rng = np.random.default_rng(seed)
    W = coded.n_workers
    C = coded.n_images * coded.n_methods
    if W < 2:
        return {"r": None, "spearman_brown": None, "n_splits": 0, "note": "needs at least 2 workers"}
    rs = []
    cell = coded.cell
    for _ in range(n_splits):
        half = np.zeros(W, dtype=np.int64)
        half[rng.permutation(W)[: W // 2]] = 1
        key = cell + C * half[coded.w]
        n = np.bincount(key, minlength=2 * C).reshape(2, C)
        s = np.bincount(key, weights=coded.score, minlength=2 * C).reshape(2, C)
        ok = (n[0] > 0) & (n[1] > 0)
        if ok.sum() < 3:
            continue
        a, b = s[0, ok] / n[0, ok], s[1, ok] / n[1, ok]
        if a.std() == 0 or b.std() == 0:
            continue
        rs.append(float(np.corrcoef(a, b)[0, 1]))
    if not rs:
        return {"r": None, "spearman_brown": None, "n_splits": 0,
                "note": "too few cells rated by both halves"}
    r = float(np.mean(rs))
    return {"r": r, "spearman_brown": 2 * r / (1 + r) if r > -1 else None, "n_splits": len(rs),
            "note": None}


def sos_parameter(cs: CellStats, scale: Scale) -> dict:
    """Least-squares fit of SOS^2 = a (MOS - low)(high - MOS) over cells with >= 2 ratings
    (standard deviation with ddof=1). Typical a: 0.1-0.3 for image quality; larger means more
    diverse opinions."""
    ok = cs.n >= 2
    mos, sd = cs.mean[ok], cs.std[ok]
    x = (mos - scale.low) * (scale.high - mos)
    y = sd ** 2
    if len(x) == 0 or float((x * x).sum()) == 0:
        return {"a": None, "r2": None, "n_cells": int(len(x))}
    a = float((x * y).sum() / (x * x).sum())
    resid = y - a * x
    tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((resid ** 2).sum()) / tot if tot > 0 else None
    return {"a": a, "r2": r2, "n_cells": int(len(x))}
