"""What a requester does to workers directly: block and unblock them, send them messages."""

from __future__ import annotations

from study.marketplace import paging
from study.marketplace.errors import param_error


def create_worker_block(market, acct, p):
    with market.store.transaction():
        market.store.block(acct, p["WorkerId"], p["Reason"], market.now())
    return {}


def delete_worker_block(market, acct, p):
    with market.store.transaction():
        market.store.unblock(acct, p["WorkerId"])
    return {}


def list_worker_blocks(market, acct, p):
    limit, after = paging.page(p)
    rows = market.store.blocks(acct, after[1] if after else None, limit)
    return paging.answer("WorkerBlocks", [{"WorkerId": r["worker_id"], "Reason": r["reason"]}
                                          for r in rows],
                         [0, rows[-1]["worker_id"]] if rows else None)


def notify_workers(market, acct, p):
    if not 1 <= len(p["Subject"]) <= 200:
        raise param_error("Subject must hold 1 to 200 characters.")
    if not 1 <= len(p["MessageText"]) <= 4096:
        raise param_error("MessageText must hold 1 to 4096 characters.")
    if not 1 <= len(p["WorkerIds"]) <= 100:
        raise param_error("WorkerIds must list 1 to 100 workers.")
    failures = []
    now = market.now()
    with market.store.transaction():
        for w in p["WorkerIds"]:
            if not market.store.worked_for(acct, w):
                # MTurk only lets a requester message workers who have worked for them.
                failures.append({"NotifyWorkersFailureCode": "HardFailure",
                                 "NotifyWorkersFailureMessage":
                                     f"Cannot send notification to {w}: the worker has "
                                     f"not done any work for you.",
                                 "WorkerId": w})
                continue
            market.store.insert_notification(acct, w, p["Subject"], p["MessageText"], now)
    return {"NotifyWorkersFailureStatuses": failures}
