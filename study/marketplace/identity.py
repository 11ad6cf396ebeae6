"""Who a live participant is.

Nothing in a shared invitation link's URL can name an identity, since anyone holding the link
may open it: through it, the identity is a WorkerId made at the first visit and bound to the
browser by a signed cookie from then on. A recruiting platform's participant id (PROLIFIC_PID,
STUDY_ID, SESSION_ID, or `participant`) is kept as an attribute of that identity, and one
platform id holds at most one identity per invitation: opening the link again without the
cookie, with the same id, is refused rather than given a fresh identity, so a block on a
participant holds. A browser that already holds an identity keeps it, so one link cannot give
one participant two. Whether the shared link may make a new identity at all is the
invitation's policy (invites.py): by default only for a visit with a platform id, so a fresh
browser without one cannot become a new participant.

A personal link names its identity by a signed key (invites.py): the same participant in any
browser, so whatever the requester does to that WorkerId (a block, a qualification) holds on
every visit.
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
    """The WorkerId of whoever opened `invite`'s shared link: the browser's own (`current`,
    from its signed cookie), or a new one. Raises WorkerError when the platform id belongs to
    another, or when the invitation's policy refuses the visit."""
    if invite["shared_link"] == "closed":
        raise WorkerError("This study is open only through personal links. Open the link "
                          "you were sent for yourself.", 403, "Personal link needed")
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
        _may_make_identity(invite, pid)
        worker_id = market.new_id("A", 14)
        store.insert_worker("live", worker_id, {
            "country": invite["country"], "subdivision": None,
            "base_approved": invite["base_approved"], "base_rejected": 0, "masters": 0,
            "participant_id": pid, "invite_token": token}, market.now())
        if attributes:
            store.set_worker("live", worker_id, "platform", json.dumps(attributes))
        return worker_id


def join_personal(market, key: str, current: str | None, attributes: dict[str, str]) -> str:
    """The WorkerId a personal link's `key` names, whichever browser opens it. Raises
    WorkerError when the key is not one the marketplace signed, when the browser is signed in
    as another participant (`current`: a link someone else sent must not silently switch whose
    work this browser does), or when the platform id the visit carries belongs to another
    participant."""
    from study.marketplace.invites import worker_of_key
    worker_id = worker_of_key(market.cookie_secret, key)
    store = market.store
    pid = participant_id(attributes)
    with store.transaction():
        row = store.worker("live", worker_id) if worker_id else None
        if row is None or not row["invite_token"]:
            raise WorkerError("This personal link is not valid. Check that you copied all of "
                              "it.", 404, "Unknown link")
        if current and current != worker_id:
            raise WorkerError("This browser is already signed in to this study as another "
                              "participant. Sign out on the study's page first, or open this "
                              "link in a private window.", 409, "Signed in as someone else")
        if pid:
            if row["participant_id"] and row["participant_id"] != pid:
                raise WorkerError("This personal link belongs to another participant.", 409,
                                  "Not your link")
            holder = store.participant(row["invite_token"], pid)
            if holder is not None and holder != worker_id:
                raise _taken()
            if not row["participant_id"]:
                store.set_worker("live", worker_id, "participant_id", pid)
        if attributes:
            store.set_worker("live", worker_id, "platform", json.dumps(attributes))
    return worker_id


def _may_make_identity(invite, pid: str | None) -> None:
    """The invitation's shared-link policy, asked before the shared link makes an identity."""
    # "platform-id", and anything unknown: the stricter of the two policies that let anyone in.
    if invite["shared_link"] != "open" and not pid:
        raise WorkerError("This link needs your participant id from the recruiting platform. "
                          "Open the study from the platform's page (it adds your id to the "
                          "link), or open the personal link you were sent.", 403,
                          "Participant id needed")


def _taken() -> WorkerError:
    return WorkerError("This participant id has already joined this study in another browser. "
                       "Continue in the browser where you started.", 409, "Already joined")
