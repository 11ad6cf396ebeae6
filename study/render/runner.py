"""`study render`: every method on every selected image, at full resolution.

Work is the list of (method, image) pairs, methods in study.toml order and images in study
order; `--shard K/N` takes every N-th pair starting at the K-th, so N processes (or torchrun
ranks) cover the list exactly once. Done pairs (a 'done' row in `renders` and its file) are
skipped unless --force. Each method is loaded once and runs image after image while a loader
thread decodes the next image and a writer thread encodes, hashes, scores and records the
previous one. A method that raises, hangs, or returns a bad image fails for that image (a hang:
for the rest of the run) and the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import platform
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np

from study.errors import StudyError
from study.render.plugins import (CommandMethod, FolderMethod, Method, MethodFailure,
                                  TensorMethod, _short, check_specs, load_method, method_specs,
                                  sync_methods)
from study.studydir import Study, pass_study

# Outputs may overshoot [0, 1] by this much (rounding, fp16) before they count as wrong; they
# are clamped when written.
RANGE_TOLERANCE = 0.01
# Tile size used when a whole image runs out of GPU memory and no tile size is configured.
FALLBACK_TILE = 512
MIN_TILE = 16
WARMUP_CROP = 256


@dataclass(frozen=True)
class Work:
    method: str
    image_id: str


@dataclass
class Sample:
    image: Any                      # ImageRow
    rgb: np.ndarray                 # uint8 HxWx3
    reference: np.ndarray | None    # uint8 HxWx3
    depth: np.ndarray | None        # float32 HxW


@dataclass
class RenderResult:
    rendered: int = 0
    skipped: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    shard: tuple[int, int] = (1, 1)
    device: str = "cpu"

    @property
    def failed(self) -> int:
        return len(self.failures)


# ------------------------------------------------------------------ work list and shards

def work_list(methods: list[str], image_ids: list[str]) -> list[Work]:
    return [Work(m, i) for m in methods for i in image_ids]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise StudyError(f"--shard {text!r} is not of the form K/N", where="--shard",
                         hint="for example --shard 1/4 ... --shard 4/4") from None
    if n < 1 or not 1 <= k <= n:
        raise StudyError(f"--shard {text}: K must be between 1 and N", where="--shard",
                         hint="shards are numbered from 1: --shard 1/2 and --shard 2/2")
    return k, n


def shard_from_env(env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """The shard torchrun's RANK and WORLD_SIZE pick (1-based), or None outside torchrun."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        return None
    if world < 1 or not 0 <= rank < world:
        return None
    return rank + 1, world


def take_shard(items: list[Work], k: int, n: int) -> list[Work]:
    # Round robin, so an expensive method is spread over every shard.
    return items[k - 1::n]


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


# ------------------------------------------------------------------ storage

def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def output_path(study: Study, method: str, image_id: str) -> Path:
    return study.renders_dir / method / f"{image_id}.png"


def _relpath(study: Study, path: Path) -> str:
    try:
        return str(path.relative_to(study.root))
    except ValueError:
        return str(path)


def record_done(conn, study: Study, method: str, image_id: str, path: Path, sha: str,
                h: int, w: int, runtime: float | None, device: str,
                psnr: float | None, ssim: float | None, border: int) -> None:
    conn.execute(
        "INSERT INTO renders (method, image_id, status, path, sha256, width, height, runtime_s, "
        "device, error, psnr, ssim, border_crop, finished_at) VALUES "
        "(?,?,'done',?,?,?,?,?,?,NULL,?,?,?,strftime('%Y-%m-%dT%H:%M:%fZ','now')) "
        "ON CONFLICT(method, image_id) DO UPDATE SET status='done', path=excluded.path, "
        "sha256=excluded.sha256, width=excluded.width, height=excluded.height, "
        "runtime_s=excluded.runtime_s, device=excluded.device, error=NULL, "
        "psnr=excluded.psnr, ssim=excluded.ssim, border_crop=excluded.border_crop, "
        "finished_at=excluded.finished_at",
        (method, image_id, _relpath(study, path), sha, w, h, runtime, device, psnr, ssim,
         border if psnr is not None else None))


def record_failed(conn, study: Study, method: str, image_id: str, error: str,
                  device: str | None) -> None:
    stale = output_path(study, method, image_id)
    if stale.exists():
        stale.unlink()  # a failed re-run must not leave an older output looking valid
    conn.execute(
        "INSERT INTO renders (method, image_id, status, path, sha256, width, height, runtime_s, "
        "device, error, psnr, ssim, border_crop, finished_at) VALUES "
        "(?,?,'failed',NULL,NULL,NULL,NULL,NULL,?,?,NULL,NULL,NULL,"
        "strftime('%Y-%m-%dT%H:%M:%fZ','now')) "
        "ON CONFLICT(method, image_id) DO UPDATE SET status='failed', path=NULL, sha256=NULL, "
        "width=NULL, height=NULL, runtime_s=NULL, device=excluded.device, error=excluded.error, "
        "psnr=NULL, ssim=NULL, border_crop=NULL, finished_at=excluded.finished_at",
        (method, image_id, device, error))


def done_pairs(conn, study: Study) -> set[tuple[str, str]]:
    out = set()
    for r in conn.execute("SELECT method, image_id, path FROM renders WHERE status='done'"):
        if r["path"] and study.resolve(r["path"]).is_file():
            out.add((r["method"], r["image_id"]))
    return out


def scores(rgb: np.ndarray, reference: np.ndarray, border: int,
           device: str = "cpu") -> tuple[float | None, float | None]:
    """PSNR and SSIM of a uint8 output against the uint8 reference; None when not computable."""
    import torch

    from study.render.metrics import psnr_ssim

    def t(a: np.ndarray):
        return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).to(device).float().div_(255)

    try:
        x, y = t(rgb), t(reference)
        p, q = psnr_ssim(x, y, border)
        return float(p[0]), float(q[0])
    except ValueError:
        return None, None


# ------------------------------------------------------------------ the engine

class _Recorder:
    """The one thread that writes files and rows: SQLite transactions stay short and ordered."""

    def __init__(self, study: Study, device_label: str, border: int, echo: Callable):
        self.study = study
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="study-writer")
        self.conn = None
        self.device_label = device_label
        self.border = border
        self.echo = echo
        self.result = RenderResult()
        self.pending: list[Future] = []
        self.lock = threading.Lock()

    def _conn(self):
        if self.conn is None:
            self.conn = self.study.connect()
        return self.conn

    def submit(self, fn: Callable, *args: Any) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        # Keep at most a few encodes in flight so memory stays bounded.
        while len(self.pending) > 2:
            self.pending.pop(0).result()

    def done(self, method: str, sample: Sample, out: np.ndarray, runtime: float | None,
             device: str, metrics: tuple[float | None, float | None] | None = None) -> None:
        image = sample.image
        data = encode_png(out)
        path = output_path(self.study, method, image.image_id)
        write_atomic(path, data)
        if metrics is None:
            metrics = (scores(out, sample.reference, self.border)
                       if sample.reference is not None else (None, None))
        self._conn().execute("BEGIN IMMEDIATE")
        try:
            record_done(self._conn(), self.study, method, image.image_id, path,
                        hashlib.sha256(data).hexdigest(), out.shape[0], out.shape[1], runtime,
                        device, metrics[0], metrics[1], self.border)
            self._conn().execute("COMMIT")
        except BaseException:
            self._conn().execute("ROLLBACK")
            raise
        with self.lock:
            self.result.rendered += 1

    def failed(self, method: str, image_id: str, error: str, device: str | None) -> None:
        self._conn().execute("BEGIN IMMEDIATE")
        try:
            record_failed(self._conn(), self.study, method, image_id, error, device)
            self._conn().execute("COMMIT")
        except BaseException:
            self._conn().execute("ROLLBACK")
            raise
        with self.lock:
            self.result.failures.append((method, image_id, error))

    def close(self) -> None:
        try:
            for f in self.pending:
                f.result()
        finally:
            self.pool.shutdown(wait=True)
            if self.conn is not None:
                self.conn.close()


def _load_sample(image, need_depth: bool, need_reference: bool) -> Sample:
    from study.dataset import load_depth, load_rgb

    rgb = load_rgb(image.input_path)
    ref = load_rgb(image.reference_path) if need_reference else None
    depth = load_depth(image.depth_path) if (need_depth and image.depth_path) else None
    return Sample(image, rgb, ref, depth)


def render_study(study: Study, methods: list[str] | None = None, device: str | None = None,
                 shard: tuple[int, int] | None = None, force: bool = False,
                 timeout: float | None = None, echo: Callable[[str], None] | None = None,
                 progress: bool | None = None) -> RenderResult:
    """Render the study's work (or this shard of it). Never raises for a method's failure."""
    from study.dataset import selected_images

    if echo is None:
        from tqdm import tqdm

        def echo(msg: str) -> None:
            # Through tqdm, so a message does not tear a progress bar in two.
            tqdm.write(msg, file=sys.stderr)
    cfg = dataclasses.asdict(study.settings.render)
    specs = method_specs(study)
    names = list(specs) if not methods else list(dict.fromkeys(methods))
    unknown = [m for m in names if m not in specs]
    if unknown:
        raise StudyError(f"unknown method(s): {', '.join(unknown)}", where="--methods",
                         hint=f"configured in study.toml: {', '.join(specs) or 'none'}")
    if not names:
        raise StudyError("study.toml declares no methods", where=str(study.root / "study.toml"),
                         hint="add a [methods.NAME] table")
    check_specs(study, names)
    dev = resolve_device(device or cfg.get("device", "auto"))
    if shard is None:
        shard = shard_from_env() or (1, 1)
    k, n = shard
    timeout = float(timeout if timeout is not None else cfg.get("timeout_s", 600))
    border = int(cfg.get("border_crop", 0) or 0)
    images = selected_images(study)
    by_id = {im.image_id: im for im in images}
    mine = take_shard(work_list(names, [im.image_id for im in images]), k, n)

    conn = study.connect()
    try:
        sync_methods(study, conn)
        done = set() if force else done_pairs(conn, study)
    finally:
        conn.close()
    todo = [w for w in mine if (w.method, w.image_id) not in done]
    label = device_name(dev)
    rec = _Recorder(study, label, border, echo)
    rec.result.shard, rec.result.device = shard, dev
    rec.result.skipped = len(mine) - len(todo)
    if n > 1:
        echo(f"shard {k}/{n}: {len(mine)} of {len(names) * len(images)} (method, image) pairs")
    if rec.result.skipped:
        echo(f"{rec.result.skipped} output(s) already done (use --force to redo)")
    try:
        for name in names:
            pending = [by_id[w.image_id] for w in todo if w.method == name]
            if pending:
                _render_method(study, name, specs[name], pending, dev, label, cfg, timeout,
                               border, rec, echo, progress)
    finally:
        rec.close()
    fill_missing_scores(study, [w for w in mine], border, dev)
    return rec.result


def _render_method(study: Study, name: str, spec: dict[str, Any], pending: list, dev: str,
                   label: str, cfg: dict[str, Any], timeout: float, border: int,
                   rec: _Recorder, echo: Callable, progress: bool | None) -> None:
    from tqdm import tqdm

    timeout = float(spec.get("timeout_s", timeout))
    fail_label = label

    def fail_all(rows: list, error: str) -> None:
        for im in rows:
            rec.submit(rec.failed, name, im.image_id, error, fail_label)

    try:
        method = load_method(study, name, device=dev, fp16=bool(cfg.get("fp16", False)))
    except MethodFailure as exc:
        echo(f"method {name}: failed to load: {exc}")
        fail_all(pending, f"failed to load: {exc}")
        return
    except StudyError as exc:
        # A settings mistake found only at load time (a module that cannot be imported, weights
        # without an entry) stops this method, not the methods after it.
        detail = " ".join(str(exc).split())
        echo(f"method {name}: failed to load: {detail}")
        fail_all(pending, f"failed to load: {detail}")
        return
    except Exception as exc:  # noqa: BLE001 - any crash while loading is the method's fault
        echo(f"method {name}: failed to load: {_short(exc)}")
        fail_all(pending, f"failed to load: {_short(exc)}")
        return

    if isinstance(method, FolderMethod):
        fail_label = "submitted"
        problems = method.check(pending)
        if problems:
            echo(f"method {name}: {len(problems)} problem(s) with the submitted results:")
            for i, msg in enumerate(problems.values(), 1):
                echo(f"  {i}. {msg}")
            for image_id, msg in problems.items():
                rec.submit(rec.failed, name, image_id, msg, fail_label)
            pending = [im for im in pending if im.image_id not in problems]
    if method.needs_depth:
        no_depth = [im for im in pending if im.depth_path is None]
        if no_depth:
            ids = ", ".join(im.image_id for im in no_depth)
            echo(f"method {name} needs depth maps; image(s) without one: {ids}")
            fail_all(no_depth, "needs a depth map and the dataset has none for this image "
                               "(add original_depth/<id>.png or a depth column)")
            pending = [im for im in pending if im.depth_path is not None]
    if not pending:
        return
    if isinstance(method, CommandMethod) and method.batch:
        _run_command_batch(method, pending, timeout, rec, label)
        return

    need_ref = True  # the writer scores every output against its reference
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="study-loader")
    # Tiling changes the result of methods with global steps (the built-ins estimate the
    # focus from the whole depth map), so the configured tile applies to python models only.
    tile = int(cfg.get("tile", 0) or 0) if method.kind == "python" else 0
    runner = (TensorRunner(method, dev, tile,
                           int(cfg.get("tile_overlap", 32) or 0), timeout)
              if isinstance(method, TensorMethod) else None)
    bar = tqdm(total=len(pending), desc=name, unit="img", file=sys.stderr, leave=True,
               disable=(not progress) if progress is not None else None, dynamic_ncols=True)
    try:
        nxt = loader.submit(_load_sample, pending[0], method.needs_depth, need_ref)
        warmed = runner is None
        for i, image in enumerate(pending):
            try:
                sample = nxt.result()
            except Exception as exc:  # noqa: BLE001
                sample = None
                load_error = f"cannot read the input: {_short(exc)}"
            if i + 1 < len(pending):
                nxt = loader.submit(_load_sample, pending[i + 1], method.needs_depth, need_ref)
            if sample is None:
                rec.submit(rec.failed, name, image.image_id, load_error, fail_label)
                bar.update(1)
                continue
            try:
                if not warmed:
                    warmed = True
                    runner.warm_up(sample)
                out, runtime, metrics = _run_one(method, runner, sample, timeout, dev, border)
            except MethodFailure as exc:
                rec.submit(rec.failed, name, image.image_id, str(exc), fail_label)
                bar.update(1)
                if exc.fatal:
                    rest = pending[i + 1:]
                    echo(f"method {name}: {exc}; not running it on the "
                         f"{len(rest)} remaining image(s)")
                    fail_all(rest, f"not run: the method hung on image {image.image_id}")
                    bar.update(len(rest))
                    break
                continue
            except Exception as exc:  # noqa: BLE001 - a crash fails this image only
                rec.submit(rec.failed, name, image.image_id, f"crashed: {_short(exc)}",
                           fail_label)
                bar.update(1)
                continue
            rec.submit(rec.done, name, sample, out, runtime,
                       label if not isinstance(method, FolderMethod) else "submitted", metrics)
            bar.update(1)
        if runner is not None:
            for note in dict.fromkeys(runner.notes):
                echo(f"method {name}: {note}")
    finally:
        bar.close()
        loader.shutdown(wait=False, cancel_futures=True)
        method.close()


def _run_command_batch(method: CommandMethod, pending: list, timeout: float, rec: _Recorder,
                       label: str) -> None:
    """One invocation over every pending image; each image's runtime is the batch's mean."""
    from study.dataset import load_rgb
    from study.render.plugins import CommandRun

    name = method.name
    with CommandRun(method) as run:
        staged = []
        for im in pending:
            try:
                sample = _load_sample(im, method.needs_depth, False)
                run.stage(im.image_id, sample.rgb, sample.depth)
                staged.append(im)
            except Exception as exc:  # noqa: BLE001
                rec.submit(rec.failed, name, im.image_id,
                           f"cannot read the input: {_short(exc)}", label)
        if not staged:
            return
        try:
            seconds = run.execute(timeout * len(staged), f"a batch of {len(staged)} image(s)")
        except MethodFailure as exc:
            for im in staged:
                rec.submit(rec.failed, name, im.image_id, str(exc), label)
            return
        for im in staged:
            try:
                out = run.result(im.image_id)
                if out.shape[:2] != (im.height, im.width):
                    raise MethodFailure(f"output is {out.shape[1]}x{out.shape[0]}, "
                                        f"the input is {im.width}x{im.height}")
                sample = Sample(im, out, load_rgb(im.reference_path), None)
            except MethodFailure as exc:
                rec.submit(rec.failed, name, im.image_id, str(exc), label)
                continue
            except Exception as exc:  # noqa: BLE001
                rec.submit(rec.failed, name, im.image_id, f"crashed: {_short(exc)}", label)
                continue
            rec.submit(rec.done, name, sample, out, seconds / len(staged), label, None)


def _run_one(method: Method, runner: TensorRunner | None, sample: Sample, timeout: float,
             dev: str, border: int):
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


def fill_missing_scores(study: Study, work: list[Work], border: int, dev: str = "cpu") -> int:
    """Score done outputs that have no PSNR/SSIM yet or were scored with another border crop."""
    from study.dataset import load_rgb, selected_images

    wanted = {(w.method, w.image_id) for w in work}
    refs = {im.image_id: im.reference_path for im in selected_images(study)}
    conn = study.connect()
    try:
        rows = conn.execute(
            "SELECT method, image_id, path FROM renders WHERE status='done' AND "
            "(psnr IS NULL OR border_crop IS NULL OR border_crop != ?)", (border,)).fetchall()
        n = 0
        for r in rows:
            if (r["method"], r["image_id"]) not in wanted or r["image_id"] not in refs:
                continue
            path = study.resolve(r["path"])
            if not path.is_file():
                continue
            p, s = scores(load_rgb(path), load_rgb(refs[r["image_id"]]), border, dev)
            if p is None:
                continue
            conn.execute("UPDATE renders SET psnr=?, ssim=?, border_crop=? "
                         "WHERE method=? AND image_id=?", (p, s, border, r["method"],
                                                           r["image_id"]))
            n += 1
        return n
    finally:
        conn.close()


# ------------------------------------------------------------------ summaries

def render_status(study: Study) -> dict[str, dict[str, int]]:
    """Per configured method: done, failed and missing (never attempted) image counts."""
    conn = study.connect()
    try:
        ids = [r[0] for r in conn.execute("SELECT image_id FROM images")]
        rows = conn.execute("SELECT method, image_id, status FROM renders").fetchall()
    finally:
        conn.close()
    selected = set(ids)
    out = {m: {"done": 0, "failed": 0, "missing": 0} for m in method_specs(study)}
    for r in rows:
        if r["method"] in out and r["image_id"] in selected:
            out[r["method"]][r["status"]] += 1
    for counts in out.values():
        counts["missing"] = len(selected) - counts["done"] - counts["failed"]
    return out


def track1_table(study: Study) -> list[dict[str, Any]]:
    """One row per configured method: factsheet, images done/failed/missing, mean PSNR and
    SSIM over done images, mean measured runtime (s) and the device(s) it ran on."""
    specs = method_specs(study)
    conn = study.connect()
    try:
        n_images = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        agg = {r["method"]: r for r in conn.execute(
            "SELECT r.method, SUM(r.status='done') AS done, SUM(r.status='failed') AS failed, "
            "AVG(CASE WHEN r.status='done' THEN r.psnr END) AS psnr, "
            "AVG(CASE WHEN r.status='done' THEN r.ssim END) AS ssim, "
            "AVG(CASE WHEN r.status='done' THEN r.runtime_s END) AS runtime_s, "
            "GROUP_CONCAT(DISTINCT CASE WHEN r.status='done' THEN r.device END) AS device, "
            "MIN(CASE WHEN r.status='done' THEN r.border_crop END) AS border_crop "
            "FROM renders r JOIN images i ON i.image_id = r.image_id GROUP BY r.method")}
    finally:
        conn.close()
    from study.render.plugins import Factsheet

    rows = []
    for name, spec in specs.items():
        a = agg.get(name)
        fs = Factsheet.from_spec(spec)
        done = int(a["done"] or 0) if a else 0
        failed = int(a["failed"] or 0) if a else 0
        rows.append({
            "method": name, "kind": spec.get("kind"), "team": fs.team, "author": fs.author,
            "framework": fs.framework, "hardware": fs.hardware,
            "runtime_reported_s": fs.runtime_s,
            "images": n_images, "done": done, "failed": failed,
            "missing": max(0, n_images - done - failed),
            "psnr": _num(a["psnr"]) if a else None, "ssim": _num(a["ssim"]) if a else None,
            "runtime_s": _num(a["runtime_s"]) if a else None,
            "device": (a["device"] if a else None) or None,
            "border_crop": a["border_crop"] if a else None,
        })
    return rows


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    headers = ["method", "done", "failed", "PSNR dB", "SSIM", "runtime s", "device"]

    def fmt(v: float | None, spec: str) -> str:
        if v is None:
            return "-"
        if math.isinf(v):
            return "inf"
        return format(v, spec)

    body = []
    for r in rows:
        runtime = fmt(r["runtime_s"], ".3f")
        if r["runtime_s"] is None and r["runtime_reported_s"] is not None:
            runtime = f"{r['runtime_reported_s']:g} (reported)"
        body.append([r["method"], f"{r['done']}/{r['images']}", str(r["failed"]),
                     fmt(r["psnr"], ".2f"), fmt(r["ssim"], ".4f"), runtime, r["device"] or "-"])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(headers)]
    right = {1, 2, 3, 4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(b) for b in body)
    return "\n".join(out)


# ------------------------------------------------------------------ the command

@click.command("render")
@click.option("--methods", "methods_opt", default=None, metavar="A,B",
              help="Comma-separated method names (default: every method in study.toml).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where tensor methods run (default: render.device).")
@click.option("--shard", "shard_opt", default=None, metavar="K/N",
              help="Do the K-th of N equal shares of the work (default: torchrun's rank, if any).")
@click.option("--force", is_flag=True, help="Redo outputs that are already done.")
@click.option("--timeout", type=float, default=None, metavar="S",
              help="Seconds a method may take per image (default: render.timeout_s).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal).")
@pass_study
def render_command(study: Study, methods_opt: str | None,
                   device: str | None, shard_opt: str | None, force: bool,
                   timeout: float | None, progress: bool | None) -> None:
    """Run every method on every selected image; PSNR, SSIM and runtimes.

    Outputs go to renders/<method>/<image_id>.png. Done outputs are skipped unless --force;
    failed ones are retried. Exits with status 1 when any output failed."""
    methods = [m.strip() for m in methods_opt.split(",") if m.strip()] if methods_opt else None
    shard = parse_shard(shard_opt) if shard_opt else None
    result = render_study(study, methods=methods, device=device, shard=shard, force=force,
                          timeout=timeout, progress=progress)
    click.echo(f"rendered {result.rendered}, skipped {result.skipped} (done), "
               f"failed {result.failed} on {result.device}")
    for method, image_id, error in result.failures:
        click.echo(f"  failed: {method} / {image_id}: {error}")
    rows = track1_table(study)
    if methods:
        rows = [r for r in rows if r["method"] in methods]
    border = study.settings.render.border_crop
    click.echo("")
    click.echo(f"Track 1 (fidelity against the reference, border crop {border} px):")
    click.echo(format_table(rows))
    if result.failed:
        click.echo(f"\n{result.failed} output(s) failed; fix the method or run `study render` "
                   "again to retry them.")
        click.get_current_context().exit(1)
