"""The crowd journal: a row written before and after every marketplace call that costs or
creates something, and a fault point at each, so a crash anywhere is recoverable and testable."""

from __future__ import annotations

import json
import sqlite3

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


def record(conn: sqlite3.Connection, step: str, **detail) -> None:
    """Append a journal row (in the caller's transaction, if any), then pass the fault point."""
    conn.execute("INSERT INTO journal (step, detail) VALUES (?, ?)",
                 (step, json.dumps(detail, sort_keys=True, default=str)))
    fault_point(step)
