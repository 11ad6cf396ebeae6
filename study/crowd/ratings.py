"""The ratings as the tidy table the analysis reads."""

from __future__ import annotations

import sqlite3

COLUMNS = ["image", "method", "worker", "score", "valid", "gold", "assignment", "seconds",
           "reason", "expected_min", "expected_max"]


def current_realm(conn: sqlite3.Connection) -> str:
    """The live realm once anything is published there, else the sandbox."""
    live = conn.execute("SELECT 1 FROM hits WHERE realm = 'live' AND state = 'created' "
                        "LIMIT 1").fetchone()
    return "live" if live else "sandbox"


def ratings_frame(study, valid_only: bool = False, realm: str | None = None):
    """One row per rating: image, method, worker, score (on the scale frozen with the design),
    valid, gold (gold rows carry the gold item's method, e.g. "reference" or "input": filter
    them out before ranking), assignment, seconds, reason (why a rating is invalid),
    expected_min / expected_max (the accepted answer range of a gold rating, else empty)."""
    import pandas as pd

    conn = study.connect()
    try:
        realm = realm or current_realm(conn)
        rows = conn.execute(
            "SELECT i.image_id AS image, i.method AS method, r.worker_id AS worker, "
            "r.score AS score, r.valid AS valid, i.kind != 'test' AS gold, "
            "r.assignment_id AS assignment, r.seconds AS seconds, r.reason AS reason, "
            "i.expected_min AS expected_min, i.expected_max AS expected_max "
            "FROM ratings r JOIN assignments a USING (assignment_id) "
            "JOIN items i ON i.item_id = r.item_id WHERE a.realm = ? "
            + ("AND r.valid = 1 " if valid_only else "")
            + "ORDER BY i.image_id, i.method, r.assignment_id", (realm,)).fetchall()
    finally:
        conn.close()
    frame = pd.DataFrame([dict(r) for r in rows], columns=COLUMNS)
    frame["valid"] = frame["valid"].astype(bool)
    frame["gold"] = frame["gold"].astype(bool)
    frame["score"] = frame["score"].astype("Int64")
    frame["seconds"] = frame["seconds"].astype(float)
    frame["expected_min"] = frame["expected_min"].astype("Int64")
    frame["expected_max"] = frame["expected_max"].astype("Int64")
    return frame
