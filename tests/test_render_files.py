"""study.files: the one atomic writer (render outputs, hosted images) leaves the old file or the
new one, never a part, and no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from study.files import atomic_write_bytes, atomic_write_text


def test_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "renders" / "m" / "1.png"
    assert atomic_write_bytes(target, b"old") == target
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    atomic_write_text(tmp_path / "r.md", "a\r\nb\n")
    assert (tmp_path / "r.md").read_bytes() == b"a\r\nb\n"  # written exactly, no translation
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["1.png", "r.md"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_mode_is_set_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "a.png", b"x", mode=0o644)
        atomic_write_bytes(tmp_path / "b.png", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.png").stat().st_mode) == 0o600
