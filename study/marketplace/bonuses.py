"""Requester operations on bonuses: send one (exactly once per token), list them."""

from __future__ import annotations

from study.marketplace import paging
from study.marketplace.assignments import assignment_row
from study.marketplace.errors import RequestError, param_error, stamp
from study.marketplace.hits import TOKEN_WINDOW_S, hit_row
from study.marketplace.money import fee_cents, fmt_cents, parse_cents, require_funds
from study.marketplace.shapes import wire_time


def send_bonus(market, acct, p):
    store = market.store
    now = market.now()
    amount = parse_cents(p["BonusAmount"])
    if amount < 1:
        raise param_error("BonusAmount must be at least 0.01.")
    token = p.get("UniqueRequestToken")
    with store.transaction():
        if token:
            old = store.bonus_by_token(acct, token)
            if old is not None and old["grant_time"] > now - TOKEN_WINDOW_S:
                # MTurk's words for a repeated idempotency token.
                raise RequestError(
                    f"The idempotency token \"{token}\" has already been processed. "
                    f"{stamp(now)}", "AWS.MechanicalTurk.DuplicateRequest")
            if old is not None:
                store.clear_bonus_token(acct, token)
        a = assignment_row(market, acct, p["AssignmentId"])
        if a["worker_id"] != p["WorkerId"]:
            raise RequestError(f"Assignment {a['assignment_id']} was not done by worker "
                               f"{p['WorkerId']}. {stamp(now)}",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        cost = amount + fee_cents(amount, 1)
        require_funds(market, acct, cost)
        store.insert_bonus(acct, p["WorkerId"], a["assignment_id"], a["hit_id"], amount,
                           p["Reason"], now, token)
        store.charge(acct, cost)
    return {}


def list_bonus_payments(market, acct, p):
    if ("HITId" in p) == ("AssignmentId" in p):
        raise param_error("Specify either HITId or AssignmentId (exactly one).")
    limit, after = paging.page(p)
    if "HITId" in p:
        hit_row(market, acct, p["HITId"])
        column, value = "hit_id", p["HITId"]
    else:
        assignment_row(market, acct, p["AssignmentId"])
        column, value = "assignment_id", p["AssignmentId"]
    rows = market.store.bonuses(acct, column, value, after[1] if after else None, limit)
    return paging.answer("BonusPayments", [{
        "WorkerId": b["worker_id"], "BonusAmount": fmt_cents(b["amount_cents"]),
        "AssignmentId": b["assignment_id"], "Reason": b["reason"],
        "GrantTime": wire_time(b["grant_time"]),
    } for b in rows], [0, rows[-1]["bonus_id"]] if rows else None)
