"""Money: dollar amounts as integer cents, MTurk's commission, and a requester's account.

A requester's AvailableBalance is what it has not yet paid out. Making a HIT holds the reward
and commission of every assignment it may still pay for: OnHoldBalance is that sum, and new
work (a HIT, more assignments, a bonus) is refused with InsufficientFunds when it would not fit
in what is available and not held. A HIT's hold shrinks as its assignments are approved (paid)
or rejected, and goes when it expires (but for work still in progress) or is deleted.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from study.marketplace.datastore import POOL, Account
from study.marketplace.errors import RequestError, stamp
from study.marketplace.tables import REALMS

CURRENCY_RE = re.compile(r"^[0-9]+(\.)?[0-9]{0,2}$")
MIN_FEE_CENTS = 1


def parse_cents(amount: str) -> int:
    if not isinstance(amount, str) or not CURRENCY_RE.match(amount):
        raise ValueError(f"not a dollar amount: {amount!r}")
    return int((Decimal(amount) * 100).to_integral_value(ROUND_HALF_UP))


def fmt_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def fee_cents(amount_cents: int, max_assignments: int = 1) -> int:
    """MTurk's commission: 20% of the amount, 20% more for HITs with 10 or more assignments,
    at least one cent."""
    rate = Decimal("0.40") if max_assignments >= 10 else Decimal("0.20")
    fee = int((Decimal(amount_cents) * rate).to_integral_value(ROUND_HALF_UP))
    return max(MIN_FEE_CENTS, fee)


def with_fee(reward_cents: int, max_assignments: int) -> int:
    """What one assignment of a HIT costs the requester."""
    return reward_cents + fee_cents(reward_cents, max_assignments)


def rehold(market, realm: str, hit_id: str) -> None:
    """Bring one HIT's hold (and its requester's total) up to date after anything that may
    change it: every open slot of a HIT that has not expired, the work in progress or awaiting
    review of one that has, nothing once it is deleted. Runs inside the caller's transaction."""
    b = market.store.hold_basis(realm, hit_id, market.now())
    if b is None:
        return
    slots = 0 if b["disposed"] else (b["max_assignments"] - b["done"] if b["open"] else b["busy"])
    new = max(0, slots) * with_fee(b["reward_cents"], b["max_assignments"])
    if new != b["held_cents"]:
        market.store.set_hold(Account(realm, b["requester"]), hit_id, b["held_cents"], new)


def require_funds(market, acct: Account, cost_cents: int, held: int = 0) -> None:
    """Refuse with InsufficientFunds unless `cost_cents` fits in the balance less what is held
    (`held`: the part of the cost that is already held for it)."""
    balance, on_hold = market.store.funds(acct)
    free = balance - on_hold + held
    if cost_cents > free:
        # MTurk's words first (clients match them), then what this marketplace knows.
        raise RequestError(
            f"This Requester has insufficient funds in their account to complete this "
            f"transaction. It needs ${fmt_cents(cost_cents)}; the {acct.realm} balance is "
            f"${fmt_cents(balance)}, of which ${fmt_cents(on_hold)} is held for HITs already "
            f"made. Add funds with `study marketplace deposit`. {stamp(market.now())}",
            "AWS.MechanicalTurk.InsufficientFunds")


def get_account_balance(market, acct, p):
    return {"AvailableBalance": fmt_cents(market.store.balance(acct)),
            "OnHoldBalance": fmt_cents(market.store.held(acct))}


def deposit(db_path: str | Path, realm: str, amount: str, requester: str | None = None) -> str:
    """Add funds to a requester's account (`requester`: its key id); returns the new balance.

    Without a key id, the funds go to the realm's only requester, or to the pool that the first
    key to use the realm takes over. With several requesters, the key id must be given.
    """
    from study.marketplace.datastore import Store
    if realm not in REALMS:
        raise ValueError(f"unknown realm {realm!r}")
    cents = parse_cents(amount)
    store = Store(db_path)
    try:
        with store.transaction():
            if requester is None:
                keys = [k for k in store.accounts(realm) if k != POOL]
                if len(keys) > 1:
                    raise LookupError(f"the {realm} realm has {len(keys)} requesters "
                                      f"({', '.join(keys)}): name the one to credit")
                requester = keys[0] if keys else POOL
            acct = Account(realm, requester)
            store.deposit(acct, cents)
            balance = store.balance(acct)
    finally:
        store.close()
    return fmt_cents(balance)
