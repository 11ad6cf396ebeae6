"""Training and qualification: a qualification HIT that teaches the scale and tests it, and
the study's qualification, which the rating HITs require.

Why a HIT and not a QualificationType test: MTurk's own tests (CreateQualificationType with
Test and AnswerKey) are QuestionForm documents, which run no script, so a worker cannot be
told after each answer whether it was right; MTurk grades them and reports only the score
(study/marketplace/COMPATIBILITY.md, "Training and qualification"). Training with feedback
needs an HTML page, so the study publishes an ordinary HIT (HTMLQuestion, its own page:
hit_templates/qualification.html.j2), grades its test pairs in `study collect`, and grants the
study's qualification with AssociateQualificationWithWorker (IntegerValue = the score) to
workers at or above the pass mark. Rating HITs carry a QualificationRequirement on it
(GreaterThanOrEqualTo pass mark, guarding discovery, preview and accept), so the same HITs work
on any MTurk-compatible marketplace.

The page first shows training pairs made from the study's own images, each answered with
feedback: the reference against itself ("this is what almost identical looks like") and against
the gold control method ("this is mostly different"). Then come test pairs of the same two
kinds in a seeded order, whose answers are not in the page; a worker answers them without
feedback. Every worker who submits is paid the qualification HIT's reward (they did the work);
only passers are qualified. A worker takes the HIT once (one assignment per worker), and a
worker who holds the qualification no longer sees it.

Crash safety is publish's and collect's: the qualification type is looked up by name before it
is made, the HIT carries a UniqueRequestToken and is looked up by its RequesterAnnotation
after a crash, and each grade, approval and grant is a journaled step with a fault point.
"""

from __future__ import annotations

import json
import random
import sqlite3
from decimal import Decimal

from study import methods, store
from study.crowd import journal, money
from study.crowd.client import Requester, error_message
from study.crowd.pages import html_question, study_id
from study.errors import StudyError

# The qualification HIT's images are named as appearances of this HIT index, which no rating
# HIT has.
HIT_INDEX = -1
# Training pairs shown before the test: two of each end of the scale, alternating. Enough to
# show both anchors twice on different photos, short enough not to tire a worker.
TRAINING_PAIRS = 4
# Training positions are numbered apart from the test's, so no answer field can be mistaken.
TRAINING_BASE = 100
STATUSES = ["Submitted", "Approved", "Rejected"]
STEPS = (
    "publish:qualification_type:sent", "publish:qualification_type:done",
    "publish:qualification_hit:sent", "publish:qualification_hit:done",
    "collect:qualification:graded",
    "collect:qualification:approve:sent", "collect:qualification:approve:done",
    "collect:qualification:grant:sent", "collect:qualification:grant:done",
)


def type_name(sid: str) -> str:
    return f"study {sid} qualified raters"


def _frozen(conn: sqlite3.Connection, realm: str) -> dict | None:
    stored = store.get_meta(conn, f"crowd.{realm}.qualification")
    return json.loads(stored) if stored else None


def enabled(study, conn: sqlite3.Connection, realm: str) -> bool:
    """Whether `realm` has (or is to get) a qualification step. Once published it stays, so
    later edits of study.toml cannot change what was published."""
    return _frozen(conn, realm) is not None or study.settings.qualification.enabled


def requirements(conn: sqlite3.Connection, realm: str) -> list[dict]:
    """The rating HITs' requirement on the study's qualification (none without one).
    DiscoverPreviewAndAccept: a worker without it sees only the qualification HIT, and no
    photo of the study before being trained."""
    frozen = _frozen(conn, realm)
    if frozen is None:
        return []
    return [{"QualificationTypeId": frozen["type_id"], "Comparator": "GreaterThanOrEqualTo",
             "IntegerValues": [int(frozen["pass_mark"])],
             "ActionsGuarded": "DiscoverPreviewAndAccept"}]


# ------------------------------------------------------------------ the page

def layout(study, conn: sqlite3.Connection) -> dict:
    """The qualification HIT's pairs: training (with the answer shown) and test (graded), from
    the study's images; computed once and frozen with the first publication."""
    stored = store.get_meta(conn, "crowd.qualification.layout")
    if stored:
        return json.loads(stored)
    from study.crowd import design

    s = study.settings
    method = methods.of(s)
    control = s.design.gold_control_method
    if method.gold_reference is None or method.gold_control is None or not control:
        raise StudyError(
            "the qualification HIT trains both ends of the scale: it needs the reference "
            "check and a gold control method", where="study.toml [design] / [qualification]",
            hint="set design.gold_control_method (e.g. \"input\") on a method with a "
                 "reference, or qualification.enabled = false")
    images, renders = design._rows(conn)
    controls = design.control_items(
        study, conn, images, renders, control,
        lambda img, path: design.Item(img["image_id"], control, design.GOLD_CONTROL,
                                      img["reference_path"], path),
        hint="render it with `study render`")
    scale = method.scale
    refs = {img["image_id"]: img["reference_path"] for img in images}

    def anchor(accepted: tuple[int, int], end: int) -> int:
        # The level a training pair teaches: the scale's end when the check accepts it (the
        # similarity and DCR scales), else the middle of the accepted range (CCR's identical
        # pair is "about the same", not "much better").
        lo, hi = accepted
        return end if lo <= end <= hi else round((lo + hi) / 2)

    def pair(kind: str, k: int) -> dict:
        if kind == "identical":
            image_id = list(refs)[k % len(refs)]
            return {"kind": kind, "image_id": image_id, "reference_path": refs[image_id],
                    "result_path": refs[image_id], "expected": list(method.gold_reference),
                    "answer": anchor(method.gold_reference, scale.best)}
        c = controls[k % len(controls)]
        return {"kind": kind, "image_id": c.image_id, "reference_path": c.reference_path,
                "result_path": c.result_path, "expected": list(method.gold_control),
                "answer": anchor(method.gold_control, scale.worst)}

    training = [dict(pair(("identical", "control")[k % 2], k // 2),
                     position=TRAINING_BASE + k + 1) for k in range(TRAINING_PAIRS)]
    q = s.qualification
    rng = random.Random(f"qualification:{s.design_seed}")
    kinds = [("identical", "control")[k % 2] for k in range(q.test_pairs)]
    rng.shuffle(kinds)
    # Test photos start after the training's, so the first test pairs are not the ones just
    # explained.
    test = [dict(pair(kind, k + TRAINING_PAIRS // 2), position=k + 1)
            for k, kind in enumerate(kinds)]
    return {"training": training, "test": test, "pass_mark": q.pass_mark,
            "scale": scale.to_dict()}


def _explanation(kind: str, word: str) -> str:
    if kind == "identical":
        return (f"This is what \u201c{word}\u201d looks like: the processed photo is the "
                "original itself.")
    return (f"This is what \u201c{word}\u201d looks like: the processed photo is a clearly "
            "worse rendering of the original.")


def page(study, conn: sqlite3.Connection, hosting, lay: dict) -> str:
    """The qualification HIT's page (HTML)."""
    from analysis.scale import Scale
    from hit_templates import environment
    from study.crowd.pages import levels

    scale = Scale.from_dict(lay["scale"])
    words = dict(zip(scale.levels, scale.labels or [str(v) for v in scale.levels]))

    def shown(p: dict, training: bool) -> dict:
        out = {"position": p["position"],
               **{f"{side}_url": hosting.appearance_url(p[f"{side}_path"], HIT_INDEX,
                                                        p["position"], side)
                  for side in ("reference", "result")}}
        if training:
            lo, hi = p["expected"]
            out.update(expected_min=lo, expected_max=hi, answer=p["answer"],
                       answer_word=words[p["answer"]],
                       explanation=_explanation(p["kind"], words[p["answer"]]))
        return out

    return environment().get_template("qualification.html.j2").render(
        title=study.settings.qualification.title,
        levels=levels(scale, methods.of(study.settings)),
        question=methods.of(study.settings).question,
        training=[shown(p, True) for p in lay["training"]],
        items=[shown(p, False) for p in lay["test"]], pass_mark=lay["pass_mark"])


# ------------------------------------------------------------------ publishing

def plan(study, conn: sqlite3.Connection, realm: str) -> tuple[list[str], Decimal]:
    """The plan's lines and the cost of the qualification HIT still to be made."""
    if not study.settings.qualification.enabled or _hit_state(conn, realm).get("state") == \
            "created":
        return [], Decimal("0")
    q = study.settings.qualification
    cost = q.max_workers * money.assignment_cost(q.reward, q.max_workers)
    return [f"  qualification  one training and test HIT for up to {q.max_workers} workers at "
            f"{money.fmt(q.reward)}: {money.fmt(cost)} with fees; pass mark {q.pass_mark} of "
            f"{q.test_pairs}"], cost


def committed(conn: sqlite3.Connection, realm: str) -> Decimal:
    """What the qualification HIT made in `realm` may cost."""
    hit = _hit_state(conn, realm)
    if hit.get("state") != "created":
        return Decimal("0")
    reward, n = money.usd(hit["reward"]), int(hit["max_assignments"])
    return n * money.assignment_cost(reward, n)


def spent(conn: sqlite3.Connection, realm: str) -> Decimal:
    """What the approved qualification assignments of `realm` cost."""
    hit = _hit_state(conn, realm)
    if hit.get("state") != "created":
        return Decimal("0")
    n = conn.execute("SELECT COUNT(*) FROM qualification_assignments WHERE realm = ? AND "
                     "approved = 1", (realm,)).fetchone()[0]
    reward = money.usd(hit["reward"])
    return n * money.assignment_cost(reward, int(hit["max_assignments"]))


def progress(conn: sqlite3.Connection, realm: str) -> dict | None:
    """How many took the qualification HIT in `realm` and how many passed; None without one."""
    hit = _hit_state(conn, realm)
    if hit.get("state") != "created":
        return None
    taken, passed = conn.execute("SELECT COUNT(*), COALESCE(SUM(passed), 0) FROM "
                                 "qualification_assignments WHERE realm = ?", (realm,)).fetchone()
    return {"hit_id": hit["hit_id"], "taken": taken, "passed": passed}


def _hit_state(conn: sqlite3.Connection, realm: str) -> dict:
    stored = store.get_meta(conn, f"crowd.{realm}.qualification_hit")
    return json.loads(stored) if stored else {}


def publish_qualification(study, conn: sqlite3.Connection, api: Requester, hosting,
                          exclusion_id: str) -> str | None:
    """The qualification type and the qualification HIT in `api.realm`, each made once.
    Returns the qualification type id, or None when the study has no qualification step."""
    from study.crowd.publish import (ensure_qualification_type, find_hit_by_token,
                                     requirements as base_requirements)

    realm = api.realm
    if not enabled(study, conn, realm):
        return None
    sid = study_id(conn)
    frozen = _frozen(conn, realm)
    if frozen is None:
        lay = layout(study, conn)
        qid = ensure_qualification_type(
            conn, api, type_name(sid), "study,qualified",
            "Workers who passed this study's training and test. Its value is their test score.",
            "publish:qualification_type")
        q = study.settings.qualification
        with store.transaction(conn):
            store.set_meta(conn, "crowd.qualification.layout", json.dumps(lay))
            frozen = {"type_id": qid, "pass_mark": lay["pass_mark"],
                      "test_pairs": len(lay["test"]), "reward": str(q.reward),
                      "max_workers": q.max_workers}
            store.set_meta(conn, f"crowd.{realm}.qualification", json.dumps(frozen))
    hit = _hit_state(conn, realm)
    if hit.get("state") == "created":
        return frozen["type_id"]
    lay = layout(study, conn)
    hosting.host_all([p[f"{side}_path"] for p in lay["training"] + lay["test"]
                      for side in ("reference", "result")])
    token = f"{sid}-{realm}-qualification"
    s = study.settings
    found = find_hit_by_token(api, token) if hit.get("state") == "creating" else None
    if found is None:
        # The HIT is kept from workers who were excluded from the study, and from workers
        # who already hold its qualification.
        reqs = base_requirements(s.hit, realm, exclusion_id) + [
            {"QualificationTypeId": frozen["type_id"], "Comparator": "DoesNotExist",
             "ActionsGuarded": "DiscoverPreviewAndAccept"}]
        type_id = api.call(
            "create_hit_type", AutoApprovalDelayInSeconds=s.hit.auto_approval_delay_s,
            AssignmentDurationInSeconds=s.hit.assignment_duration_s,
            Reward=frozen["reward"], Title=s.qualification.title, Keywords=s.hit.keywords,
            Description="A short training on what the rating scale means, with feedback, then "
                        "a test. Passing it opens this study's rating HITs.",
            QualificationRequirements=reqs)["HITTypeId"]
        question = html_question(page(study, conn, hosting, lay))
        with journal.announce(conn, "publish:qualification_hit:sent", token=token):
            store.set_meta(conn, f"crowd.{realm}.qualification_hit",
                           json.dumps({"state": "creating", "token": token}))
        from botocore.exceptions import ClientError
        try:
            found = api.call("create_hit_with_hit_type", HITTypeId=type_id,
                             MaxAssignments=int(frozen["max_workers"]),
                             LifetimeInSeconds=s.hit.lifetime_s, Question=question,
                             RequesterAnnotation=token, UniqueRequestToken=token)["HIT"]["HITId"]
        except ClientError as exc:
            found = find_hit_by_token(api, token, error_message(exc))
            if found is None:
                raise
    with journal.settle(conn, "publish:qualification_hit:done", hit_id=found):
        store.set_meta(conn, f"crowd.{realm}.qualification_hit", json.dumps(
            {"state": "created", "token": token, "hit_id": found,
             "reward": frozen["reward"], "max_assignments": frozen["max_workers"]}))
    return frozen["type_id"]


# ------------------------------------------------------------------ collecting

def grade(answer_xml: str | None, lay: dict) -> tuple[int, list[str]]:
    """The number of test pairs answered within their expected range, and what was missed."""
    from analysis.scale import Scale
    from study.crowd.answers import parse_answers

    scale = Scale.from_dict(lay["scale"])
    tests = {p["position"]: p for p in lay["test"]}
    parsed = parse_answers(answer_xml, sorted(tests), scale)
    score, misses = 0, []
    for pos, p in tests.items():
        lo, hi = p["expected"]
        got = parsed.items[pos].score
        if got is not None and lo <= got <= hi:
            score += 1
        else:
            misses.append(f"pair {pos} ({p['kind']}) expecting {lo}-{hi} was "
                          + ("not rated" if got is None else f"rated {got}"))
    return score, misses


def collect_qualification(conn: sqlite3.Connection, api: Requester,
                          approve: bool = True) -> dict[str, int] | None:
    """Grade new submissions of the qualification HIT, pay them, qualify the passers; each
    once. None when the realm has no qualification HIT."""
    realm = api.realm
    frozen, hit = _frozen(conn, realm), _hit_state(conn, realm)
    if frozen is None or hit.get("state") != "created":
        return None
    lay = json.loads(store.get_meta(conn, "crowd.qualification.layout"))
    counts = {"graded": 0, "approved": 0, "granted": 0}
    for a in api.pages("list_assignments_for_hit", "Assignments", HITId=hit["hit_id"],
                       AssignmentStatuses=STATUSES):
        aid = a["AssignmentId"]
        if conn.execute("SELECT 1 FROM qualification_assignments WHERE assignment_id = ?",
                        (aid,)).fetchone():
            continue
        score, misses = grade(a.get("Answer"), lay)
        with journal.announce(conn, "collect:qualification:graded", assignment_id=aid,
                              score=score):
            conn.execute(
                "INSERT OR IGNORE INTO qualification_assignments (assignment_id, realm, hit_id, "
                "worker_id, answer_xml, submit_time, score, total, passed, detail, approved) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (aid, realm, hit["hit_id"], str(a.get("WorkerId", "")), a.get("Answer"),
                 str(a.get("SubmitTime", "")), score, len(lay["test"]),
                 int(score >= int(frozen["pass_mark"])), "; ".join(misses),
                 int(a.get("AssignmentStatus") != "Submitted")))
        counts["graded"] += 1
    if approve:
        for r in conn.execute("SELECT * FROM qualification_assignments WHERE realm = ? AND "
                              "approved = 0 ORDER BY assignment_id", (realm,)).fetchall():
            _approve(conn, api, r["assignment_id"])
            counts["approved"] += 1
    for r in conn.execute("SELECT * FROM qualification_assignments WHERE realm = ? AND "
                          "passed = 1 AND granted = 0 ORDER BY assignment_id",
                          (realm,)).fetchall():
        journal.record(conn, "collect:qualification:grant:sent", worker_id=r["worker_id"])
        # Idempotent on the marketplace: a repeat sets the same value again.
        api.call("associate_qualification_with_worker", QualificationTypeId=frozen["type_id"],
                 WorkerId=r["worker_id"], IntegerValue=int(r["score"]), SendNotification=True)
        with journal.settle(conn, "collect:qualification:grant:done", worker_id=r["worker_id"]):
            conn.execute("UPDATE qualification_assignments SET granted = 1 WHERE "
                         "assignment_id = ?", (r["assignment_id"],))
        counts["granted"] += 1
    return counts


def _approve(conn: sqlite3.Connection, api: Requester, aid: str) -> None:
    from botocore.exceptions import ClientError

    journal.record(conn, "collect:qualification:approve:sent", assignment_id=aid)
    try:
        api.call("approve_assignment", AssignmentId=aid,
                 RequesterFeedback="Thank you for taking the training and test.")
    except ClientError:
        # An earlier run (or auto-approval) got there first; anything else is an error.
        status = api.call("get_assignment", AssignmentId=aid)["Assignment"]["AssignmentStatus"]
        if status != "Approved":
            raise
    with journal.settle(conn, "collect:qualification:approve:done", assignment_id=aid):
        conn.execute("UPDATE qualification_assignments SET approved = 1 WHERE "
                     "assignment_id = ?", (aid,))


def summary_line(counts: dict[str, int] | None, conn: sqlite3.Connection, realm: str) -> str:
    if counts is None:
        return ""
    total = conn.execute("SELECT COUNT(*), COALESCE(SUM(passed), 0) FROM "
                         "qualification_assignments WHERE realm = ?", (realm,)).fetchone()
    return (f"qualification: {counts['graded']} new test(s) graded, {counts['granted']} "
            f"worker(s) qualified; {total[1]} of {total[0]} passed so far")
