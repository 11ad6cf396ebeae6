"""Confidence intervals for method MOS by a two-way bootstrap over images and workers.

Each replicate draws images with replacement and, independently, workers with replacement; a
worker drawn k times counts k times in every cell they rated. The replicate's MOS follows the
study's definition (mean per cell, then over images). Done as matrix products over per-(cell,
worker) sums so that thousands of replicates over a million ratings take seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from analysis.mos import Coded

# Above this many (cell, worker) entries the per-cell sums stay sparse.
_DENSE_LIMIT = 60_000_000


def bootstrap_method_mos(coded: Coded, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                         resample_workers: bool = True, chunk: int = 250) -> pd.DataFrame:
    """Percentile CIs per method: columns method, ci95_low, ci95_high, boot_se.

    Returns also the replicate MOS matrix in ``.attrs['replicates']`` (n_boot x n_methods)."""
    rng = np.random.default_rng(seed)
    I, M, W = coded.n_images, coded.n_methods, coded.n_workers
    C = I * M
    cell = coded.cell
    # Per (cell, worker): sum of scores and count of ratings.
    key = cell * W + coded.w
    uniq, inv = np.unique(key, return_inverse=True)
    s = np.bincount(inv, weights=coded.score)
    n = np.bincount(inv).astype(float)
    rows, cols = uniq // W, uniq % W
    if C * W <= _DENSE_LIMIT:
        S = np.zeros((C, W)); S[rows, cols] = s
        N = np.zeros((C, W)); N[rows, cols] = n
    else:
        S = sparse.csr_matrix((s, (rows, cols)), shape=(C, W))
        N = sparse.csr_matrix((n, (rows, cols)), shape=(C, W))
    base_mean = np.asarray(S.sum(axis=1)).ravel() / np.maximum(np.asarray(N.sum(axis=1)).ravel(), 1e-300)

    reps = np.empty((n_boot, M))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        if resample_workers:
            # Multinomial counts = how often each worker is drawn.
            v = rng.multinomial(W, np.full(W, 1.0 / W), size=b).astype(float).T  # W x b
            num = S @ v
            den = N @ v
            with np.errstate(invalid="ignore", divide="ignore"):
                cm = np.where(den > 0, num / den, np.nan).T  # b x C
        else:
            cm = np.broadcast_to(base_mean, (b, C)).copy()
        cm = cm.reshape(b, I, M)
        u = rng.multinomial(I, np.full(I, 1.0 / I), size=b).astype(float)  # b x I
        ok = ~np.isnan(cm)
        num = np.einsum("bi,bim->bm", u, np.where(ok, cm, 0.0))
        den = np.einsum("bi,bim->bm", u, ok.astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[done:done + b] = np.where(den > 0, num / den, np.nan)
        done += b
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    with np.errstate(invalid="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanpercentile(reps, lo, axis=0)
            high = np.nanpercentile(reps, hi, axis=0)
            se = np.nanstd(reps, axis=0, ddof=1)
    out = pd.DataFrame({"method": coded.methods, "ci95_low": low, "ci95_high": high, "boot_se": se})
    out.attrs["replicates"] = reps
    return out
