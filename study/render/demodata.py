"""`study demo-data DIR`: a small, deterministic EBB!-style dataset built offline.

The photographs are the real ones scikit-image ships (astronaut, coffee, chelsea, rocket and the
left view of stereo_motorcycle). Depth is the motorcycle's ground-truth disparity; the others get
a plausible synthetic disparity: a foreground object found by colour contrast to the image border
and a centre prior, in front of a ground-plane ramp (lower = nearer).

The "f/1.8" reference comes from a slower renderer that is deliberately none of the built-ins:
an occlusion-aware layered gather with a hexagonal (six-blade) aperture. The disparity range is
cut into layers; each layer's linear-light colour and coverage are convolved with the hexagon of
its blur size and composited back to front with the over operator, so near, blurred objects
cover what lies behind them. Bright highlights are lifted in linear light before blurring, as a
real sensor's clipped highlights make bright bokeh discs. The built-ins are ranked by how close
they get to it, so a demo study does not reward a method for being its own reference.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import click
import numpy as np
import torch

README_MARK = "Synthetic demo data for the `study` tool"
README = f"""{README_MARK}
=========================================

This folder was written by `study demo-data`. It is SYNTHETIC demo data, not a real bokeh
dataset: the photographs are the sample images shipped with scikit-image, the depth maps are
synthetic (except the stereo motorcycle's ground-truth disparity), and the "bokeh" references
were rendered by a classical layered renderer with a hexagonal aperture, not photographed.

Use it to try the tool end to end. Real studies use the EBB! dataset (Everything is Better with
Bokeh!, AIM 2019/2020 challenges), whose references are real f/1.8 photographs.

Layout (EBB!-style): test/original/<id>.jpg (input, sharp), test/bokeh/<id>.jpg (reference),
test/original_depth/<id>.png (16-bit disparity, larger = nearer).
"""

SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")
# Reference renderer settings, in pixels for a 1024-pixel-tall image.
REF_K = 64.0
REF_MAX_RADIUS = 32.0
REF_LAYERS = 16
REF_GAMMA = 2.2


def _resize(arr: np.ndarray, h: int, w: int, resample) -> np.ndarray:
    from PIL import Image
    if arr.dtype == np.uint8:
        return np.asarray(Image.fromarray(arr).resize((w, h), resample))
    return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((w, h), resample))


def _bilinear():
    from PIL import Image
    return Image.BILINEAR


def _fill_invalid(disp: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    bad = ~np.isfinite(disp)
    if not bad.any():
        return disp
    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return disp[tuple(idx)]


def _normalise(d: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(d, 0.5), np.percentile(d, 99.5)
    return np.clip((d - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


# Where each photo's subject is, as an ellipse (centre x, centre y, radius x, radius y) in
# fractions of the width and height; superpixels snap it to the photo's own edges.
SUBJECTS = {
    "astronaut": (0.36, 0.62, 0.36, 0.56),
    "coffee": (0.46, 0.56, 0.40, 0.46),
    "chelsea": (0.40, 0.60, 0.36, 0.56),
    "rocket": (0.50, 0.68, 0.07, 0.34),
}


def synthetic_disparity(rgb: np.ndarray, subject: tuple[float, float, float, float],
                        rng: np.random.Generator) -> np.ndarray:
    """Disparity in [0,1] for a photo without depth: the subject (an ellipse snapped to
    superpixel edges) in front of a ground-plane ramp (lower in the frame = nearer)."""
    from scipy import ndimage
    from skimage.segmentation import slic

    h, w = rgb.shape[:2]
    cx, cy, rx, ry = subject
    # Segment at most 256 px tall: superpixels are coarse anyway, and slic is the slow part.
    k = max(1, int(math.ceil(h / 256)))
    small = rgb[::k, ::k]
    sh, sw = small.shape[:2]
    sy, sx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    ellipse = ((sx / sw - cx) / rx) ** 2 + ((sy / sh - cy) / ry) ** 2 <= 1.0
    segments = slic(small, n_segments=300, compactness=12, start_label=0)
    inside = ndimage.mean(ellipse.astype(np.float32), labels=segments,
                          index=np.arange(segments.max() + 1))
    mask = ndimage.binary_fill_holes(inside[segments] >= 0.5).astype(np.float32)
    mask = _resize(mask, h, w, _bilinear())
    soft = ndimage.gaussian_filter(mask, sigma=max(0.7, min(h, w) / 400))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = rng.uniform(-0.05, 0.05)
    ramp = 0.08 + 0.42 * (yy / max(h - 1, 1)) + tilt * (xx / max(w - 1, 1) - 0.5)
    fg = 0.85 + 0.05 * (yy / max(h - 1, 1))
    return np.clip((1 - soft) * ramp + soft * fg, 0.0, 1.0).astype(np.float32)


def _hexagon(radius: float, angle: float = math.radians(15)) -> np.ndarray:
    """Anti-aliased regular hexagon of circumradius `radius` (4x4 supersampling), sum 1."""
    if radius < 0.5:
        k = np.zeros((1, 1), dtype=np.float64)
        k[0, 0] = 1.0
        return k
    R = int(math.ceil(radius)) + 1
    ss = 4
    ax = (np.arange(-R * ss, (R + 1) * ss) + 0.5) / ss - 0.5
    y, x = np.meshgrid(ax, ax, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    xr, yr = c * x + s * y, -s * x + c * y
    inside = (np.abs(yr) <= radius * math.sqrt(3) / 2) & (
        math.sqrt(3) * np.abs(xr) + np.abs(yr) <= math.sqrt(3) * radius)
    k = inside.reshape(2 * R + 1, ss, 2 * R + 1, ss).mean(axis=(1, 3))
    return k / k.sum()


def _fft_size(n: int) -> int:
    m = n
    while True:
        k = m
        for q in (2, 3, 5):
            while k % q == 0:
                k //= q
        if k == 1:
            return m
        m += 1


def render_reference(rgb: np.ndarray, disp: np.ndarray, focus: float | None = None) -> np.ndarray:
    """The demo's f/1.8 stand-in: layered, occlusion-aware, hexagonal aperture. uint8 HxWx3."""
    h, w = disp.shape
    scale = h / 1024.0
    if focus is None:
        # Same rule as the built-ins' "auto": the photographer focuses on the subject.
        from study.render.builtins import estimate_focus
        focus = float(estimate_focus(torch.from_numpy(disp)[None, None]))
    lin = (rgb.astype(np.float64) / 255.0) ** REF_GAMMA
    lum = lin @ np.array([0.2126, 0.7152, 0.0722])
    lift = 1.0 + 3.0 * np.clip((lum - 0.6) / 0.4, 0.0, 1.0) ** 2
    lin = lin * lift[..., None]
    edges = np.linspace(0.0, 1.0, REF_LAYERS + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    idx = np.clip(np.searchsorted(edges, disp, side="right") - 1, 0, REF_LAYERS - 1)
    pad = int(math.ceil(REF_MAX_RADIUS * scale)) + 2
    fh, fw = _fft_size(h + 2 * pad), _fft_size(w + 2 * pad)
    lin_t = torch.from_numpy(lin.transpose(2, 0, 1).astype(np.float32))
    idx_t = torch.from_numpy(idx)
    out = torch.zeros(3, h, w)
    cover = torch.zeros(h, w)
    for layer in range(REF_LAYERS):                       # far (small disparity) to near
        m = (idx_t == layer).float()
        if not bool(m.any()):
            continue
        radius = min(REF_K * scale * abs(centres[layer] - focus), REF_MAX_RADIUS * scale)
        kern = _hexagon(radius)
        planes = torch.cat([lin_t * m, m[None]], dim=0)
        if kern.size > 1:
            r = kern.shape[0] // 2
            big = torch.zeros(fh, fw)
            big[:kern.shape[0], :kern.shape[1]] = torch.from_numpy(kern.astype(np.float32))
            big = torch.roll(big, shifts=(-r, -r), dims=(0, 1))
            spec = torch.fft.rfft2(planes, s=(fh, fw)) * torch.fft.rfft2(big)
            full = torch.fft.irfft2(spec, s=(fh, fw))
            # wrap-around of the circular convolution lands in the zero padding
            planes = full[:, :h, :w]
        alpha = planes[3].clamp(0.0, 1.0)
        out = out * (1.0 - alpha) + planes[:3]
        cover = cover * (1.0 - alpha) + alpha
    res = (out / cover.clamp_min(1e-6)).clamp(0.0, 1.0).numpy().astype(np.float64)
    res = res ** (1.0 / REF_GAMMA)
    return (np.round(res.transpose(1, 2, 0) * 255.0)).astype(np.uint8)


def _load_source(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    from skimage import data
    if name == "stereo_motorcycle":
        left, _right, disp = data.stereo_motorcycle()
        return np.ascontiguousarray(left[..., :3]), _fill_invalid(disp.astype(np.float32))
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=2)
    return np.ascontiguousarray(img[..., :3]), None


def _write_dataset(root: Path, size: int, seed: int) -> None:
    from PIL import Image
    rng = np.random.default_rng(seed)
    for d in ("original", "bokeh", "original_depth"):
        (root / "test" / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(SOURCES, start=1):
        rgb, disp = _load_source(name)
        h0, w0 = rgb.shape[:2]
        h, w = size, max(1, int(round(w0 * size / h0)))
        rgb = _resize(rgb, h, w, Image.LANCZOS)
        if disp is None:
            disp = synthetic_disparity(rgb, SUBJECTS[name], rng)
        else:
            disp = _normalise(_resize(disp, h, w, Image.BILINEAR))
        # What the dataset loader will read back: min-max normalised, 16-bit.
        d16 = np.round(_normalise_minmax(disp) * 65535).astype(np.uint16)
        disp = d16.astype(np.float32) / 65535.0
        ref = render_reference(rgb, disp)
        Image.fromarray(rgb).save(root / "test" / "original" / f"{i}.jpg", quality=95)
        Image.fromarray(ref).save(root / "test" / "bokeh" / f"{i}.jpg", quality=95)
        Image.fromarray(d16).save(root / "test" / "original_depth" / f"{i}.png")
    (root / "README.txt").write_text(README, encoding="utf-8")


def _normalise_minmax(d: np.ndarray) -> np.ndarray:
    lo, hi = float(d.min()), float(d.max())
    return (d - lo) / max(hi - lo, 1e-6)


def build_demo_dataset(dest: Path, size: int = 512, seed: int = 0) -> Path:
    """Write the demo dataset to `dest` (created; an earlier demo dataset there is replaced).

    Built in a temporary folder next to `dest` and moved into place, so `dest` never holds a
    half-written dataset. Returns `dest`."""
    from study.errors import StudyError

    dest = Path(dest)
    if not isinstance(size, int) or size < 32 or size > 4096:
        raise StudyError(f"demo image height {size!r} is out of range", where="--size",
                         hint="use a height between 32 and 4096 pixels (default 512)")
    if dest.exists():
        if not dest.is_dir():
            raise StudyError(f"{dest} exists and is not a folder", where=str(dest),
                             hint="choose a new folder for the demo dataset")
        readme = dest / "README.txt"
        ours = readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(README_MARK)
        if any(dest.iterdir()) and not ours:
            raise StudyError(f"{dest} is not empty", where=str(dest),
                             hint="choose a new or empty folder; an earlier demo dataset is replaced")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        _write_dataset(tmp, size, seed)
        if not dest.exists():
            os.replace(tmp, dest)
            return dest
        # Replace an earlier demo dataset: swap each top-level entry.
        for entry in ("test", "README.txt"):
            old = dest / entry
            if old.is_dir():
                trash = Path(tempfile.mkdtemp(prefix=".old-", dir=dest))
                os.replace(old, trash / entry)
                os.replace(tmp / entry, old)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp / entry, old)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@click.command("demo-data")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--size", "size", type=int, default=512, show_default=True,
              help="Image height in pixels (widths keep each photo's aspect ratio).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the synthetic depth maps.")
def demo_data_command(directory: str, size: int, seed: int) -> None:
    """Build the synthetic EBB!-style demo dataset in DIRECTORY (no network needed)."""
    dest = build_demo_dataset(Path(directory), size=size, seed=seed)
    n = len(SOURCES)
    click.echo(f"wrote {n} demo images ({size} px tall) to {dest}/test "
               "(original, bokeh, original_depth); synthetic data, see README.txt")
