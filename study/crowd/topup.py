"""Top-ups: after each collect, more assignments for the items short of valid ratings, within the
budget, exactly once (an intent row, the call, then its state), and the HITs held by accepted
assignments, named with when they free up."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from study import store
from study.crowd import design, journal, money
from study.crowd.client import Requester, error_message
from study.crowd.pages import study_id

if TYPE_CHECKING:
    from study.crowd.collect import Summary

MTURK_EXTEND_LIMIT = 10  # HITs made with fewer than 10 assignments cannot reach 10


def valid_counts(conn: sqlite3.Connection, realm: str) -> dict[int, int]:
    counts = {r[0]: 0 for r in conn.execute(
        "SELECT DISTINCT hi.item_id FROM hit_items hi JOIN items i USING (item_id) "
        "WHERE i.kind = 'test' AND hi.realm IN ('', ?)", (realm,))}
    for item_id, n in conn.execute(
            "SELECT r.item_id, COUNT(*) FROM ratings r JOIN assignments a USING (assignment_id) "
            "JOIN items i ON i.item_id = r.item_id WHERE a.realm = ? AND r.valid = 1 AND "
            "a.decision = 'approve' AND i.kind = 'test' GROUP BY r.item_id", (realm,)):
        counts[item_id] = n
    return counts


def _hit_capacity(conn: sqlite3.Connection, realm: str, hit_index: int) -> int:
    row = conn.execute(
        "SELECT h.max_assignments + COALESCE((SELECT SUM(count) FROM topups t WHERE "
        "t.realm = h.realm AND t.hit_index = h.hit_index AND t.state = 'done'), 0) "
        "FROM hits h WHERE h.realm = ? AND h.hit_index = ?", (realm, hit_index)).fetchone()
    return int(row[0])


def hit_states(conn: sqlite3.Connection, api: Requester) -> dict[int, dict]:
    """GetHIT's answer for every created HIT of the realm, by HIT index."""
    return {h["hit_index"]: api.call("get_hit", HITId=h["hit_id"])["HIT"]
            for h in conn.execute("SELECT hit_index, hit_id FROM hits WHERE realm = ? AND "
                                  "state = 'created'", (api.realm,)).fetchall()}


def waiting_hits(states: dict[int, dict], assignment_duration_s: int) -> list[dict]:
    """HITs held by accepted assignments: nothing can be done about them but wait. An abandoned
    assignment frees its slot when its duration runs out, at the latest one duration from now."""
    frees_by = (datetime.now(timezone.utc) + timedelta(seconds=assignment_duration_s)) \
        .strftime("%Y-%m-%d %H:%M UTC")
    return [{"hit_index": h, "hit_id": hit["HITId"],
             "pending": int(hit.get("NumberOfAssignmentsPending", 0)), "frees_by": frees_by}
            for h, hit in sorted(states.items())
            if int(hit.get("NumberOfAssignmentsPending", 0)) > 0]


def topup(study, conn: sqlite3.Connection, api: Requester, summary: Summary) -> None:
    from study.crowd.publish import committed_cost, create_hit, published_params

    realm = api.realm
    published = published_params(conn, realm)
    k = published["items_per_hit"]
    resume_extensions(conn, api)
    states = hit_states(conn, api)
    summary.waiting = waiting_hits(states, int(published["assignment_duration_s"]))
    store.set_meta(conn, f"crowd.{realm}.waiting", json.dumps(summary.waiting))
    counts = valid_counts(conn, realm)
    summary.items_total = len(counts)
    # Ratings wanted per item: ratings_per_item everywhere (uniform), or this round's (adaptive).
    from study.crowd import allocation
    wanted = allocation.wanted_counts(study, conn, realm, counts, published)
    summary.items_complete = sum(1 for i, n in counts.items() if n >= wanted[i])
    short = {i: wanted[i] - n for i, n in counts.items() if n < wanted[i]}
    if not short:
        return
    # Assignments that may still come in for each HIT (available or being worked on).
    outstanding: dict[int, int] = {}
    open_hits: dict[int, bool] = {}
    for h, hit in states.items():
        alive = _is_alive(hit)
        open_hits[h] = alive
        outstanding[h] = int(hit.get("NumberOfAssignmentsPending", 0)) + (
            int(hit.get("NumberOfAssignmentsAvailable", 0)) if alive else 0)
    hits_of: dict[int, list[int]] = {}
    for item_id, h in conn.execute(
            "SELECT hi.item_id, hi.hit_index FROM hit_items hi JOIN hits h ON "
            "h.hit_index = hi.hit_index AND h.realm = ? WHERE hi.realm IN ('', ?)",
            (realm, realm)):
        hits_of.setdefault(item_id, []).append(h)
    need = {}
    for item_id, missing in short.items():
        left = missing - sum(outstanding.get(h, 0) for h in hits_of.get(item_id, []))
        if left > 0:
            need[item_id] = left
    if not need:
        return
    reward = published["reward"]
    budget = study.settings.budget.max_usd
    committed = committed_cost(conn, realm)

    # First choice: more assignments for the item's own HIT (MTurk keeps a worker from
    # doing a HIT twice, so no one rates an item twice).
    extend: dict[int, int] = {}
    rehome: dict[int, int] = {}
    for item_id, left in need.items():
        home = min(hits_of.get(item_id, [-1]))
        cap = _hit_capacity(conn, realm, home) if home >= 0 else 0
        ok = home >= 0 and (cap >= MTURK_EXTEND_LIMIT or cap + left < MTURK_EXTEND_LIMIT)
        if ok:
            extend[home] = max(extend.get(home, 0), left)
        else:
            rehome[item_id] = left
    sid = study_id(conn)
    for h, n in sorted(extend.items()):
        cost = n * money.assignment_cost(reward, _hit_capacity(conn, realm, h) + n)
        if committed + cost > budget:
            summary.notes.append(f"top-up of HIT {h} (+{n}) skipped: it would exceed the budget")
            continue
        if _extend_hit(conn, api, sid, h, n, open_hits.get(h, True)):
            committed += cost
            summary.topup_assignments += n
    if not rehome:
        return
    type_id = store.get_meta(conn, f"crowd.{realm}.hit_type_id")
    if not type_id:
        return
    from study.crowd.hosting import Hosting

    hosting = Hosting(study, conn)
    items = sorted(rehome)
    golds = [r["item_id"] for r in design.hit_items(conn, 0) if r["kind"] != "test"]
    for start in range(0, len(items), k):
        chunk = items[start:start + k]
        n = max(rehome[i] for i in chunk)
        cost = n * money.assignment_cost(reward, n)
        if committed + cost > budget:
            summary.notes.append("a top-up HIT was skipped: it would exceed the budget")
            continue
        h = _plan_topup_hit(conn, realm, chunk + golds, start)
        create_hit(study, conn, api, hosting, h, type_id, n)
        committed += cost
        summary.topup_hits += 1


def _plan_topup_hit(conn: sqlite3.Connection, realm: str, item_ids: list[int],
                    salt: int) -> int:
    """A new HIT for items whose own HIT cannot take more assignments; reused when an
    earlier, interrupted collect planned the same one."""
    import random

    with store.transaction(conn):
        existing = conn.execute(
            "SELECT hi.hit_index FROM hit_items hi LEFT JOIN hits h ON h.realm = ? AND "
            "h.hit_index = hi.hit_index WHERE hi.realm = ? AND COALESCE(h.state, 'planned') "
            "!= 'created' GROUP BY hi.hit_index", (realm, realm)).fetchone()
        if existing is not None:
            return existing[0]
        h = conn.execute("SELECT COALESCE(MAX(hit_index), -1) + 1 FROM hit_items").fetchone()[0]
        order = list(item_ids)
        random.Random(f"topup:{h}:{salt}").shuffle(order)
        # A method that swaps sides (CCR) shows every second item of the shuffled HIT swapped.
        swaps = design.frozen_method(conn).swaps_sides
        for pos, item_id in enumerate(order, start=1):
            conn.execute("INSERT INTO hit_items (hit_index, position, item_id, realm, swapped) "
                         "VALUES (?,?,?,?,?)",
                         (h, pos, item_id, realm, int(swaps and pos % 2 == 0)))
    return h


def _extend_hit(conn: sqlite3.Connection, api: Requester, sid: str, h: int, n: int,
                alive: bool) -> bool:
    realm = api.realm
    with store.transaction(conn):
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM topups WHERE realm = ? "
                           "AND hit_index = ?", (realm, h)).fetchone()[0]
        token = f"{sid}-{realm}-more-{h}-{seq}"
        conn.execute("INSERT INTO topups (realm, hit_index, seq, count, unique_token) "
                     "VALUES (?,?,?,?,?)", (realm, h, seq, n, token))
    journal.record(conn, "collect:topup:intent", hit_index=h, count=n)
    row = conn.execute("SELECT * FROM topups WHERE unique_token = ?", (token,)).fetchone()
    return _apply_extension(conn, api, row, alive)


def _is_alive(hit: dict) -> bool:
    """Whether a HIT (GetHIT's answer) can still take new assignments without renewal."""
    expiration = hit.get("Expiration")
    return hit.get("HITStatus") == "Assignable" or (
        isinstance(expiration, datetime) and expiration > datetime.now(timezone.utc)
        and hit.get("HITStatus") not in ("Disposed",))


def resume_extensions(conn: sqlite3.Connection, api: Requester) -> None:
    """Finish top-ups an interrupted collect left as intents."""
    for row in conn.execute("SELECT * FROM topups WHERE realm = ? AND state = 'intent' "
                            "ORDER BY hit_index, seq", (api.realm,)).fetchall():
        _apply_extension(conn, api, row, None)


def _apply_extension(conn: sqlite3.Connection, api: Requester, row: sqlite3.Row,
                     alive: bool | None) -> bool:
    """Send one top-up unless the marketplace shows it applied (checked through MaxAssignments,
    which outlives the token's memory)."""
    from botocore.exceptions import ClientError

    realm, h = api.realm, row["hit_index"]
    hit = conn.execute("SELECT * FROM hits WHERE realm = ? AND hit_index = ?",
                       (realm, h)).fetchone()
    before = _hit_capacity(conn, realm, h)
    state = api.call("get_hit", HITId=hit["hit_id"])["HIT"]
    current = int(state["MaxAssignments"])
    if alive is None:  # resuming: ask the marketplace rather than assume
        alive = _is_alive(state)
    if current < before + row["count"]:
        if not alive:
            from study.crowd.publish import published_params
            lifetime = int(published_params(conn, realm)["lifetime_s"])
            api.call("update_expiration_for_hit", HITId=hit["hit_id"],
                     ExpireAt=datetime.now(timezone.utc) + timedelta(seconds=lifetime))
        journal.record(conn, "collect:topup:sent", hit_index=h, count=row["count"])
        try:
            api.call("create_additional_assignments_for_hit", HITId=hit["hit_id"],
                     NumberOfAdditionalAssignments=int(row["count"]),
                     UniqueRequestToken=row["unique_token"])
        except ClientError as exc:
            now_max = int(api.call("get_hit", HITId=hit["hit_id"])["HIT"]["MaxAssignments"])
            if now_max < before + row["count"]:
                conn.execute("UPDATE topups SET state = 'failed', error = ? WHERE "
                             "unique_token = ?", (error_message(exc)[:500],
                                                  row["unique_token"]))
                return False
    journal.record(conn, "collect:topup:done", hit_index=h)
    conn.execute("UPDATE topups SET state = 'done' WHERE unique_token = ?",
                 (row["unique_token"],))
    return True
