"""Money: dollar amounts as integer cents, MTurk's commission, and a realm's account."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from study.marketplace.errors import RequestError

CURRENCY_RE = re.compile(r"^[0-9]+(\.)?[0-9]{0,2}$")
MIN_FEE_CENTS = 1
REALMS = ("sandbox", "live")


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


def require_funds(market, realm: str, cost_cents: int) -> None:
    balance = market.store.balance(realm)
    if cost_cents > balance:
        raise RequestError(
            f"This Requester has insufficient funds in their account to complete this "
            f"transaction: it needs ${fmt_cents(cost_cents)} and the {realm} balance is "
            f"${fmt_cents(balance)}.", "AWS.MechanicalTurk.InsufficientFunds")


def get_account_balance(market, realm, p):
    store = market.store
    held = sum(r["n"] * (r["reward_cents"] + fee_cents(r["reward_cents"], r["max_assignments"]))
               for r in store.submitted_by_hit(realm))
    return {"AvailableBalance": fmt_cents(store.balance(realm)), "OnHoldBalance": fmt_cents(held)}


def deposit(db_path: str | Path, realm: str, amount: str) -> str:
    """Add funds to a realm's account; returns the new balance as a dollar string."""
    from study.marketplace.datastore import Store
    if realm not in REALMS:
        raise ValueError(f"unknown realm {realm!r}")
    cents = parse_cents(amount)
    store = Store(db_path)
    try:
        with store.transaction():
            store.charge(realm, -cents)
            balance = store.balance(realm)
    finally:
        store.close()
    return fmt_cents(balance)
