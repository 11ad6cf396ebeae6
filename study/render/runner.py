"""One render run: every chosen method on every selected image (or this shard's share), at full
resolution.

The schedule says which (method, image) pairs are left; each method is then loaded once and runs
image after image (`execute`) while a loader thread decodes the next image and the recorder's
writer thread encodes, hashes, scores and records the previous one (`output`). A method that
raises, hangs, or returns a bad image fails for that image (a hang: for the rest of the run) and
the others go on.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from study.errors import StudyError
from study.render.execute import (Sample, TensorRunner, device_name, load_sample,
                                  resolve_device, run_one)
from study.render.output import Recorder, RenderResult, fill_missing_scores
from study.render.external import CommandMethod, CommandRun, FolderMethod
from study.render.plugins import (MethodFailure, TensorMethod, _short, check_specs, load_method,
                                  sync_methods)
from study.render.schedule import (choose_methods, done_pairs, left_to_do, shard_from_env,
                                   take_shard, work_list)
from study.studydir import Study


@dataclass(frozen=True)
class RenderSettings:
    """The [render] settings a run uses, as plain values (see `command.render_settings`)."""
    device: str
    timeout_s: float
    border_crop: int
    fp16: bool
    tile: int
    tile_overlap: int


def render_study(study: Study, settings: RenderSettings, methods: list[str] | None = None,
                 shard: tuple[int, int] | None = None, force: bool = False,
                 echo: Callable[[str], None] | None = None,
                 progress: bool | None = None) -> RenderResult:
    """Render the study's work (or this shard of it). Never raises for a method's failure."""
    from study.dataset import selected_images

    if echo is None:
        from tqdm import tqdm

        def echo(msg: str) -> None:
            # Through tqdm, so a message does not tear a progress bar in two.
            tqdm.write(msg, file=sys.stderr)
    names, specs = choose_methods(study, methods)
    check_specs(study, names)
    dev = resolve_device(settings.device)
    if shard is None:
        shard = shard_from_env() or (1, 1)
    k, n = shard
    border = settings.border_crop
    images = selected_images(study)
    by_id = {im.image_id: im for im in images}
    mine = take_shard(work_list(names, [im.image_id for im in images]), k, n)

    conn = study.connect()
    try:
        sync_methods(study, conn)
        done = set() if force else done_pairs(conn, study)
    finally:
        conn.close()
    todo = left_to_do(mine, done)
    label = device_name(dev)
    rec = Recorder(study, border)
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
                _render_method(study, name, specs[name], pending, dev, label, settings,
                               rec, echo, progress)
    finally:
        rec.close()
    fill_missing_scores(study, mine, border, dev)
    return rec.result


def _render_method(study: Study, name: str, spec: dict[str, Any], pending: list, dev: str,
                   label: str, settings: RenderSettings, rec: Recorder, echo: Callable,
                   progress: bool | None) -> None:
    from study.progress import progress as progress_of

    timeout = float(spec.get("timeout_s", settings.timeout_s))
    border = settings.border_crop
    fail_label = label

    def fail_all(rows: list, error: str) -> None:
        for im in rows:
            rec.submit(rec.failed, name, im.image_id, error, fail_label)

    try:
        method = load_method(study, name, device=dev, fp16=settings.fp16)
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
    tile = settings.tile if method.kind == "python" else 0
    runner = (TensorRunner(method, dev, tile, settings.tile_overlap, timeout)
              if isinstance(method, TensorMethod) else None)
    bar = progress_of(len(pending), name, "img", progress)
    try:
        nxt = loader.submit(load_sample, pending[0], method.needs_depth, need_ref)
        warmed = runner is None
        for i, image in enumerate(pending):
            try:
                sample = nxt.result()
            except Exception as exc:  # noqa: BLE001
                sample = None
                load_error = f"cannot read the input: {_short(exc)}"
            if i + 1 < len(pending):
                nxt = loader.submit(load_sample, pending[i + 1], method.needs_depth, need_ref)
            if sample is None:
                rec.submit(rec.failed, name, image.image_id, load_error, fail_label)
                bar.update(1)
                continue
            try:
                if not warmed:
                    warmed = True
                    runner.warm_up(sample)
                out, runtime, metrics = run_one(method, runner, sample, timeout, dev, border)
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


def _run_command_batch(method: CommandMethod, pending: list, timeout: float, rec: Recorder,
                       label: str) -> None:
    """One invocation over every pending image; each image's runtime is the batch's mean."""
    from study.dataset import load_rgb

    name = method.name
    with CommandRun(method) as run:
        staged = []
        for im in pending:
            try:
                sample = load_sample(im, method.needs_depth, False)
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
