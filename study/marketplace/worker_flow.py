"""The worker's side of the marketplace: a profile, the HIT groups open to them, preview,
accept, return and submit. The worker site (worker.py) calls these and nothing else."""

from __future__ import annotations

import hashlib
import json

from study.marketplace.datastore import Account
from study.marketplace.errors import WorkerError
from study.marketplace.hits import hit_dicts, status
from study.marketplace.ids import group_id_for
from study.marketplace.money import fmt_cents, rehold
from study.marketplace.notifications import announce, announce_if_reviewable
from study.marketplace.qualifications import failed_requirements, guards, qual_values
from study.marketplace import questionform
from study.marketplace.questions import answer_document, answers_xml, parse_question


def ensure_worker(market, realm: str, worker_id: str, country: str | None = None,
                  subdivision: str | None = None, hits_approved: int | None = None,
                  percent_approved: int | None = None, masters: bool | None = None,
                  participant_id: str | None = None, invite_token: str | None = None) -> None:
    """Create the worker's profile on first sign-in; values given later update it."""
    store = market.store
    base_rej = None
    if hits_approved is not None or percent_approved is not None:
        if hits_approved is None:
            row = store.worker(realm, worker_id)
            hits_approved = row["base_approved"] if row else 1000
        pct = 100 if percent_approved is None else max(1, min(100, percent_approved))
        base_rej = round(hits_approved * (100 - pct) / pct)
    with store.transaction():
        store.insert_worker(realm, worker_id, {
            "country": (country or "US").upper(), "subdivision": subdivision,
            "base_approved": 1000 if hits_approved is None else hits_approved,
            "base_rejected": base_rej or 0, "masters": int(bool(masters)),
            "participant_id": participant_id, "invite_token": invite_token}, market.now())
        updates = {"country": country.upper() if country else None,
                   "subdivision": subdivision, "base_approved": hits_approved,
                   "base_rejected": base_rej,
                   "masters": None if masters is None else int(masters),
                   "participant_id": participant_id, "invite_token": invite_token}
        for column, value in updates.items():
            if value is not None:
                store.set_worker(realm, worker_id, column, value)


def list_groups(market, realm: str, worker_id: str) -> list[dict]:
    """HIT groups with a HIT this worker may accept now."""
    market.sweep(realm)
    store = market.store
    blocked_by = store.blocked_by(realm, worker_id)
    values: dict[str, dict] = {}  # per requester: their qualifications differ
    groups = []
    for r in store.open_groups(realm, worker_id, market.now()):
        requester = r["requester"]
        if requester in blocked_by:
            continue
        if requester not in values:
            values[requester] = qual_values(market, Account(realm, requester), worker_id)
        if failed_requirements(json.loads(r["qual_json"]), values[requester], "accept"):
            continue
        groups.append({"hit_type_id": r["hit_type_id"], "title": r["title"],
                       "description": r["description"], "keywords": r["keywords"] or "",
                       "reward": fmt_cents(r["reward_cents"]), "hits": r["hits"],
                       "duration_s": r["assignment_duration"]})
    return groups


def hit_type_of_group(market, realm: str, worker_id: str, group: str) -> str:
    """The HIT type a worker-site link names: by HITTypeId (as Mephisto, ParlAI and Dallinger
    built MTurk's preview links) or by HITGroupId (as MTurk's own links did)."""
    for r in market.store.open_groups(realm, worker_id, market.now()):
        if group in (r["hit_type_id"], group_id_for(realm, r["hit_type_id"])):
            return r["hit_type_id"]
    return group


def pick_hit(market, realm: str, worker_id: str, hit_type_id: str) -> str | None:
    market.sweep(realm)
    hit_ids = market.store.open_hits_of_type(realm, worker_id, hit_type_id, market.now(), 64)
    if not hit_ids:
        return None
    # Among the oldest open HITs, each worker gets its own deterministic pick, so many
    # workers arriving at once spread over the group instead of racing for one HIT.
    return min(hit_ids, key=lambda h: hashlib.sha1(f"{worker_id}/{h}".encode()).digest())


def worker_hit(market, realm: str, worker_id: str | None, hit_id: str, action: str) -> dict:
    """The HIT as a worker sees it, checked for `action` ('preview' or 'accept')."""
    market.sweep(realm)
    store = market.store
    row = store.hit_row(realm, hit_id)
    if row is None or row["disposed"]:
        raise WorkerError("This HIT does not exist or is no longer available.", 404)
    d = hit_dicts(market, realm, [row])[0]
    if worker_id is not None:
        if row["requester"] in store.blocked_by(realm, worker_id):
            raise WorkerError("You cannot work on this requester's HITs.", 403)
        values = qual_values(market, Account(realm, row["requester"]), worker_id)
        if failed_requirements(d["QualificationRequirements"], values, action):
            raise WorkerError("You do not meet the qualification requirements of this HIT.", 403)
    elif any(guards(r, action) for r in d["QualificationRequirements"]):
        raise WorkerError("Sign in to see this HIT: it has qualification requirements.", 403)
    return d


def accept(market, realm: str, worker_id: str, hit_id: str) -> str:
    worker_hit(market, realm, worker_id, hit_id, "accept")
    store = market.store
    now = market.now()
    with store.transaction():
        h = store.hit_row(realm, hit_id)
        c = store.assignment_counts(realm, [hit_id])[hit_id]
        if h is None or status(h, c, now) != "Assignable":
            raise WorkerError("This HIT is no longer available.", 409)
        mine = store.open_assignment_of(realm, hit_id, worker_id)
        if mine is not None:
            if mine["status"] == "Accepted":
                return mine["assignment_id"]
            raise WorkerError("You have already worked on this HIT.", 409)
        aid = market.new_id()
        store.insert_assignment(realm, aid, hit_id, worker_id, now,
                                now + h["assignment_duration"])
    announce(market, realm, hit_id, "AssignmentAccepted", aid)
    return aid


def assignment(market, realm: str, assignment_id: str):
    market.sweep(realm)
    return market.store.assignment(realm, assignment_id)


def work(market, realm: str, worker_id: str | None, assignment_id: str,
         hit_id: str | None = None) -> tuple:
    """(assignment, HIT) for the worker's own open assignment (of `hit_id` when given)."""
    a = assignment(market, realm, assignment_id)
    if a is None or worker_id is None or a["worker_id"] != worker_id \
            or (hit_id is not None and a["hit_id"] != hit_id):
        raise WorkerError("This assignment is not yours.", 404)
    if a["status"] != "Accepted":
        raise WorkerError(f"This assignment is {a['status'].lower()}.", 409, "Assignment closed")
    return a, hit_dicts(market, realm, [market.store.hit_row(realm, a["hit_id"])])[0]


def return_assignment(market, realm: str, worker_id: str, assignment_id: str) -> None:
    market.sweep(realm)
    store = market.store
    with store.transaction():
        a = store.assignment(realm, assignment_id)
        if a is None or a["worker_id"] != worker_id:
            raise WorkerError("This assignment is not yours.", 404)
        if a["status"] != "Accepted":
            raise WorkerError(f"This assignment is {a['status'].lower()} and can no longer "
                              f"be returned.", 409)
        store.set_status(realm, assignment_id, "Returned")
        rehold(market, realm, a["hit_id"])
    announce(market, realm, a["hit_id"], "AssignmentReturned", assignment_id)


def submit(market, realm: str, worker_id: str, assignment_id: str,
           fields: list[tuple[str, str]], files: dict[str, tuple[str, bytes]] | None = None):
    """Submit the worker's own assignment; another worker's is as absent as none. `files`:
    question id -> (file name, bytes) for a QuestionForm's FileUploadAnswers."""
    market.sweep(realm)
    store = market.store
    now = market.now()
    with store.transaction():
        a = store.assignment(realm, assignment_id)
        if a is None or a["worker_id"] != worker_id:
            raise WorkerError("This assignment is not yours.", 404)
        if a["status"] != "Accepted":
            what = {"Abandoned": "its time ran out", "Returned": "it was returned"}.get(
                a["status"], "it was already submitted")
            raise WorkerError(f"This assignment cannot be submitted: {what}.", 409)
        q = parse_question(store.question(realm, a["hit_id"]) or "")
        if q.kind == "form":
            answer = _form_answer(market, realm, assignment_id, q.content, fields, files or {})
        else:
            answer = answers_xml(fields)
        store.mark_submitted(realm, assignment_id, now, now + a["auto_approval_delay"], answer)
    announce(market, realm, a["hit_id"], "AssignmentSubmitted", assignment_id)
    announce_if_reviewable(market, realm, a["hit_id"])
    return assignment(market, realm, assignment_id)


def _form_answer(market, realm: str, assignment_id: str, xml: str,
                 fields: list[tuple[str, str]], files: dict[str, tuple[str, bytes]]) -> str:
    """A QuestionForm's answers in MTurk's answer elements; uploaded files are kept for
    GetFileUploadURL."""
    form = questionform.parse(xml)
    uploads = {}
    for ident, (filename, data) in files.items():
        question = form.question(ident)
        if question is None or question.kind != "upload" or not data:
            continue
        if len(data) > question.max_bytes:
            raise WorkerError(f"The file for {ident} is larger than {question.max_bytes} "
                              f"bytes.", 413, "Too large")
        key = market.new_id()
        market.store.insert_upload(realm, key, assignment_id, ident, filename[:200], data)
        uploads[ident] = (len(data), key)
    given = questionform.answers(form, fields, uploads)
    missing = questionform.missing_required(form, given)
    if missing:
        raise WorkerError(f"Answer every required question ({', '.join(missing)}).", 400)
    return answer_document(given)


def uploaded(market, realm: str, key: str):
    return market.store.upload(realm, key)


def question(market, realm: str, hit_id: str):
    """The HIT's parsed question, or None when there is no such (live) HIT."""
    xml = market.store.question(realm, hit_id)
    return None if xml is None else parse_question(xml)


def invite_of(market, worker_id: str):
    """The invitation a live worker came through (its completion code and URL), or None."""
    return market.store.invite_of(worker_id)


def invite(market, token: str):
    return market.store.invite(token)
