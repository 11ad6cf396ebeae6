"""`study publish`: the plan and its cost, then the study's qualification, its HIT type and each
HIT exactly once.

Every HIT has a UniqueRequestToken made of the study id, the realm and the HIT's index, and is
journaled before and after CreateHIT. A HIT left "creating" by a crash is first looked up on the
marketplace (by its RequesterAnnotation, which is the token) and only then sent again, so a
re-run never makes a HIT twice, even after the marketplace forgot the token.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable

from study import store
from study import methods
from study.crowd import allocation, design, journal, money, qualify
from study.crowd.client import Requester, error_message, requester
from study.crowd.hosting import Hosting
from study.crowd.lock import crowd_lock
from study.crowd.pages import question_xml, study_id
from study.errors import StudyError

# System qualification types of MTurk (the same ids in the bundled marketplace).
APPROVAL_RATE = "000000000000000000L0"
APPROVED_HITS = "00000000000000000040"
LOCALE = "00000000000000000071"
HIT_ID_IN_TEXT = re.compile(r"\b([A-Z0-9]{20,40})\b")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hit_token(sid: str, realm: str, hit_index: int) -> str:
    return f"{sid}-{realm}-hit-{hit_index}"


@dataclass
class Plan:
    realm: str
    designed: int
    published: int
    to_create: list[int]
    assignments_per_hit: int
    items_per_hit: int
    gold_per_hit: int
    reward: Decimal
    cost_new: Decimal
    fees_new: Decimal
    committed: Decimal
    budget: Decimal
    expected_seconds: int
    lines: list[str] = field(default_factory=list)

    @property
    def hourly(self) -> Decimal:
        return (self.reward * 3600 / max(1, self.expected_seconds)).quantize(money.CENT)

    def to_dict(self) -> dict:
        out = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()
               if k != "lines"}
        out["hourly"] = str(self.hourly)
        return out


def committed_cost(conn: sqlite3.Connection, realm: str) -> Decimal:
    """Money the marketplace may charge for what exists in `realm`: every created assignment
    (including top-ups) with its fee, and every bonus sent or about to be."""
    total = Decimal("0")
    for r in conn.execute(
            "SELECT h.max_assignments + COALESCE((SELECT SUM(count) FROM topups t WHERE "
            "t.realm = h.realm AND t.hit_index = h.hit_index AND t.state != 'failed'), 0) AS n, "
            "h.reward FROM hits h WHERE h.realm = ? AND h.state != 'planned'", (realm,)):
        reward = money.usd(r["reward"])
        total += r["n"] * money.assignment_cost(reward, r["n"])
    for r in conn.execute(
            "SELECT p.amount_usd FROM payments p JOIN assignments a USING (assignment_id) "
            "WHERE p.kind IN ('bonus', 'agreement_bonus') AND a.realm = ? "
            "AND p.state IN ('intent', 'done')", (realm,)):
        amount = money.usd(r["amount_usd"])
        total += amount + money.fee(amount)
    return total + qualify.committed(conn, realm)


def make_plan(study, conn: sqlite3.Connection, realm: str, dry_run: bool = False) -> Plan:
    s = study.settings
    d = design.ensure_design(study, conn, save=not dry_run)
    n = len(d.hits)
    r = allocation.first_round(s.design)   # all ratings at once, or the first adaptive round
    created = {row["hit_index"] for row in conn.execute(
        "SELECT hit_index FROM hits WHERE realm = ? AND state = 'created'", (realm,))}
    to_create = [h for h in range(n) if h not in created]
    reward = s.hit.reward
    per = money.assignment_cost(reward, r)
    gold = sum(1 for key in d.hits[0] if key[2] != "test")
    plan = Plan(realm=realm, designed=n, published=len(created), to_create=to_create,
                assignments_per_hit=r, items_per_hit=max(len(h) for h in d.hits) - gold,
                gold_per_hit=gold, reward=reward,
                cost_new=per * r * len(to_create),
                fees_new=money.fee(reward, r) * r * len(to_create),
                committed=committed_cost(conn, realm),
                budget=s.budget.max_usd,
                expected_seconds=s.hit.expected_seconds_per_hit)
    n_assign = r * len(to_create)
    plan.lines = [
        f"Plan for the {realm} realm:",
        f"  HITs         {n} designed, {plan.published} published, {len(to_create)} to create",
        f"  per HIT      {plan.items_per_hit} items + {gold} gold, {r} assignments "
        f"(no worker rates an item twice)",
        f"  assignments  {n_assign} new",
        f"  cost         rewards {money.fmt(reward * n_assign)} + fees "
        f"{money.fmt(plan.fees_new)} = {money.fmt(plan.cost_new)}",
        f"  budget       {money.fmt(plan.committed)} committed so far, "
        f"{money.fmt(plan.committed + plan.cost_new)} after this of {money.fmt(plan.budget)}",
        f"  pay          {money.fmt(reward)} per HIT of ~{plan.expected_seconds} s = "
        f"{money.fmt(plan.hourly)}/hour",
    ]
    plan.lines.extend(allocation.plan_lines(s.design, per, len(to_create)))
    lines, cost = qualify.plan(study, conn, realm)
    plan.lines.extend(lines)
    plan.cost_new += cost
    presign = s.hosting.s3_presign_seconds
    lifetime = s.hit.lifetime_s
    if s.hosting.mode == "s3" and s.hit.question == "html" \
            and 0 < min(presign, 604800) < lifetime:
        plan.lines.append(f"  warning      image links expire after {min(presign, 604800)} s, "
                          f"before the HITs do ({lifetime} s): shorten hit.lifetime_s or use "
                          "hit.question = \"external\"")
    return plan


def check_budget(plan: Plan) -> None:
    total = plan.committed + plan.cost_new
    if total > plan.budget:
        raise StudyError(
            f"the plan costs {money.fmt(plan.cost_new)}, which with "
            f"{money.fmt(plan.committed)} already committed exceeds the budget of "
            f"{money.fmt(plan.budget)}", where="study.toml budget.max_usd",
            hint="raise budget.max_usd, lower hit.reward, or rate fewer items "
                 "(design.ratings_per_item, methods, images)")


def requirements(hit, realm: str, qualification_id: str) -> list[dict]:
    """The study's exclusion qualification always; worker-history requirements only in the
    live realm, because sandbox workers have no history and would all be kept out."""
    reqs = [{"QualificationTypeId": qualification_id, "Comparator": "DoesNotExist",
             "ActionsGuarded": "DiscoverPreviewAndAccept"}]
    if realm != "live":
        return reqs
    rate = hit.requirements.min_approval_rate
    if rate > 0:
        reqs.append({"QualificationTypeId": APPROVAL_RATE, "Comparator": "GreaterThanOrEqualTo",
                     "IntegerValues": [rate], "ActionsGuarded": "Accept"})
    approved = hit.requirements.min_approved_hits
    if approved > 0:
        reqs.append({"QualificationTypeId": APPROVED_HITS, "Comparator": "GreaterThanOrEqualTo",
                     "IntegerValues": [approved], "ActionsGuarded": "Accept"})
    locales = list(hit.requirements.locales)
    if locales:
        reqs.append({"QualificationTypeId": LOCALE, "Comparator": "In",
                     "LocaleValues": [{"Country": str(c)} for c in locales],
                     "ActionsGuarded": "Accept"})
    return reqs


def qualification_name(sid: str) -> str:
    return f"study {sid} excluded workers"


def ensure_qualification_type(conn: sqlite3.Connection, api: Requester, name: str,
                              keywords: str, description: str, step: str) -> str:
    """The caller's qualification type called `name`: found by name, else made once (the
    journal's `step`:sent and `step`:done around the call)."""
    from botocore.exceptions import ClientError

    def find() -> str | None:
        for q in api.pages("list_qualification_types", "QualificationTypes", Query=name,
                           MustBeRequestable=False, MustBeOwnedByCaller=True):
            if q.get("Name") == name:
                return q["QualificationTypeId"]
        return None

    qid = find()
    if qid is None:
        journal.record(conn, f"{step}:sent", name=name)
        try:
            qid = api.call("create_qualification_type", Name=name, Keywords=keywords,
                           Description=description, QualificationTypeStatus="Active")[
                "QualificationType"]["QualificationTypeId"]
        except ClientError:
            qid = find()  # made by an earlier, interrupted run
            if qid is None:
                raise
        journal.record(conn, f"{step}:done", id=qid)
    return qid


def ensure_qualification(study, conn: sqlite3.Connection, api: Requester) -> str:
    """The study's qualification: granted to blocked workers and to workers at the HIT cap;
    HITs require that a worker does not have it."""
    key = f"crowd.{api.realm}.qualification_type_id"
    known = store.get_meta(conn, key)
    if known:
        return known
    qid = ensure_qualification_type(
        conn, api, qualification_name(study_id(conn)), "study,excluded",
        "Workers who have done their share of this study or were excluded from it.",
        "publish:qualification")
    store.set_meta(conn, key, qid)
    return qid


def ensure_hit_type(study, conn: sqlite3.Connection, api: Requester, qid: str) -> str:
    hit = study.settings.hit
    title, description = methods.hit_text(study.settings)
    params = dict(
        AutoApprovalDelayInSeconds=hit.auto_approval_delay_s,
        AssignmentDurationInSeconds=hit.assignment_duration_s,
        Reward=str(hit.reward),
        Title=title,
        Keywords=hit.keywords,
        Description=description,
        QualificationRequirements=requirements(hit, api.realm, qid)
        + qualify.requirements(conn, api.realm))
    # CreateHITType returns the same id for the same parameters, so it is safe to repeat.
    journal.record(conn, "publish:hit_type:sent")
    type_id = api.call("create_hit_type", **params)["HITTypeId"]
    journal.record(conn, "publish:hit_type:done", id=type_id)
    store.set_meta(conn, f"crowd.{api.realm}.hit_type_id", type_id)
    # What was decided here flows forward: collect and its top-ups read these, never the
    # settings of a later moment.
    store.set_meta(conn, f"crowd.{api.realm}.published", json.dumps({
        "reward": str(hit.reward), "lifetime_s": hit.lifetime_s,
        "assignment_duration_s": hit.assignment_duration_s,
        "items_per_hit": study.settings.design.items_per_hit,
        "ratings_per_item": study.settings.design.ratings_per_item,
        **allocation.published_fields(study.settings.design)}))
    return type_id


def published_params(conn: sqlite3.Connection, realm: str) -> dict:
    """What publish decided for `realm` (reward, lifetime, design sizes)."""
    stored = store.get_meta(conn, f"crowd.{realm}.published")
    if not stored:
        raise StudyError(f"nothing was published in the {realm} realm",
                         hint=f"run `study publish --{realm}` first")
    params = json.loads(stored)
    params["reward"] = money.usd(params["reward"])
    return params


def find_hit_by_token(api: Requester, token: str, hint_text: str = "") -> str | None:
    """The HIT made with `token`: from an id named in an error message, else by listing."""
    for candidate in HIT_ID_IN_TEXT.findall(hint_text):
        try:
            hit = api.call("get_hit", HITId=candidate)["HIT"]
        except Exception:  # noqa: BLE001 - not a HIT id after all
            continue
        if hit.get("RequesterAnnotation") == token:
            return hit["HITId"]
    for hit in api.pages("list_hits", "HITs"):
        if hit.get("RequesterAnnotation") == token:
            return hit["HITId"]
    return None


def create_hit(study, conn: sqlite3.Connection, api: Requester, hosting: Hosting,
               hit_index: int, hit_type_id: str, max_assignments: int) -> str:
    """Create one HIT exactly once (see the module docstring)."""
    from botocore.exceptions import ClientError

    realm = api.realm
    token = hit_token(study_id(conn), realm, hit_index)
    row = conn.execute("SELECT * FROM hits WHERE realm = ? AND hit_index = ?",
                       (realm, hit_index)).fetchone()
    if row is not None and row["state"] == "created":
        return row["hit_id"]
    params = published_params(conn, realm)
    if row is None:
        with journal.announce(conn, "publish:create_hit:intent", hit_index=hit_index,
                              token=token):
            conn.execute("INSERT INTO hits (realm, hit_index, unique_token, max_assignments, "
                         "reward, state) VALUES (?,?,?,?,?, 'planned')",
                         (realm, hit_index, token, max_assignments, str(params["reward"])))
        row = conn.execute("SELECT * FROM hits WHERE realm = ? AND hit_index = ?",
                           (realm, hit_index)).fetchone()
    hit_id = None
    if row["state"] == "creating":
        hit_id = find_hit_by_token(api, token)
    if hit_id is None:
        question = question_xml(study, conn, hosting, hit_index)
        with journal.announce(conn, "publish:create_hit:sent", hit_index=hit_index,
                              token=token):
            conn.execute("UPDATE hits SET state = 'creating', hit_type_id = ? "
                         "WHERE realm = ? AND hit_index = ?", (hit_type_id, realm, hit_index))
        try:
            hit_id = api.call(
                "create_hit_with_hit_type", HITTypeId=hit_type_id,
                MaxAssignments=int(row["max_assignments"]),
                LifetimeInSeconds=int(params["lifetime_s"]),
                Question=question, RequesterAnnotation=token,
                UniqueRequestToken=token)["HIT"]["HITId"]
        except ClientError as exc:
            hit_id = find_hit_by_token(api, token, error_message(exc))
            if hit_id is None:
                raise
    with journal.settle(conn, "publish:create_hit:done", hit_index=hit_index, hit_id=hit_id):
        conn.execute("UPDATE hits SET hit_id = ?, hit_type_id = ?, state = 'created', "
                     "created_at = ? WHERE realm = ? AND hit_index = ?",
                     (hit_id, hit_type_id, now(), realm, hit_index))
    return hit_id


def publish(study, realm: str = "sandbox", *, dry_run: bool = False, yes: bool = False,
            echo: Callable[[str], None] = print, preflight: bool = True) -> Plan:
    with crowd_lock(study, echo):
        conn = study.connect()
        try:
            plan = make_plan(study, conn, realm, dry_run)
            for line in plan.lines:
                echo(line)
            check_budget(plan)
            if dry_run:
                echo("dry run: nothing was published")
                return plan
            if realm == "live" and not yes:
                raise StudyError("publishing in the live realm spends real money and needs "
                                 "--yes", hint="check the plan above, then run "
                                               "`study publish --live --yes`")
            if not plan.to_create:
                echo(f"all {plan.designed} HITs are already published in the {realm} realm")
                return plan
            if not preflight:
                echo("warning: the images were not checked through hosting.base_url "
                     "(--skip-preflight)")
            _publish_hits(study, conn, realm, plan, preflight)
            echo(f"published {len(plan.to_create)} HIT(s); {plan.designed} in the {realm} "
                 f"realm now")
            return plan
        finally:
            conn.close()


def _publish_hits(study, conn: sqlite3.Connection, realm: str, plan: Plan,
                  check: bool = True) -> None:
    from study.crowd.preflight import preflight
    from study.progress import progress

    hosting = Hosting(study, conn)
    hosting.host_all([path for h in plan.to_create for r in design.hit_items(conn, h)
                      for path in (r["reference_path"], r["result_path"])])
    if check:
        preflight(study, conn, hosting, plan.to_create)
    with requester(study, realm) as api:
        store.set_meta(conn, f"crowd.{realm}.endpoint", api.endpoint)
        qid = ensure_qualification(study, conn, api)
        qualify.publish_qualification(study, conn, api, hosting, qid)
        type_id = ensure_hit_type(study, conn, api, qid)
        with progress(len(plan.to_create), "publishing", "HITs") as bar:
            for h in plan.to_create:
                create_hit(study, conn, api, hosting, h, type_id, plan.assignments_per_hit)
                bar.update(1)
