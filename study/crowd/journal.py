"""The crowd journal: a row written before and after every marketplace call that costs or
creates something, and a fault point at each, so a crash anywhere is recoverable and testable.

Recovery reads the state tables (hits, payments, assignments, topups), never the journal; the
journal is the record of what was attempted. A step's row and the state changes it stands for
are committed in one transaction (`announce`, `settle`), so a step costs one commit, not one per
statement, and a crash leaves both or neither. Where the fault point sits keeps the crash each
step stands for: after an announcement is committed (the call announced, not made), and before
an answer is stored (the call made, nothing of its answer stored).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from typing import Iterator

from study import store
from study.crowd.faults import fault_point

PUBLISH_STEPS = (
    "publish:qualification:sent", "publish:qualification:done",
    "publish:hit_type:sent", "publish:hit_type:done",
    "publish:create_hit:intent", "publish:create_hit:sent", "publish:create_hit:done",
)
COLLECT_STEPS = (
    "collect:assignment:stored", "collect:decision:stored",
    "collect:approve:sent", "collect:approve:done",
    "collect:reject:sent", "collect:reject:done",
    "collect:bonus:sent", "collect:bonus:done",
    "collect:block:sent", "collect:block:done",
    "collect:topup:intent", "collect:topup:sent", "collect:topup:done",
)


def append(conn: sqlite3.Connection, step: str, **detail) -> None:
    """Append a journal row in the caller's transaction, without the fault point: the caller
    passes it (`fault_point(step)`) once that transaction is committed."""
    _append(conn, step, detail)


def _append(conn: sqlite3.Connection, step: str, detail: dict) -> None:
    conn.execute("INSERT INTO journal (step, detail) VALUES (?, ?)",
                 (step, json.dumps(detail, sort_keys=True, default=str)))


def record(conn: sqlite3.Connection, step: str, **detail) -> None:
    """Append a journal row (in the caller's transaction, if any), then pass the fault point."""
    _append(conn, step, detail)
    fault_point(step)


@contextmanager
def announce(conn: sqlite3.Connection, step: str, **detail) -> Iterator[sqlite3.Connection]:
    """The block's state changes and the step's row in one transaction; the fault point once
    they are committed. For a step before a call (or one that stores what was fetched)."""
    with store.transaction(conn):
        yield conn
        _append(conn, step, detail)
    fault_point(step)


@contextmanager
def settle(conn: sqlite3.Connection, step: str, **detail) -> Iterator[sqlite3.Connection]:
    """The fault point first (a crash there: the call was made and nothing of its answer is
    stored), then the block's state changes and the step's row in one transaction."""
    fault_point(step)
    with store.transaction(conn):
        yield conn
        _append(conn, step, detail)
