"""Qualifications: the system types, the requester's own types and grants, checking a HIT's
requirements when it is made, and evaluating them for a worker."""

from __future__ import annotations

import re
from typing import Any

from study.marketplace import paging, questionform
from study.marketplace.datastore import Account
from study.marketplace.errors import RequestError, param_error, stamp
from study.marketplace.shapes import wire_time

DAY = 86400
# System qualification types (ids as MTurk published them).
PERCENT_APPROVED = "000000000000000000L0"
HITS_APPROVED = "00000000000000000040"
LOCALE = "00000000000000000071"
ADULT = "00000000000000000060"
MASTERS = {"sandbox": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "live": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"}
SYSTEM_QUALS = {
    PERCENT_APPROVED: ("Worker_PercentAssignmentsApproved",
                       "The percentage of assignments the Worker has submitted that were approved."),
    HITS_APPROVED: ("Worker_NumberHITsApproved",
                    "The total number of HITs submitted by a Worker that have been approved."),
    LOCALE: ("Worker_Locale", "The location of the Worker, as specified in the Worker's address."),
    ADULT: ("Worker_Adult", "The Worker has agreed to see adult content."),
}
LOCALE_COMPARATORS = {"EqualTo", "NotEqualTo", "In", "NotIn"}
# DeleteQualificationType "may take up to 48 hours" to complete; the name is taken till then.
DISPOSAL_S = 2 * DAY


# -- a HIT's requirements, checked when it is made ----------------------------------------------
def check_requirements(market, acct: Account, reqs: list[dict]) -> None:
    if len(reqs) > 10:
        raise param_error(f"A HIT can have at most 10 QualificationRequirements "
                          f"(got {len(reqs)}).")
    seen = set()
    for i, r in enumerate(reqs, 1):
        qid, comp = r["QualificationTypeId"], r["Comparator"]
        where = f"QualificationRequirement {i} ({qid})"
        if qid in seen:
            raise param_error(f"{where} appears more than once.")
        seen.add(qid)
        ints, locs = r.get("IntegerValues"), r.get("LocaleValues")
        if qid in MASTERS.values() and qid != MASTERS[acct.realm]:
            raise param_error(f"{where}: this is the Masters qualification of the other "
                              f"realm; use {MASTERS[acct.realm]} here.")
        if qid not in SYSTEM_QUALS and qid != MASTERS[acct.realm] \
                and market.store.qual_type(acct, qid) is None:
            raise RequestError(f"{where}: QualificationType {qid} does not exist. "
                               f"{stamp(market.now())}",
                               "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
        if comp in ("Exists", "DoesNotExist"):
            if ints or locs:
                raise param_error(f"{where}: the comparator {comp} takes no values.")
            continue
        if qid == LOCALE:
            if comp not in LOCALE_COMPARATORS:
                raise param_error(f"{where}: the Locale qualification supports only "
                                  f"{', '.join(sorted(LOCALE_COMPARATORS))}.")
            if ints or not locs:
                raise param_error(f"{where}: the Locale qualification needs LocaleValues.")
            if comp in ("EqualTo", "NotEqualTo") and len(locs) != 1:
                raise param_error(f"{where}: {comp} takes exactly one LocaleValue.")
            if len(locs) > 30:
                raise param_error(f"{where}: at most 30 LocaleValues.")
            for loc in locs:
                if not re.fullmatch(r"[A-Z]{2}", loc["Country"]):
                    raise param_error(f"{where}: '{loc['Country']}' is not an ISO 3166 "
                                      f"country code.")
            continue
        if locs:
            raise param_error(f"{where}: LocaleValues are only for the Locale qualification.")
        if comp in ("In", "NotIn"):
            if not ints or len(ints) > 15:
                raise param_error(f"{where}: {comp} takes 1 to 15 IntegerValues.")
        elif not ints or len(ints) != 1:
            raise param_error(f"{where}: {comp} takes exactly one IntegerValue.")
        if qid == MASTERS[acct.realm]:
            raise param_error(f"{where}: the Masters qualification supports only Exists "
                              f"and DoesNotExist.")


# -- evaluating requirements for a worker -------------------------------------------------------
def qual_values(market, acct: Account, worker_id: str) -> dict[str, Any]:
    """Every qualification value the worker holds for this requester (the system ones and the
    requester's own): qid -> int, or (country, subdivision) for Locale."""
    store = market.store
    w = store.worker(acct.realm, worker_id)
    values: dict[str, Any] = {}
    if w is not None:
        approved, rejected = store.worker_record(acct.realm, worker_id)
        n_ok = w["base_approved"] + approved
        n_all = n_ok + w["base_rejected"] + rejected
        values[HITS_APPROVED] = n_ok
        values[PERCENT_APPROVED] = 100 if n_all == 0 else (100 * n_ok) // n_all
        values[LOCALE] = (w["country"], w["subdivision"])
        values[ADULT] = 1
        if w["masters"]:
            values[MASTERS[acct.realm]] = 1
    for q in store.granted_values(acct, worker_id):
        values[q[0]] = q[1]
    for t in store.auto_granted(acct):
        values.setdefault(t[0], 1 if t[1] is None else t[1])
    return values


def meets(req: dict, values: dict[str, Any]) -> bool:
    comp = req["Comparator"]
    qid = req["QualificationTypeId"]
    if comp == "Exists":
        return qid in values
    if comp == "DoesNotExist":
        return qid not in values
    if qid not in values:
        return False
    v = values[qid]
    if qid == LOCALE:
        country, sub = v

        def match(loc: dict) -> bool:
            return loc["Country"] == country and (
                "Subdivision" not in loc or loc["Subdivision"] == sub)
        hit = any(match(loc) for loc in req.get("LocaleValues", []))
        return hit if comp in ("EqualTo", "In") else not hit
    ints = req.get("IntegerValues", [])
    if v is None or not ints:
        return False
    x = ints[0]
    return {"LessThan": v < x, "LessThanOrEqualTo": v <= x, "GreaterThan": v > x,
            "GreaterThanOrEqualTo": v >= x, "EqualTo": v == x, "NotEqualTo": v != x,
            "In": v in ints, "NotIn": v not in ints}[comp]


def guards(req: dict, action: str) -> bool:
    """Whether a requirement applies to an action ('discover', 'preview', 'accept')."""
    guarded = req.get("ActionsGuarded")
    if guarded is None:
        guarded = "PreviewAndAccept" if req.get("RequiredToPreview") else "Accept"
    return {"Accept": action == "accept",
            "PreviewAndAccept": action in ("preview", "accept"),
            "DiscoverPreviewAndAccept": True}[guarded]


def failed_requirements(reqs: list[dict], values: dict, action: str) -> list[dict]:
    return [r for r in reqs if guards(r, action) and not meets(r, values)]


# -- requester operations on qualification types and grants -------------------------------------
def _qual_type_dict(q) -> dict:
    d = {
        "QualificationTypeId": q["qualification_type_id"],
        "CreationTime": wire_time(q["created"]),
        "Name": q["name"],
        "Description": q["description"],
    }
    if q["keywords"] is not None:
        d["Keywords"] = q["keywords"]
    d["QualificationTypeStatus"] = q["status"]
    if q["test"] is not None:
        d["Test"] = q["test"]
        d["TestDurationInSeconds"] = q["test_duration"]
    if q["answer_key"] is not None:
        d["AnswerKey"] = q["answer_key"]
    if q["retry_delay"] is not None:
        d["RetryDelayInSeconds"] = q["retry_delay"]
    d["IsRequestable"] = True
    d["AutoGranted"] = bool(q["auto_granted"])
    if q["auto_granted"]:
        d["AutoGrantedValue"] = q["auto_granted_value"] if q["auto_granted_value"] is not None else 1
    return d


def _system_qual_dicts(realm: str) -> list[dict]:
    items = dict(SYSTEM_QUALS)
    items[MASTERS[realm]] = ("Masters", "Workers who have demonstrated excellence across a "
                                        "wide range of HITs.")
    return [{"QualificationTypeId": qid, "CreationTime": 0.0, "Name": name,
             "Description": desc, "QualificationTypeStatus": "Active", "IsRequestable": False,
             "AutoGranted": False} for qid, (name, desc) in items.items()]


def _qual_type(market, acct: Account, qid: str):
    q = market.store.qual_type(acct, qid)
    if q is None:
        raise RequestError(f"QualificationType {qid} does not exist. {stamp(market.now())}",
                           "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
    return q


def _check_qual_params(p: dict, auto_granted: bool = False) -> None:
    if "Name" in p and not p["Name"].strip():
        raise param_error("Name must not be empty.")
    if len(p.get("Description") or "") > 2000:
        raise param_error("Description is longer than 2000 characters.")
    if p.get("Test") is not None:
        questionform.parse(p["Test"])
        if "TestDurationInSeconds" not in p:
            raise param_error("A Test needs TestDurationInSeconds.")
        if p.get("AutoGranted", auto_granted):
            raise param_error("A Test cannot be used with AutoGranted.")
    if p.get("AnswerKey") is not None:
        if p.get("Test") is None:
            raise param_error("An AnswerKey needs a Test.")
        questionform.parse_answer_key(p["AnswerKey"])
    for name, low in (("RetryDelayInSeconds", 0), ("TestDurationInSeconds", 30)):
        if name in p and not (low <= p[name] <= 365 * DAY):
            raise param_error(f"{name} must be between {low} and {365 * DAY} seconds "
                              f"(got {p[name]}).")


def create_qualification_type(market, acct, p):
    store = market.store
    _check_qual_params(p)
    qid = market.new_id()
    with store.transaction():
        same = store.qual_type_named(acct, p["Name"])
        if same is not None and same[1] is not None \
                and same[1] <= market.now() - DISPOSAL_S:
            store.purge_qual_type(acct.realm, same[0])  # its disposal has completed
            same = None
        if same is not None:
            raise RequestError(
                f"You have already created a QualificationType with this name. A "
                f"QualificationType's name must be unique among all of the Qualification "
                f"Types created by the same user. {stamp(market.now())}",
                "AWS.MechanicalTurk.QualificationTypeAlreadyExists")
        store.insert_qual_type(acct, qid, p, market.now())
        q = _qual_type(market, acct, qid)
    return {"QualificationType": _qual_type_dict(q)}


def get_qualification_type(market, acct, p):
    qid = p["QualificationTypeId"]
    for d in _system_qual_dicts(acct.realm):
        if d["QualificationTypeId"] == qid:
            return {"QualificationType": d}
    return {"QualificationType": _qual_type_dict(_qual_type(market, acct, qid))}


def update_qualification_type(market, acct, p):
    cols = {"Description": "description", "QualificationTypeStatus": "status",
            "RetryDelayInSeconds": "retry_delay", "AutoGranted": "auto_granted",
            "AutoGrantedValue": "auto_granted_value", "Test": "test",
            "TestDurationInSeconds": "test_duration"}
    qid = p["QualificationTypeId"]
    with market.store.transaction():
        old = _qual_type(market, acct, qid)
        if p.get("AnswerKey") is not None and p.get("Test") is None:
            p = {**p, "Test": old["test"], "TestDurationInSeconds": old["test_duration"]}
        _check_qual_params(p, bool(old["auto_granted"]) and "Test" in p)
        for key, col in cols.items():
            if key in p:
                market.store.set_qual_type(acct, qid, col,
                                           int(p[key]) if key == "AutoGranted" else p[key])
        if "Test" in p or "AnswerKey" in p:
            # A new Test without an AnswerKey has none: its requests are granted by hand.
            market.store.set_qual_type(acct, qid, "answer_key", p.get("AnswerKey"))
        q = _qual_type(market, acct, qid)
    return {"QualificationType": _qual_type_dict(q)}


def list_qualification_types(market, acct, p):
    limit, after = paging.page(p)
    query = (p.get("Query") or "").lower()
    items = [_qual_type_dict(q) for q in market.store.qual_types(acct)]
    if not p.get("MustBeOwnedByCaller", False) and not p["MustBeRequestable"]:
        items = _system_qual_dicts(acct.realm) + items
    if p["MustBeRequestable"]:
        items = [d for d in items if d["IsRequestable"]]
    if query:
        items = [d for d in items if query in d["Name"].lower()
                 or query in d["Description"].lower() or query in d.get("Keywords", "").lower()]
    start = max(0, int(after[0])) if after else 0
    page = items[start:start + limit]
    return paging.answer("QualificationTypes", page, [start + len(page), ""])


def associate_qualification_with_worker(market, acct, p):
    qid = p["QualificationTypeId"]
    if qid in SYSTEM_QUALS or qid in MASTERS.values():
        raise param_error(f"{qid} is a system qualification; its values come from the "
                          f"worker's history and cannot be assigned.")
    with market.store.transaction():
        _qual_type(market, acct, qid)
        market.store.grant(acct.realm, qid, p["WorkerId"], p.get("IntegerValue", 1), market.now())
    return {}


def _no_qualification(market) -> RequestError:
    return RequestError(f"You requested a Qualification that does not exist. "
                        f"{stamp(market.now())}", "AWS.MechanicalTurk.QualificationDoesNotExist")


def disassociate_qualification_from_worker(market, acct, p):
    with market.store.transaction():
        _qual_type(market, acct, p["QualificationTypeId"])
        if not market.store.revoke(acct.realm, p["QualificationTypeId"], p["WorkerId"]):
            raise _no_qualification(market)
    return {}


def _qual_dict(q) -> dict:
    return {"QualificationTypeId": q["qualification_type_id"], "WorkerId": q["worker_id"],
            "GrantTime": wire_time(q["grant_time"]), "IntegerValue": q["integer_value"],
            "Status": q["status"]}


def get_qualification_score(market, acct, p):
    _qual_type(market, acct, p["QualificationTypeId"])
    q = market.store.qualification(acct.realm, p["QualificationTypeId"], p["WorkerId"])
    if q is None:
        raise _no_qualification(market)
    return {"Qualification": _qual_dict(q)}


def list_workers_with_qualification_type(market, acct, p):
    _qual_type(market, acct, p["QualificationTypeId"])
    limit, after = paging.page(p)
    rows = market.store.qualifications(acct.realm, p["QualificationTypeId"], p.get("Status"),
                                       after[1] if after else None, limit)
    return paging.answer("Qualifications", [_qual_dict(q) for q in rows],
                         [0, rows[-1]["worker_id"]] if rows else None)


def delete_qualification_type(market, acct, p):
    """Gone for the requester at once (Get, List, Update, new HITs and HIT types); grants stay
    for HITs already made; pending requests are rejected; the name stays taken until the
    disposal completes (DISPOSAL_S)."""
    with market.store.transaction():
        _qual_type(market, acct, p["QualificationTypeId"])
        market.store.delete_qual_type(acct.realm, p["QualificationTypeId"], market.now())
    return {}


def list_hits_for_qualification_type(market, acct, p):
    from study.marketplace.hits import hit_dicts
    _qual_type(market, acct, p["QualificationTypeId"])
    limit, after = paging.page(p)
    with market.store.transaction(write=False):
        rows = market.store.hits_requiring(acct, p["QualificationTypeId"], after, limit)
        hits = hit_dicts(market, acct.realm, rows)
    return paging.answer("HITs", hits,
                         [rows[-1]["created"], rows[-1]["hit_id"]] if rows else None)
