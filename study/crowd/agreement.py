"""Quality bonuses for agreeing with the consensus (quality.agreement_bonus_usd).

An approved assignment earns the bonus when its test ratings stay close to what the other
workers said of the same items: the mean absolute deviation of each rating from the mean of the
other workers' valid ratings of that item is at most quality.agreement_max_deviation levels.
An assignment is judged once, when every test item it rated has at least
quality.agreement_min_others ratings from other workers in approved assignments; until then it
waits for a later `study collect`. The judgement is kept in the assignment's quality record, so
a re-run never judges it again, and a bonus is a payment intent (kind 'agreement_bonus', its
own UniqueRequestToken) sent by collect's payment machinery: exactly once, after the
assignment's approval.

The deviation is measured against the others, never against a mean that includes the worker:
with five ratings per item, a worker's own rating would pull the mean a fifth of the way to it.
"""

from __future__ import annotations

import json
import sqlite3
import statistics

from study import store
from study.crowd import money
from study.crowd.pages import study_id

KIND = "agreement_bonus"
# The reason a worker sees starts with this, so a listed bonus of this kind is known apart from
# the flat bonus of the same assignment.
REASON_PREFIX = "Agreement bonus: "


def token(sid: str, aid: str) -> str:
    return f"{sid}-agree-{aid}"[:64]


def deviation(conn: sqlite3.Connection, realm: str, aid: str, worker: str,
              min_others: int) -> float | None:
    """Mean absolute deviation of the assignment's valid test ratings from the other workers'
    item means; None until every item has `min_others` other ratings."""
    rows = conn.execute(
        "SELECT r.score, COUNT(o.score) AS n, AVG(o.score) AS others FROM ratings r "
        "JOIN items i USING (item_id) "
        "LEFT JOIN (SELECT o.item_id, o.score FROM ratings o JOIN assignments a "
        "           USING (assignment_id) WHERE o.valid = 1 AND a.realm = ? "
        "           AND a.decision = 'approve' AND o.worker_id != ?) o ON o.item_id = r.item_id "
        "WHERE r.assignment_id = ? AND r.valid = 1 AND i.kind = 'test' GROUP BY r.position",
        (realm, worker, aid)).fetchall()
    if not rows or any(r["n"] < min_others for r in rows):
        return None
    gaps = [abs(r["score"] - r["others"]) for r in rows]
    return statistics.fmean(gaps)


def make_intents(conn: sqlite3.Connection, realm: str, quality) -> int:
    """Judge every approved assignment not judged yet whose items have enough other ratings;
    an intent for each that agrees. Returns the number of new intents."""
    amount = money.usd(quality.agreement_bonus_usd)
    if amount <= 0:
        return 0
    sid = study_id(conn)
    reason = REASON_PREFIX + (quality.agreement_bonus_reason or "thank you.")
    new = 0
    for a in conn.execute("SELECT assignment_id, worker_id, quality_json FROM assignments "
                          "WHERE realm = ? AND decision = 'approve' ORDER BY assignment_id",
                          (realm,)).fetchall():
        info = json.loads(a["quality_json"] or "{}")
        if "agreement" in info:
            continue
        dev = deviation(conn, realm, a["assignment_id"], a["worker_id"],
                        quality.agreement_min_others)
        if dev is None:
            continue
        agrees = dev <= quality.agreement_max_deviation
        info["agreement"] = {"deviation": round(dev, 3), "bonus": agrees}
        with store.transaction(conn):
            conn.execute("UPDATE assignments SET quality_json = ? WHERE assignment_id = ?",
                         (json.dumps(info, default=str), a["assignment_id"]))
            if agrees:
                conn.execute(
                    "INSERT OR IGNORE INTO payments (kind, assignment_id, worker_id, amount_usd, "
                    "unique_token, reason) VALUES (?,?,?,?,?,?)",
                    (KIND, a["assignment_id"], a["worker_id"], float(amount),
                     token(sid, a["assignment_id"]), reason))
                new += 1
    return new
