"""Shared fixtures: real image files in real dataset layouts, real study folders, and the CLI
run the way a user runs it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from study.cli import cli

# Where tests leave artefacts worth looking at (screenshots, reports).
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"
# Real rating data from two public studies, shipped with the tests (see its README).
SUBJECTIVE_DATA = Path(__file__).resolve().parent / "data" / "subjective"


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 RGB image (gradients plus a few blobs), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1),
                    0.5 + 0.5 * np.sin(xx / 7.0 + yy / 11.0)], axis=2)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, max(5, h / 4))
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[mask] = rng.uniform(0, 1, size=3)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_image(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def make_ebb(root: Path, ids=(1, 2, 3), size=(48, 64), split: str = "test",
             depth: bool = False, seed: int = 0) -> Path:
    """An EBB!-layout dataset of real JPEGs: <root>/<split>/original|bokeh[/original_depth]."""
    h, w = size
    base = root / split if split else root
    for k, i in enumerate(ids):
        img = photo(h, w, seed + k)
        write_image(base / "original" / f"{i}.jpg", img, quality=95)
        write_image(base / "bokeh" / f"{i}.jpg", (img * 0.9).astype(np.uint8), quality=95)
        if depth:
            d = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
            write_image(base / "original_depth" / f"{i}.png", d)
    return root


@pytest.fixture
def ebb_dataset(tmp_path: Path) -> Path:
    return make_ebb(tmp_path / "ebb", ids=(1, 2, 10), depth=True)


class CLI:
    """Runs `study ...` in-process, as the console script would, in a given directory."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, cwd: Path | None = None, expect: int | None = 0,
                 input: str | None = None):
        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            result = self.runner.invoke(cli, [str(a) for a in args], input=input,
                                        catch_exceptions=True)
        finally:
            os.chdir(old)
        if expect is not None and result.exit_code != expect:
            import traceback
            tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
            raise AssertionError(
                f"`study {' '.join(map(str, args))}` exited {result.exit_code}, expected "
                f"{expect}\n--- output:\n{result.output}\n{tb}")
        return result


@pytest.fixture
def run_cli() -> CLI:
    return CLI()


@pytest.fixture
def study_dir(tmp_path: Path, ebb_dataset: Path, run_cli: CLI) -> Path:
    """A study made by `study init` on a small EBB! dataset with depth maps."""
    target = tmp_path / "study"
    run_cli("init", target, "--dataset", ebb_dataset)
    return target


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, for a module's browser tests (which first call
    browser_support.require_browser)."""
    from playwright import sync_api

    from browser_support import CHROMIUM, LAUNCH_ARGS

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()
