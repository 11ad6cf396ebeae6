"""Methods whose images come from outside this process: a `command` (an external program run on
staged input files, once per image or once over a batch) and a `folder` (results a team
submitted). Both hand back uint8 images; a failure is a MethodFailure naming what went wrong.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from study.render.plugins import FOLDER_EXTENSIONS, Method, MethodFailure, _short, command_argv


class CommandMethod(Method):
    """Runs once per image by default (a per-image runtime and timeout); with `batch = true`
    once over all pending images (the program loads its model once; runtime is the mean)."""

    kind = "command"

    def __init__(self, name: str, spec: dict[str, Any], study_root: Path, device: str):
        super().__init__(name, spec)
        self.template = spec["command"]
        self.study_root = study_root
        self.device = device
        self.batch = bool(spec.get("batch", False))

    def run(self, image_id: str, rgb: np.ndarray, depth: np.ndarray | None,
            timeout: float) -> tuple[np.ndarray, float]:
        """Stage one image, run the program on it, return (output uint8 HxWx3, seconds)."""
        with CommandRun(self) as run:
            run.stage(image_id, rgb, depth)
            seconds = run.execute(timeout, image_id)
            return run.result(image_id), seconds


class CommandRun:
    """One invocation of a command method: a temporary folder with staged inputs."""

    def __init__(self, method: CommandMethod):
        self.method = method
        self._tmp = tempfile.TemporaryDirectory(prefix=f"study-{method.name}-")
        root = Path(self._tmp.name)
        self.root = root
        self.dirs = {k: root / k.split("_")[0] for k in ("input_dir", "output_dir", "depth_dir")}
        for d in self.dirs.values():
            d.mkdir()
        self.ids: list[str] = []

    def __enter__(self) -> "CommandRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._tmp.cleanup()

    def stage(self, image_id: str, rgb: np.ndarray, depth: np.ndarray | None) -> None:
        from PIL import Image

        Image.fromarray(rgb).save(self.dirs["input_dir"] / f"{image_id}.png", compress_level=1)
        if depth is not None:
            d16 = np.round(np.clip(depth, 0, 1) * 65535).astype(np.uint16)
            Image.fromarray(d16).save(self.dirs["depth_dir"] / f"{image_id}.png")
        self.ids.append(image_id)

    def execute(self, timeout: float, what: str) -> float:
        """Run the program; seconds it took. MethodFailure if it fails, or (fatal) hangs."""
        m = self.method
        values = {k: str(v) for k, v in self.dirs.items()}
        values.update(python=sys.executable, study_dir=str(m.study_root), device=m.device)
        argv = command_argv(m.template, values)
        env = dict(os.environ, STUDY_DEVICE=m.device, STUDY_IMAGE_IDS=",".join(self.ids))
        env.update({str(k): str(v) for k, v in (m.spec.get("env") or {}).items()})
        log_path = self.root / "log.txt"
        with open(log_path, "wb") as log:
            t0 = time.perf_counter()
            try:
                # Own session, so a hung program and everything it started can be killed.
                proc = subprocess.Popen(argv, cwd=m.study_root, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
            except OSError as exc:
                raise MethodFailure(f"could not start {argv[0]!r}: {exc}") from None
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise MethodFailure(f"timed out after {timeout:g} s on {what} "
                                    "(the command was killed)", fatal=True) from None
            seconds = time.perf_counter() - t0
        if rc != 0:
            tail = _tail(log_path)
            raise MethodFailure(f"command exited with status {rc}" + (f": {tail}" if tail else ""))
        return seconds

    def result(self, image_id: str) -> np.ndarray:
        from study.dataset import load_rgb

        out = _find_result(self.dirs["output_dir"], image_id)
        if out is None:
            listing = sorted(p.name for p in self.dirs["output_dir"].iterdir())[:5]
            raise MethodFailure(f"command wrote no {image_id}.png to {{output_dir}}"
                                + (f" (found: {', '.join(listing)})" if listing else ""))
        try:
            return load_rgb(out)
        except Exception as exc:  # noqa: BLE001 - any decoding problem is the method's
            raise MethodFailure(f"cannot read the command's output {out.name}: "
                                f"{_short(exc)}") from None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_bytes()[-4000:].decode("utf-8", "replace").strip()
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    out = " | ".join(lines[-4:])
    return out[-limit:]


def _find_result(folder: Path, image_id: str) -> Path | None:
    for ext in FOLDER_EXTENSIONS:
        p = folder / f"{image_id}{ext}"
        if p.is_file():
            return p
    return None


class FolderMethod(Method):
    kind = "folder"

    def __init__(self, name: str, spec: dict[str, Any], folder: Path):
        super().__init__(name, spec)
        self.folder = folder

    def result_path(self, image_id: str) -> Path | None:
        return _find_result(self.folder, image_id)

    def check(self, images) -> dict[str, str]:
        """Every problem with the submitted results for `images` (ImageRow-like), by image id."""
        from study.dataset import load_rgb

        problems: dict[str, str] = {}
        for row in images:
            p = self.result_path(row.image_id)
            if p is None:
                problems[row.image_id] = (f"no result for image {row.image_id} in {self.folder} "
                                          f"(expected {row.image_id}.png or .jpg)")
                continue
            try:
                arr = load_rgb(p)
            except Exception as exc:  # noqa: BLE001
                problems[row.image_id] = f"{p} cannot be decoded ({_short(exc)})"
                continue
            h, w = arr.shape[:2]
            if (h, w) != (row.height, row.width):
                problems[row.image_id] = (f"{p} is {w}x{h} but the input is "
                                          f"{row.width}x{row.height}")
        return problems

    def load(self, image_id: str) -> np.ndarray:
        from study.dataset import load_rgb

        p = self.result_path(image_id)
        if p is None:
            raise MethodFailure(f"no result for image {image_id} in {self.folder}")
        try:
            return load_rgb(p)
        except Exception as exc:  # noqa: BLE001
            raise MethodFailure(f"{p} cannot be decoded ({_short(exc)})") from None
