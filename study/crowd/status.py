"""The crowd part of `study status`: HITs published and completed, valid/required ratings per
item, money spent and committed."""

from __future__ import annotations

import json
from decimal import Decimal

from study import store

from study.crowd import money
from study.crowd.ratings import current_realm


def crowd_status(study) -> dict:
    conn = study.connect()
    try:
        realm = current_realm(conn)
        designed = int(conn.execute("SELECT COUNT(DISTINCT hit_index) FROM hit_items WHERE "
                                    "realm IN ('', ?)", (realm,)).fetchone()[0])
        published = int(conn.execute("SELECT COUNT(*) FROM hits WHERE realm = ? AND "
                                     "state = 'created'", (realm,)).fetchone()[0])
        stored = store.get_meta(conn, f"crowd.{realm}.published")
        required = json.loads(stored)["ratings_per_item"] if stored \
            else study.settings.design.ratings_per_item
        per_item = [dict(r) for r in conn.execute(
            "SELECT i.image_id AS image, i.method AS method, "
            "(SELECT COUNT(*) FROM ratings r JOIN assignments a USING (assignment_id) "
            " WHERE r.item_id = i.item_id AND r.valid = 1 AND a.realm = ? "
            " AND a.decision = 'approve') AS valid "
            "FROM items i WHERE i.kind = 'test' AND i.item_id IN (SELECT item_id FROM "
            "hit_items) ORDER BY i.image_id, i.method", (realm,))]
        # Adaptive allocation: each item's count for this round, and stop only when it says so.
        from study.crowd import allocation
        this_round = allocation.required_by_item(conn, realm)
        for item in per_item:
            item["required"] = this_round.get((item["image"], item["method"]), required)
        allocated = allocation.finished(conn, realm, json.loads(stored) if stored else None)
        allocation_lines = allocation.status_lines(conn, realm)
        allocation_view = allocation.view(conn, realm)
        assignments = dict(conn.execute(
            "SELECT COALESCE(decision, 'undecided'), COUNT(*) FROM assignments WHERE realm = ? "
            "GROUP BY 1", (realm,)).fetchall())
        completed = int(conn.execute(
            "SELECT COUNT(*) FROM hits h WHERE h.realm = ? AND h.state = 'created' AND "
            "(SELECT COUNT(*) FROM assignments a WHERE a.hit_id = h.hit_id) >= h.max_assignments",
            (realm,)).fetchone()[0])
        spent = Decimal("0")
        for r in conn.execute(
                "SELECT p.kind, p.amount_usd, h.reward, h.max_assignments FROM payments p "
                "JOIN assignments a USING (assignment_id) JOIN hits h ON h.hit_id = a.hit_id "
                "WHERE a.realm = ? AND p.state = 'done' AND p.kind IN ('approve', 'bonus', "
                "'agreement_bonus')", (realm,)):
            bonus = r["kind"] != "approve"
            amount = money.usd(r["amount_usd"] if bonus else r["reward"])
            spent += amount + money.fee(amount, 1 if bonus else r["max_assignments"])
        from study.crowd import qualify
        spent += qualify.spent(conn, realm)
        qualification = qualify.progress(conn, realm)
        from study.crowd.publish import committed_cost
        committed = committed_cost(conn, realm)
        waiting = json.loads(store.get_meta(conn, f"crowd.{realm}.waiting") or "[]")
    finally:
        conn.close()
    complete_items = sum(1 for i in per_item if i["valid"] >= i["required"])
    valid = sum(i["valid"] for i in per_item)
    collect_complete = bool(per_item) and complete_items == len(per_item) and allocated
    return {
        "publish": {"realm": realm, "hits_designed": designed, "hits_published": published,
                    "hits_completed": completed,
                    "complete": designed > 0 and published >= designed,
                    "summary": f"{published}/{designed} HITs published ({realm}), "
                               f"{completed} completed"},
        "collect": {"realm": realm, "items": per_item, "items_complete": complete_items,
                    "assignments": assignments, "spent_usd": str(spent),
                    "committed_usd": str(committed), "complete": collect_complete,
                    "waiting": waiting, "allocation": allocation_lines,
                    "allocation_view": allocation_view,
                    "summary": f"{complete_items}/{len(per_item)} items with "
                               + (f"the valid ratings this round wants ({valid} of "
                                  f"{required * len(per_item)} at the full budget)"
                                  if allocation_view else f"{required} valid ratings")
                               + f"; spent {money.fmt(spent)} of {money.fmt(committed)} "
                                 "committed"
                               + (f"; qualification: {qualification['passed']} of "
                                  f"{qualification['taken']} passed" if qualification else ""),
                    "qualification": qualification},
    }
