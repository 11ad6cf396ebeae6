"""The marketplace's behaviour: HITs, assignments, qualifications, blocks, bonuses and money.

Everything lives in SQLite (study.marketplace.db). Time comes from an injectable clock (a callable
returning epoch seconds), and time-driven changes (abandoned assignments, auto-approvals) are applied
lazily by `sweep()` before any request reads or writes a realm, so a marketplace that was stopped
for a week catches up on its first request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from study.marketplace import db as mdb
from study.marketplace.ids import WORKER_ID_RE, new_id as random_id
from study.marketplace.money import fee_cents, fmt_cents, parse_cents

DAY = 86400
MIN_DURATION_S = 30
MAX_DURATION_S = 365 * DAY
MAX_AUTO_APPROVAL_S = 30 * DAY
MAX_QUESTION_BYTES = 65535
TOKEN_WINDOW_S = 24 * 3600

HTML_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
EXTERNAL_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
ANSWERS_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"

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
INTEGER_COMPARATORS = {"LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo",
                       "EqualTo", "NotEqualTo", "In", "NotIn"}
LOCALE_COMPARATORS = {"EqualTo", "NotEqualTo", "In", "NotIn"}
ACTIVE = ("Accepted", "Submitted", "Approved", "Rejected")


class RequestError(Exception):
    """An error answered to the requester as AWS does (HTTP 400 RequestError by default)."""

    def __init__(self, message: str, turk_code: str = "AWS.MechanicalTurk.RequestError",
                 error_type: str = "RequestError", status: int = 400):
        super().__init__(message)
        self.message = message
        self.turk_code = turk_code
        self.error_type = error_type
        self.status = status


class WorkerError(Exception):
    """Something a worker cannot do on the worker site (shown as a page with this status)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def _stamp(clock_now: float) -> str:
    return f"({int(clock_now * 1000)})"


def param_error(message: str) -> RequestError:
    return RequestError(message, "AWS.MechanicalTurk.ParameterValidationError")


@dataclass
class Question:
    kind: str  # "html" | "external"
    content: str  # HTMLContent or ExternalURL
    frame_height: int


@lru_cache(maxsize=4096)
def parse_question(xml_text: str) -> Question:
    """Parse an HTMLQuestion or ExternalQuestion document (raises RequestError)."""
    if len(xml_text.encode("utf-8")) > MAX_QUESTION_BYTES:
        raise param_error(f"The Question is {len(xml_text.encode('utf-8'))} bytes; the XML "
                          f"question data must not be larger than {MAX_QUESTION_BYTES} bytes.")
    if "<!DOCTYPE" in xml_text[:2000].upper() and "<!ENTITY" in xml_text.upper():
        raise param_error("The Question must not declare XML entities.")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise param_error(f"The Question is not well-formed XML: {exc}")

    def child(name: str, ns: str) -> str | None:
        el = root.find(f"{{{ns}}}{name}")
        return None if el is None else (el.text or "")

    def frame(ns: str) -> int:
        text = child("FrameHeight", ns)
        if text is None or not text.strip().isdigit():
            raise param_error("The Question needs a FrameHeight with a whole number of pixels "
                              "(0 for the full window).")
        return int(text.strip())

    if root.tag == f"{{{HTML_QUESTION_NS}}}HTMLQuestion":
        content = child("HTMLContent", HTML_QUESTION_NS)
        if content is None or not content.strip():
            raise param_error("The HTMLQuestion has no HTMLContent.")
        return Question("html", content, frame(HTML_QUESTION_NS))
    if root.tag == f"{{{EXTERNAL_QUESTION_NS}}}ExternalQuestion":
        url = (child("ExternalURL", EXTERNAL_QUESTION_NS) or "").strip()
        if not re.match(r"^https?://[^\s]+$", url):
            raise param_error(f"The ExternalURL '{url[:200]}' is not an http(s) URL.")
        return Question("external", url, frame(EXTERNAL_QUESTION_NS))
    if root.tag.endswith("}QuestionForm") or root.tag.endswith("}HTMLQuestion") \
            or root.tag.endswith("}ExternalQuestion"):
        tag = root.tag
        if tag.endswith("}QuestionForm"):
            raise param_error("QuestionForm questions are not supported by this marketplace; use "
                              "HTMLQuestion or ExternalQuestion.")
        raise param_error(f"The Question root element {tag} does not use the official namespace "
                          f"({HTML_QUESTION_NS} or {EXTERNAL_QUESTION_NS}).")
    raise param_error("The Question must be an HTMLQuestion or an ExternalQuestion document "
                      "(root element with the official namespace).")


def answers_xml(fields: list[tuple[str, str]]) -> str:
    """The QuestionFormAnswers document MTurk stored for an externalSubmit."""
    def esc(text: str) -> str:
        # Characters XML 1.0 cannot carry become U+FFFD so the document always parses.
        text = re.sub(r"[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]", "\uFFFD",
                      text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return text.encode("ascii", "xmlcharrefreplace").decode("ascii")

    parts = [f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="{ANSWERS_NS}">']
    for name, value in fields:
        parts.append(f"<Answer><QuestionIdentifier>{esc(name)}</QuestionIdentifier>"
                     f"<FreeText>{esc(value)}</FreeText></Answer>")
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)


def _encode_token(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> list | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) != 2:
            raise ValueError
        return key
    except Exception:
        raise param_error(f"The NextToken '{token[:60]}' is not valid.")


HIT_SQL = """SELECT h.*, t.title, t.description, t.keywords, t.reward_cents,
    t.assignment_duration, t.auto_approval_delay, t.qual_json
    FROM hits h JOIN hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id"""


class Market:
    """The marketplace over one SQLite file; thread-safe (one connection per thread)."""

    def __init__(self, db_path: str | Path, keys: dict[str, str] | None = None,
                 clock: Callable[[], float] | None = None, throttle=None, faults=None,
                 live_balance: str | None = None, new_id: Callable[[], str] | None = None):
        self.db_path = str(db_path)
        mdb.init_db(self.db_path, parse_cents(live_balance) if live_balance else 0)
        self.keys = dict(keys or {})
        self.clock = clock or time.time
        # Where new HIT, HIT type, qualification and assignment ids come from (a simulation
        # that must repeat itself injects a seeded source).
        self.new_id = new_id or random_id
        self.throttle = throttle
        self.faults = faults
        self.pool = mdb.Pool(self.db_path)
        conn = mdb.connect(self.db_path)
        try:
            self.cookie_secret = conn.execute(
                "SELECT value FROM mk_meta WHERE key = 'cookie_secret'").fetchone()[0]
        finally:
            conn.close()

    # -- infrastructure ------------------------------------------------------------------------
    def now(self) -> float:
        return float(self.clock())

    def conn(self) -> sqlite3.Connection:
        return self.pool.get()

    def sweep(self, realm: str) -> None:
        """Apply what time has done: abandon assignments past their deadline and auto-approve
        submitted ones past their auto-approval time (paying for them)."""
        conn = self.conn()
        now = self.now()
        due = conn.execute(
            "SELECT EXISTS(SELECT 1 FROM assignments WHERE realm = ? AND status = 'Accepted' "
            "AND deadline <= ?) OR EXISTS(SELECT 1 FROM assignments WHERE realm = ? AND "
            "status = 'Submitted' AND auto_approval_time <= ?)", (realm, now, realm, now)).fetchone()[0]
        if not due:
            return
        with mdb.write(conn):
            conn.execute("UPDATE assignments SET status = 'Abandoned' WHERE realm = ? AND "
                         "status = 'Accepted' AND deadline <= ?", (realm, now))
            rows = conn.execute(
                "SELECT a.assignment_id, a.auto_approval_time, t.reward_cents, h.max_assignments "
                "FROM assignments a JOIN hits h ON h.realm = a.realm AND h.hit_id = a.hit_id "
                "JOIN hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id "
                "WHERE a.realm = ? AND a.status = 'Submitted' AND a.auto_approval_time <= ?",
                (realm, now)).fetchall()
            total = 0
            for r in rows:
                conn.execute("UPDATE assignments SET status = 'Approved', approval_time = ? "
                             "WHERE realm = ? AND assignment_id = ?",
                             (r["auto_approval_time"], realm, r["assignment_id"]))
                total += r["reward_cents"] + fee_cents(r["reward_cents"], r["max_assignments"])
            if total:
                conn.execute("UPDATE accounts SET balance_cents = balance_cents - ? WHERE realm = ?",
                             (total, realm))

    # -- HIT rendering -------------------------------------------------------------------------
    def _counts(self, conn, realm: str, hit_ids: list[str]) -> dict[str, dict]:
        out = {h: {"pending": 0, "taken": 0, "completed": 0} for h in hit_ids}
        for i in range(0, len(hit_ids), 500):
            chunk = hit_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(
                    f"SELECT hit_id, SUM(status = 'Accepted') AS pending, "
                    f"SUM(status IN ('Accepted','Submitted','Approved','Rejected')) AS taken, "
                    f"SUM(status IN ('Approved','Rejected')) AS completed FROM assignments "
                    f"WHERE realm = ? AND hit_id IN ({marks}) GROUP BY hit_id", [realm, *chunk]):
                out[r["hit_id"]] = {"pending": r["pending"], "taken": r["taken"],
                                    "completed": r["completed"]}
        return out

    @staticmethod
    def _status(h, c: dict, now: float) -> str:
        if h["disposed"]:
            return "Disposed"
        if h["expiration"] > now and h["max_assignments"] - c["taken"] > 0:
            return "Assignable"
        if c["pending"] > 0:
            return "Unassignable"
        return "Reviewing" if h["reviewing"] else "Reviewable"

    def _hit_dicts(self, conn, realm: str, rows) -> list[dict]:
        counts = self._counts(conn, realm, [r["hit_id"] for r in rows])
        now = self.now()
        out = []
        for h in rows:
            c = counts[h["hit_id"]]
            d = {
                "HITId": h["hit_id"],
                "HITTypeId": h["hit_type_id"],
                "HITGroupId": h["hit_type_id"],
                "CreationTime": h["created"],
                "Title": h["title"],
                "Description": h["description"],
                "Question": h["question"],
            }
            if h["keywords"] is not None:
                d["Keywords"] = h["keywords"]
            d.update({
                "HITStatus": self._status(h, c, now),
                "MaxAssignments": h["max_assignments"],
                "Reward": fmt_cents(h["reward_cents"]),
                "AutoApprovalDelayInSeconds": h["auto_approval_delay"],
                "Expiration": h["expiration"],
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

    def _get_hit_row(self, conn, realm: str, hit_id: str):
        row = conn.execute(HIT_SQL + " WHERE h.realm = ? AND h.hit_id = ?", (realm, hit_id)).fetchone()
        if row is None:
            raise RequestError(f"Hit {hit_id} does not exist. {_stamp(self.now())}",
                               "AWS.MechanicalTurk.HitDoesNotExist")
        return row

    def hit_dict(self, conn, realm: str, hit_id: str) -> dict:
        return self._hit_dicts(conn, realm, [self._get_hit_row(conn, realm, hit_id)])[0]

    @staticmethod
    def _assignment_dict(a) -> dict:
        d = {
            "AssignmentId": a["assignment_id"],
            "WorkerId": a["worker_id"],
            "HITId": a["hit_id"],
            "AssignmentStatus": a["status"],
            "AutoApprovalTime": a["auto_approval_time"],
            "AcceptTime": a["accept_time"],
            "SubmitTime": a["submit_time"],
        }
        if a["approval_time"] is not None:
            d["ApprovalTime"] = a["approval_time"]
        if a["rejection_time"] is not None:
            d["RejectionTime"] = a["rejection_time"]
        d["Deadline"] = a["deadline"]
        d["Answer"] = a["answer"]
        if a["requester_feedback"] is not None:
            d["RequesterFeedback"] = a["requester_feedback"]
        return d

    # -- validation helpers --------------------------------------------------------------------
    @staticmethod
    def _seconds(params: dict, name: str, low: int, high: int) -> None:
        if name in params and not (low <= params[name] <= high):
            raise param_error(f"{name} must be between {low} and {high} seconds "
                              f"(got {params[name]}).")

    def _check_hit_type_params(self, conn, realm: str, p: dict) -> None:
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
        self._seconds(p, "AssignmentDurationInSeconds", MIN_DURATION_S, MAX_DURATION_S)
        self._seconds(p, "AutoApprovalDelayInSeconds", 0, MAX_AUTO_APPROVAL_S)
        self._check_requirements(conn, realm, p.get("QualificationRequirements") or [])

    def _check_requirements(self, conn, realm: str, reqs: list[dict]) -> None:
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
            if qid in MASTERS.values() and qid != MASTERS[realm]:
                raise param_error(f"{where}: this is the Masters qualification of the other "
                                  f"realm; use {MASTERS[realm]} here.")
            if qid not in SYSTEM_QUALS and qid != MASTERS[realm]:
                row = conn.execute("SELECT status FROM qualification_types WHERE realm = ? AND "
                                   "qualification_type_id = ?", (realm, qid)).fetchone()
                if row is None:
                    raise RequestError(f"{where}: QualificationType {qid} does not exist. "
                                       f"{_stamp(self.now())}",
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
            if qid == MASTERS[realm]:
                raise param_error(f"{where}: the Masters qualification supports only Exists "
                                  f"and DoesNotExist.")

    # -- requester operations ------------------------------------------------------------------
    def _hit_type(self, conn, realm: str, p: dict) -> str:
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
        row = conn.execute("SELECT hit_type_id FROM hit_types WHERE realm = ? AND fingerprint = ?",
                           (realm, fingerprint)).fetchone()
        if row:
            return row[0]
        hit_type_id = self.new_id()
        conn.execute(
            "INSERT INTO hit_types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (realm, hit_type_id, fingerprint, props["Title"], props["Description"],
             props["Keywords"], parse_cents(props["Reward"]), props["AssignmentDurationInSeconds"],
             props["AutoApprovalDelayInSeconds"], json.dumps(props["QualificationRequirements"]),
             self.now()))
        return hit_type_id

    def op_CreateHITType(self, realm, p):
        conn = self.conn()
        self._check_hit_type_params(conn, realm, p)
        with mdb.write(conn):
            return {"HITTypeId": self._hit_type(conn, realm, p)}

    def _unsupported_hit_params(self, p: dict) -> None:
        for name in ("HITLayoutId", "HITLayoutParameters"):
            if name in p:
                raise param_error(f"{name} is not supported by this marketplace (HIT layouts are "
                                  f"a requester-website feature); pass a Question instead.")
        for name in ("AssignmentReviewPolicy", "HITReviewPolicy"):
            if name in p:
                raise param_error(f"{name} is not supported by this marketplace.")
        if "Question" not in p:
            raise param_error("Either a Question parameter or a HITLayoutId parameter must be "
                              "provided.")

    def _create_hit(self, conn, realm: str, hit_type_id: str, p: dict) -> dict:
        now = self.now()
        self._seconds(p, "LifetimeInSeconds", MIN_DURATION_S, MAX_DURATION_S)
        max_assignments = p.get("MaxAssignments", 1)
        if not 1 <= max_assignments <= 1_000_000:
            raise param_error(f"MaxAssignments must be between 1 and 1000000 "
                              f"(got {max_assignments}).")
        if len(p.get("RequesterAnnotation") or "") > 255:
            raise param_error("RequesterAnnotation is longer than 255 characters.")
        parse_question(p["Question"])
        token = p.get("UniqueRequestToken")
        with mdb.write(conn):
            if token:
                old = conn.execute("SELECT hit_id, created FROM hits WHERE realm = ? AND "
                                   "unique_request_token = ?", (realm, token)).fetchone()
                if old is not None and old["created"] > now - TOKEN_WINDOW_S:
                    raise RequestError(
                        f"The HIT with ID \"{old['hit_id']}\" already exists with this "
                        f"UniqueRequestToken. (HIT ID: {old['hit_id']}) {_stamp(now)}",
                        "AWS.MechanicalTurk.HitAlreadyExists")
                if old is not None:
                    conn.execute("UPDATE hits SET unique_request_token = NULL WHERE realm = ? "
                                 "AND hit_id = ?", (realm, old["hit_id"]))
            if hit_type_id is None:
                hit_type_id = self._hit_type(conn, realm, p)
            t = conn.execute("SELECT reward_cents FROM hit_types WHERE realm = ? AND "
                             "hit_type_id = ?", (realm, hit_type_id)).fetchone()
            if t is None:
                raise RequestError(f"HITType {hit_type_id} does not exist. {_stamp(now)}",
                                   "AWS.MechanicalTurk.HITTypeDoesNotExist")
            cost = max_assignments * (t[0] + fee_cents(t[0], max_assignments))
            self._require_funds(conn, realm, cost)
            hit_id = self.new_id()
            conn.execute(
                "INSERT INTO hits (realm, hit_id, hit_type_id, question, max_assignments, "
                "expiration, requester_annotation, created, unique_request_token) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (realm, hit_id, hit_type_id, p["Question"], max_assignments,
                 now + p["LifetimeInSeconds"], p.get("RequesterAnnotation"), now, token))
            return {"HIT": self.hit_dict(conn, realm, hit_id)}

    def _require_funds(self, conn, realm: str, cost_cents: int) -> None:
        balance = conn.execute("SELECT balance_cents FROM accounts WHERE realm = ?",
                               (realm,)).fetchone()[0]
        if cost_cents > balance:
            raise RequestError(
                f"This Requester has insufficient funds in their account to complete this "
                f"transaction: it needs ${fmt_cents(cost_cents)} and the {realm} balance is "
                f"${fmt_cents(balance)}.", "AWS.MechanicalTurk.InsufficientFunds")

    def op_CreateHIT(self, realm, p):
        conn = self.conn()
        self._unsupported_hit_params(p)
        self._check_hit_type_params(conn, realm, p)
        return self._create_hit(conn, realm, None, p)

    def op_CreateHITWithHITType(self, realm, p):
        conn = self.conn()
        self._unsupported_hit_params(p)
        return self._create_hit(conn, realm, p["HITTypeId"], p)

    def op_GetHIT(self, realm, p):
        return {"HIT": self.hit_dict(self.conn(), realm, p["HITId"])}

    def _page(self, p: dict) -> tuple[int, list | None]:
        return p.get("MaxResults", 10), _decode_token(p.get("NextToken"))

    def _list_hits(self, realm: str, p: dict, where: str = "", args: tuple = (),
                   status_filter: str | None = None) -> dict:
        conn = self.conn()
        limit, after = self._page(p)
        sql = HIT_SQL + " WHERE h.realm = ? AND h.disposed = 0" + where
        params: list = [realm, *args]
        if after:
            sql += " AND (h.created > ? OR (h.created = ? AND h.hit_id > ?))"
            params += [after[0], after[0], after[1]]
        sql += " ORDER BY h.created, h.hit_id"
        conn.execute("BEGIN")
        try:
            if status_filter is None:
                rows = conn.execute(sql + " LIMIT ?", [*params, limit + 1]).fetchall()
                hits = self._hit_dicts(conn, realm, rows[:limit])
                more = len(rows) > limit
                last = rows[limit - 1] if more else None
            else:
                # The status is computed, so filter in Python over the ordered rows.
                hits, more, last = [], False, None
                for row in conn.execute(sql, params).fetchall():
                    d = self._hit_dicts(conn, realm, [row])[0]
                    if d["HITStatus"] != status_filter:
                        continue
                    if len(hits) == limit:
                        more = True
                        break
                    hits.append(d)
                    last = row
        finally:
            conn.execute("COMMIT")
        out: dict[str, Any] = {}
        if more and last is not None:
            out["NextToken"] = _encode_token([last["created"], last["hit_id"]])
        out["NumResults"] = len(hits)
        out["HITs"] = hits
        return out

    def op_ListHITs(self, realm, p):
        return self._list_hits(realm, p)

    def op_ListReviewableHITs(self, realm, p):
        where, args = "", ()
        if "HITTypeId" in p:
            where, args = " AND h.hit_type_id = ?", (p["HITTypeId"],)
        return self._list_hits(realm, p, where, args, p.get("Status", "Reviewable"))

    def op_UpdateExpirationForHIT(self, realm, p):
        conn = self.conn()
        with mdb.write(conn):
            h = self._get_hit_row(conn, realm, p["HITId"])
            if h["disposed"]:
                raise RequestError(f"Hit {h['hit_id']} has been deleted. {_stamp(self.now())}",
                                   "AWS.MechanicalTurk.InvalidHITState")
            # A time in the past expires the HIT now, as MTurk did.
            expire_at = min(max(float(p["ExpireAt"]), self.now()), self.now() + MAX_DURATION_S)
            conn.execute("UPDATE hits SET expiration = ? WHERE realm = ? AND hit_id = ?",
                         (expire_at, realm, h["hit_id"]))
        return {}

    def op_UpdateHITReviewStatus(self, realm, p):
        conn = self.conn()
        revert = p.get("Revert", False)
        with mdb.write(conn):
            d = self.hit_dict(conn, realm, p["HITId"])
            need = "Reviewing" if revert else "Reviewable"
            if d["HITStatus"] != need:
                raise RequestError(
                    f"This HIT is currently in the state '{d['HITStatus']}'.  This operation can "
                    f"be called with a status of: {need} {_stamp(self.now())}",
                    "AWS.MechanicalTurk.InvalidHITState")
            conn.execute("UPDATE hits SET reviewing = ? WHERE realm = ? AND hit_id = ?",
                         (0 if revert else 1, realm, p["HITId"]))
        return {}

    def op_UpdateHITTypeOfHIT(self, realm, p):
        conn = self.conn()
        with mdb.write(conn):
            h = self._get_hit_row(conn, realm, p["HITId"])
            t = conn.execute("SELECT 1 FROM hit_types WHERE realm = ? AND hit_type_id = ?",
                             (realm, p["HITTypeId"])).fetchone()
            if t is None:
                raise RequestError(f"HITType {p['HITTypeId']} does not exist. "
                                   f"{_stamp(self.now())}", "AWS.MechanicalTurk.HITTypeDoesNotExist")
            if h["disposed"]:
                raise RequestError(f"Hit {h['hit_id']} has been deleted. {_stamp(self.now())}",
                                   "AWS.MechanicalTurk.InvalidHITState")
            conn.execute("UPDATE hits SET hit_type_id = ? WHERE realm = ? AND hit_id = ?",
                         (p["HITTypeId"], realm, h["hit_id"]))
        return {}

    def op_DeleteHIT(self, realm, p):
        conn = self.conn()
        with mdb.write(conn):
            d = self.hit_dict(conn, realm, p["HITId"])
            if d["HITStatus"] == "Disposed":
                return {}
            submitted = conn.execute(
                "SELECT COUNT(*) FROM assignments WHERE realm = ? AND hit_id = ? AND status = "
                "'Submitted'", (realm, p["HITId"])).fetchone()[0]
            if d["HITStatus"] not in ("Reviewable", "Reviewing") or submitted:
                raise RequestError(
                    f"This HIT is currently in the state '{d['HITStatus']}'.  This operation can "
                    f"be called with a status of: Reviewable, Reviewing (and every submitted "
                    f"assignment approved or rejected). {_stamp(self.now())}",
                    "AWS.MechanicalTurk.InvalidHITState")
            conn.execute("UPDATE hits SET disposed = 1 WHERE realm = ? AND hit_id = ?",
                         (realm, p["HITId"]))
        return {}

    def op_ListAssignmentsForHIT(self, realm, p):
        conn = self.conn()
        self._get_hit_row(conn, realm, p["HITId"])
        statuses = p.get("AssignmentStatuses") or ["Submitted", "Approved", "Rejected"]
        limit, after = self._page(p)
        marks = ",".join("?" * len(statuses))
        sql = (f"SELECT * FROM assignments WHERE realm = ? AND hit_id = ? AND status IN ({marks})")
        args: list = [realm, p["HITId"], *statuses]
        if after:
            sql += " AND (accept_time > ? OR (accept_time = ? AND assignment_id > ?))"
            args += [after[0], after[0], after[1]]
        rows = conn.execute(sql + " ORDER BY accept_time, assignment_id LIMIT ?",
                            [*args, limit + 1]).fetchall()
        out: dict[str, Any] = {}
        if len(rows) > limit:
            last = rows[limit - 1]
            out["NextToken"] = _encode_token([last["accept_time"], last["assignment_id"]])
        rows = rows[:limit]
        out["NumResults"] = len(rows)
        out["Assignments"] = [self._assignment_dict(a) for a in rows]
        return out

    def _get_assignment_row(self, conn, realm: str, aid: str, visible_only: bool = True):
        a = conn.execute("SELECT * FROM assignments WHERE realm = ? AND assignment_id = ?",
                         (realm, aid)).fetchone()
        if a is None or (visible_only and a["status"] not in ("Submitted", "Approved", "Rejected")):
            raise RequestError(f"Assignment {aid} does not exist. {_stamp(self.now())}",
                               "AWS.MechanicalTurk.AssignmentDoesNotExist")
        return a

    def op_GetAssignment(self, realm, p):
        conn = self.conn()
        a = self._get_assignment_row(conn, realm, p["AssignmentId"])
        return {"Assignment": self._assignment_dict(a), "HIT": self.hit_dict(conn, realm, a["hit_id"])}

    def _cost_of(self, conn, realm: str, hit_id: str) -> tuple[int, int]:
        r = conn.execute("SELECT t.reward_cents, h.max_assignments FROM hits h JOIN hit_types t "
                         "ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id WHERE h.realm = ? "
                         "AND h.hit_id = ?", (realm, hit_id)).fetchone()
        return r[0], r[1]

    def op_ApproveAssignment(self, realm, p):
        conn = self.conn()
        feedback = p.get("RequesterFeedback")
        if feedback is not None and len(feedback) > 1024:
            raise param_error("RequesterFeedback is longer than 1024 characters.")
        now = self.now()
        with mdb.write(conn):
            a = self._get_assignment_row(conn, realm, p["AssignmentId"])
            allowed = ("Submitted", "Rejected") if p.get("OverrideRejection") else ("Submitted",)
            if a["status"] not in allowed:
                raise RequestError(
                    f"This operation can be called with a status of: {', '.join(allowed)} "
                    f"{_stamp(now)}", "AWS.MechanicalTurk.InvalidAssignmentState")
            reward, max_a = self._cost_of(conn, realm, a["hit_id"])
            cost = reward + fee_cents(reward, max_a)
            self._require_funds(conn, realm, cost)
            conn.execute("UPDATE assignments SET status = 'Approved', approval_time = ?, "
                         "rejection_time = NULL, requester_feedback = COALESCE(?, requester_feedback) "
                         "WHERE realm = ? AND assignment_id = ?",
                         (now, feedback, realm, a["assignment_id"]))
            conn.execute("UPDATE accounts SET balance_cents = balance_cents - ? WHERE realm = ?",
                         (cost, realm))
        return {}

    def op_RejectAssignment(self, realm, p):
        conn = self.conn()
        feedback = p["RequesterFeedback"]
        if not feedback.strip() or len(feedback) > 1024:
            raise param_error("RequesterFeedback must hold 1 to 1024 characters.")
        now = self.now()
        with mdb.write(conn):
            a = self._get_assignment_row(conn, realm, p["AssignmentId"])
            if a["status"] != "Submitted":
                raise RequestError(f"This operation can be called with a status of: Submitted "
                                   f"{_stamp(now)}", "AWS.MechanicalTurk.InvalidAssignmentState")
            conn.execute("UPDATE assignments SET status = 'Rejected', rejection_time = ?, "
                         "requester_feedback = ? WHERE realm = ? AND assignment_id = ?",
                         (now, feedback, realm, a["assignment_id"]))
        return {}

    def op_SendBonus(self, realm, p):
        conn = self.conn()
        now = self.now()
        amount = parse_cents(p["BonusAmount"])
        if amount < 1:
            raise param_error("BonusAmount must be at least 0.01.")
        if not p["Reason"].strip():
            raise param_error("Reason must not be empty.")
        token = p.get("UniqueRequestToken")
        with mdb.write(conn):
            if token:
                old = conn.execute("SELECT assignment_id, grant_time FROM bonuses WHERE realm = ? "
                                   "AND unique_request_token = ?", (realm, token)).fetchone()
                if old is not None and old["grant_time"] > now - TOKEN_WINDOW_S:
                    raise RequestError(
                        f"A bonus with this UniqueRequestToken was already sent for assignment "
                        f"{old['assignment_id']}. {_stamp(now)}",
                        "AWS.MechanicalTurk.DuplicateRequest")
                if old is not None:
                    conn.execute("UPDATE bonuses SET unique_request_token = NULL WHERE realm = ? "
                                 "AND unique_request_token = ?", (realm, token))
            a = self._get_assignment_row(conn, realm, p["AssignmentId"])
            if a["worker_id"] != p["WorkerId"]:
                raise RequestError(f"Assignment {a['assignment_id']} was not done by worker "
                                   f"{p['WorkerId']}. {_stamp(now)}",
                                   "AWS.MechanicalTurk.InvalidParameterValue")
            cost = amount + fee_cents(amount, 1)
            self._require_funds(conn, realm, cost)
            conn.execute("INSERT INTO bonuses (realm, worker_id, assignment_id, hit_id, "
                         "amount_cents, reason, grant_time, unique_request_token) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (realm, p["WorkerId"], a["assignment_id"], a["hit_id"], amount,
                          p["Reason"], now, token))
            conn.execute("UPDATE accounts SET balance_cents = balance_cents - ? WHERE realm = ?",
                         (cost, realm))
        return {}

    def op_ListBonusPayments(self, realm, p):
        conn = self.conn()
        if ("HITId" in p) == ("AssignmentId" in p):
            raise param_error("Specify either HITId or AssignmentId (exactly one).")
        limit, after = self._page(p)
        if "HITId" in p:
            self._get_hit_row(conn, realm, p["HITId"])
            where, arg = "hit_id = ?", p["HITId"]
        else:
            self._get_assignment_row(conn, realm, p["AssignmentId"])
            where, arg = "assignment_id = ?", p["AssignmentId"]
        sql = f"SELECT * FROM bonuses WHERE realm = ? AND {where}"
        args: list = [realm, arg]
        if after:
            sql += " AND bonus_id > ?"
            args.append(after[1])
        rows = conn.execute(sql + " ORDER BY bonus_id LIMIT ?", [*args, limit + 1]).fetchall()
        out: dict[str, Any] = {"NumResults": min(len(rows), limit)}
        if len(rows) > limit:
            out["NextToken"] = _encode_token([0, rows[limit - 1]["bonus_id"]])
        out["BonusPayments"] = [{
            "WorkerId": b["worker_id"], "BonusAmount": fmt_cents(b["amount_cents"]),
            "AssignmentId": b["assignment_id"], "Reason": b["reason"], "GrantTime": b["grant_time"],
        } for b in rows[:limit]]
        return out

    def op_CreateAdditionalAssignmentsForHIT(self, realm, p):
        conn = self.conn()
        n = p["NumberOfAdditionalAssignments"]
        if n < 1:
            raise param_error("NumberOfAdditionalAssignments must be at least 1.")
        now = self.now()
        token = p.get("UniqueRequestToken")
        with mdb.write(conn):
            if token:
                old = conn.execute("SELECT hit_id, created FROM extensions WHERE realm = ? AND "
                                   "unique_request_token = ?", (realm, token)).fetchone()
                if old is not None and old["created"] > now - TOKEN_WINDOW_S:
                    raise RequestError(
                        f"The assignments for HIT {old['hit_id']} were already created with "
                        f"this UniqueRequestToken. {_stamp(now)}",
                        "AWS.MechanicalTurk.DuplicateRequest")
                conn.execute("DELETE FROM extensions WHERE realm = ? AND unique_request_token = ?",
                             (realm, token))
            h = self._get_hit_row(conn, realm, p["HITId"])
            if h["disposed"]:
                raise RequestError(f"Hit {h['hit_id']} has been deleted. {_stamp(now)}",
                                   "AWS.MechanicalTurk.InvalidHITState")
            old_max = h["max_assignments"]
            if old_max < 10 <= old_max + n:
                raise RequestError(
                    f"The HIT {h['hit_id']} was created with fewer than 10 assignments "
                    f"({old_max}) and cannot be extended to 10 or more assignments "
                    f"(requested {old_max + n}). {_stamp(now)}",
                    "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")
            reward = h["reward_cents"]
            self._require_funds(conn, realm, n * (reward + fee_cents(reward, old_max + n)))
            conn.execute("UPDATE hits SET max_assignments = max_assignments + ? WHERE realm = ? "
                         "AND hit_id = ?", (n, realm, h["hit_id"]))
            if token:
                conn.execute("INSERT INTO extensions VALUES (?, ?, ?, ?)",
                             (realm, token, h["hit_id"], now))
        return {}

    # -- qualifications ------------------------------------------------------------------------
    def _qual_type_dict(self, q) -> dict:
        d = {
            "QualificationTypeId": q["qualification_type_id"],
            "CreationTime": q["created"],
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

    def _system_qual_dicts(self, realm: str) -> list[dict]:
        items = dict(SYSTEM_QUALS)
        items[MASTERS[realm]] = ("Masters", "Workers who have demonstrated excellence across a "
                                            "wide range of HITs.")
        return [{"QualificationTypeId": qid, "CreationTime": 0.0, "Name": name,
                 "Description": desc, "QualificationTypeStatus": "Active", "IsRequestable": False,
                 "AutoGranted": False} for qid, (name, desc) in items.items()]

    def _get_qual_type(self, conn, realm: str, qid: str):
        q = conn.execute("SELECT * FROM qualification_types WHERE realm = ? AND "
                         "qualification_type_id = ?", (realm, qid)).fetchone()
        if q is None:
            raise RequestError(f"QualificationType {qid} does not exist. {_stamp(self.now())}",
                               "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
        return q

    def _check_qual_params(self, p: dict) -> None:
        if "Name" in p and not p["Name"].strip():
            raise param_error("Name must not be empty.")
        if len(p.get("Description") or "") > 2000:
            raise param_error("Description is longer than 2000 characters.")
        if "Test" in p:
            raise param_error("Qualification tests (QuestionForm) are not supported by this "
                              "marketplace; grant values with AssociateQualificationWithWorker.")
        if "AnswerKey" in p:
            raise param_error("AnswerKey needs a Test, which this marketplace does not support.")
        self._seconds(p, "RetryDelayInSeconds", 0, MAX_DURATION_S)
        self._seconds(p, "TestDurationInSeconds", MIN_DURATION_S, MAX_DURATION_S)

    def op_CreateQualificationType(self, realm, p):
        conn = self.conn()
        self._check_qual_params(p)
        qid = self.new_id()
        with mdb.write(conn):
            exists = conn.execute("SELECT 1 FROM qualification_types WHERE realm = ? AND name = ?",
                                  (realm, p["Name"])).fetchone()
            if exists:
                raise RequestError(
                    f"You have already created a QualificationType with this name. A "
                    f"QualificationType's name must be unique among all of the Qualification "
                    f"Types created by the same user. {_stamp(self.now())}",
                    "AWS.MechanicalTurk.QualificationTypeAlreadyExists")
            conn.execute(
                "INSERT INTO qualification_types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (realm, qid, p["Name"], p["Description"], p.get("Keywords"),
                 p["QualificationTypeStatus"], None, None, None, p.get("RetryDelayInSeconds"),
                 int(p.get("AutoGranted", False)), p.get("AutoGrantedValue"), self.now()))
            q = self._get_qual_type(conn, realm, qid)
        return {"QualificationType": self._qual_type_dict(q)}

    def op_GetQualificationType(self, realm, p):
        qid = p["QualificationTypeId"]
        for d in self._system_qual_dicts(realm):
            if d["QualificationTypeId"] == qid:
                return {"QualificationType": d}
        return {"QualificationType": self._qual_type_dict(
            self._get_qual_type(self.conn(), realm, qid))}

    def op_UpdateQualificationType(self, realm, p):
        conn = self.conn()
        self._check_qual_params(p)
        cols = {"Description": "description", "QualificationTypeStatus": "status",
                "RetryDelayInSeconds": "retry_delay", "AutoGranted": "auto_granted",
                "AutoGrantedValue": "auto_granted_value"}
        with mdb.write(conn):
            self._get_qual_type(conn, realm, p["QualificationTypeId"])
            for key, col in cols.items():
                if key in p:
                    value = int(p[key]) if key == "AutoGranted" else p[key]
                    conn.execute(f"UPDATE qualification_types SET {col} = ? WHERE realm = ? AND "
                                 f"qualification_type_id = ?",
                                 (value, realm, p["QualificationTypeId"]))
            q = self._get_qual_type(conn, realm, p["QualificationTypeId"])
        return {"QualificationType": self._qual_type_dict(q)}

    def op_ListQualificationTypes(self, realm, p):
        conn = self.conn()
        limit, after = self._page(p)
        query = (p.get("Query") or "").lower()
        items = [self._qual_type_dict(q) for q in conn.execute(
            "SELECT * FROM qualification_types WHERE realm = ? ORDER BY created, "
            "qualification_type_id", (realm,))]
        if not p.get("MustBeOwnedByCaller", False) and not p["MustBeRequestable"]:
            items = self._system_qual_dicts(realm) + items
        if p["MustBeRequestable"]:
            items = [d for d in items if d["IsRequestable"]]
        if query:
            items = [d for d in items if query in d["Name"].lower()
                     or query in d["Description"].lower() or query in d.get("Keywords", "").lower()]
        start = after[0] if after else 0
        page = items[start:start + limit]
        out: dict[str, Any] = {"NumResults": len(page)}
        if start + limit < len(items):
            out["NextToken"] = _encode_token([start + limit, ""])
        out["QualificationTypes"] = page
        return out

    def _check_worker_id(self, worker_id: str) -> None:
        if not WORKER_ID_RE.match(worker_id):
            raise param_error(f"WorkerId '{worker_id[:80]}' is not a valid worker id.")

    def op_AssociateQualificationWithWorker(self, realm, p):
        conn = self.conn()
        qid = p["QualificationTypeId"]
        if qid in SYSTEM_QUALS or qid in MASTERS.values():
            raise param_error(f"{qid} is a system qualification; its values come from the "
                              f"worker's history and cannot be assigned.")
        with mdb.write(conn):
            self._get_qual_type(conn, realm, qid)
            conn.execute(
                "INSERT INTO qualifications VALUES (?, ?, ?, ?, 'Granted', ?) "
                "ON CONFLICT (realm, qualification_type_id, worker_id) DO UPDATE SET "
                "integer_value = excluded.integer_value, status = 'Granted', "
                "grant_time = excluded.grant_time",
                (realm, qid, p["WorkerId"], p.get("IntegerValue", 1), self.now()))
        return {}

    def op_DisassociateQualificationFromWorker(self, realm, p):
        conn = self.conn()
        with mdb.write(conn):
            self._get_qual_type(conn, realm, p["QualificationTypeId"])
            cur = conn.execute("DELETE FROM qualifications WHERE realm = ? AND "
                               "qualification_type_id = ? AND worker_id = ?",
                               (realm, p["QualificationTypeId"], p["WorkerId"]))
            if cur.rowcount == 0:
                raise RequestError(
                    f"You requested a Qualification that does not exist. {_stamp(self.now())}",
                    "AWS.MechanicalTurk.QualificationDoesNotExist")
        return {}

    @staticmethod
    def _qual_dict(q) -> dict:
        return {"QualificationTypeId": q["qualification_type_id"], "WorkerId": q["worker_id"],
                "GrantTime": q["grant_time"], "IntegerValue": q["integer_value"],
                "Status": q["status"]}

    def op_GetQualificationScore(self, realm, p):
        conn = self.conn()
        self._get_qual_type(conn, realm, p["QualificationTypeId"])
        q = conn.execute("SELECT * FROM qualifications WHERE realm = ? AND qualification_type_id = ?"
                         " AND worker_id = ?", (realm, p["QualificationTypeId"],
                                                p["WorkerId"])).fetchone()
        if q is None:
            raise RequestError(f"You requested a Qualification that does not exist. "
                               f"{_stamp(self.now())}",
                               "AWS.MechanicalTurk.QualificationDoesNotExist")
        return {"Qualification": self._qual_dict(q)}

    def op_ListWorkersWithQualificationType(self, realm, p):
        conn = self.conn()
        self._get_qual_type(conn, realm, p["QualificationTypeId"])
        limit, after = self._page(p)
        sql = "SELECT * FROM qualifications WHERE realm = ? AND qualification_type_id = ?"
        args: list = [realm, p["QualificationTypeId"]]
        if "Status" in p:
            sql += " AND status = ?"
            args.append(p["Status"])
        if after:
            sql += " AND worker_id > ?"
            args.append(after[1])
        rows = conn.execute(sql + " ORDER BY worker_id LIMIT ?", [*args, limit + 1]).fetchall()
        out: dict[str, Any] = {}
        if len(rows) > limit:
            out["NextToken"] = _encode_token([0, rows[limit - 1]["worker_id"]])
        out["NumResults"] = min(len(rows), limit)
        out["Qualifications"] = [self._qual_dict(q) for q in rows[:limit]]
        return out

    # -- blocks, notifications, balance --------------------------------------------------------
    def op_CreateWorkerBlock(self, realm, p):
        conn = self.conn()
        if not p["Reason"].strip():
            raise param_error("Reason must not be empty.")
        with mdb.write(conn):
            conn.execute("INSERT INTO worker_blocks VALUES (?, ?, ?, ?) ON CONFLICT (realm, "
                         "worker_id) DO UPDATE SET reason = excluded.reason",
                         (realm, p["WorkerId"], p["Reason"], self.now()))
        return {}

    def op_DeleteWorkerBlock(self, realm, p):
        conn = self.conn()
        with mdb.write(conn):
            conn.execute("DELETE FROM worker_blocks WHERE realm = ? AND worker_id = ?",
                         (realm, p["WorkerId"]))
        return {}

    def op_ListWorkerBlocks(self, realm, p):
        conn = self.conn()
        limit, after = self._page(p)
        sql, args = "SELECT * FROM worker_blocks WHERE realm = ?", [realm]
        if after:
            sql += " AND worker_id > ?"
            args.append(after[1])
        rows = conn.execute(sql + " ORDER BY worker_id LIMIT ?", [*args, limit + 1]).fetchall()
        out: dict[str, Any] = {}
        if len(rows) > limit:
            out["NextToken"] = _encode_token([0, rows[limit - 1]["worker_id"]])
        out["NumResults"] = min(len(rows), limit)
        out["WorkerBlocks"] = [{"WorkerId": r["worker_id"], "Reason": r["reason"]}
                               for r in rows[:limit]]
        return out

    def op_NotifyWorkers(self, realm, p):
        conn = self.conn()
        if not 1 <= len(p["Subject"]) <= 200:
            raise param_error("Subject must hold 1 to 200 characters.")
        if not 1 <= len(p["MessageText"]) <= 4096:
            raise param_error("MessageText must hold 1 to 4096 characters.")
        if not 1 <= len(p["WorkerIds"]) <= 100:
            raise param_error("WorkerIds must list 1 to 100 workers.")
        failures = []
        now = self.now()
        with mdb.write(conn):
            for w in p["WorkerIds"]:
                worked = conn.execute("SELECT 1 FROM assignments WHERE realm = ? AND worker_id = ? "
                                      "LIMIT 1", (realm, w)).fetchone()
                if not worked:
                    # MTurk only lets a requester message workers who have worked for them.
                    failures.append({"NotifyWorkersFailureCode": "HardFailure",
                                     "NotifyWorkersFailureMessage":
                                         f"Cannot send notification to {w}: the worker has "
                                         f"not done any work for you.",
                                     "WorkerId": w})
                    continue
                conn.execute("INSERT INTO notifications (realm, worker_id, subject, message, "
                             "created) VALUES (?, ?, ?, ?, ?)",
                             (realm, w, p["Subject"], p["MessageText"], now))
        return {"NotifyWorkersFailureStatuses": failures}

    def op_GetAccountBalance(self, realm, p):
        conn = self.conn()
        bal = conn.execute("SELECT balance_cents FROM accounts WHERE realm = ?",
                           (realm,)).fetchone()[0]
        held = 0
        for r in conn.execute(
                "SELECT t.reward_cents, h.max_assignments, COUNT(*) AS n FROM assignments a "
                "JOIN hits h ON h.realm = a.realm AND h.hit_id = a.hit_id JOIN hit_types t ON "
                "t.realm = h.realm AND t.hit_type_id = h.hit_type_id WHERE a.realm = ? AND "
                "a.status = 'Submitted' GROUP BY h.hit_id", (realm,)):
            held += r["n"] * (r["reward_cents"] + fee_cents(r["reward_cents"], r["max_assignments"]))
        return {"AvailableBalance": fmt_cents(bal), "OnHoldBalance": fmt_cents(held)}

    # -- worker side ---------------------------------------------------------------------------
    def ensure_worker(self, realm: str, worker_id: str, country: str | None = None,
                      subdivision: str | None = None, hits_approved: int | None = None,
                      percent_approved: int | None = None, masters: bool | None = None,
                      participant_id: str | None = None, invite_token: str | None = None) -> None:
        """Create the worker's profile on first sign-in; values given later update it."""
        conn = self.conn()
        base_rej = None
        if hits_approved is not None or percent_approved is not None:
            if hits_approved is None:
                row = conn.execute("SELECT base_approved FROM workers WHERE realm = ? AND "
                                   "worker_id = ?", (realm, worker_id)).fetchone()
                hits_approved = row[0] if row else 1000
            pct = 100 if percent_approved is None else max(1, min(100, percent_approved))
            base_rej = round(hits_approved * (100 - pct) / pct)
        with mdb.write(conn):
            conn.execute(
                "INSERT INTO workers (realm, worker_id, country, subdivision, base_approved, "
                "base_rejected, masters, participant_id, invite_token, created) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (realm, worker_id) DO NOTHING",
                (realm, worker_id, (country or "US").upper(), subdivision,
                 1000 if hits_approved is None else hits_approved, base_rej or 0,
                 int(bool(masters)), participant_id, invite_token, self.now()))
            updates = {"country": country.upper() if country else None,
                       "subdivision": subdivision, "base_approved": hits_approved,
                       "base_rejected": base_rej,
                       "masters": None if masters is None else int(masters),
                       "participant_id": participant_id, "invite_token": invite_token}
            for col, value in updates.items():
                if value is not None:
                    conn.execute(f"UPDATE workers SET {col} = ? WHERE realm = ? AND worker_id = ?",
                                 (value, realm, worker_id))

    def worker_row(self, realm: str, worker_id: str):
        return self.conn().execute("SELECT * FROM workers WHERE realm = ? AND worker_id = ?",
                                   (realm, worker_id)).fetchone()

    def qual_values(self, conn, realm: str, worker_id: str) -> dict[str, Any]:
        """Every qualification value the worker holds: qid -> int, or (country, subdivision)
        for Locale."""
        w = conn.execute("SELECT * FROM workers WHERE realm = ? AND worker_id = ?",
                         (realm, worker_id)).fetchone()
        values: dict[str, Any] = {}
        if w is not None:
            approved, rejected = conn.execute(
                "SELECT COALESCE(SUM(status = 'Approved'), 0), COALESCE(SUM(status = 'Rejected'), 0)"
                " FROM assignments WHERE realm = ? AND worker_id = ?", (realm, worker_id)).fetchone()
            n_ok = w["base_approved"] + approved
            n_all = n_ok + w["base_rejected"] + rejected
            values[HITS_APPROVED] = n_ok
            values[PERCENT_APPROVED] = 100 if n_all == 0 else (100 * n_ok) // n_all
            values[LOCALE] = (w["country"], w["subdivision"])
            values[ADULT] = 1
            if w["masters"]:
                values[MASTERS[realm]] = 1
        for q in conn.execute("SELECT q.qualification_type_id, q.integer_value FROM qualifications q"
                              " JOIN qualification_types t ON t.realm = q.realm AND "
                              "t.qualification_type_id = q.qualification_type_id WHERE q.realm = ?"
                              " AND q.worker_id = ? AND q.status = 'Granted' AND t.status = 'Active'",
                              (realm, worker_id)):
            values[q[0]] = q[1]
        for t in conn.execute("SELECT qualification_type_id, auto_granted_value FROM "
                              "qualification_types WHERE realm = ? AND auto_granted = 1 AND "
                              "status = 'Active'", (realm,)):
            values.setdefault(t[0], 1 if t[1] is None else t[1])
        return values

    @staticmethod
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

    @staticmethod
    def _guards(req: dict, action: str) -> bool:
        """Whether a requirement applies to an action ('discover', 'preview', 'accept')."""
        guarded = req.get("ActionsGuarded")
        if guarded is None:
            guarded = "PreviewAndAccept" if req.get("RequiredToPreview") else "Accept"
        return {"Accept": action == "accept",
                "PreviewAndAccept": action in ("preview", "accept"),
                "DiscoverPreviewAndAccept": True}[guarded]

    def failed_requirements(self, reqs: list[dict], values: dict, action: str) -> list[dict]:
        return [r for r in reqs if self._guards(r, action) and not self.meets(r, values)]

    def is_blocked(self, conn, realm: str, worker_id: str) -> bool:
        return conn.execute("SELECT 1 FROM worker_blocks WHERE realm = ? AND worker_id = ?",
                            (realm, worker_id)).fetchone() is not None

    def list_groups(self, realm: str, worker_id: str) -> list[dict]:
        """HIT groups with a HIT this worker may accept now."""
        self.sweep(realm)
        conn = self.conn()
        if self.is_blocked(conn, realm, worker_id):
            return []
        now = self.now()
        values = self.qual_values(conn, realm, worker_id)
        rows = conn.execute(
            "SELECT t.hit_type_id, t.title, t.description, t.keywords, t.reward_cents, "
            "t.assignment_duration, t.qual_json, COUNT(*) AS hits, MIN(h.expiration) AS expires "
            "FROM hits h JOIN hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id "
            "WHERE h.realm = ? AND h.disposed = 0 AND h.expiration > ? AND h.max_assignments > "
            "(SELECT COUNT(*) FROM assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id "
            "AND a.status IN ('Accepted','Submitted','Approved','Rejected')) AND NOT EXISTS "
            "(SELECT 1 FROM assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id AND "
            "a.worker_id = ? AND a.status IN ('Accepted','Submitted','Approved','Rejected')) "
            "GROUP BY t.hit_type_id ORDER BY MIN(h.created)", (realm, now, worker_id)).fetchall()
        groups = []
        for r in rows:
            reqs = json.loads(r["qual_json"])
            if self.failed_requirements(reqs, values, "accept"):
                continue
            groups.append({"hit_type_id": r["hit_type_id"], "title": r["title"],
                           "description": r["description"], "keywords": r["keywords"] or "",
                           "reward": fmt_cents(r["reward_cents"]), "hits": r["hits"],
                           "duration_s": r["assignment_duration"]})
        return groups

    def pick_hit(self, realm: str, worker_id: str, hit_type_id: str) -> str | None:
        self.sweep(realm)
        row = self.conn().execute(
            "SELECT h.hit_id FROM hits h WHERE h.realm = ? AND h.hit_type_id = ? AND h.disposed = 0 "
            "AND h.expiration > ? AND h.max_assignments > (SELECT COUNT(*) FROM assignments a "
            "WHERE a.realm = h.realm AND a.hit_id = h.hit_id AND a.status IN "
            "('Accepted','Submitted','Approved','Rejected')) AND NOT EXISTS (SELECT 1 FROM "
            "assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id AND a.worker_id = ? "
            "AND a.status IN ('Accepted','Submitted','Approved','Rejected')) "
            "ORDER BY h.created, h.hit_id LIMIT 64", (realm, hit_type_id, self.now(), worker_id)
        ).fetchall()
        if not row:
            return None
        # Among the oldest open HITs, each worker gets its own deterministic pick, so many
        # workers arriving at once spread over the group instead of racing for one HIT.
        return min((r[0] for r in row),
                   key=lambda h: hashlib.sha1(f"{worker_id}/{h}".encode()).digest())

    def worker_hit(self, realm: str, worker_id: str | None, hit_id: str, action: str) -> dict:
        """The HIT as a worker sees it, checked for `action` ('preview' or 'accept')."""
        self.sweep(realm)
        conn = self.conn()
        row = conn.execute(HIT_SQL + " WHERE h.realm = ? AND h.hit_id = ?", (realm, hit_id)).fetchone()
        if row is None or row["disposed"]:
            raise WorkerError("This HIT does not exist or is no longer available.", 404)
        d = self._hit_dicts(conn, realm, [row])[0]
        if worker_id is not None:
            if self.is_blocked(conn, realm, worker_id):
                raise WorkerError("You cannot work on this requester's HITs.", 403)
            values = self.qual_values(conn, realm, worker_id)
            failed = self.failed_requirements(d["QualificationRequirements"], values, action)
            if failed:
                raise WorkerError("You do not meet the qualification requirements of this HIT.",
                                  403)
        elif any(self._guards(r, action) for r in d["QualificationRequirements"]):
            raise WorkerError("Sign in to see this HIT: it has qualification requirements.", 403)
        return d

    def accept(self, realm: str, worker_id: str, hit_id: str) -> str:
        self.worker_hit(realm, worker_id, hit_id, "accept")
        conn = self.conn()
        now = self.now()
        with mdb.write(conn):
            h = self._get_hit_row(conn, realm, hit_id)
            c = self._counts(conn, realm, [hit_id])[hit_id]
            if self._status(h, c, now) != "Assignable":
                raise WorkerError("This HIT is no longer available.", 409)
            mine = conn.execute(
                "SELECT assignment_id, status FROM assignments WHERE realm = ? AND hit_id = ? AND "
                "worker_id = ? AND status IN ('Accepted','Submitted','Approved','Rejected')",
                (realm, hit_id, worker_id)).fetchone()
            if mine is not None:
                if mine["status"] == "Accepted":
                    return mine["assignment_id"]
                raise WorkerError("You have already worked on this HIT.", 409)
            aid = self.new_id()
            conn.execute("INSERT INTO assignments (realm, assignment_id, hit_id, worker_id, status,"
                         " accept_time, deadline) VALUES (?, ?, ?, ?, 'Accepted', ?, ?)",
                         (realm, aid, hit_id, worker_id, now, now + h["assignment_duration"]))
            return aid

    def worker_assignment(self, realm: str, assignment_id: str):
        self.sweep(realm)
        return self.conn().execute("SELECT * FROM assignments WHERE realm = ? AND "
                                   "assignment_id = ?", (realm, assignment_id)).fetchone()

    def return_assignment(self, realm: str, worker_id: str, assignment_id: str) -> None:
        self.sweep(realm)
        conn = self.conn()
        with mdb.write(conn):
            a = conn.execute("SELECT * FROM assignments WHERE realm = ? AND assignment_id = ?",
                             (realm, assignment_id)).fetchone()
            if a is None or a["worker_id"] != worker_id:
                raise WorkerError("This assignment is not yours.", 404)
            if a["status"] != "Accepted":
                raise WorkerError(f"This assignment is {a['status'].lower()} and can no longer "
                                  f"be returned.", 409)
            conn.execute("UPDATE assignments SET status = 'Returned' WHERE realm = ? AND "
                         "assignment_id = ?", (realm, assignment_id))

    def submit(self, realm: str, assignment_id: str, fields: list[tuple[str, str]]):
        self.sweep(realm)
        conn = self.conn()
        now = self.now()
        with mdb.write(conn):
            a = conn.execute("SELECT a.*, t.auto_approval_delay FROM assignments a JOIN hits h ON "
                             "h.realm = a.realm AND h.hit_id = a.hit_id JOIN hit_types t ON "
                             "t.realm = h.realm AND t.hit_type_id = h.hit_type_id WHERE a.realm = ?"
                             " AND a.assignment_id = ?", (realm, assignment_id)).fetchone()
            if a is None:
                raise WorkerError("There is no such assignment.", 404)
            if a["status"] != "Accepted":
                what = {"Abandoned": "its time ran out", "Returned": "it was returned"}.get(
                    a["status"], "it was already submitted")
                raise WorkerError(f"This assignment cannot be submitted: {what}.", 409)
            conn.execute("UPDATE assignments SET status = 'Submitted', submit_time = ?, "
                         "auto_approval_time = ?, answer = ? WHERE realm = ? AND "
                         "assignment_id = ?", (now, now + a["auto_approval_delay"],
                                               answers_xml(fields), realm, assignment_id))
        return self.worker_assignment(realm, assignment_id)
