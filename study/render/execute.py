"""Running a method on one image: where it runs (device), how long it may take (timeout), how
a tensor method is fed (tiles, out-of-memory fallback, warm-up, timing) and what counts as a
valid output. A method that raises, hangs, or returns a bad image fails for that image (a hang:
for the rest of the run); nothing here touches files or the database.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from study.errors import StudyError
from study.render.external import CommandMethod
from study.render.plugins import Method, MethodFailure, TensorMethod, _short

# Outputs may overshoot [0, 1] by this much (rounding, fp16) before they count as wrong; they
# are clamped when written.
RANGE_TOLERANCE = 0.01
# Tile size used when a whole image runs out of GPU memory and no tile size is configured.
FALLBACK_TILE = 512
MIN_TILE = 16
WARMUP_CROP = 256


@dataclass
class Sample:
    image: Any                      # ImageRow
    rgb: np.ndarray                 # uint8 HxWx3
    reference: np.ndarray | None    # uint8 HxWx3
    depth: np.ndarray | None        # float32 HxW


def load_sample(image, need_depth: bool, need_reference: bool) -> Sample:
    from study.dataset import load_depth, load_rgb

    rgb = load_rgb(image.input_path)
    ref = load_rgb(image.reference_path) if need_reference else None
    depth = load_depth(image.depth_path) if (need_depth and image.depth_path) else None
    return Sample(image, rgb, ref, depth)


# ------------------------------------------------------------------ devices

def resolve_device(requested: str, env: dict[str, str] | None = None) -> str:
    import torch

    env = os.environ if env is None else env
    if requested not in ("auto", "cpu", "cuda"):
        raise StudyError(f"unknown device {requested!r}", where="--device / render.device",
                         hint='use "auto", "cpu" or "cuda"')
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise StudyError("CUDA was requested but this torch sees no CUDA device",
                         where="--device cuda / render.device",
                         hint="use --device cpu (or auto), or install a CUDA build of torch "
                              "on a machine with an NVIDIA GPU")
    if requested == "cpu" or not has_cuda:
        return "cpu"
    local = int(env.get("LOCAL_RANK", "0") or 0)
    return f"cuda:{local % max(1, torch.cuda.device_count())}"


def cpu_name() -> str:
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine() or "CPU"


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize(torch.device(device))



# ------------------------------------------------------------------ calling a method

def call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
    """`fn()` in a daemon thread; MethodFailure(fatal) if it has not returned in time. A hung
    Python call cannot be killed, so its thread is abandoned (daemon: it never blocks exit)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="study-method", daemon=True).start()
    if not done.wait(timeout if timeout and timeout > 0 else None):
        raise MethodFailure(f"timed out after {timeout:g} s", fatal=True)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _is_oom(exc: BaseException) -> bool:
    import torch
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError)
        and ("out of memory" in text or "can't allocate memory" in text))


class TensorRunner:
    """Runs a tensor method on one image on its device: tiles, OOM fallback, timing."""

    def __init__(self, method: TensorMethod, device: str, tile: int, overlap: int,
                 timeout: float | None):
        self.method = method
        self.device = device
        self.tile = int(tile or 0)
        self.overlap = int(overlap or 0)
        self.timeout = timeout
        self.notes: list[str] = []

    def tensors(self, sample: Sample, crop: int | None = None):
        import torch

        def t(a: np.ndarray | None, scale: float) -> Any:
            if a is None:
                return None
            if crop:
                a = a[:crop, :crop]
            x = torch.from_numpy(np.ascontiguousarray(a))
            x = x.unsqueeze(-1) if x.dim() == 2 else x
            return (x.permute(2, 0, 1).unsqueeze(0).to(self.device, non_blocking=True)
                    .float().div_(scale))

        m = self.method
        return (t(sample.rgb, 255.0),
                t(sample.depth, 1.0) if m.needs_depth else None,
                t(sample.reference, 255.0) if m.needs_reference else None)

    def _forward(self, x, depth, reference):
        from study.render.tiles import tiled

        fn = self.method.forward
        if self.tile > 0:
            return tiled(lambda a, depth=None, reference=None: fn(a, depth, reference), x,
                         self.tile, self.overlap, depth=depth, reference=reference)
        return fn(x, depth, reference)

    def timed(self, x, depth, reference) -> tuple[Any, float]:
        """Output and seconds of one call, CUDA synchronised. Out of memory, it retries in
        smaller and smaller tiles; only the call that succeeds is timed."""
        import torch

        while True:
            try:
                _sync(self.device)
                t0 = time.perf_counter()
                y = self._forward(x, depth, reference)
                _sync(self.device)
                return y, time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001
                if not _is_oom(exc):
                    raise
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                if self.method.kind != "python":
                    # Built-ins look at the whole depth map (focus); tiles would change them.
                    raise MethodFailure(f"out of memory: {_short(exc)}") from None
                smallest = max(MIN_TILE, 2 * self.overlap + 16)
                new = self.tile // 2 if self.tile else FALLBACK_TILE
                while new >= max(x.shape[-2:]) and new // 2 >= smallest:
                    new //= 2
                if new < smallest or (self.tile and new >= self.tile):
                    raise MethodFailure(f"out of memory even in {self.tile or 'whole-image'}"
                                        f" tiles: {_short(exc)}") from None
                self.notes.append(f"out of memory; ran in {new}px tiles")
                self.tile = new

    def warm_up(self, sample: Sample) -> None:
        """One untimed call on a crop, so one-off costs (lazy init, kernels, allocator) do
        not count as the first image's runtime. Errors here are left to the real call."""
        args = self.tensors(sample, crop=WARMUP_CROP)
        try:
            call_with_timeout(lambda: self.timed(*args), self.timeout)
        except MethodFailure:
            raise
        except Exception:  # noqa: BLE001
            pass

    def run(self, sample: Sample) -> tuple[Any, float]:
        args = self.tensors(sample)
        return call_with_timeout(lambda: self.timed(*args), self.timeout)


def check_output(y: Any, h: int, w: int) -> Any:
    """The output as a (1,3,H,W) float tensor in [0,1], or MethodFailure saying what is wrong."""
    import torch

    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    if not torch.is_tensor(y):
        raise MethodFailure(f"returned {type(y).__name__}, expected a (1,3,{h},{w}) tensor")
    if y.dim() == 3:
        y = y.unsqueeze(0)
    if tuple(y.shape) != (1, 3, h, w):
        raise MethodFailure(f"returned shape {tuple(y.shape)}, expected (1, 3, {h}, {w})")
    y = y.float()
    finite = torch.isfinite(y)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise MethodFailure(f"returned {bad} non-finite value(s) (NaN or inf)")
    lo, hi = float(y.min()), float(y.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MethodFailure(f"returned values outside [0, 1] (min {lo:.4g}, max {hi:.4g})")
    return y


def to_uint8(y: Any) -> np.ndarray:
    return (y[0].clamp(0, 1).mul(255).round().to(dtype=__import__("torch").uint8)
            .permute(1, 2, 0).contiguous().cpu().numpy())




def run_one(method: Method, runner: TensorRunner | None, sample: Sample, timeout: float,
            dev: str, border: int):
    """(uint8 output, runtime or None, (PSNR, SSIM) or None) of the method on one sample."""
    from study.render.metrics import scores

    h, w = sample.rgb.shape[:2]
    metrics = None
    if runner is not None:
        y, runtime = runner.run(sample)
        y = check_output(y, h, w)
        if dev.startswith("cuda") and sample.reference is not None:
            # Score on the GPU, where it is cheap; the CPU writer thread then only encodes.
            out = to_uint8(y)
            metrics = scores(out, sample.reference, border, dev)
            return out, runtime, metrics
        return to_uint8(y), runtime, metrics
    if isinstance(method, CommandMethod):
        out, runtime = method.run(sample.image.image_id, sample.rgb, sample.depth, timeout)
    else:
        out, runtime = method.load(sample.image.image_id), None
    if out.shape[:2] != (h, w):
        raise MethodFailure(f"output is {out.shape[1]}x{out.shape[0]}, the input is {w}x{h}")
    return out, runtime, metrics
