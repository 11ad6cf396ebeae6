"""How many ratings per item are needed to tell two methods apart.

Model for the per-image MOS difference between two methods over I images, R ratings per item:
Var(d_i) = 2 * sigma2_interaction + 2 * sigma2_error / R, where sigma2_interaction is the
image-by-method variance (how much methods' advantages vary across images) and sigma2_error the
rating noise within a cell (worker bias plus inconsistency, as different workers rate each item).
A paired two-sided t-test over I images at level alpha must reach power 1 - beta for a true MOS
difference delta."""

from __future__ import annotations

import numpy as np
from scipy import stats

from analysis.mos import CellStats


def power_paired(delta: float, n_images: int, r: float, sigma2_error: float,
                 sigma2_interaction: float = 0.0, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test (noncentral t) at R ratings per item."""
    var_d = 2 * sigma2_interaction + 2 * sigma2_error / r
    if var_d <= 0:
        return 1.0
    df = n_images - 1
    if df < 1:
        return float("nan")
    nc = abs(delta) / np.sqrt(var_d / n_images)
    tcrit = stats.t.ppf(1 - alpha / 2, df)
    with np.errstate(all="ignore"):
        p = float(stats.nct.sf(tcrit, df, nc) + stats.nct.cdf(-tcrit, df, nc))
    if not np.isfinite(p):
        # Far out in the tail scipy's noncentral t gives NaN; the normal limit is exact enough there.
        p = float(stats.norm.sf(tcrit - nc) + stats.norm.cdf(-tcrit - nc))
    return min(1.0, max(0.0, p))


def ratings_needed(delta: float, n_images: int, sigma2_error: float,
                   sigma2_interaction: float = 0.0, alpha: float = 0.05, power: float = 0.8,
                   max_r: int = 1000) -> dict:
    """Smallest R (ratings per item) whose power reaches `power`; r is None when even
    `max_r` ratings are not enough (then more images are needed: the image-by-method
    variance does not shrink with more ratings)."""
    limit = power_paired(delta, n_images, np.inf, sigma2_error, sigma2_interaction, alpha) \
        if sigma2_interaction > 0 else 1.0
    res = {"delta": delta, "alpha": alpha, "power": power, "n_images": n_images,
           "sigma2_error": sigma2_error, "sigma2_interaction": sigma2_interaction,
           "r": None, "achieved_power": None, "power_limit": limit, "note": None}
    if n_images < 2:
        res["note"] = "needs at least 2 images"
        return res
    if not np.isfinite(sigma2_error):
        res["note"] = "rating noise unknown: needs items rated at least twice"
        return res
    lo, hi = 1, max_r
    if power_paired(delta, n_images, hi, sigma2_error, sigma2_interaction, alpha) < power:
        res["note"] = (f"not reachable with {max_r} ratings per item on {n_images} images "
                       f"(power limit {limit:.2f}); use more images")
        return res
    while lo < hi:  # power grows with R: bisection
        mid = (lo + hi) // 2
        if power_paired(delta, n_images, mid, sigma2_error, sigma2_interaction, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    res["r"] = int(lo)
    res["achieved_power"] = power_paired(delta, n_images, lo, sigma2_error, sigma2_interaction, alpha)
    return res


def suggest_ratings_per_item(df, delta: float, alpha: float = 0.05, power: float = 0.8,
                             max_r: int = 1000) -> dict:
    """From pilot ratings (tidy table; valid, non-gold rows used): the ratings per item needed
    to separate two methods whose MOS differ by `delta` (see `ratings_needed`), from the
    variance components of the crossed mixed model fitted to the pilot (see `from_model`)."""
    from analysis.mixed_model import mixed_model
    from analysis.mos import analysed, cell_stats, encode
    pilot = analysed(df)
    mm = mixed_model(pilot)
    mm.pop("pairwise", None)
    return from_model(mm, cell_stats(encode(pilot)), delta, alpha=alpha, power=power, max_r=max_r)


def from_model(mm: dict, cs: CellStats, delta: float, alpha: float = 0.05, power: float = 0.8,
               max_r: int = 1000) -> dict:
    """Ratings per item needed, from the crossed model's variance components (image:method and
    residual). Only from components the model estimated: when it was not fitted, or put the
    image:method variance at 0 (not estimable from these ratings), there is no advice, and the
    note says why; advice that assumed it away would promise power the design cannot have."""
    variance = mm.get("variance") or {}
    n_images = int((~np.isnan(cs.mean).any(axis=1)).sum()) or cs.coded.n_images
    present = cs.n[cs.n > 0]
    per_item = float(np.median(present)) if len(present) else None
    base = {"delta": delta, "alpha": alpha, "power": power, "n_images": n_images,
            "sigma2_error": variance.get("residual"),
            "sigma2_interaction": variance.get("image_method"), "r": None,
            "achieved_power": None, "power_limit": None, "pilot_ratings_per_item": per_item,
            "source": "crossed mixed model", "note": None}
    if not mm.get("converged"):
        base["note"] = ("not given: the crossed mixed model was not fitted or did not converge, "
                        "so its variance components are not estimates")
        return base
    if "image_method" in (mm.get("boundary") or []) or not variance.get("image_method"):
        base["note"] = ("not given: the image-by-method variance could not be estimated from "
                        "these ratings (estimated at 0); advice computed with it fixed at 0 "
                        "would assume every image orders the methods alike")
        return base
    if not variance.get("residual"):
        base["note"] = "not given: no rating noise could be estimated"
        return base
    res = ratings_needed(delta, n_images, variance["residual"], variance["image_method"],
                         alpha=alpha, power=power, max_r=max_r)
    res.update(pilot_ratings_per_item=per_item, source="crossed mixed model")
    return res
