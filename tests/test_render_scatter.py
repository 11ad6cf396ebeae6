"""The fast scatter renderer against the exact scatter, on crops of real photographs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from study.render.metrics import psnr
from study.render.scatter import (default_levels, radius_map, scatter_exact, scatter_fast,
                                  support_radius)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Thousands of tiny tensor ops: on a busy machine, OpenMP hand-offs cost more than the work.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def naive(x: np.ndarray, radius: np.ndarray, gamma: float, max_radius: float) -> np.ndarray:
    """The formula written out pixel by pixel (tiny images only)."""
    c, h, w = x.shape
    R = support_radius(max_radius)
    num = np.zeros((c, h, w))
    den = np.zeros((h, w))
    for py in range(h):
        for px in range(w):
            r = radius[py, px]
            for qy in range(h):
                for qx in range(w):
                    d = math.hypot(qy - py, qx - px)
                    if d > R:
                        continue
                    wgt = (0.5 + 0.5 * math.tanh(4 * (r - d))) / (r * r + 0.2)
                    num[:, qy, qx] += wgt * x[:, py, px] ** gamma
                    den[qy, qx] += wgt
    return (num / den) ** (1 / gamma)


def test_exact_is_the_formula():
    rng = np.random.default_rng(0)
    x = rng.random((3, 7, 9))
    radius = rng.random((7, 9)) * 3
    want = naive(x, radius, 2.2, 3.0)
    got = scatter_exact(torch.from_numpy(x)[None], torch.from_numpy(radius)[None, None], 2.2, 3.0)
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-10)


def motorcycle():
    left, _, disp = data.stereo_motorcycle()
    bad = ~np.isfinite(disp)
    disp = disp[tuple(ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True))]
    disp = (disp - disp.min()) / (disp.max() - disp.min())
    x = torch.from_numpy(left[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
    return x, torch.from_numpy(disp.astype(np.float32))[None, None]


def astronaut():
    x = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1)[None].float() / 255
    yy = torch.linspace(0, 1, 512)[:, None].expand(512, 512)
    return x, (0.1 + 0.6 * yy)[None, None].contiguous()


CROPS = [("motorcycle", 150, 250, 56.0), ("motorcycle", 250, 100, 40.0),
         ("astronaut", 100, 100, 200.0), ("astronaut", 300, 300, 320.0)]


@pytest.fixture(scope="module")
def photos():
    return {"motorcycle": motorcycle(), "astronaut": astronaut()}


@pytest.mark.parametrize("name,y0,x0,K", CROPS)
def test_fast_is_faithful_to_exact_on_crops(photos, name, y0, x0, K):
    x, disp = photos[name]
    xc, dc = x[..., y0:y0 + 64, x0:x0 + 96], disp[..., y0:y0 + 64, x0:x0 + 96]
    focus = float(dc[..., 24:40, 40:56].median())
    max_r = 16.0
    r = radius_map(dc, K, focus, max_r)
    assert float(r.max()) > 4 and float(r.min()) < 1       # both sharp and blurred pixels
    exact = scatter_exact(xc, r, 2.2, max_r)
    fast = scatter_fast(xc, r, 2.2, max_r)
    assert fast.shape == xc.shape and fast.dtype == xc.dtype
    assert float(psnr(fast, exact)[0]) >= 35.0
    # and the renderer does something: far from the input
    assert float(psnr(xc, exact)[0]) < float(psnr(fast, exact)[0]) - 10


def test_full_support_radius_32_on_a_crop(photos):
    x, disp = photos["motorcycle"]
    xc, dc = x[..., 120:200, 200:312], disp[..., 120:200, 200:312]
    r = radius_map(dc, 120.0, float(dc.max()), 32.0)
    assert float(r.max()) == 32.0
    exact = scatter_exact(xc, r, 2.2, 32.0)
    assert float(psnr(scatter_fast(xc, r, 2.2, 32.0), exact)[0]) >= 35.0


def test_in_focus_is_sharp_and_constant_stays_constant():
    x = torch.rand(1, 3, 24, 32)
    zero = torch.zeros(1, 1, 24, 32)
    out = scatter_fast(x, zero, 2.2, 8.0)
    assert float(psnr(out, x)[0]) > 40
    flat = torch.full((1, 3, 24, 32), 0.3)
    r = torch.rand(1, 1, 24, 32) * 8
    assert torch.allclose(scatter_fast(flat, r, 2.2, 8.0), flat, atol=1e-4)
    assert torch.allclose(scatter_exact(flat, r, 2.2, 8.0), flat, atol=1e-6)


def test_batch_and_float64():
    x = torch.rand(2, 3, 20, 28, dtype=torch.float64)
    r = torch.rand(2, 1, 20, 28, dtype=torch.float64) * 5
    out = scatter_fast(x, r, 2.0, 5.0)
    assert out.dtype == torch.float64
    for i in range(2):
        one = scatter_fast(x[i:i + 1], r[i:i + 1], 2.0, 5.0)
        assert torch.allclose(out[i:i + 1], one, atol=1e-9)
    assert float(psnr(out, scatter_exact(x, r, 2.0, 5.0)).min()) > 35


def test_levels():
    lv = default_levels(32.0)
    assert lv[0] == 0.0 and lv[-1] == 32.0 and lv == sorted(lv) and len(lv) <= 14
    assert default_levels(0.0) == [0.0]
    assert default_levels(1.2)[-1] == 1.2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.rand(1, 3, 64, 80)
    r = torch.rand(1, 1, 64, 80) * 12
    assert torch.allclose(scatter_fast(x.cuda(), r.cuda(), 2.2, 12.0).cpu(),
                          scatter_fast(x, r, 2.2, 12.0), atol=1e-4)
