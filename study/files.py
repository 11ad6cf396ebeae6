"""Writing a file atomically: a reader, or a run that crashed half-way, sees the old file or the
new one, never a part of one.

The data goes to a temporary file in the target's own folder (so the final rename stays on one
file system), is flushed to disk, and then takes the final name in one `os.replace`. Temporary
names start with a dot and end in `.tmp`, so folder listings and globs for outputs skip them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` atomically, creating its folder if needed; returns the path.
    `mode` sets the file's permissions regardless of the umask (for files others serve)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name opened exclusively: concurrent writers (threads, render shards) never share a
    # temporary file, and the file gets the usual permissions (umask), unlike mkstemp's 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically, exactly as given (no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding))
