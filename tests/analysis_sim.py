"""Simulated rating studies with a planted truth (shared by the analysis tests and benchmark)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(n_methods=6, n_images=24, n_workers=40, ratings_per_item=12, spammers=(),
             quality=None, seed=0, low=0, high=4, noise=0.6, bias_sd=0.25, image_sd=0.3):
    """Ratings on a LOW..HIGH integer scale. `quality[m]` is the planted true score of method m
    (same orientation as the scale); each item is rated by `ratings_per_item` distinct workers;
    workers listed in `spammers` answer uniformly at random."""
    rng = np.random.default_rng(seed)
    if quality is None:
        quality = np.linspace(low + 0.5, high - 0.5, n_methods)
    quality = np.asarray(quality, dtype=float)
    n_methods = len(quality)
    bias = rng.normal(0, bias_sd, n_workers)
    img = rng.normal(0, image_sd, n_images)
    spam = np.zeros(n_workers, dtype=bool)
    spam[list(spammers)] = True
    rows_i = np.repeat(np.arange(n_images), n_methods * ratings_per_item)
    rows_m = np.tile(np.repeat(np.arange(n_methods), ratings_per_item), n_images)
    n_items = n_images * n_methods
    # Distinct workers per item: a random permutation per item, first R taken.
    keys = rng.random((n_items, n_workers))
    w = np.argsort(keys, axis=1)[:, :ratings_per_item].ravel()
    latent = quality[rows_m] + img[rows_i] + bias[w] + rng.normal(0, noise, len(w))
    score = np.clip(np.rint(latent), low, high)
    score[spam[w]] = rng.integers(low, high + 1, int(spam[w].sum()))
    return pd.DataFrame({"image": [f"img{i:03d}" for i in rows_i],
                         "method": [f"m{m:02d}" for m in rows_m],
                         "worker": [f"w{x:03d}" for x in w], "score": score.astype(float)})
