"""Who a live participant is.

Anyone holding a shared invitation link may open it, so nothing in the link's URL can name an
identity: the identity is a WorkerId made at the first visit and bound to the browser by a
signed cookie from then on. A recruiting platform's participant id (PROLIFIC_PID, STUDY_ID,
SESSION_ID, or `participant`) is kept as an attribute of that identity, and one platform id
holds at most one identity per invitation: opening the link again without the cookie, with the
same id, is refused rather than given a fresh identity, so a block on a participant holds. A
browser that already holds an identity keeps it, so one link cannot give one participant two.
What a participant could still do is open the link without a platform id in a fresh browser;
a per-participant link or a platform that always appends its id closes that.
"""

from __future__ import annotations

import json

from study.marketplace.errors import WorkerError

# The participant id first, then the other attributes a platform appends to the link.
PARTICIPANT_PARAMS = ("PROLIFIC_PID", "participant", "PARTICIPANT_ID")
ATTRIBUTE_PARAMS = ("STUDY_ID", "SESSION_ID")
MAX_PARAM_CHARS = 128


def platform_attributes(args) -> dict[str, str]:
    """The platform's parameters from the link's query, trimmed; nothing else is kept."""
    out = {}
    for name in PARTICIPANT_PARAMS + ATTRIBUTE_PARAMS:
        value = (args.get(name) or "").strip()[:MAX_PARAM_CHARS]
        if value:
            out[name] = value
    return out


def participant_id(attributes: dict[str, str]) -> str | None:
    return next((attributes[p] for p in PARTICIPANT_PARAMS if p in attributes), None)


def join(market, invite, current: str | None, attributes: dict[str, str]) -> str:
    """The WorkerId of whoever opened `invite`: the browser's own (`current`, from its signed
    cookie), or a new one. Raises WorkerError when the platform id belongs to another."""
    store = market.store
    token = invite["token"]
    pid = participant_id(attributes)
    with store.transaction():
        mine = store.worker("live", current) if current else None
        holder = store.participant(token, pid) if pid else None
        if mine is not None:
            if pid and mine["participant_id"] and mine["participant_id"] != pid:
                raise WorkerError("This browser has already joined this study as another "
                                  "participant.", 409, "Already joined")
            if holder is not None and holder != current:
                raise _taken()
            if pid and not mine["participant_id"]:
                store.set_worker("live", current, "participant_id", pid)
            if attributes:
                store.set_worker("live", current, "platform", json.dumps(attributes))
            store.set_worker("live", current, "invite_token", token)
            return current
        if holder is not None:
            raise _taken()
        worker_id = market.new_id("A", 14)
        store.insert_worker("live", worker_id, {
            "country": invite["country"], "subdivision": None,
            "base_approved": invite["base_approved"], "base_rejected": 0, "masters": 0,
            "participant_id": pid, "invite_token": token}, market.now())
        if attributes:
            store.set_worker("live", worker_id, "platform", json.dumps(attributes))
        return worker_id


def _taken() -> WorkerError:
    return WorkerError("This participant id has already joined this study in another browser. "
                       "Continue in the browser where you started.", 409, "Already joined")
