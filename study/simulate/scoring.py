"""An item's true score: how different a method's output looks from the reference, on the
study's 0-4 scale (0 almost identical ... 4 mostly different).

The distance is a multi-scale structural dissimilarity on grey images brought to a fixed size
(so a score does not depend on the resolution the images are served at), pooled over the most
different quarter of the picture: a bokeh result is judged by where it goes wrong (a sharp
background, a blurred subject), not diluted by the parts every method leaves untouched. A
monotone map takes it onto 0-4: identical -> 0, a strong blur/sharp mismatch -> 3-4.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps

# Long side of the finest scale; the two coarser scales halve it.
BASE_SIDE = 256
SCALES = 3
# Fraction of the dissimilarity map (most different pixels first) averaged at each scale.
POOL_FRACTION = 0.25
# Distance at which the score reaches 4 * (1 - 1/e) ~ 2.5.
DISTANCE_SCALE = 0.2

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def decode_image(data: bytes) -> np.ndarray:
    """Image bytes (PNG, JPEG, ...) -> uint8 HxWx3 RGB, EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"))


def _grey(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = a.astype(np.float32)
    if a.ndim == 3:
        a = a[..., :3] @ _LUMA[: a.shape[2]] if a.shape[2] >= 3 else a[..., 0]
    return np.clip(a, 0.0, 1.0)


def _resize(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-averaging resize of a float image to (height, width)."""
    h, w = size
    if grey.shape == (h, w):
        return grey
    im = Image.fromarray(grey, mode="F")
    return np.asarray(im.resize((w, h), Image.Resampling.BOX), dtype=np.float32)


def _pyramid_size(h: int, w: int) -> tuple[int, int]:
    s = min(1.0, BASE_SIDE / max(h, w))
    return max(16, round(h * s)), max(16, round(w * s))


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Wang et al.'s SSIM with a Gaussian window (sigma 1.5), data range 1.
    from scipy.ndimage import gaussian_filter

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a = a.astype(np.float64)
    b = b.astype(np.float64)

    def blur(x):
        return gaussian_filter(x, 1.5, truncate=3.5, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return num / den


def prepare(image: np.ndarray) -> np.ndarray:
    """The grey image at the comparison's finest scale: what `distance` works on. Small, so
    a caller comparing many pairs can keep it instead of the full image."""
    grey = _grey(image)
    return _resize(grey, _pyramid_size(*grey.shape))


def distance(reference: np.ndarray, result: np.ndarray) -> float:
    """Multi-scale pooled structural dissimilarity of two prepared images, in [0, ~1]."""
    ref = reference
    # A result of another size is compared as the worker sees it: scaled to the reference.
    res = _resize(result, ref.shape)
    parts = []
    for level in range(SCALES):
        if level:
            h, w = ref.shape
            if min(h, w) < 16:
                break
            half = (max(8, h // 2), max(8, w // 2))
            ref, res = _resize(ref, half), _resize(res, half)
        dis = np.clip(1.0 - _ssim_map(ref, res), 0.0, 2.0).ravel()
        k = max(1, int(dis.size * POOL_FRACTION))
        parts.append(float(np.partition(dis, dis.size - k)[dis.size - k:].mean()))
    return float(np.mean(parts))


def perceptual_distance(reference: np.ndarray, result: np.ndarray) -> float:
    """Multi-scale pooled structural dissimilarity in [0, ~1]; 0 for identical images."""
    return distance(prepare(reference), prepare(result))


def glance_score(reference: np.ndarray, result: np.ndarray, side: int) -> float:
    """The score of two prepared images at a glance: the same comparison on the pictures
    brought down to `side` pixels on their long side, where fine differences are lost."""
    h, w = reference.shape
    s = min(1.0, side / max(h, w))
    size = (max(16, round(h * s)), max(16, round(w * s)))
    return score_from_distance(distance(_resize(reference, size), _resize(result, size)))


def score_from_distance(distance: float) -> float:
    """The monotone map from distance to the 0-4 scale."""
    d = max(0.0, float(distance))
    return 4.0 * (1.0 - math.exp(-d / DISTANCE_SCALE))


def true_score(reference: np.ndarray, result: np.ndarray) -> float:
    """How different `result` looks from `reference` on the 0-4 scale (lower is closer).

    Both are images as arrays (uint8 HxWx3 RGB, or float in [0, 1], or grey HxW)."""
    return score_from_distance(perceptual_distance(reference, result))


def load_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 HxWx3 RGB, as the study loads it."""
    try:
        from study.dataset import load_rgb
    except ImportError:  # pragma: no cover - the dataset module ships with the package
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return load_rgb(path)


def item_true_scores(pairs: Iterable[tuple[str, str, str | Path, str | Path]]
                     ) -> dict[tuple[str, str], float]:
    """(image, method, reference_path, result_path) rows -> {(image, method): true score}."""
    refs: dict[str, np.ndarray] = {}
    out: dict[tuple[str, str], float] = {}
    for image, method, reference_path, result_path in pairs:
        key = str(reference_path)
        if key not in refs:
            refs[key] = load_image(reference_path)
        out[(str(image), str(method))] = true_score(refs[key], load_image(result_path))
    return out


def planted_scores(pairs: Iterable[tuple[str, str, str | Path, str | Path]]) -> dict[str, float]:
    """The score each method would get from an ideal crowd: its true score averaged per image,
    then over images (as MOS is), lower is better. Rows are
    (image, method, reference_path, result_path)."""
    per_method: dict[str, list[float]] = defaultdict(list)
    for (_, method), score in item_true_scores(pairs).items():
        per_method[method].append(score)
    return {m: float(np.mean(v)) for m, v in per_method.items()}


def planted_ranking(scores: dict[str, float]) -> list[str]:
    """Methods from closest to the reference to farthest (ties broken by name)."""
    return sorted(scores, key=lambda m: (scores[m], m))
