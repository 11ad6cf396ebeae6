"""What a render run leaves behind: output PNGs (written atomically), their rows in `renders`
(through `study.store`), PSNR/SSIM against the references, and the Track 1 table.

One writer thread encodes, hashes, scores and records each output while the next image runs,
so SQLite transactions stay short and in order.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from study import store
from study.files import atomic_write_bytes
from study.render.execute import Sample
from study.render.metrics import scores
from study.render.plugins import Factsheet, method_specs
from study.render.schedule import Work
from study.studydir import Study


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


def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def output_path(study: Study, method: str, image_id: str) -> Path:
    return study.renders_dir / method / f"{image_id}.png"


def _relpath(study: Study, path: Path) -> str:
    try:
        return str(path.relative_to(study.root))
    except ValueError:
        return str(path)


class Recorder:
    """The one thread that writes files and rows: SQLite transactions stay short and ordered."""

    def __init__(self, study: Study, border: int):
        self.study = study
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="study-writer")
        self.conn = None
        self.border = border
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
        atomic_write_bytes(path, data)
        if metrics is None:
            metrics = (scores(out, sample.reference, self.border)
                       if sample.reference is not None else (None, None))
        psnr, ssim = metrics
        with store.transaction(self._conn()) as conn:
            store.record_render_done(
                conn, method, image.image_id, _relpath(self.study, path),
                hashlib.sha256(data).hexdigest(), out.shape[1], out.shape[0], runtime, device,
                psnr, ssim, self.border if psnr is not None else None)
        with self.lock:
            self.result.rendered += 1

    def failed(self, method: str, image_id: str, error: str, device: str | None) -> None:
        stale = output_path(self.study, method, image_id)
        if stale.exists():
            stale.unlink()  # a failed re-run must not leave an older output looking valid
        with store.transaction(self._conn()) as conn:
            store.record_render_failed(conn, method, image_id, error, device)
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


def fill_missing_scores(study: Study, work: list[Work], border: int, dev: str = "cpu") -> int:
    """Score done outputs that have no PSNR/SSIM yet or were scored with another border crop."""
    from study.dataset import load_rgb, selected_images

    wanted = {(w.method, w.image_id) for w in work}
    refs = {im.image_id: im.reference_path for im in selected_images(study)}
    conn = study.connect()
    try:
        n = 0
        for r in store.unscored_renders(conn, border):
            if (r["method"], r["image_id"]) not in wanted or r["image_id"] not in refs:
                continue
            path = study.resolve(r["path"])
            if not path.is_file():
                continue
            p, s = scores(load_rgb(path), load_rgb(refs[r["image_id"]]), border, dev)
            if p is None:
                continue
            store.set_render_scores(conn, r["method"], r["image_id"], p, s, border)
            n += 1
        return n
    finally:
        conn.close()


# ------------------------------------------------------------------ the Track 1 table

def track1_table(study: Study) -> list[dict[str, Any]]:
    """One row per configured method: factsheet, images done/failed/missing, mean PSNR and
    SSIM over done images, mean measured runtime (s) and the device(s) it ran on."""
    specs = method_specs(study)
    conn = study.connect()
    try:
        n_images = store.image_count(conn)
        agg = store.render_totals(conn)
    finally:
        conn.close()

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
