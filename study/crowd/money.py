"""Costs as MTurk charges them: reward plus a 20% fee (40% for HITs with 10 or more
assignments), at least one cent per assignment; bonuses carry a 20% fee."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from study.errors import StudyError

CENT = Decimal("0.01")


def usd(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise StudyError(f"{value!r} is not an amount in USD", hint="write it like \"0.50\"") \
            from None
    if not amount.is_finite() or amount < 0:
        raise StudyError(f"{value!r} is not an amount in USD", hint="write it like \"0.50\"")
    return amount.quantize(CENT, ROUND_HALF_UP)


def fee(amount: Decimal, max_assignments: int = 1) -> Decimal:
    rate = Decimal("0.40") if max_assignments >= 10 else Decimal("0.20")
    return max(CENT, (amount * rate).quantize(CENT, ROUND_HALF_UP))


def assignment_cost(reward: Decimal, max_assignments: int) -> Decimal:
    return reward + fee(reward, max_assignments)


def fmt(amount: Decimal) -> str:
    return f"${amount:,.2f}"
