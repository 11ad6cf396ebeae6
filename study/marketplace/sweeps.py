"""What time does to a realm: assignments past their deadline are abandoned, submitted ones past
their auto-approval time are approved and paid, expired HITs release what they held. Applied
lazily before a request reads or writes a realm, so a marketplace that was stopped for a week
catches up on its first request."""

from __future__ import annotations

from collections import Counter

from study.marketplace.datastore import Account
from study.marketplace.money import rehold, with_fee


def sweep(market, realm: str) -> None:
    store = market.store
    now = market.now()
    if not store.sweep_due(realm, now):
        return
    with store.transaction():
        changed = set(store.abandon_overdue(realm, now))
        changed.update(store.expired_unswept(realm, now))
        owed: Counter = Counter()
        for r in store.auto_approval_due(realm, now):
            store.mark_approved(realm, r["assignment_id"], r["auto_approval_time"])
            owed[r["requester"]] += with_fee(r["reward_cents"], r["max_assignments"])
            changed.add(r["hit_id"])
        for requester, cents in owed.items():
            store.charge(Account(realm, requester), cents)
        for hit_id in sorted(changed):
            rehold(market, realm, hit_id)
