"""Built-in methods: controls, blurs, depth handling, parameter checking."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from study.errors import StudyError
from study.render.builtins import BUILTINS, estimate_focus, gaussian_blur
from study.render.metrics import psnr
from study.render.scatter import radius_map, scatter_fast


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small tensors: on a busy machine, OpenMP hand-offs cost more than the work.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photo(h=64, w=96):
    img = data.astronaut()[::4, ::4][:h, :w]
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255


def ramp_depth(h=64, w=96):
    """Far background at the top, near at the bottom, a near subject in the middle."""
    yy = torch.linspace(0, 1, h)[:, None].expand(h, w)
    d = 0.1 + 0.4 * yy
    d = d.clone()
    d[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 0.9
    return d[None, None]


def test_names_and_flags():
    assert set(BUILTINS) == {"input", "reference", "gaussian", "depth-blend", "scatter"}
    flags = {name: (f({}).needs_depth, f({}).needs_reference) for name, f in BUILTINS.items()}
    assert flags == {"input": (False, False), "reference": (False, True), "gaussian": (False, False),
                     "depth-blend": (True, False), "scatter": (True, False)}
    for name, f in BUILTINS.items():
        assert f({}).name == name


def test_controls():
    x, ref = photo(), photo().flip(-1)
    assert torch.equal(BUILTINS["input"]({})(x), x)
    assert torch.equal(BUILTINS["reference"]({})(x, reference=ref), ref)
    with pytest.raises(StudyError, match="reference"):
        BUILTINS["reference"]({})(x)


@pytest.mark.parametrize("name", ["gaussian", "depth-blend", "scatter"])
def test_outputs_are_valid_images(name):
    x = photo().repeat(2, 1, 1, 1)
    out = BUILTINS[name]({})(x, depth=ramp_depth().repeat(2, 1, 1, 1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x)
    assert torch.allclose(out[0], out[1], atol=1e-5)


@pytest.mark.parametrize("name", ["depth-blend", "scatter"])
def test_depth_methods_need_depth(name):
    with pytest.raises(StudyError) as err:
        BUILTINS[name]({})(photo())
    assert "depth" in str(err.value) and err.value.hint


@pytest.mark.parametrize("name", ["depth-blend", "scatter"])
def test_subject_stays_sharp_background_blurs(name):
    x, d = photo(), ramp_depth()
    out = BUILTINS[name]({"focus": 0.9})(x, depth=d)
    subject = (slice(None), slice(None), slice(20, 44), slice(36, 60))
    background = (slice(None), slice(None), slice(0, 12), slice(None))
    assert float(psnr(out[subject], x[subject])[0]) > 40
    assert float(psnr(out[background], x[background])[0]) < 30


def test_depth_blend_uses_the_four_images():
    x, d = photo(), ramp_depth()
    # everything in focus: the input itself
    same = BUILTINS["depth-blend"]({"focus": 0.5})(x, depth=torch.full_like(d, 0.5))
    assert torch.allclose(same, x, atol=1e-6)
    # everything far out of focus: the 75 px blur (scaled to the image height)
    far = BUILTINS["depth-blend"]({"focus": 1.0, "K": 1000.0})(x, depth=torch.zeros_like(d))
    k = max(3, int(round(75 * 64 / 1024)) | 1)
    want = gaussian_blur(x, 0.3 * ((k - 1) * 0.5 - 1) + 0.8, k // 2)
    assert torch.allclose(far, want.clamp(0, 1), atol=1e-5)


def test_scatter_builtin_is_the_fast_scatter_with_scaled_lengths():
    x, d = photo(), ramp_depth()
    out = BUILTINS["scatter"]({"K": 40.0, "focus": 0.9, "max_radius": 16.0, "reference_height": 128})(x, depth=d)
    r = radius_map(d, 40.0 * 0.5, 0.9, 8.0)
    assert torch.allclose(out, scatter_fast(x, r, 2.2, 8.0), atol=1e-6)
    exact = BUILTINS["scatter"]({"K": 40.0, "focus": 0.9, "max_radius": 16.0, "reference_height": 128,
                                 "exact": True})(x, depth=d)
    assert float(psnr(out, exact)[0]) > 35


def test_depth_is_resized_and_validated():
    x = photo()
    small = torch.nn.functional.interpolate(ramp_depth(), size=(32, 48), mode="bilinear")
    out = BUILTINS["scatter"]({})(x, depth=small[:, 0])          # (N,H,W) accepted too
    assert out.shape == x.shape
    with pytest.raises(StudyError):
        BUILTINS["scatter"]({})(x, depth=torch.rand(2, 1, 64, 96))


def test_auto_focus_picks_the_subject():
    assert abs(float(estimate_focus(ramp_depth())[0]) - 0.9) < 1e-6


@pytest.mark.parametrize("name,params", [
    ("gaussian", {"sigma": -1}), ("gaussian", {"radius": 3}), ("scatter", {"gamma": 0}),
    ("scatter", {"focus": "middle"}), ("scatter", {"K": "big"}), ("depth-blend", {"kernel_sizes": [25, 44]}),
    ("input", {"sigma": 1.0}), ("depth-blend", {"focus": 1.5}),
])
def test_bad_params_are_user_errors(name, params):
    with pytest.raises(StudyError) as err:
        BUILTINS[name](params)
    assert err.value.where and err.value.hint


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["gaussian", "depth-blend", "scatter"])
def test_cuda_matches_cpu(name):
    x, d = photo(), ramp_depth()
    cpu = BUILTINS[name]({})(x, depth=d)
    gpu = BUILTINS[name]({})(x.cuda(), depth=d.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
