"""Test sets: finding image pairs in the layouts organisers release, validating every file,
and loading images the same way everywhere.

Layouts:
- EBB!: `<root>/<split>/original/<i>.jpg`, `<root>/<split>/bokeh/<i>.jpg`, optional
  `<root>/<split>/original_depth/<i>.png` (the root itself may be the split);
- AIM 2020: `<root>/Training/original|bokeh/<i>.jpg`; the inputs-only folders
  (`ValidationBokehFree/`, `TestBokehFree/`) have no references and cannot make a study;
- a manifest CSV `image_id,input,reference[,depth]`, paths relative to the CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import click
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from study.errors import StudyError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEPTH_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_IMAGES = 10  # the paper rated 10 full-resolution test images per method
INPUT_ONLY_FOLDERS = ("ValidationBokehFree", "TestBokehFree")

# Pillow's own bomb check is replaced by ours, which reports instead of raising mid-way.
Image.MAX_IMAGE_PIXELS = None


@dataclass
class Pair:
    image_id: str
    input_path: Path | None
    reference_path: Path | None
    depth_path: Path | None = None
    where: str = ""


@dataclass
class ImageRow:
    image_id: str
    input_path: Path
    reference_path: Path
    depth_path: Path | None
    width: int
    height: int
    input_sha256: str = ""
    reference_sha256: str = ""
    notices: list[str] = field(default_factory=list)


@dataclass
class Dataset:
    root: Path
    layout: str
    split: str
    pairs: list[Pair]
    has_depth: bool
    problems: list[StudyError] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def id_sort_key(image_id: str) -> tuple:
    """Numeric ids sort numerically (2 before 10); other ids sort after, by text."""
    parts = re.split(r"(\d+)", image_id)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


# ---------------------------------------------------------------- discovery

def discover(path: Path, split: str | None = None, layout: str = "auto") -> Dataset:
    path = Path(path).expanduser()
    if not path.exists():
        raise StudyError(f"dataset not found: {path}", where=str(path),
                         hint="give the folder of an EBB!-style release or a manifest CSV")
    if layout == "manifest" or (layout == "auto" and path.is_file()):
        if path.suffix.lower() != ".csv":
            raise StudyError(f"{path} is a file but not a manifest CSV", where=str(path),
                             hint="a manifest is a .csv with columns image_id,input,reference[,depth]")
        return _discover_manifest(path)
    if not path.is_dir():
        raise StudyError(f"{path} is not a folder", where=str(path))
    return _discover_folders(path, split, layout)


def _files_by_id(folder: Path, exts: tuple[str, ...], problems: list[StudyError]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        if f.suffix.lower() not in exts:
            continue
        if f.stem in found:
            problems.append(StudyError(
                f"duplicate image id {f.stem!r}: {found[f.stem].name} and {f.name}",
                where=str(folder), hint="keep one file per id (remove or rename the other)"))
            continue
        found[f.stem] = f
    return found


def _split_candidates(root: Path) -> list[Path]:
    cands = []
    if (root / "original").is_dir() or (root / "bokeh").is_dir():
        cands.append(root)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / "original").is_dir() or (sub / "bokeh").is_dir():
            cands.append(sub)
    return cands


def _discover_folders(root: Path, split: str | None, layout: str) -> Dataset:
    notices: list[str] = []
    input_only = [root / name for name in INPUT_ONLY_FOLDERS if (root / name).is_dir()]
    if split is not None and split != "":
        folder = root / split
        if not folder.is_dir():
            raise StudyError(f"split {split!r} not found in {root}", where=str(root),
                             hint="choose one of: " + ", ".join(
                                 p.name for p in _split_candidates(root) if p != root) or "(none)")
        if split in INPUT_ONLY_FOLDERS or not (folder / "bokeh").is_dir():
            raise StudyError(
                f"{folder} holds inputs only (no bokeh/ references): a study compares every "
                "result with the real f/1.8 photo, so it needs references",
                where=str(folder),
                hint="use the split that has both original/ and bokeh/ (e.g. Training or test)")
        chosen = folder
    else:
        cands = [c for c in _split_candidates(root)]
        with_refs = [c for c in cands if (c / "bokeh").is_dir() and (c / "original").is_dir()]
        for folder in input_only:
            notices.append(f"{folder.name}/ holds inputs only (no references); it cannot be "
                           "rated against the f/1.8 photo and is not used")
        if not with_refs:
            if input_only or cands:
                raise StudyError(
                    f"no folder in {root} has both original/ and bokeh/: a study needs the "
                    "real f/1.8 references", where=str(root),
                    hint="point --dataset at an EBB! release with references, or write a manifest CSV")
            raise StudyError(
                f"{root} does not look like an EBB!-style dataset (no original/ and bokeh/ folders)",
                where=str(root),
                hint="expected <root>/<split>/original/<i>.jpg and bokeh/<i>.jpg, "
                     "or a manifest CSV image_id,input,reference[,depth]")
        if len(with_refs) > 1:
            names = ", ".join(c.name if c != root else "." for c in with_refs)
            raise StudyError(f"{root} has several splits with references: {names}",
                             where=str(root), hint="choose one with --split NAME")
        chosen = with_refs[0]
    detected = "aim2020" if (chosen.name == "Training" or input_only) else "ebb"
    if layout not in ("auto", detected, "ebb", "aim2020"):
        raise StudyError(f"layout {layout!r} does not match the folder {root}", where=str(root))
    problems: list[StudyError] = []
    inputs = _files_by_id(chosen / "original", IMAGE_EXTS, problems) \
        if (chosen / "original").is_dir() else {}
    refs = _files_by_id(chosen / "bokeh", IMAGE_EXTS, problems)
    depth_dir = chosen / "original_depth"
    depths = _files_by_id(depth_dir, DEPTH_EXTS, problems) if depth_dir.is_dir() else {}
    pairs = []
    for image_id in sorted(set(inputs) | set(refs), key=id_sort_key):
        pairs.append(Pair(image_id, inputs.get(image_id), refs.get(image_id),
                          depths.get(image_id), where=str(chosen)))
    split_name = "" if chosen == root else chosen.name
    return Dataset(root=root, layout=detected, split=split_name, pairs=pairs,
                   has_depth=depth_dir.is_dir(), problems=problems, notices=notices)


def _discover_manifest(path: Path) -> Dataset:
    problems: list[StudyError] = []
    base = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = [h.strip() for h in (rows[0].keys() if rows else [])]
    except UnicodeDecodeError:
        raise StudyError(f"{path} is not a UTF-8 text CSV", where=str(path),
                         hint="save the manifest as UTF-8 CSV") from None
    if not rows:
        raise StudyError(f"manifest {path} has no rows", where=str(path),
                         hint="one row per image: image_id,input,reference[,depth]")
    missing = [c for c in ("image_id", "input", "reference") if c not in header]
    if missing:
        raise StudyError(f"manifest {path} lacks column(s) {', '.join(missing)}",
                         where=f"{path}, header: {','.join(header)}",
                         hint="the header must be image_id,input,reference[,depth]")
    has_depth = "depth" in header
    seen: dict[str, int] = {}
    pairs = []
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        image_id = row["image_id"]
        where = f"{path}:{line}"
        if not image_id:
            problems.append(StudyError("empty image_id", where=where, hint="give every row an id"))
            continue
        if image_id in seen:
            problems.append(StudyError(f"duplicate image id {image_id!r} (also on line "
                                       f"{seen[image_id]})", where=where,
                                       hint="ids must be unique; remove or rename one row"))
            continue
        seen[image_id] = line
        files: dict[str, Path | None] = {}
        for col in ("input", "reference", "depth"):
            value = row.get(col, "")
            if not value:
                files[col] = None
                continue
            p = Path(value)
            files[col] = p if p.is_absolute() else (base / p)
        for col in ("input", "reference"):
            if files[col] is None:
                problems.append(StudyError(f"image {image_id!r} has no {col} path", where=where,
                                           hint=f"fill the {col} column"))
        pairs.append(Pair(image_id, files["input"], files["reference"], files["depth"],
                          where=where))
    pairs.sort(key=lambda p: id_sort_key(p.image_id))
    return Dataset(root=path, layout="manifest", split="", pairs=pairs, has_depth=has_depth,
                   problems=problems)


# ---------------------------------------------------------------- loading

def _open_checked(path: Path, max_pixels: int) -> tuple[Image.Image, list[str]]:
    """Open, bound the pixel count before decoding, decode fully, apply EXIF orientation."""
    notices: list[str] = []
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise StudyError(f"file not found: {path}", where=str(path)) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise StudyError(f"cannot read {path.name}: not an image Pillow can decode ({exc})",
                         where=str(path), hint="re-export the file as JPEG or PNG") from None
    w, h = img.size
    if w * h > max_pixels:
        raise StudyError(f"{path.name} has {w}x{h} = {w * h:,} pixels, above the limit of "
                         f"{max_pixels:,} (possible decompression bomb)", where=str(path),
                         hint="downscale the image, or raise dataset.max_pixels if it is genuine")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise StudyError(f"{path.name} is truncated or corrupt ({exc})", where=str(path),
                         hint="copy the file again from the original release") from None
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is not worth refusing the image over
        orientation = 1
    if orientation not in (None, 1):
        img = ImageOps.exif_transpose(img)
        notices.append(f"{path.name}: EXIF orientation {orientation} applied")
    return img, notices


def _to_rgb8(img: Image.Image, name: str) -> tuple[np.ndarray, list[str]]:
    notices = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        notices.append(f"{name}: 16-bit grayscale converted to 8-bit RGB")
        return np.repeat(arr[:, :, None], 3, axis=2), notices
    if mode != "RGB":
        label = {"L": "grayscale", "LA": "grayscale", "P": "palette", "PA": "palette",
                 "CMYK": "CMYK", "1": "1-bit", "RGBA": "RGBA", "F": "32-bit float"}.get(mode, mode)
        notices.append(f"{name}: {label} converted to 8-bit RGB")
        if mode == "F":
            arr = np.asarray(img, dtype=np.float64)
            arr = np.clip(np.round(arr / max(arr.max(), 1e-12) * 255.0), 0, 255).astype(np.uint8)
            return np.repeat(arr[:, :, None], 3, axis=2), notices
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy(), notices


def load_rgb(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image as uint8 HxWx3 RGB, EXIF orientation applied."""
    img, _ = _open_checked(Path(path), max_pixels)
    arr, _ = _to_rgb8(img, Path(path).name)
    return arr


def load_depth(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A depth (disparity-like) map as float32 HxW in [0, 1], larger = nearer.

    Maps are min-max normalised per image: releases store them in different ranges and bit
    depths, and the renderers only need relative disparity."""
    img, _ = _open_checked(Path(path), max_pixels)
    if img.mode in ("RGB", "RGBA", "P", "CMYK"):
        img = img.convert("L")
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., 0]
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-12:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- validation

def validate_pairs(ds: Dataset, image_ids: Iterable[str] | None = None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[ImageRow], list[StudyError]]:
    """Check the given pairs (all when None) file by file; return rows and every problem."""
    problems = list(ds.problems)
    wanted = set(image_ids) if image_ids is not None else None
    rows: list[ImageRow] = []
    for pair in ds.pairs:
        if wanted is not None and pair.image_id not in wanted:
            continue
        where = pair.where or str(ds.root)
        if pair.input_path is None:
            problems.append(StudyError(
                f"image {pair.image_id!r} has a reference but no input "
                f"({pair.reference_path.name if pair.reference_path else '?'} in bokeh/ has no "
                "partner in original/)", where=where,
                hint="add the f/16 input or remove the reference"))
            continue
        if pair.reference_path is None:
            problems.append(StudyError(
                f"image {pair.image_id!r} has an input but no reference "
                f"({pair.input_path.name} in original/ has no partner in bokeh/)", where=where,
                hint="add the f/1.8 reference or remove the input"))
            continue
        if ds.has_depth and ds.layout != "manifest" and pair.depth_path is None:
            problems.append(StudyError(
                f"image {pair.image_id!r} has no depth map although original_depth/ exists",
                where=where, hint=f"add original_depth/{pair.image_id}.png or remove the folder"))
            continue
        row_notices: list[str] = []
        sizes: dict[str, tuple[int, int]] = {}
        bad = False
        for role, path in (("input", pair.input_path), ("reference", pair.reference_path),
                           ("depth", pair.depth_path)):
            if path is None:
                continue
            try:
                img, notes = _open_checked(path, max_pixels)
                if role != "depth":
                    _, more = _to_rgb8(img, path.name)
                    notes += more
                sizes[role] = img.size
                row_notices += notes
            except StudyError as exc:
                problems.append(exc)
                bad = True
        if bad:
            continue
        if sizes["input"] != sizes["reference"]:
            (wi, hi), (wr, hr) = sizes["input"], sizes["reference"]
            problems.append(StudyError(
                f"image {pair.image_id!r}: input is {wi}x{hi} but reference is {wr}x{hr}",
                where=f"{pair.input_path} / {pair.reference_path}",
                hint="the result is compared pixel by pixel with the reference: "
                     "both must have the same size"))
            continue
        if "depth" in sizes and sizes["depth"] != sizes["input"]:
            (wd, hd), (wi, hi) = sizes["depth"], sizes["input"]
            problems.append(StudyError(
                f"image {pair.image_id!r}: depth map is {wd}x{hd} but the input is {wi}x{hi}",
                where=str(pair.depth_path),
                hint="resize the depth map to the input's size"))
            continue
        w, h = sizes["input"]
        rows.append(ImageRow(pair.image_id, pair.input_path.resolve(),
                             pair.reference_path.resolve(),
                             pair.depth_path.resolve() if pair.depth_path else None,
                             w, h, notices=row_notices))
    return rows, problems


def select_ids(ds: Dataset, n_images: int | None, image_ids: list[str] | None,
               seed: int) -> list[str]:
    complete = [p.image_id for p in ds.pairs
                if p.input_path is not None and p.reference_path is not None]
    if image_ids:
        known = {p.image_id for p in ds.pairs}
        unknown = [i for i in image_ids if i not in known]
        if unknown:
            raise StudyError(f"image id(s) not in the dataset: {', '.join(unknown)}",
                             where=str(ds.root),
                             hint=f"available ids include {', '.join(complete[:10])}")
        dupes = sorted({i for i in image_ids if image_ids.count(i) > 1}, key=id_sort_key)
        if dupes:
            raise StudyError(f"image id(s) given twice: {', '.join(dupes)}",
                             hint="list each id once")
        return sorted(image_ids, key=id_sort_key)
    n = DEFAULT_IMAGES if n_images is None else n_images
    if n < 1:
        raise StudyError("--images must be at least 1")
    if n_images is not None and n > len(complete):
        raise StudyError(f"--images {n} asks for more images than the dataset's "
                         f"{len(complete)} complete pairs", where=str(ds.root),
                         hint=f"use --images {len(complete)} or fewer")
    if n >= len(complete):
        return complete
    return sorted(random.Random(seed).sample(complete, n), key=id_sort_key)


def selected_images(study) -> list[ImageRow]:
    """The study's images in their stored order."""
    conn = study.connect()
    try:
        rows = conn.execute("SELECT * FROM images ORDER BY position").fetchall()
    finally:
        conn.close()
    return [ImageRow(r["image_id"], Path(r["input_path"]), Path(r["reference_path"]),
                     Path(r["depth_path"]) if r["depth_path"] else None, r["width"], r["height"],
                     r["input_sha256"], r["reference_sha256"],
                     [n for n in r["notices"].split("\n") if n]) for r in rows]


# ---------------------------------------------------------------- CLI

@click.group("dataset")
def dataset_group() -> None:
    """Check a dataset before making a study of it."""


@dataset_group.command("check")
@click.argument("path", type=click.Path())
@click.option("--split", default=None, help="Sub-folder of the release (default: detected).")
@click.option("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_command(path: str, split: str | None, max_pixels: int, as_json: bool) -> None:
    """Validate every image pair in PATH and report every problem at once."""
    ds = discover(Path(path), split=split)
    rows, problems = validate_pairs(ds, None, max_pixels=max_pixels)
    notices = ds.notices + [n for r in rows for n in r.notices]
    if as_json:
        click.echo(json.dumps({
            "root": str(ds.root), "layout": ds.layout, "split": ds.split,
            "pairs": len(rows), "with_depth": sum(1 for r in rows if r.depth_path),
            "image_ids": [r.image_id for r in rows], "notices": notices,
            "problems": [str(p) for p in problems]}, indent=2))
    else:
        click.echo(f"{ds.root}: layout {ds.layout}" + (f", split {ds.split}" if ds.split else ""))
        click.echo(f"{len(rows)} valid pair(s)"
                   + (f", {sum(1 for r in rows if r.depth_path)} with depth" if ds.has_depth else ""))
        for note in notices:
            click.echo(f"notice: {note}")
    if problems:
        raise StudyError.many(problems, f"{len(problems)} problem(s) found")
