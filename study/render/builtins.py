"""Built-in methods: controls (input, reference) and classical renderers (gaussian, depth-blend,
scatter), all as device-agnostic torch code on (N,3,H,W) float tensors in [0,1].

Lengths (sigma, kernel sizes, K, max_radius) are given for a 1024-pixel-tall image, the EBB!
resolution, and scaled by H / reference_height so that a method looks the same on a downscaled
dataset (the demo data is 512 px tall). Set ``reference_height = 0`` to use them as pixels.

Focus disparity (``focus = "auto"``, the default): the 90th percentile of the disparity in the
central window (middle half of the height and of the width). Bokeh photographs put the subject
near the centre and in front of the background, and a high percentile picks it even where it
fills only part of the window (a thin rocket) while ignoring a few stray near pixels; a number in
[0,1] fixes the focus instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from study.errors import StudyError
from study.render import scatter as _scatter

REFERENCE_HEIGHT = 1024


# ---------------------------------------------------------------- helpers

def gaussian_taps(sigma: float, radius: int | None = None, *, dtype=torch.float32,
                  device=None) -> torch.Tensor:
    if radius is None:
        radius = max(1, int(math.ceil(3.0 * sigma)))
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (r / max(sigma, 1e-6)) ** 2)
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of (N,C,H,W) with reflected borders (replicated where the image
    is smaller than the kernel)."""
    if sigma <= 0:
        return x
    taps = gaussian_taps(sigma, radius, dtype=x.dtype, device=x.device)
    k = taps.numel()
    p = k // 2
    n, c, h, w = x.shape
    mode = "reflect" if p < h and p < w else "replicate"
    y = F.pad(x, (p, p, p, p), mode=mode)
    y = y.reshape(n * c, 1, h + 2 * p, w + 2 * p)
    y = F.conv2d(y, taps.view(1, 1, 1, k))
    y = F.conv2d(y, taps.view(1, 1, k, 1))
    return y.reshape(n, c, h, w)


def opencv_sigma(ksize: int) -> float:
    """The sigma OpenCV's GaussianBlur uses for a k x k kernel when none is given."""
    return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


FOCUS_PERCENTILE = 90.0


def estimate_focus(depth: torch.Tensor) -> torch.Tensor:
    """(N,) focus disparity: the 90th percentile of disparity in the central window (middle
    half of H and of W), i.e. the nearest large thing near the centre: the subject."""
    h, w = depth.shape[-2:]
    win = depth[..., h // 4: h - h // 4, w // 4: w - w // 4].flatten(1)
    q = torch.quantile(win.float(), FOCUS_PERCENTILE / 100.0, dim=1)
    return q.to(depth.dtype)


def _as_depth(depth: torch.Tensor | None, x: torch.Tensor, method: str) -> torch.Tensor:
    if depth is None:
        raise StudyError(f"method {method!r} needs a depth map for every image, and none was given",
                         where=f"methods.{method}",
                         hint="add depth maps to the dataset (EBB!: test/original_depth/<id>.png, "
                              "or a depth column in the manifest), or use a method without depth")
    if depth.dim() == 3:
        depth = depth.unsqueeze(1)
    if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[0] != x.shape[0]:
        raise StudyError(f"depth map has shape {tuple(depth.shape)}; expected (N,1,H,W) with "
                         f"N = {x.shape[0]}", where=f"methods.{method}")
    depth = depth.to(device=x.device, dtype=x.dtype)
    if depth.shape[-2:] != x.shape[-2:]:
        depth = F.interpolate(depth, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return depth.clamp(0.0, 1.0)


def _focus(params_focus: Any, depth: torch.Tensor) -> torch.Tensor:
    if params_focus == "auto":
        return estimate_focus(depth)
    return torch.full((depth.shape[0],), float(params_focus), dtype=depth.dtype, device=depth.device)


def _scale(h: int, reference_height: float) -> float:
    return h / reference_height if reference_height and reference_height > 0 else 1.0


# ---------------------------------------------------------------- parameters

def _params(name: str, given: dict | None, defaults: dict[str, Any],
            check: dict[str, Callable[[Any], bool]] | None = None) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise StudyError(f"built-in method {name!r} has no parameter {', '.join(map(repr, unknown))}",
                         where=f"[methods.*.params] for builtin {name!r}",
                         hint=f"known parameters: {', '.join(sorted(defaults)) or 'none'}")
    out = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        ok = True
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)) and key != "focus":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and check and key in check:
            ok = check[key](value)
        if not ok:
            raise StudyError(f"parameter {key!r} of built-in method {name!r} has the invalid value "
                             f"{value!r}", where=f"[methods.*.params] {key}",
                             hint=f"default: {default!r}")
        out[key] = value
    return out


def _focus_ok(v: Any) -> bool:
    return v == "auto" or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1)


def _positive(v: Any) -> bool:
    return v > 0


def _nonneg(v: Any) -> bool:
    return v >= 0


# ---------------------------------------------------------------- methods

@dataclass
class BuiltinMethod:
    """A built-in method: call it on a batch; ``params`` are the effective parameters."""
    name: str
    needs_depth: bool = False
    needs_reference: bool = False
    params: dict = field(default_factory=dict)

    def __call__(self, x: torch.Tensor, *, depth: torch.Tensor | None = None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise StudyError(f"method {self.name!r} expects images (N,3,H,W), got {tuple(x.shape)}")
        with torch.no_grad():
            return self.run(x, depth=depth, reference=reference)

    def run(self, x, *, depth=None, reference=None):  # pragma: no cover - overridden
        raise NotImplementedError


class InputMethod(BuiltinMethod):
    def run(self, x, *, depth=None, reference=None):
        return x


class ReferenceMethod(BuiltinMethod):
    def run(self, x, *, depth=None, reference=None):
        if reference is None:
            raise StudyError("method 'reference' needs the reference images, and none were given",
                             where="methods (builtin = \"reference\")",
                             hint="the dataset must have a reference (bokeh) image for every image")
        if reference.shape != x.shape:
            raise StudyError(f"reference has shape {tuple(reference.shape)} but the input has "
                             f"{tuple(x.shape)}", where="dataset",
                             hint="input and reference images must have the same size")
        return reference.to(device=x.device, dtype=x.dtype)


class GaussianMethod(BuiltinMethod):
    def run(self, x, *, depth=None, reference=None):
        s = _scale(x.shape[-2], self.params["reference_height"])
        return gaussian_blur(x, self.params["sigma"] * s).clamp(0.0, 1.0)


class DepthBlendMethod(BuiltinMethod):
    """CVL-IITM's output form, I = W1 I + W2 G(I,25) + W3 G(I,45) + W4 G(I,75), with the weights
    from depth: the defocus |disp - focus| is turned into the Gaussian sigma that best matches a
    disk of radius K |disp - focus| (sigma = radius / 2), and each pixel's weights are soft
    (linear) bins over the sigmas of the four images (0 for the input; OpenCV's sigma for each
    kernel size), so every pixel mixes the two blur levels that bracket its own."""

    def run(self, x, *, depth=None, reference=None):
        depth = _as_depth(depth, x, self.name)
        p = self.params
        s = _scale(x.shape[-2], p["reference_height"])
        focus = _focus(p["focus"], depth).view(-1, 1, 1, 1)
        want = 0.5 * p["K"] * s * (depth - focus).abs()           # wanted sigma per pixel
        sizes = [max(3, int(round(k * s)) | 1) for k in p["kernel_sizes"]]
        sigmas = [0.0] + [opencv_sigma(k) for k in sizes]
        images = [x] + [gaussian_blur(x, opencv_sigma(k), k // 2) for k in sizes]
        lv = torch.tensor(sigmas, dtype=x.dtype, device=x.device)
        want = want.clamp(max=sigmas[-1])
        j = (torch.bucketize(want.contiguous(), lv, right=True) - 1).clamp(0, len(sigmas) - 2)
        t = ((want - lv[j]) / (lv[j + 1] - lv[j])).clamp(0.0, 1.0)
        out = torch.zeros_like(x)
        for i, img in enumerate(images):
            wgt = torch.where(j == i, 1.0 - t, torch.zeros_like(t))
            if i > 0:
                wgt = wgt + torch.where(j == i - 1, t, torch.zeros_like(t))
            out += wgt * img
        return out.clamp(0.0, 1.0)


class ScatterMethod(BuiltinMethod):
    def run(self, x, *, depth=None, reference=None):
        depth = _as_depth(depth, x, self.name)
        p = self.params
        s = _scale(x.shape[-2], p["reference_height"])
        focus = _focus(p["focus"], depth)
        max_r = p["max_radius"] * s
        radius = _scatter.radius_map(depth, p["K"] * s, focus, max_r)
        if p["exact"]:
            return _scatter.scatter_exact(x, radius, p["gamma"], max_r)
        return _scatter.scatter_fast(x, radius, p["gamma"], max_r)


# Defaults were tuned on the demo data (study.render.demodata, 512 px) so that the expected
# order of closeness to the reference holds: mean PSNR / SSIM there are scatter 30.8 dB / 0.970,
# depth-blend 28.3 / 0.952, gaussian 24.5 / 0.811, input 23.7 / 0.788.
GAUSSIAN_DEFAULTS = {"sigma": 4.0, "reference_height": REFERENCE_HEIGHT}
DEPTH_BLEND_DEFAULTS = {"K": 64.0, "focus": "auto", "kernel_sizes": [25, 45, 75],
                        "reference_height": REFERENCE_HEIGHT}
SCATTER_DEFAULTS = {"K": 64.0, "gamma": 2.2, "focus": "auto", "max_radius": 32.0,
                    "reference_height": REFERENCE_HEIGHT, "exact": False}


def make_input(params: dict | None = None) -> BuiltinMethod:
    return InputMethod("input", params=_params("input", params, {}))


def make_reference(params: dict | None = None) -> BuiltinMethod:
    return ReferenceMethod("reference", needs_reference=True,
                           params=_params("reference", params, {}))


def make_gaussian(params: dict | None = None) -> BuiltinMethod:
    p = _params("gaussian", params, GAUSSIAN_DEFAULTS,
                {"sigma": _nonneg, "reference_height": _nonneg})
    return GaussianMethod("gaussian", params=p)


def _kernel_sizes_ok(v: Any) -> bool:
    return (isinstance(v, list) and len(v) >= 1
            and all(isinstance(k, int) and not isinstance(k, bool) and k >= 3 and k % 2 == 1 for k in v)
            and v == sorted(set(v)))


def make_depth_blend(params: dict | None = None) -> BuiltinMethod:
    p = _params("depth-blend", params, DEPTH_BLEND_DEFAULTS,
                {"K": _nonneg, "focus": _focus_ok, "kernel_sizes": _kernel_sizes_ok,
                 "reference_height": _nonneg})
    return DepthBlendMethod("depth-blend", needs_depth=True, params=p)


def make_scatter(params: dict | None = None) -> BuiltinMethod:
    p = _params("scatter", params, SCATTER_DEFAULTS,
                {"K": _nonneg, "gamma": _positive, "focus": _focus_ok, "max_radius": _nonneg,
                 "reference_height": _nonneg})
    return ScatterMethod("scatter", needs_depth=True, params=p)


BUILTINS: dict[str, Callable[[dict], BuiltinMethod]] = {
    "input": make_input,
    "reference": make_reference,
    "gaussian": make_gaussian,
    "depth-blend": make_depth_blend,
    "scatter": make_scatter,
}
