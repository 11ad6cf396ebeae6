"""Qualification requests: a worker asks for a requester's qualification type on the worker site
(taking its Test when it has one); the type's AnswerKey or AutoGranted decides at once,
otherwise the request waits for the requester (List/Accept/RejectQualificationRequest)."""

from __future__ import annotations

from study.marketplace import paging, questionform
from study.marketplace.errors import RequestError, WorkerError, stamp
from study.marketplace.ids import new_id
from study.marketplace.questions import answer_document
from study.marketplace.shapes import wire_time


# -- the worker's side --------------------------------------------------------------------------
def requestable(market, realm: str) -> list[dict]:
    """The active qualification types a worker may ask for, every requester's."""
    return [{"id": q["qualification_type_id"], "name": q["name"],
             "description": q["description"], "test": q["test"] is not None,
             "auto": bool(q["auto_granted"])}
            for q in market.store.requestable_qual_types(realm)]


def qual_type(market, realm: str, qid: str):
    q = market.store.any_qual_type(realm, qid)
    if q is None or q["status"] != "Active":
        raise WorkerError("This qualification does not exist or cannot be requested now.", 404)
    return q


def request(market, realm: str, worker_id: str, qid: str,
            fields: list[tuple[str, str]]) -> str:
    """Ask for the qualification; returns 'Granted' or 'Pending'. With a Test, `fields` are the
    worker's answers to it."""
    store = market.store
    now = market.now()
    with store.transaction():
        q = qual_type(market, realm, qid)
        held = store.qualification(realm, qid, worker_id)
        if held is not None and held["status"] == "Granted":
            raise WorkerError("You already have this qualification.", 409)
        last = store.latest_qual_request(realm, qid, worker_id)
        if last is not None:
            if last["status"] == "Pending":
                raise WorkerError("Your request for this qualification is waiting for the "
                                  "requester.", 409)
            # Without a RetryDelayInSeconds a worker may ask only once, as on MTurk.
            if q["retry_delay"] is None or last["submit_time"] + q["retry_delay"] > now:
                raise WorkerError("You cannot request this qualification again yet.", 409)
        answer, given = None, []
        if q["test"] is not None:
            form = questionform.parse(q["test"])
            given = questionform.answers(form, fields)
            missing = questionform.missing_required(form, given)
            if missing:
                raise WorkerError(f"Answer every required question ({', '.join(missing)}).",
                                  400)
            answer = answer_document(given)
        request_id = new_id()
        if q["auto_granted"]:
            value = 1 if q["auto_granted_value"] is None else q["auto_granted_value"]
            status = "Granted"
        elif q["answer_key"] is not None:
            value = questionform.score(questionform.parse_answer_key(q["answer_key"]), given)
            status = "Granted"
        else:
            value, status = None, "Pending"
        store.insert_qual_request(realm, request_id, qid, worker_id, answer, status, now)
        if status == "Granted":
            store.grant(realm, qid, worker_id, value, now)
    return status


# -- the requester's side -----------------------------------------------------------------------
def _request_dict(r) -> dict:
    d = {"QualificationRequestId": r["request_id"],
         "QualificationTypeId": r["qualification_type_id"], "WorkerId": r["worker_id"]}
    if r["test"] is not None:
        d["Test"] = r["test"]
    if r["answer"] is not None:
        d["Answer"] = r["answer"]
    d["SubmitTime"] = wire_time(r["submit_time"])
    return d


def list_qualification_requests(market, acct, p):
    limit, after = paging.page(p)
    rows = market.store.pending_qual_requests(acct, p.get("QualificationTypeId"), after, limit)
    return paging.answer("QualificationRequests", [_request_dict(r) for r in rows],
                         [rows[-1]["submit_time"], rows[-1]["request_id"]] if rows else None)


def _pending(market, acct, request_id: str):
    r = market.store.qual_request(acct, request_id)
    if r is None:
        raise RequestError(f"QualificationRequest {request_id} does not exist. "
                           f"{stamp(market.now())}",
                           "AWS.MechanicalTurk.QualificationRequestDoesNotExist")
    if r["status"] != "Pending":
        raise RequestError(f"QualificationRequest {request_id} is already "
                           f"{r['status'].lower()}. This operation can be called with a status "
                           f"of: Pending {stamp(market.now())}",
                           "AWS.MechanicalTurk.InvalidQualificationRequestState")
    return r


def accept_qualification_request(market, acct, p):
    store = market.store
    with store.transaction():
        r = _pending(market, acct, p["QualificationRequestId"])
        store.decide_qual_request(acct.realm, r["request_id"], "Granted", None)
        store.grant(acct.realm, r["qualification_type_id"], r["worker_id"],
                    p.get("IntegerValue", 1), market.now())
    return {}


def reject_qualification_request(market, acct, p):
    with market.store.transaction():
        r = _pending(market, acct, p["QualificationRequestId"])
        market.store.decide_qual_request(acct.realm, r["request_id"], "Rejected",
                                         p.get("Reason"))
    return {}
