"""One publish or collect at a time per study: an advisory file lock, released by the OS even
when the holder is killed, so a crash never leaves the study locked."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def crowd_lock(study, echo: Callable[[str], None] = lambda _m: None) -> Iterator[None]:
    path = study.root / ".crowd.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo("waiting for another `study publish` or `study collect` to finish ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
