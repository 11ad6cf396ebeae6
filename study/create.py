"""`study init`: a new study folder from a validated dataset, written in one step."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from study.dataset import (DEFAULT_MAX_PIXELS, discover, select_ids, sha256_file,
                           validate_pairs)
from study.errors import StudyError


def create_study(directory: Path, dataset_path: Path, *, n_images: int | None = None,
                 image_ids: list[str] | None = None, seed: int = 0, split: str | None = None,
                 name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 port: int | None = None, echo: Callable[[str], None] = lambda _msg: None):
    """Validate the dataset, then write the study folder in one step (nothing on error)."""
    from study import store
    from study.config import render_template
    from study.service import free_port
    from study.studydir import CONFIG_NAME, DB_NAME, Study, write_secrets

    directory = Path(directory).expanduser().absolute()
    if (directory / CONFIG_NAME).exists() or (directory / DB_NAME).exists():
        raise StudyError(f"{directory} already holds a study", where=str(directory),
                         hint="choose a new folder; an existing study is never overwritten")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise StudyError(f"{directory} exists and is not an empty folder", where=str(directory),
                         hint="choose a new folder name")
    ds = discover(Path(dataset_path), split=split)
    ids = select_ids(ds, n_images, image_ids, seed)
    # The same problems `study dataset check` lists: every pair is checked unless the ids
    # were named, so a broken pair is never skipped in silence by the random selection.
    rows, problems = validate_pairs(ds, ids if image_ids else None, max_pixels=max_pixels)
    rows = [r for r in rows if r.image_id in set(ids)]
    if problems:
        raise StudyError.many(problems, f"the dataset has {len(problems)} problem(s); "
                                        "nothing was written")
    if not rows:
        raise StudyError("the dataset has no complete image pairs", where=str(ds.root))
    for note in ds.notices:
        echo(f"notice: {note}")
    complete = sum(1 for p in ds.pairs if p.input_path is not None and p.reference_path is not None)
    if not image_ids and len(ids) < complete:
        echo(f"notice: {len(ids)} of the dataset's {complete} complete pairs were chosen at "
             f"random (seed {seed}): {', '.join(ids)}; use --images N or --image-ids to choose")
    for row in rows:
        for note in row.notices:
            echo(f"notice: {note}")
        row.input_sha256 = sha256_file(row.input_path)
        row.reference_sha256 = sha256_file(row.reference_path)

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        study_name = name or directory.name
        (staging / CONFIG_NAME).write_text(
            render_template(study_name, seed, str(ds.root.resolve()), ds.layout, ds.split,
                            [r.image_id for r in rows], port=port or free_port()),
            encoding="utf-8")
        conn = store.connect(staging / DB_NAME)
        try:
            with store.transaction(conn):
                store.set_meta(conn, "study_id", hashlib.sha256(
                    f"{study_name}:{os.urandom(16).hex()}".encode()).hexdigest()[:16])
                store.set_meta(conn, "created_with", "study init")
                store.set_meta(conn, "dataset", json.dumps(
                    {"path": str(ds.root.resolve()), "layout": ds.layout, "split": ds.split}))
                for pos, r in enumerate(rows):
                    conn.execute(
                        "INSERT INTO images (image_id, position, input_path, reference_path, "
                        "depth_path, width, height, input_sha256, reference_sha256, notices) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (r.image_id, pos, str(r.input_path), str(r.reference_path),
                         str(r.depth_path) if r.depth_path else None, r.width, r.height,
                         r.input_sha256, r.reference_sha256, "\n".join(r.notices)))
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        write_secrets(staging)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        os.replace(staging, directory)
        os.chmod(directory, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Study.open(directory)
