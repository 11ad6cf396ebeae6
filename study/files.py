"""Writing a file atomically: a reader, or a run that crashed half-way, sees the old file or the
new one, never a part of one.

The data goes to a temporary file in the target's own folder (so the final rename stays on one
file system), is flushed to disk, and then takes the final name in one `os.replace`. Temporary
names start with a dot and end in `.tmp`, so folder listings and globs for outputs skip them.
"""

from __future__ import annotations

import os
import secrets
import stat
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


def private_database(path: str | Path) -> None:
    """Make a database private before SQLite opens it: it holds secrets (the worker-cookie
    secret, requester keys) and every participant's answers. Mode 0600; or 0640 when its folder
    is set-group-ID, which is how an organiser shares a study with a group (a backup or
    monitoring user: `chgrp backup DIR && chmod g+s DIR`; new files take the folder's group).
    Others never get access. An existing file, and SQLite's -wal and -shm files, which take the
    database's mode when they are made, are brought to the same mode."""
    path = str(path)
    try:
        folder = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return  # sqlite3 reports a missing folder in its own words
    mode = 0o640 if folder.st_mode & stat.S_ISGID else 0o600
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
    except FileExistsError:
        pass
    except OSError:
        return  # unwritable or read-only: sqlite3 reports it in its own words
    for name in (path, path + "-wal", path + "-shm"):
        try:
            st = os.stat(name)
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
                os.chmod(name, mode)
        except OSError:
            pass
