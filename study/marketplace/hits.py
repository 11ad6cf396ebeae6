"""Requester operations on HIT types and HITs: create, read, list, expire, review, retype,
delete, extend; and each HIT as the API shows it."""

from __future__ import annotations

import json
from study.marketplace import paging
from study.marketplace.datastore import Account
from study.marketplace.errors import RequestError, param_error, stamp
from study.marketplace.ids import group_id_for
from study.marketplace.layouts import question_from_layout
from study.marketplace.money import fee_cents, fmt_cents, parse_cents, rehold, require_funds
from study.marketplace.notifications import announce, announce_if_reviewable
from study.marketplace.qualifications import check_requirements
from study.marketplace.questions import parse_question
from study.marketplace.shapes import wire_time

DAY = 86400
MIN_DURATION_S = 30
MAX_DURATION_S = 365 * DAY
MAX_AUTO_APPROVAL_S = 30 * DAY
TOKEN_WINDOW_S = 24 * 3600


# -- the HIT as the API shows it ----------------------------------------------------------------
def status(h, c: dict, now: float) -> str:
    if h["disposed"]:
        return "Disposed"
    if h["expiration"] > now and h["max_assignments"] - c["taken"] > 0:
        return "Assignable"
    if c["pending"] > 0:
        return "Unassignable"
    return "Reviewing" if h["reviewing"] else "Reviewable"


NO_ASSIGNMENTS = {"pending": 0, "taken": 0, "completed": 0}


def hit_dicts(market, realm: str, rows, counts: dict | None = None) -> list[dict]:
    """The HITs as the API shows them; `counts` (by HIT id) when the caller knows them."""
    if counts is None:
        counts = market.store.assignment_counts(realm, [r["hit_id"] for r in rows])
    now = market.now()
    out = []
    for h in rows:
        c = counts[h["hit_id"]]
        d = {
            "HITId": h["hit_id"],
            "HITTypeId": h["hit_type_id"],
            "HITGroupId": group_id_for(realm, h["hit_type_id"]),
            "CreationTime": wire_time(h["created"]),
            "Title": h["title"],
            "Description": h["description"],
            "Question": h["question"],
        }
        if h["keywords"] is not None:
            d["Keywords"] = h["keywords"]
        d.update({
            "HITStatus": status(h, c, now),
            "MaxAssignments": h["max_assignments"],
            "Reward": fmt_cents(h["reward_cents"]),
            "AutoApprovalDelayInSeconds": h["auto_approval_delay"],
            "Expiration": wire_time(h["expiration"]),
            "AssignmentDurationInSeconds": h["assignment_duration"],
        })
        if h["requester_annotation"] is not None:
            d["RequesterAnnotation"] = h["requester_annotation"]
        d.update({
            "QualificationRequirements": json.loads(h["qual_json"]),
            "HITReviewStatus": h["review_status"],
            "NumberOfAssignmentsPending": c["pending"],
            "NumberOfAssignmentsAvailable": max(0, h["max_assignments"] - c["taken"])
            if not h["disposed"] else 0,
            "NumberOfAssignmentsCompleted": c["completed"],
        })
        out.append(d)
    return out


def hit_row(market, acct: Account, hit_id: str):
    """The requester's own HIT; another requester's is as absent as one never made."""
    row = market.store.hit_row(acct.realm, hit_id, acct.requester)
    if row is None:
        raise RequestError(f"Hit {hit_id} does not exist. {stamp(market.now())}",
                           "AWS.MechanicalTurk.HITDoesNotExist")
    return row


def hit_dict(market, acct: Account, hit_id: str) -> dict:
    return hit_dicts(market, acct.realm, [hit_row(market, acct, hit_id)])[0]


# -- checks -------------------------------------------------------------------------------------
def check_seconds(p: dict, name: str, low: int, high: int) -> None:
    if name in p and not (low <= p[name] <= high):
        raise param_error(f"{name} must be between {low} and {high} seconds (got {p[name]}).")


def _check_hit_type_params(market, acct: Account, p: dict) -> None:
    title = p["Title"]
    if not title.strip():
        raise param_error("Title must not be empty.")
    if len(title) > 128:
        raise param_error(f"Title is {len(title)} characters; the limit is 128.")
    if not p["Description"].strip():
        raise param_error("Description must not be empty.")
    if len(p["Description"]) > 2000:
        raise param_error("Description is longer than 2000 characters.")
    if len(p.get("Keywords") or "") > 1000:
        raise param_error("Keywords are longer than 1000 characters.")
    if parse_cents(p["Reward"]) < 1:
        raise param_error(f"Reward {p['Reward']} is below the minimum of 0.01.")
    check_seconds(p, "AssignmentDurationInSeconds", MIN_DURATION_S, MAX_DURATION_S)
    check_seconds(p, "AutoApprovalDelayInSeconds", 0, MAX_AUTO_APPROVAL_S)
    check_requirements(market, acct, p.get("QualificationRequirements") or [])


def _question_params(market, p: dict) -> dict:
    """The request with its Question: given, or filled from a HIT layout."""
    for name in ("AssignmentReviewPolicy", "HITReviewPolicy"):
        if name in p:
            raise param_error(f"{name} is not supported by this marketplace.")
    if "HITLayoutId" in p:
        if "Question" in p:
            raise param_error("Give either a Question or a HITLayoutId, not both.")
        return {**p, "Question": question_from_layout(market, p)}
    if "HITLayoutParameters" in p:
        raise param_error("HITLayoutParameters need a HITLayoutId.")
    if "Question" not in p:
        raise param_error("Either a Question parameter or a HITLayoutId parameter must be "
                          "provided.")
    return p


# -- HIT types and HITs -------------------------------------------------------------------------
def _hit_type(market, acct: Account, p: dict) -> str:
    """The HIT type with these properties, created on first use (MTurk returns the existing
    type id when every property matches)."""
    props = {
        "Title": p["Title"], "Description": p["Description"], "Keywords": p.get("Keywords"),
        "Reward": fmt_cents(parse_cents(p["Reward"])),
        "AssignmentDurationInSeconds": p["AssignmentDurationInSeconds"],
        "AutoApprovalDelayInSeconds": p.get("AutoApprovalDelayInSeconds", MAX_AUTO_APPROVAL_S),
        "QualificationRequirements": p.get("QualificationRequirements") or [],
    }
    fingerprint = json.dumps(props, sort_keys=True)
    existing = market.store.hit_type_by_fingerprint(acct, fingerprint)
    if existing:
        return existing
    hit_type_id = market.new_id()
    market.store.insert_hit_type(acct, hit_type_id, fingerprint, props,
                                 parse_cents(props["Reward"]),
                                 json.dumps(props["QualificationRequirements"]), market.now())
    return hit_type_id


def create_hit_type(market, acct, p):
    _check_hit_type_params(market, acct, p)
    with market.store.transaction():
        return {"HITTypeId": _hit_type(market, acct, p)}


def _create_hit(market, acct: Account, hit_type_id: str | None, p: dict) -> dict:
    store, now = market.store, market.now()
    check_seconds(p, "LifetimeInSeconds", MIN_DURATION_S, MAX_DURATION_S)
    max_assignments = p.get("MaxAssignments", 1)
    if not 1 <= max_assignments <= 1_000_000:
        raise param_error(f"MaxAssignments must be between 1 and 1000000 "
                          f"(got {max_assignments}).")
    if len(p.get("RequesterAnnotation") or "") > 255:
        raise param_error("RequesterAnnotation is longer than 255 characters.")
    parse_question(p["Question"])
    token = p.get("UniqueRequestToken")
    with store.transaction():
        if token:
            old = store.hit_by_token(acct, token)
            if old is not None and old["created"] > now - TOKEN_WINDOW_S:
                raise RequestError(
                    f"The HIT with ID \"{old['hit_id']}\" already exists with this "
                    f"UniqueRequestToken. (HIT ID: {old['hit_id']}) {stamp(now)}",
                    "AWS.MechanicalTurk.HitAlreadyExists")
            if old is not None:
                store.clear_hit_token(acct.realm, old["hit_id"])
        if hit_type_id is None:
            hit_type_id = _hit_type(market, acct, p)
        terms = store.hit_type_terms(acct, hit_type_id)
        if terms is None:
            raise RequestError(f"HITType {hit_type_id} does not exist. {stamp(now)}",
                               "AWS.MechanicalTurk.HITTypeDoesNotExist")
        reward = terms["reward_cents"]
        # A qualification type deleted since the HIT type was made cannot be used for new HITs.
        check_requirements(market, acct, json.loads(terms["qual_json"]))
        require_funds(market, acct,
                      max_assignments * (reward + fee_cents(reward, max_assignments)))
        hit_id = market.new_id()
        store.insert_hit(acct, hit_id, hit_type_id, p["Question"], max_assignments,
                         now + p["LifetimeInSeconds"], p.get("RequesterAnnotation"), now, token)
        rehold(market, acct.realm, hit_id)
        # Nobody can have taken a slot of a HIT that is not committed yet.
        out = {"HIT": hit_dicts(market, acct.realm, [hit_row(market, acct, hit_id)],
                                {hit_id: NO_ASSIGNMENTS})[0]}
    announce(market, acct.realm, hit_id, "HITCreated")
    return out


def create_hit(market, acct, p):
    p = _question_params(market, p)
    _check_hit_type_params(market, acct, p)
    return _create_hit(market, acct, None, p)


def create_hit_with_hit_type(market, acct, p):
    p = _question_params(market, p)
    return _create_hit(market, acct, p["HITTypeId"], p)


def get_hit(market, acct, p):
    return {"HIT": hit_dict(market, acct, p["HITId"])}


def _list_hits(market, acct: Account, p: dict, hit_type_id: str | None = None,
               status_filter: str | None = None) -> dict:
    store = market.store
    limit, after = paging.page(p)
    with store.transaction(write=False):
        if status_filter is None:
            rows = store.hit_rows(acct, hit_type_id, after, limit)
            hits = hit_dicts(market, acct.realm, rows)
        else:
            # The status is computed, so filter in Python over the ordered rows.
            hits, rows = [], []
            for row in store.hit_rows(acct, hit_type_id, after, None):
                d = hit_dicts(market, acct.realm, [row])[0]
                if d["HITStatus"] != status_filter:
                    continue
                hits.append(d)
                rows.append(row)
                if len(hits) == limit:
                    break
    last = [rows[-1]["created"], rows[-1]["hit_id"]] if rows else None
    return paging.answer("HITs", hits, last)


def list_hits(market, acct, p):
    return _list_hits(market, acct, p)


def list_reviewable_hits(market, acct, p):
    return _list_hits(market, acct, p, p.get("HITTypeId"), p.get("Status", "Reviewable"))


def _deleted(market, h) -> RequestError:
    return RequestError(f"Hit {h['hit_id']} has been deleted. {stamp(market.now())}",
                        "AWS.MechanicalTurk.InvalidHITState")


def _rehold_within_funds(market, acct: Account, hit_id: str) -> None:
    """Update the HIT's hold; a hold that grows (a HIT reopened, a dearer HIT type) must fit
    in the free funds, or the whole change is refused."""
    before = market.store.held(acct)
    rehold(market, acct.realm, hit_id)
    if market.store.held(acct) > before:
        require_funds(market, acct, 0)


def update_expiration_for_hit(market, acct, p):
    with market.store.transaction():
        h = hit_row(market, acct, p["HITId"])
        if h["disposed"]:
            raise _deleted(market, h)
        # A time in the past expires the HIT now, as MTurk did.
        now = market.now()
        expire_at = min(max(float(p["ExpireAt"]), now), now + MAX_DURATION_S)
        market.store.set_hit(acct.realm, h["hit_id"], "expiration", expire_at)
        market.store.set_hit(acct.realm, h["hit_id"], "expiry_swept", int(expire_at <= now))
        _rehold_within_funds(market, acct, h["hit_id"])
    if expire_at <= now:
        announce(market, acct.realm, h["hit_id"], "HITExpired")
        announce_if_reviewable(market, acct.realm, h["hit_id"], expired=True)
    return {}


def update_hit_review_status(market, acct, p):
    revert = p.get("Revert", False)
    with market.store.transaction():
        d = hit_dict(market, acct, p["HITId"])
        need = "Reviewing" if revert else "Reviewable"
        if d["HITStatus"] != need:
            raise RequestError(
                f"This HIT is currently in the state '{d['HITStatus']}'.  This operation can "
                f"be called with a status of: {need} {stamp(market.now())}",
                "AWS.MechanicalTurk.InvalidHITState")
        market.store.set_hit(acct.realm, p["HITId"], "reviewing", 0 if revert else 1)
    return {}


def update_hit_type_of_hit(market, acct, p):
    store = market.store
    with store.transaction():
        h = hit_row(market, acct, p["HITId"])
        if store.hit_type_reward(acct, p["HITTypeId"]) is None:
            raise RequestError(f"HITType {p['HITTypeId']} does not exist. "
                               f"{stamp(market.now())}", "AWS.MechanicalTurk.HITTypeDoesNotExist")
        if h["disposed"]:
            raise _deleted(market, h)
        store.set_hit(acct.realm, h["hit_id"], "hit_type_id", p["HITTypeId"])
        _rehold_within_funds(market, acct, h["hit_id"])
    return {}


def delete_hit(market, acct, p):
    store = market.store
    with store.transaction():
        d = hit_dict(market, acct, p["HITId"])
        submitted = store.count_submitted(acct.realm, p["HITId"])
        if d["HITStatus"] not in ("Reviewable", "Reviewing") or submitted:
            # MTurk's words (a deleted HIT too: clients match "currently in the state
            # 'Disposed'"); MTurk gave the same for submitted work not yet reviewed.
            why = " (every submitted assignment must be approved or rejected first)" \
                if submitted and d["HITStatus"] != "Disposed" else ""
            raise RequestError(
                f"This HIT is currently in the state '{d['HITStatus']}'.  This operation can "
                f"be called with a status of: Reviewing, Reviewable{why} "
                f"{stamp(market.now())}", "AWS.MechanicalTurk.InvalidHITState")
        store.set_hit(acct.realm, p["HITId"], "disposed", 1)
        rehold(market, acct.realm, p["HITId"])
    announce(market, acct.realm, p["HITId"], "HITDisposed")
    return {}


def create_additional_assignments_for_hit(market, acct, p):
    store = market.store
    n = p["NumberOfAdditionalAssignments"]
    if n < 1:
        raise param_error("NumberOfAdditionalAssignments must be at least 1.")
    now = market.now()
    token = p.get("UniqueRequestToken")
    with store.transaction():
        if token:
            old = store.extension_by_token(acct, token)
            if old is not None and old["created"] > now - TOKEN_WINDOW_S:
                raise RequestError(
                    f"The idempotency token \"{token}\" has already been processed. "
                    f"{stamp(now)}", "AWS.MechanicalTurk.DuplicateRequest")
            store.forget_extension(acct, token)
        h = hit_row(market, acct, p["HITId"])
        if h["disposed"]:
            raise _deleted(market, h)
        old_max = h["max_assignments"]
        if old_max < 10 <= old_max + n:
            raise RequestError(
                f"The HIT {h['hit_id']} was created with fewer than 10 assignments "
                f"({old_max}) and cannot be extended to 10 or more assignments "
                f"(requested {old_max + n}). {stamp(now)}",
                "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")
        reward = h["reward_cents"]
        require_funds(market, acct, n * (reward + fee_cents(reward, old_max + n)))
        store.add_max_assignments(acct.realm, h["hit_id"], n)
        rehold(market, acct.realm, h["hit_id"])
        if token:
            store.insert_extension(acct, token, h["hit_id"], now)
    announce(market, acct.realm, h["hit_id"], "HITExtended")
    return {}


def list_review_policy_results_for_hit(market, acct, p):
    """No review policy can be attached here (CreateHIT refuses them), so a HIT's results are
    the empty answer: its id and nothing else."""
    hit_row(market, acct, p["HITId"])
    return {"HITId": p["HITId"]}
