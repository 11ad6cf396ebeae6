"""`study collect`: fetch assignments, keep every raw answer, store each rating once, decide
quality, pay exactly once, block repeat offenders, cap HITs per worker, and top up items short of
valid ratings.

Exactly once: every approval, rejection and bonus is first an intent row in `payments` (primary
key (kind, assignment_id), unique token), then a call, then a state change. A re-run sends the
intents left over; an answer that the assignment is no longer Submitted is checked against the
marketplace and counted as done when the decision is already applied. A file lock keeps two
collects of the same study from running at once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

from study import store
from study.crowd import agreement, design, journal, money, pairs, qualify, traps
from study.crowd.answers import parse_answers
from study.crowd.client import Requester, error_message, requester
from study.crowd.faults import fault_point
from study.crowd.lock import crowd_lock
from study.crowd.pages import study_id
from study.crowd.quality import Rated, assess, decide, policy_from_config, should_block
from study.crowd.ratings import ratings_frame  # noqa: F401 - the export lives beside collect
from study.crowd.topup import topup
from study.errors import StudyError

STATUSES = ["Submitted", "Approved", "Rejected"]
REPEAT_REASON = "worker already rated this item"


@dataclass
class Summary:
    realm: str
    new_assignments: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    payments: dict[str, int] = field(default_factory=dict)
    blocked: int = 0
    capped: int = 0
    topup_assignments: int = 0
    topup_hits: int = 0
    items_complete: int = 0
    items_total: int = 0
    notes: list[str] = field(default_factory=list)
    # HITs whose open slots are held by accepted, unsubmitted assignments.
    waiting: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        d, p = self.decisions, self.payments
        out = [f"Collected in the {self.realm} realm:",
               f"  assignments  {self.new_assignments} new; decided: "
               f"{d.get('approve', 0)} approved, {d.get('exclude', 0)} approved but excluded, "
               f"{d.get('reject', 0)} rejected",
               f"  payments     {p.get('approve', 0)} approvals, {p.get('reject', 0)} "
               f"rejections, {p.get('bonus', 0)} bonuses sent"
               + (f", {p[agreement.KIND]} agreement bonuses" if p.get(agreement.KIND) else ""),
               f"  workers      {self.blocked} blocked, {self.capped} at the HIT cap",
               f"  top-up       {self.topup_assignments} assignments added, "
               f"{self.topup_hits} new HITs",
               f"  items        {self.items_complete}/{self.items_total} with enough valid "
               f"ratings"]
        out += [f"  note: {n}" for n in self.notes]
        out += [f"  waiting      {waiting_line(w)}" for w in self.waiting]
        return out


def waiting_line(w: dict) -> str:
    return (f"HIT {w['hit_index']} ({w['hit_id']}): {w['pending']} accepted assignment(s) not "
            f"submitted yet; if abandoned, they free up by {w['frees_by']} at the latest")


def _ts(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


# ------------------------------------------------------------------ fetching

def store_assignment(conn: sqlite3.Connection, realm: str, hit_index: int, a: dict) -> bool:
    """Store a new assignment and its ratings in one transaction; True when it was new.
    A known assignment only has its marketplace status refreshed."""
    aid = a["AssignmentId"]
    with store.transaction(conn):
        known = conn.execute("SELECT status FROM assignments WHERE assignment_id = ?",
                             (aid,)).fetchone()
        if known is not None:
            if known["status"] != a.get("AssignmentStatus"):
                conn.execute("UPDATE assignments SET status = ? WHERE assignment_id = ?",
                             (a.get("AssignmentStatus", known["status"]), aid))
            return False
        worker = str(a.get("WorkerId", ""))
        answer = a.get("Answer")
        conn.execute(
            "INSERT INTO assignments (assignment_id, realm, hit_id, hit_index, worker_id, "
            "status, answer_xml, accept_time, submit_time) VALUES (?,?,?,?,?,?,?,?,?)",
            (aid, realm, a["HITId"], hit_index, worker, a.get("AssignmentStatus", "Submitted"),
             answer, _ts(a.get("AcceptTime")), _ts(a.get("SubmitTime"))))
        rows = design.hit_items(conn, hit_index)
        items = {r["position"]: r["item_id"] for r in rows}
        swapped = {r["position"] for r in rows if r["swapped"]}
        scale = design.stored_scale(conn)
        parsed = parse_answers(answer, sorted(items), scale)
        for pos in swapped & set(parsed.items):
            # The page asked the other way round (study.methods): store the study's orientation.
            if parsed.items[pos].score is not None:
                parsed.items[pos].score = scale.mirrored(parsed.items[pos].score)
        seen = {r[0] for r in conn.execute(
            "SELECT r.item_id FROM ratings r JOIN assignments a USING (assignment_id) "
            "WHERE r.worker_id = ? AND a.realm = ? AND r.item_id IS NOT NULL",
            (worker, realm))}
        for pos, ans in parsed.items.items():
            valid, reason = ans.valid, ans.reason
            if valid and items[pos] in seen:
                # A top-up HIT, or a pair the design repeats; the first rating of an item counts.
                valid, reason = False, REPEAT_REASON
            if valid and items[pos] is not None:
                seen.add(items[pos])
            conn.execute(
                "INSERT OR IGNORE INTO ratings (assignment_id, position, item_id, worker_id, "
                "score, seconds, valid, reason) VALUES (?,?,?,?,?,?,?,?)",
                (aid, pos, items[pos], worker, ans.score, ans.seconds, int(valid), reason))
        conn.execute("UPDATE assignments SET quality_json = ? WHERE assignment_id = ?",
                     (json.dumps({"problems": parsed.problems[:20],
                                  "comments": parsed.comments,
                                  "views": {str(p): ans.view for p, ans in parsed.items.items()
                                            if ans.view is not None}}), aid))
        journal.append(conn, "collect:assignment:stored", assignment_id=aid)
    fault_point("collect:assignment:stored")
    return True


def fetch(conn: sqlite3.Connection, api: Requester) -> int:
    from study.progress import progress

    hits = conn.execute("SELECT hit_index, hit_id FROM hits WHERE realm = ? AND "
                        "state = 'created' ORDER BY hit_index", (api.realm,)).fetchall()
    new = 0
    with progress(len(hits), "collecting", "HITs") as bar:
        for h in hits:
            for a in api.pages("list_assignments_for_hit", "Assignments", HITId=h["hit_id"],
                               AssignmentStatuses=STATUSES):
                new += store_assignment(conn, api.realm, h["hit_index"], a)
            bar.update(1)
    return new


# ------------------------------------------------------------------ deciding

def consensus(conn: sqlite3.Connection, realm: str, exclude_assignment: str) -> dict[int, float]:
    return {r[0]: r[1] for r in conn.execute(
        "SELECT r.item_id, AVG(r.score) FROM ratings r JOIN assignments a USING (assignment_id) "
        "JOIN items i ON i.item_id = r.item_id WHERE a.realm = ? AND a.decision = 'approve' "
        "AND r.valid = 1 AND i.kind = 'test' AND a.assignment_id != ? GROUP BY r.item_id",
        (realm, exclude_assignment))}


def decide_assignment(conn: sqlite3.Connection, realm: str, aid: str, policy) -> str:
    rows = conn.execute(
        "SELECT r.*, i.kind, i.expected_min, i.expected_max, COALESCE(hi.swapped, 0) AS swapped "
        "FROM ratings r LEFT JOIN items i ON i.item_id = r.item_id "
        "JOIN assignments a ON a.assignment_id = r.assignment_id LEFT JOIN hit_items hi ON "
        "hi.hit_index = a.hit_index AND hi.position = r.position WHERE r.assignment_id = ? "
        "ORDER BY r.position", (aid,)).fetchall()
    scale = design.stored_scale(conn)
    # A repeated item is a real answer for judging the worker, though only the first counts.
    rated = [Rated(r["item_id"], r["score"], r["seconds"],
                   bool(r["valid"]) or r["reason"] == REPEAT_REASON,
                   (traps.expected(r, scale) if r["kind"] == traps.TRAP else
                    (r["expected_min"], r["expected_max"]) if r["kind"] not in (None, "test")
                    else None), trap=r["kind"] == traps.TRAP) for r in rows]
    a = conn.execute("SELECT * FROM assignments WHERE assignment_id = ?", (aid,)).fetchone()
    info = json.loads(a["quality_json"] or "{}")
    for r, row in zip(rated, rows):
        r.max_zoom = (info.get("views", {}).get(str(row["position"])) or {}).get("max_zoom")
    checks = assess(rated, consensus(conn, realm, aid))
    choices = design.frozen_method(conn).pairwise
    decision, reason = decide(checks, pairs.choice_policy(policy) if choices else policy,
                              info.get("problems"))
    if choices:
        decision, reason = pairs.side_doubt(conn, aid, decision, reason)
    info["checks"] = asdict(checks)
    with store.transaction(conn):
        current = conn.execute("SELECT decision FROM assignments WHERE assignment_id = ?",
                               (aid,)).fetchone()["decision"]
        if current is not None:
            return current
        conn.execute("UPDATE assignments SET decision = ?, decision_reason = ?, "
                     "quality_json = ? WHERE assignment_id = ?",
                     (decision, reason, json.dumps(info, default=str), aid))
        if decision != "approve":
            conn.execute("UPDATE ratings SET valid = 0, reason = CASE WHEN reason = '' THEN ? "
                         "ELSE reason || '; ' || ? END WHERE assignment_id = ? AND valid = 1",
                         (f"{decision}: {reason}", f"{decision}: {reason}", aid))
        conn.execute("INSERT INTO workers (realm, worker_id, failures) VALUES (?, ?, ?) "
                     "ON CONFLICT(realm, worker_id) DO UPDATE SET "
                     "failures = failures + excluded.failures",
                     (realm, a["worker_id"], int(decision != "approve")))
        journal.append(conn, "collect:decision:stored", assignment_id=aid, decision=decision)
    fault_point("collect:decision:stored")
    return decision


def decide_all(conn: sqlite3.Connection, realm: str, policy) -> dict[str, int]:
    counts: dict[str, int] = {}
    pending = [r[0] for r in conn.execute(
        "SELECT assignment_id FROM assignments WHERE realm = ? AND decision IS NULL "
        "ORDER BY submit_time, assignment_id", (realm,))]
    for aid in pending:
        d = decide_assignment(conn, realm, aid, policy)
        counts[d] = counts.get(d, 0) + 1
    return counts


# ------------------------------------------------------------------ paying

def bonus_token(sid: str, aid: str) -> str:
    return f"{sid}-bonus-{aid}"[:64]


def make_intents(conn: sqlite3.Connection, realm: str, quality) -> None:
    """Payment intents for every decided assignment (idempotent: primary keys)."""
    sid = study_id(conn)
    bonus = money.usd(quality.bonus_usd)
    reason = quality.bonus_reason or "Thank you."
    with store.transaction(conn):
        for a in conn.execute("SELECT * FROM assignments WHERE realm = ? AND decision IS NOT "
                              "NULL", (realm,)).fetchall():
            kind = "reject" if a["decision"] == "reject" else "approve"
            conn.execute("INSERT OR IGNORE INTO payments (kind, assignment_id, worker_id, "
                         "reason) VALUES (?,?,?,?)",
                         (kind, a["assignment_id"], a["worker_id"], a["decision_reason"]))
            if a["decision"] == "approve" and bonus > 0:
                conn.execute("INSERT OR IGNORE INTO payments (kind, assignment_id, worker_id, "
                             "amount_usd, unique_token, reason) VALUES ('bonus',?,?,?,?,?)",
                             (a["assignment_id"], a["worker_id"], float(bonus),
                              bonus_token(sid, a["assignment_id"]), reason))


def _finish(conn: sqlite3.Connection, kind: str, aid: str, state: str, note: str = "",
            status: str | None = None) -> None:
    """The payment's outcome (and the assignment's new status, if given) with the journal's
    "done" row, in one transaction after the fault point."""
    with journal.settle(conn, f"collect:{kind}:done", assignment_id=aid, state=state):
        conn.execute("UPDATE payments SET state = ?, note = ?, updated_at = "
                     "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE kind = ? AND "
                     "assignment_id = ?", (state, note, kind, aid))
        if status is not None:
            conn.execute("UPDATE assignments SET status = ? WHERE assignment_id = ?",
                         (status, aid))


def _assignment_status(api: Requester, aid: str) -> str:
    return api.call("get_assignment", AssignmentId=aid)["Assignment"]["AssignmentStatus"]


def send_decision(conn: sqlite3.Connection, api: Requester, p: sqlite3.Row) -> str:
    from botocore.exceptions import ClientError

    kind, aid = p["kind"], p["assignment_id"]
    wanted = "Approved" if kind == "approve" else "Rejected"
    journal.record(conn, f"collect:{kind}:sent", assignment_id=aid)
    try:
        if kind == "approve":
            api.call("approve_assignment", AssignmentId=aid)
        else:
            api.call("reject_assignment", AssignmentId=aid,
                     RequesterFeedback=(p["reason"] or "Rejected.")[:1024])
        state, note = "done", ""
    except ClientError as exc:
        status = _assignment_status(api, aid)  # an earlier run, or auto-approval, got there
        if status == wanted:
            state, note = "done", "already applied on the marketplace"
        elif status in ("Approved", "Rejected"):
            state, note = "superseded", f"marketplace shows {status}: {error_message(exc)}"
        else:
            raise
    _finish(conn, kind, aid, state, note, status=wanted if state == "done" else status)
    return state


def send_bonus(conn: sqlite3.Connection, api: Requester, p: sqlite3.Row) -> str:
    from botocore.exceptions import ClientError

    aid, kind = p["assignment_id"], p["kind"]
    reason = p["reason"] or "Thank you."
    # A bonus already paid (an earlier run whose token the marketplace may have forgotten);
    # known by its reason, since an assignment may carry a flat and an agreement bonus.
    paid = [b for b in api.pages("list_bonus_payments", "BonusPayments", AssignmentId=aid)
            if b.get("Reason") == reason]
    if paid:
        _finish(conn, kind, aid, "done", "already paid")
        return "done"
    journal.record(conn, f"collect:{kind}:sent", assignment_id=aid)
    try:
        api.call("send_bonus", WorkerId=p["worker_id"], BonusAmount=str(
            money.usd(p["amount_usd"])), AssignmentId=aid, Reason=reason,
                 UniqueRequestToken=p["unique_token"])
        note = ""
    except ClientError as exc:
        # Only the marketplace's own duplicate answer means "paid"; an expired or refused
        # credential also mentions a "token" and must not mark the bonus done.
        if exc.response.get("TurkErrorCode") != "AWS.MechanicalTurk.DuplicateRequest" and \
                "already" not in error_message(exc).lower():
            raise
        note = "already paid (token seen)"
    _finish(conn, kind, aid, "done", note)
    return "done"


def pay(conn: sqlite3.Connection, api: Requester) -> dict[str, int]:
    sent: dict[str, int] = {}
    rows = conn.execute(
        "SELECT p.* FROM payments p JOIN assignments a USING (assignment_id) WHERE a.realm = ? "
        "AND p.state = 'intent' AND p.kind IN ('approve', 'reject') ORDER BY p.assignment_id",
        (api.realm,)).fetchall()
    for p in rows:
        if send_decision(conn, api, p) == "done":
            sent[p["kind"]] = sent.get(p["kind"], 0) + 1
    # Bonuses only once the assignment is approved.
    rows = conn.execute(
        "SELECT p.* FROM payments p JOIN payments ap ON ap.assignment_id = p.assignment_id "
        "AND ap.kind = 'approve' AND ap.state = 'done' JOIN assignments a ON "
        "a.assignment_id = p.assignment_id WHERE a.realm = ? AND p.kind IN ('bonus', ?) "
        "AND p.state = 'intent' ORDER BY p.assignment_id", (api.realm, agreement.KIND)
    ).fetchall()
    for p in rows:
        send_bonus(conn, api, p)
        sent[p["kind"]] = sent.get(p["kind"], 0) + 1
    return sent


# ------------------------------------------------------------------ workers

def _qualification(conn: sqlite3.Connection, realm: str) -> str | None:
    return store.get_meta(conn, f"crowd.{realm}.qualification_type_id")


def block_workers(conn: sqlite3.Connection, api: Requester, policy) -> int:
    qid = _qualification(conn, api.realm)
    n = 0
    for w in conn.execute("SELECT * FROM workers WHERE realm = ? AND blocked = 0",
                          (api.realm,)).fetchall():
        if not should_block(w["failures"], policy):
            continue
        reason = (f"{w['failures']} assignments of this study failed its quality checks "
                  "(check pairs, time on task, or identical ratings throughout).")
        journal.record(conn, "collect:block:sent", worker_id=w["worker_id"])
        # Both calls are idempotent on the marketplace, so a re-run may repeat them.
        api.call("create_worker_block", WorkerId=w["worker_id"], Reason=reason)
        if qid:
            api.call("associate_qualification_with_worker", QualificationTypeId=qid,
                     WorkerId=w["worker_id"], IntegerValue=1, SendNotification=False)
        journal.record(conn, "collect:block:done", worker_id=w["worker_id"])
        conn.execute("UPDATE workers SET blocked = 1, excluded = ?, reason = ? WHERE realm = ? "
                     "AND worker_id = ?", (int(bool(qid)), reason, api.realm, w["worker_id"]))
        n += 1
    return n


def cap_workers(conn: sqlite3.Connection, api: Requester, cap: int) -> int:
    """Grant the exclusion qualification to workers who reached max_hits_per_worker.
    (Enforced from the next collect on: a worker may exceed the cap in between.)"""
    qid = _qualification(conn, api.realm)
    if not qid or cap <= 0:
        return 0
    rows = conn.execute(
        "SELECT a.worker_id, COUNT(*) AS n FROM assignments a LEFT JOIN workers w ON "
        "w.realm = a.realm AND w.worker_id = a.worker_id WHERE a.realm = ? AND "
        "COALESCE(w.excluded, 0) = 0 GROUP BY a.worker_id HAVING n >= ?",
        (api.realm, cap)).fetchall()
    for r in rows:
        api.call("associate_qualification_with_worker", QualificationTypeId=qid,
                 WorkerId=r["worker_id"], IntegerValue=1, SendNotification=False)
        conn.execute("INSERT INTO workers (realm, worker_id, excluded, reason) VALUES "
                     "(?, ?, 1, 'reached the HIT cap') ON CONFLICT(realm, worker_id) DO UPDATE "
                     "SET excluded = 1", (api.realm, r["worker_id"]))
    return len(rows)


# ------------------------------------------------------------------ the command

def realms_with_hits(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT realm FROM hits WHERE state != 'planned' ORDER BY realm DESC")]


def collect(study, *, approve: bool = True, realm: str | None = None,
            echo: Callable[[str], None] = print) -> list[Summary]:
    policy = policy_from_config(study.settings.quality)
    summaries = []
    with crowd_lock(study, echo):
        conn = study.connect()
        try:
            realms = [realm] if realm else realms_with_hits(conn)
            if not realms:
                raise StudyError("nothing is published yet",
                                 hint="run `study publish --sandbox` first")
            for rlm in realms:
                summary = Summary(rlm)
                with requester(study, rlm) as api:
                    summary.new_assignments = fetch(conn, api)
                    note = qualify.summary_line(
                        qualify.collect_qualification(conn, api, approve), conn, rlm)
                    if note:
                        summary.notes.append(note)
                    summary.decisions = decide_all(conn, rlm, policy)
                    if approve:
                        make_intents(conn, rlm, study.settings.quality)
                        agreement.make_intents(conn, rlm, study.settings.quality)
                        summary.payments = pay(conn, api)
                    summary.blocked = block_workers(conn, api, policy)
                    summary.capped = cap_workers(
                        conn, api, study.settings.hit.max_hits_per_worker)
                    topup(study, conn, api, summary)
                for line in summary.lines():
                    echo(line)
                summaries.append(summary)
        finally:
            conn.close()
    return summaries
