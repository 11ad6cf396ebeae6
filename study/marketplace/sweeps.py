"""What time does to a realm: assignments past their deadline are abandoned, submitted ones past
their auto-approval time are approved and paid, expired HITs release what they held (and each
is announced to the HIT type's notification destination, if it asked for it). Applied
lazily before a request reads or writes a realm, so a marketplace that was stopped for a week
catches up on its first request. Whether anything is due is answered from memory (due.py); a
sweep that ran sets the next due time from the database once its work is committed."""

from __future__ import annotations

from collections import Counter

from study.marketplace.datastore import Account
from study.marketplace.money import rehold, with_fee
from study.marketplace.notifications import announce, announce_if_reviewable


def sweep(market, realm: str) -> None:
    store = market.store
    now = market.now()
    if not store.sweep_due(realm, now):
        return
    nested = store.conn().in_transaction  # its commit, and so the due time, is the caller's
    events: list[tuple[str, str, str | None]] = []  # (event type, HIT, assignment)
    with store.transaction():
        abandoned = store.abandon_overdue(realm, now)
        events += [("AssignmentAbandoned", r["hit_id"], r["assignment_id"]) for r in abandoned]
        changed = {r["hit_id"] for r in abandoned}
        expired = store.expired_unswept(realm, now)
        events += [("HITExpired", hit_id, None) for hit_id in expired]
        changed.update(expired)
        owed: Counter = Counter()
        for r in store.auto_approval_due(realm, now):
            store.mark_approved(realm, r["assignment_id"], r["auto_approval_time"])
            owed[r["requester"]] += with_fee(r["reward_cents"], r["max_assignments"])
            changed.add(r["hit_id"])
            events.append(("AssignmentApproved", r["hit_id"], r["assignment_id"]))
        for requester, cents in owed.items():
            store.charge(Account(realm, requester), cents)
        for hit_id in sorted(changed):
            rehold(market, realm, hit_id)
        next_at, version = store.next_due(realm)
    if not nested:
        store.due.settle(realm, next_at, version)
    for event_type, hit_id, assignment_id in events:
        announce(market, realm, hit_id, event_type, assignment_id)
        if event_type == "HITExpired":
            announce_if_reviewable(market, realm, hit_id, expired=True)
