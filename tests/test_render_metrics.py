"""PSNR and SSIM against scikit-image on random and real photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from study.render.metrics import psnr, ssim


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=2)


def to_t(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].to(dtype)


def back(t: torch.Tensor) -> np.ndarray:
    """The exact values the torch code sees, as float64 for skimage."""
    return t[0].permute(1, 2, 0).double().numpy()


def pairs():
    rng = np.random.default_rng(1)
    a = rng.random((64, 96, 3))
    yield "random-noise", a, np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    yield "random-independent", rng.random((48, 80, 3)), rng.random((48, 80, 3))
    img = data.astronaut()[100:260, 150:370] / 255.0
    yield "astronaut-blur", img, gaussian_filter(img, (2, 2, 0))
    cof = data.coffee()[:128, :192] / 255.0
    yield "coffee-jpeg-ish", cof, np.clip(np.round(cof * 31) / 31, 0, 1)
    cat = data.chelsea()[:96, :128] / 255.0
    yield "chelsea-shift", cat, np.roll(cat, 1, axis=1)


@pytest.mark.parametrize("name,a,b", list(pairs()), ids=[p[0] for p in pairs()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_skimage(name, a, b, dtype):
    ta, tb = to_t(a, dtype), to_t(b, dtype)
    na, nb = back(ta), back(tb)
    assert abs(float(ssim(ta, tb)[0]) - sk_ssim(na, nb)) < 1e-5
    assert abs(float(psnr(ta, tb)[0]) - peak_signal_noise_ratio(na, nb, data_range=1.0)) < 1e-4


def test_border_crop_matches_skimage_on_the_cropped_image():
    img = data.rocket()[:120, :160] / 255.0
    other = gaussian_filter(img, (1.5, 1.5, 0))
    ta, tb = to_t(img), to_t(other)
    na, nb = back(ta)[8:-8, 8:-8], back(tb)[8:-8, 8:-8]
    assert abs(float(ssim(ta, tb, border=8)[0]) - sk_ssim(na, nb)) < 1e-5
    assert abs(float(psnr(ta, tb, border=8)[0]) - peak_signal_noise_ratio(na, nb, data_range=1.0)) < 1e-4
    # the crop matters: the uncropped figure differs
    assert abs(float(ssim(ta, tb)[0]) - float(ssim(ta, tb, border=8)[0])) > 1e-6


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(2)
    xs = torch.from_numpy(rng.random((3, 3, 40, 56))).float()
    ys = (xs + 0.05 * torch.from_numpy(rng.standard_normal((3, 3, 40, 56))).float()).clamp(0, 1)
    batch_s, batch_p = ssim(xs, ys), psnr(xs, ys)
    assert batch_s.shape == (3,) and batch_p.shape == (3,)
    for i in range(3):
        assert float(batch_s[i]) == pytest.approx(float(ssim(xs[i:i + 1], ys[i:i + 1])[0]), abs=1e-12)
        assert float(batch_p[i]) == pytest.approx(float(psnr(xs[i:i + 1], ys[i:i + 1])[0]), abs=1e-9)


def test_identical_images():
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.isinf(psnr(x, x)).all()


def test_tall_image_spans_several_row_bands():
    # taller than one CPU band of rows, with a height that leaves a partial last band
    rng = np.random.default_rng(3)
    a = rng.random((203, 40, 3))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    ta, tb = to_t(a), to_t(b)
    assert abs(float(ssim(ta, tb)[0]) - sk_ssim(back(ta), back(tb))) < 1e-5


def test_bad_inputs():
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 21))
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError):
        psnr(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20), border=10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, y = torch.rand(2, 3, 100, 130), torch.rand(2, 3, 100, 130)
    assert torch.allclose(ssim(x.cuda(), y.cuda()).cpu(), ssim(x, y), atol=1e-6)
    assert torch.allclose(psnr(x.cuda(), y.cuda()).cpu(), psnr(x, y), atol=1e-6)
