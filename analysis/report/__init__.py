"""Report writers: Markdown, HTML (one self-contained file), CSV, LaTeX and JSON.

`write(report, out_dir, formats)` writes every requested format atomically (temporary file,
then os.replace) and returns the paths written."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FORMATS = ("md", "html", "csv", "tex", "json")


def atomic_write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name opened exclusively: the file gets the usual permissions (umask), unlike mkstemp.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def render(report, fmt: str) -> dict[str, str]:
    """{file name: content} for one format."""
    if fmt == "json":
        from analysis.report.jsonreport import render_json
        return {"report.json": render_json(report)}
    if fmt == "md":
        from analysis.report.markdown import render_markdown
        return {"report.md": render_markdown(report)}
    if fmt == "html":
        from analysis.report.html import render_html
        return {"report.html": render_html(report)}
    if fmt == "csv":
        from analysis.report.csvreport import render_csv
        return render_csv(report)
    if fmt == "tex":
        from analysis.report.tex import render_tex
        return {"report.tex": render_tex(report)}
    raise ValueError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")


def write(report, out_dir: str | Path, formats=FORMATS) -> list[Path]:
    """Render every format first (so a failure writes nothing), then write each file atomically."""
    out_dir = Path(out_dir)
    files: dict[str, str] = {}
    for fmt in formats:
        files.update(render(report, fmt))
    return [atomic_write(out_dir / name, text) for name, text in files.items()]
