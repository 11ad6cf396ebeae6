"""Dollar amounts as integer cents, and MTurk's commission."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

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
