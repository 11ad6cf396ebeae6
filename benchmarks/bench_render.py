"""Renderer benchmark: seconds per 1024x1536 image for each built-in method, PSNR+SSIM against
scikit-image, and the fast scatter against the exact scatter.

Run: python benchmarks/bench_render.py [--quick]. Uses torch's default thread count. The exact
scatter makes one pass over the image per offset (~3600 offsets at max radius 32): it is measured
on a centre crop with the full radius range (quick: 192x288, full: 384x576) with its time
extrapolated to the full image by pixel count (the cost is linear in pixels), and, without
--quick, also on the whole image with the default parameters (about 30 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.render.builtins import BUILTINS, SCATTER_DEFAULTS, estimate_focus  # noqa: E402
from study.render.metrics import psnr, ssim  # noqa: E402
from study.render.scatter import radius_map, scatter_exact, scatter_fast  # noqa: E402

H, W = 1024, 1536


def test_image() -> tuple[torch.Tensor, torch.Tensor]:
    """The stereo motorcycle (a real photo with real disparity) resized to 1024x1536."""
    from scipy import ndimage
    from skimage import data
    left, _, disp = data.stereo_motorcycle()
    bad = ~np.isfinite(disp)
    disp = disp[tuple(ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True))]
    disp = (disp - disp.min()) / (disp.max() - disp.min())
    x = torch.from_numpy(left[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
    d = torch.from_numpy(disp.astype(np.float32))[None, None]
    x = F.interpolate(x, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)
    d = F.interpolate(d, size=(H, W), mode="bilinear", align_corners=False)
    return x, d


def timed(fn, repeats: int) -> float:
    fn()                                   # warm-up (allocations, kernel spectra)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def row(figure, value, unit, reference=None, ratio=None):
    return {"benchmark": "render", "figure": figure, "value": value, "unit": unit,
            "reference": reference, "ratio": ratio}


def main(quick: bool = False) -> list[dict]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    repeats = 1 if quick else 3
    x, d = test_image()
    ref = BUILTINS["depth-blend"]({})(x, depth=d)      # any plausible output to score
    rows = []

    # --- each built-in, seconds per image
    for name, factory in BUILTINS.items():
        method = factory({})
        sec = timed(lambda: method(x, depth=d, reference=ref), repeats)
        rows.append(row(f"{name}: s/image 1024x1536", round(sec, 3), "s"))

    # --- metrics vs skimage (same float64 values fed to both)
    out = BUILTINS["scatter"]({})(x, depth=d)
    a = np.ascontiguousarray(out[0].permute(1, 2, 0).double().numpy())
    b = np.ascontiguousarray(ref[0].permute(1, 2, 0).double().numpy())

    def ours():
        return psnr(out, ref), ssim(out, ref)

    def theirs():
        return (peak_signal_noise_ratio(b, a, data_range=1.0),
                structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0, channel_axis=2))

    t_ours = timed(ours, repeats)
    t_sk = timed(theirs, repeats)
    (p1, s1), (p2, s2) = ours(), theirs()
    rows.append(row("PSNR+SSIM: s/image (ref: skimage)", round(t_ours, 3), "s", round(t_sk, 3),
                    round(t_sk / t_ours, 2)))
    rows.append(row("SSIM |ours - skimage|", f"{abs(float(s1[0]) - s2):.1e}", "", None, None))
    rows.append(row("PSNR |ours - skimage|", f"{abs(float(p1[0]) - p2):.1e}", "dB", None, None))

    # --- fast vs exact scatter on a centre crop with the full radius range
    ch, cw = (192, 288) if quick else (384, 576)
    y0, x0 = (H - ch) // 2, (W - cw) // 2
    p = SCATTER_DEFAULTS
    max_r = p["max_radius"]
    focus = estimate_focus(d)
    # K raised so the crop spans radii 0..32 like a full image would
    r = radius_map(d[..., y0:y0 + ch, x0:x0 + cw], 3 * p["K"], focus, max_r)
    xc = x[..., y0:y0 + ch, x0:x0 + cw]
    t_fast_crop = timed(lambda: scatter_fast(xc, r, p["gamma"], max_r), repeats)
    t0 = time.perf_counter()
    exact = scatter_exact(xc, r, p["gamma"], max_r)
    t_exact_crop = time.perf_counter() - t0
    fast = scatter_fast(xc, r, p["gamma"], max_r)
    rows.append(row(f"scatter fast vs exact PSNR ({ch}x{cw} crop, r<=32)",
                    round(float(psnr(fast, exact)[0]), 2), "dB", None, None))
    rows.append(row(f"scatter: crop s (ref: exact)", round(t_fast_crop, 3), "s",
                    round(t_exact_crop, 2), round(t_exact_crop / t_fast_crop, 1)))
    full_fast = next(r_["value"] for r_ in rows if r_["figure"].startswith("scatter: s/image"))
    extrap = t_exact_crop * (H * W) / (ch * cw)
    rows.append(row("scatter: s/image (ref: exact, extrapolated)", full_fast, "s",
                    round(extrap, 1), round(extrap / full_fast, 1)))
    if not quick:
        # The whole image with the default parameters, exact scatter included (~30 s on an idle
        # 2-core machine).
        r_full = radius_map(d, p["K"], focus, max_r)
        t0 = time.perf_counter()
        exact_full = scatter_exact(x, r_full, p["gamma"], max_r)
        t_exact_full = time.perf_counter() - t0
        fast_full = scatter_fast(x, r_full, p["gamma"], max_r)
        rows.append(row("scatter fast vs exact PSNR (full 1024x1536)",
                        round(float(psnr(fast_full, exact_full)[0]), 2), "dB", None, None))
        rows.append(row("scatter: s/image (ref: exact, measured)", full_fast, "s",
                        round(t_exact_full, 1), round(t_exact_full / full_fast, 1)))

    # The same two figures with one torch thread: on a shared, busy machine two OpenMP threads
    # wait on each other, and these rows show what the algorithms cost without that effect.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t1_ours = timed(ours, repeats)
        t1_sk = timed(theirs, repeats)
        t1_scatter = timed(lambda: BUILTINS["scatter"]({})(x, depth=d), repeats)
    finally:
        torch.set_num_threads(threads)
    rows.append(row("PSNR+SSIM, 1 torch thread: s (ref: skimage)", round(t1_ours, 3), "s",
                    round(t1_sk, 3), round(t1_sk / t1_ours, 2)))
    rows.append(row("scatter, 1 torch thread: s/image", round(t1_scatter, 3), "s"))
    rows.append(row("torch threads (default)", threads, "", None, None))
    return rows


def _print(rows: list[dict]) -> None:
    w = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{w}}  {'value':>10}  {'unit':<4} {'reference':>10}  {'ratio':>6}")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        ref = "" if r["reference"] is None else r["reference"]
        print(f"{r['figure']:<{w}}  {r['value']:>10}  {r['unit']:<4} {ref:>10}  {ratio:>6}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat, a smaller exact crop")
    _print(main(ap.parse_args().quick))
