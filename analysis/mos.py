"""Mean opinion scores as the study defines them: the mean per (image, method) over valid
ratings, then the mean over images per method. Ranks respect the scale's direction."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.scale import Scale


@dataclass
class Coded:
    """Ratings as integer codes, shared by the vectorised analyses."""
    images: np.ndarray      # labels, sorted
    methods: np.ndarray
    workers: np.ndarray
    i: np.ndarray           # image code per rating
    m: np.ndarray
    w: np.ndarray
    score: np.ndarray       # float64

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_methods(self) -> int:
        return len(self.methods)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def cell(self) -> np.ndarray:
        """Cell code image * n_methods + method."""
        return self.i * self.n_methods + self.m


def encode(df: pd.DataFrame) -> Coded:
    def codes(col):
        c, labels = pd.factorize(df[col], sort=True)
        return c.astype(np.int64), np.asarray(labels, dtype=object)
    i, images = codes("image")
    m, methods = codes("method")
    w, workers = codes("worker")
    return Coded(images, methods, workers, i, m, w, df["score"].to_numpy(dtype=float))


def analysed(df: pd.DataFrame) -> pd.DataFrame:
    """The ratings that count for MOS: valid and not gold."""
    keep = np.ones(len(df), dtype=bool)
    if "valid" in df:
        keep &= df["valid"].to_numpy(dtype=bool)
    if "gold" in df:
        keep &= ~df["gold"].to_numpy(dtype=bool)
    return df[keep] if not keep.all() else df


@dataclass
class CellStats:
    """Per (image, method) arrays of shape (n_images, n_methods); NaN where a cell has no rating."""
    coded: Coded
    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray         # sample standard deviation (ddof=1); NaN when n < 2


def cell_stats(coded: Coded) -> CellStats:
    shape = (coded.n_images, coded.n_methods)
    size = shape[0] * shape[1]
    cell = coded.cell
    n = np.bincount(cell, minlength=size).astype(float)
    s = np.bincount(cell, weights=coded.score, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        # Two-pass variance: numerically safe for large cells.
        dev = coded.score - mean[cell]
        ss = np.bincount(cell, weights=dev * dev, minlength=size)
        std = np.sqrt(ss / (n - 1))
    mean[n == 0] = np.nan
    std[n < 2] = np.nan
    return CellStats(coded, n.reshape(shape), mean.reshape(shape), std.reshape(shape))


def rank_with_ties(values, higher_is_better: bool, decimals: int = 9) -> np.ndarray:
    """Competition ranks (1, 2, 2, 4): best = 1; equal values (to `decimals`) share a rank.
    NaN values get rank NaN."""
    v = np.round(np.asarray(values, dtype=float), decimals)
    out = np.full(len(v), np.nan)
    ok = ~np.isnan(v)
    if ok.any():
        key = -v[ok] if higher_is_better else v[ok]
        out[ok] = stats.rankdata(key, method="min")
    return out


def item_table(cs: CellStats, alpha: float = 0.05, scale: Scale | None = None) -> pd.DataFrame:
    """One row per rated (image, method): mos, n, std and a t-based confidence interval, cut
    to the scale when one is given (a mean of ratings on the scale cannot lie outside it; with
    2 ratings the t interval alone is +-12.7 sd wide). No interval below 2 ratings."""
    c = cs.coded
    ii, mm = np.nonzero(cs.n > 0)
    n = cs.n[ii, mm]
    mean = cs.mean[ii, mm]
    sd = cs.std[ii, mm]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1))
        half = np.where(n >= 2, t * sd / np.sqrt(n), np.nan)
    low, high = mean - half, mean + half
    if scale is not None:
        low, high = np.maximum(low, scale.low), np.minimum(high, scale.high)
    return pd.DataFrame({
        "image": c.images[ii], "method": c.methods[mm], "mos": mean, "n": n.astype(int),
        "std": sd, "ci95_low": low, "ci95_high": high,
    })


def method_table(cs: CellStats, scale: Scale) -> pd.DataFrame:
    """One row per method: MOS = mean over images of the per-image MOS; rank (ties share)."""
    present = cs.n > 0
    n_images = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mos = np.nansum(np.where(present, cs.mean, 0.0), axis=0) / n_images
        sd_images = np.nanstd(np.where(present, cs.mean, np.nan), axis=0, ddof=1) \
            if cs.coded.n_images > 1 else np.full(len(mos), np.nan)
    out = pd.DataFrame({
        "method": cs.coded.methods, "mos": mos, "n_images": n_images.astype(int),
        "n_ratings": cs.n.sum(axis=0).astype(int), "std_images": sd_images,
    })
    out["rank"] = rank_with_ties(out["mos"], scale.higher_is_better)
    return out


def mos_tables(df: pd.DataFrame, scale: Scale) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(methods, items) for the ratings that count (valid, not gold)."""
    cs = cell_stats(encode(analysed(df)))
    return method_table(cs, scale), item_table(cs, scale=scale)
