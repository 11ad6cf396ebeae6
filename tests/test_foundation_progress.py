"""Long steps report progress as plain lines when stderr is not a terminal (logs, CI)."""

from __future__ import annotations

from study.progress import progress


def test_lines_off_a_terminal(capsys):
    with progress(3, "rendering", "images") as bar:
        for _ in range(3):
            bar.update(1)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("rendering: 0/3 images started")
    assert lines[-1].startswith("rendering: 3/3 images done")


def test_disabled_is_silent(capsys):
    with progress(3, "x", "y", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
