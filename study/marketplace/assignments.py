"""Requester operations on assignments: list, read, approve, reject."""

from __future__ import annotations

import re

from study.marketplace import paging
from study.marketplace.datastore import Account
from study.marketplace.errors import RequestError, param_error, stamp
from study.marketplace.hits import hit_dict, hit_row
from study.marketplace.money import fee_cents, rehold, require_funds
from study.marketplace.notifications import announce
from study.marketplace.shapes import wire_time

VISIBLE = ("Submitted", "Approved", "Rejected")  # what a requester can see of an assignment
UPLOAD_URL_S = 60  # GetFileUploadURL: "valid for 60 seconds"


def assignment_dict(a) -> dict:
    d = {
        "AssignmentId": a["assignment_id"],
        "WorkerId": a["worker_id"],
        "HITId": a["hit_id"],
        "AssignmentStatus": a["status"],
        "AutoApprovalTime": wire_time(a["auto_approval_time"]),
        "AcceptTime": wire_time(a["accept_time"]),
        "SubmitTime": wire_time(a["submit_time"]),
    }
    if a["approval_time"] is not None:
        d["ApprovalTime"] = wire_time(a["approval_time"])
    if a["rejection_time"] is not None:
        d["RejectionTime"] = wire_time(a["rejection_time"])
    d["Deadline"] = wire_time(a["deadline"])
    d["Answer"] = a["answer"]
    if a["requester_feedback"] is not None:
        d["RequesterFeedback"] = a["requester_feedback"]
    return d


def check_feedback(feedback: str) -> None:
    """MTurk's documented limits on RequesterFeedback: 1024 characters, no ASCII controls
    but tab, line feed and carriage return."""
    if len(feedback) > 1024:
        raise param_error(f"RequesterFeedback is {len(feedback)} characters; it can be up to "
                          f"1024 characters.")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", feedback):
        raise param_error("RequesterFeedback cannot contain ASCII characters 0-8, 11, 12, "
                          "or 14-31.")


def assignment_row(market, acct: Account, aid: str):
    """A submitted (or reviewed) assignment of the requester's HITs, or AssignmentDoesNotExist."""
    a = market.store.assignment(acct.realm, aid)
    if a is None or a["status"] not in VISIBLE or a["requester"] != acct.requester:
        raise RequestError(f"Assignment {aid} does not exist. {stamp(market.now())}",
                           "AWS.MechanicalTurk.AssignmentDoesNotExist")
    return a


def list_assignments_for_hit(market, acct, p):
    hit_row(market, acct, p["HITId"])
    statuses = p.get("AssignmentStatuses") or list(VISIBLE)
    limit, after = paging.page(p)
    rows = market.store.assignments_of_hit(acct.realm, p["HITId"], statuses, after, limit)
    last = [rows[-1]["accept_time"], rows[-1]["assignment_id"]] if rows else None
    return paging.answer("Assignments", [assignment_dict(a) for a in rows], last)


def get_assignment(market, acct, p):
    a = assignment_row(market, acct, p["AssignmentId"])
    return {"Assignment": assignment_dict(a), "HIT": hit_dict(market, acct, a["hit_id"])}


def approve_assignment(market, acct, p):
    store = market.store
    feedback = p.get("RequesterFeedback")
    if feedback is not None:
        check_feedback(feedback)
    now = market.now()
    with store.transaction():
        a = assignment_row(market, acct, p["AssignmentId"])
        allowed = ("Submitted", "Rejected") if p.get("OverrideRejection") else ("Submitted",)
        if a["status"] not in allowed:
            raise RequestError(
                f"This operation can be called with a status of: {', '.join(allowed)} "
                f"{stamp(now)}", "AWS.MechanicalTurk.InvalidAssignmentState")
        reward, max_a = store.hit_cost_basis(acct.realm, a["hit_id"])
        cost = reward + fee_cents(reward, max_a)
        # Submitted work was paid for when its HIT was made; overturning a rejection was not.
        require_funds(market, acct, cost, held=cost if a["status"] == "Submitted" else 0)
        store.mark_approved(acct.realm, a["assignment_id"], now, feedback)
        store.charge(acct, cost)
        rehold(market, acct.realm, a["hit_id"])
    announce(market, acct.realm, a["hit_id"], "AssignmentApproved", a["assignment_id"])
    return {}


def reject_assignment(market, acct, p):
    # Required (a missing one is the model's "Value null" ValidationException), but may be
    # empty: clients send "" to meet the requirement, and the model sets no minimum.
    feedback = p["RequesterFeedback"]
    check_feedback(feedback)
    now = market.now()
    with market.store.transaction():
        a = assignment_row(market, acct, p["AssignmentId"])
        if a["status"] != "Submitted":
            raise RequestError(f"This operation can be called with a status of: Submitted "
                               f"{stamp(now)}", "AWS.MechanicalTurk.InvalidAssignmentState")
        market.store.mark_rejected(acct.realm, a["assignment_id"], now, feedback)
        rehold(market, acct.realm, a["hit_id"])
    announce(market, acct.realm, a["hit_id"], "AssignmentRejected", a["assignment_id"])
    return {}


def get_file_upload_url(market, acct, p):
    """A URL for the file the worker uploaded for the question, valid 60 seconds (a path here;
    the API answer puts this server's address in front)."""
    a = assignment_row(market, acct, p["AssignmentId"])
    up = market.store.upload_of(acct.realm, a["assignment_id"], p["QuestionIdentifier"])
    if up is None:
        raise RequestError(f"Assignment {a['assignment_id']} has no file uploaded for the "
                           f"question {p['QuestionIdentifier'][:100]}. {stamp(market.now())}",
                           "AWS.MechanicalTurk.InvalidParameterValue")
    return {"FileUploadURL": f"/worker/{acct.realm}/uploads/{up['upload_key']}?token="
                             f"{upload_token(market, up['upload_key'])}"}


def upload_token(market, key: str) -> str:
    from itsdangerous import URLSafeTimedSerializer
    return URLSafeTimedSerializer(market.cookie_secret, salt="marketplace-upload").dumps(key)


def upload_key_of(market, token: str) -> str | None:
    """The upload a token names, if it is at most UPLOAD_URL_S old."""
    from itsdangerous import BadSignature, URLSafeTimedSerializer
    try:
        return URLSafeTimedSerializer(market.cookie_secret, salt="marketplace-upload").loads(
            token, max_age=UPLOAD_URL_S)
    except BadSignature:
        return None
