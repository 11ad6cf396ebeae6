"""When a realm next has work for a sweep, kept in memory so that the check made before every
request costs a comparison instead of queries.

The time is the earliest of: an accepted assignment's deadline, a submitted one's auto-approval
time, an unswept HIT's expiration. Every write in this process that sets one of those times
lowers it (the data layer does so in the statement's method); a sweep sets it afresh from the
database once its work is committed. One tracker is shared by every Store on the same file in a
process, so a second Market on that file keeps it right too.

A time too early only costs a sweep that finds nothing; a time too late would skip one, so every
path that cannot be sure falls back to "due": a realm not computed yet, and a tracker lowered
while a sweep was computing it. Another process writing the same file (a second server) does
not lower this tracker; the database itself is asked at most once a second (RECHECK_S) for that.
"""

from __future__ import annotations

import math
import threading
import time

RECHECK_S = 1.0  # how stale another process's writes may be before the database is asked


class NextDue:
    def __init__(self):
        self._lock = threading.Lock()
        self._at: dict[str, float] = {}        # realm -> earliest due time (absent: unknown)
        self._version: dict[str, int] = {}     # realm -> lowerings so far
        self._asked: dict[str, float] = {}     # realm -> monotonic time of the last recheck

    def at(self, realm: str) -> float | None:
        return self._at.get(realm)

    def lower(self, realm: str, when: float) -> None:
        """A write set a time at which a sweep will have work. It counts as a change even when
        it lowers nothing: a sweep computing the time may not have seen the write."""
        with self._lock:
            self._version[realm] = self._version.get(realm, 0) + 1
            at = self._at.get(realm)
            if at is not None and when < at:
                self._at[realm] = when

    def version(self, realm: str) -> int:
        with self._lock:
            return self._version.get(realm, 0)

    def settle(self, realm: str, when: float | None, version: int) -> None:
        """The time computed from the database (None: nothing pending), unless a write lowered
        the tracker since `version` was read (then it stays as it is, and the next check
        computes it again)."""
        with self._lock:
            if self._version.get(realm, 0) == version:
                self._at[realm] = math.inf if when is None else when

    def recheck_now(self, realm: str) -> bool:
        """True at most once per RECHECK_S per realm: time to ask the database itself."""
        now = time.monotonic()
        with self._lock:
            if now - self._asked.get(realm, -math.inf) < RECHECK_S:
                return False
            self._asked[realm] = now
            return True


_TRACKERS: dict[tuple[str, int], NextDue] = {}
_TRACKERS_GUARD = threading.Lock()


def tracker(path: str, inode: int) -> NextDue:
    """The tracker of one database file (by path and inode: a file replaced at the same path
    gets a fresh one)."""
    with _TRACKERS_GUARD:
        return _TRACKERS.setdefault((path, inode), NextDue())
