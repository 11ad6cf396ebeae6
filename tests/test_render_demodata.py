"""`study demo-data`: a real EBB!-style dataset on disk, deterministic, loadable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from study.errors import StudyError
from study.render.builtins import BUILTINS
from study.render.demodata import build_demo_dataset, demo_data_command
from study.render.metrics import psnr


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return build_demo_dataset(tmp_path_factory.mktemp("demo") / "data", size=96)


def test_layout_sizes_and_readme(demo):
    ids = sorted(int(p.stem) for p in (demo / "test" / "original").glob("*.jpg"))
    assert ids == [1, 2, 3, 4, 5]
    widths = set()
    for i in ids:
        inp = Image.open(demo / "test" / "original" / f"{i}.jpg")
        ref = Image.open(demo / "test" / "bokeh" / f"{i}.jpg")
        dep = Image.open(demo / "test" / "original_depth" / f"{i}.png")
        assert inp.mode == "RGB" and inp.size == ref.size == dep.size and inp.size[1] == 96
        assert np.asarray(dep).dtype == np.uint16 or dep.mode.startswith("I")
        widths.add(inp.size[0])
    assert len(widths) > 1                                 # aspect ratios kept
    readme = (demo / "README.txt").read_text()
    assert "synthetic" in readme.lower() and "EBB!" in readme


def test_deterministic_and_rebuild_replaces(demo, tmp_path):
    other = build_demo_dataset(tmp_path / "again", size=96)
    assert digest(other) == digest(demo)
    # building again over an earlier demo dataset is allowed and gives the same files
    build_demo_dataset(other, size=96)
    assert digest(other) == digest(demo)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_reference_is_not_a_builtin_but_scatter_is_closest(demo):
    def load(kind, i, ext="jpg"):
        a = np.asarray(Image.open(demo / "test" / kind / f"{i}.{ext}"))
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255

    scores = {name: [] for name in ("input", "gaussian", "depth-blend", "scatter")}
    for i in range(1, 6):
        x, ref = load("original", i), load("bokeh", i)
        d = np.asarray(Image.open(demo / "test" / "original_depth" / f"{i}.png")).astype(np.float32)
        d = torch.from_numpy((d - d.min()) / (d.max() - d.min()))[None, None]
        for name in scores:
            out = BUILTINS[name]({})(x, depth=d)
            scores[name].append(float(psnr(out, ref)[0]))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    assert mean["scatter"] > mean["depth-blend"] > mean["input"]
    assert mean["scatter"] < 45                             # close, not identical


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(StudyError, match="not empty"):
        build_demo_dataset(tmp_path, size=64)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(StudyError):
        build_demo_dataset(tmp_path / "new", size=8)


def test_command(tmp_path):
    result = CliRunner().invoke(demo_data_command, [str(tmp_path / "d"), "--size", "64"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "test" / "bokeh" / "5.jpg").is_file()
    assert "synthetic" in result.output
