"""Crashes at every journal step of collect, then a re-run: each assignment is approved or
rejected, and given its bonus, exactly once. And a marketplace that throttles and fails at
random still gets the whole study done."""

from __future__ import annotations

import random
import shutil

import pytest

from study.crowd.client import requester
from study.crowd.collect import collect
from study.crowd.faults import InjectedFault
from study.crowd.journal import COLLECT_STEPS
from study.crowd.publish import publish
from study.marketplace import worker_id_for
from study.studydir import Study
from test_crowd_support import (check_published_once, copy_study, fresh_faults,  # noqa: F401
                                ready_study, study_service, work_every_hit)

QUIET = lambda _m: None  # noqa: E731


pytestmark = pytest.mark.usefixtures("fresh_faults")


@pytest.fixture(scope="module")
def worked_study(ready_study, tmp_path_factory):
    """Published, and every HIT worked: a spammer first, then careful workers."""
    root = tmp_path_factory.mktemp("worked") / "s"
    shutil.copytree(ready_study, root)
    with study_service(root) as (url, _market):
        publish(Study.open(root), "sandbox", echo=QUIET)
        work_every_hit(root, f"{url}/worker/sandbox")
    return root


def check_paid_once(study):
    conn = study.connect()
    try:
        assignments = conn.execute("SELECT * FROM assignments").fetchall()
        payments = conn.execute("SELECT * FROM payments").fetchall()
        topups = conn.execute("SELECT * FROM topups").fetchall()
        hits = conn.execute("SELECT * FROM hits").fetchall()
        ratings = conn.execute("SELECT COUNT(*), COUNT(DISTINCT assignment_id || '/' || "
                               "position) FROM ratings").fetchone()
    finally:
        conn.close()
    assert ratings[0] == ratings[1] > 0
    assert len(assignments) == sum(h["max_assignments"] for h in hits) == 4
    by = {(p["kind"], p["assignment_id"]): p for p in payments}
    with requester(study, "sandbox") as api:
        for a in assignments:
            kind = "reject" if a["decision"] == "reject" else "approve"
            assert by[(kind, a["assignment_id"])]["state"] == "done"
            status = api.call("get_assignment", AssignmentId=a["assignment_id"])[
                "Assignment"]["AssignmentStatus"]
            assert status == ("Rejected" if kind == "reject" else "Approved")
            bonuses = list(api.pages("list_bonus_payments", "BonusPayments",
                                     AssignmentId=a["assignment_id"]))
            assert len(bonuses) == (1 if a["decision"] == "approve" else 0)
        for h in hits:
            extra = sum(t["count"] for t in topups if t["hit_index"] == h["hit_index"]
                        and t["state"] == "done")
            got = api.call("get_hit", HITId=h["hit_id"])["HIT"]["MaxAssignments"]
            assert got == h["max_assignments"] + extra
        blocks = list(api.pages("list_worker_blocks", "WorkerBlocks"))
    assert [b["WorkerId"] for b in blocks] == [worker_id_for("SPAM1")]
    assert sum(t["state"] == "done" for t in topups) == len(hits)


@pytest.mark.parametrize("step", COLLECT_STEPS)
def test_collect_crash_at_every_step_then_rerun(worked_study, tmp_path, monkeypatch, step):
    study = copy_study(worked_study, tmp_path / "s")
    monkeypatch.setenv("STUDY_FAULT", f"{step}:2" if step in (
        "collect:assignment:stored", "collect:approve:sent", "collect:approve:done",
        "collect:bonus:sent", "collect:bonus:done") else step)
    with pytest.raises(InjectedFault):
        collect(study, echo=QUIET)
    monkeypatch.delenv("STUDY_FAULT")
    collect(study, echo=QUIET)
    collect(study, echo=QUIET)
    check_paid_once(study)


def test_throttling_and_random_faults_still_complete(ready_study, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(ready_study, root)
    rng = random.Random(7)

    def chaos(op, realm):
        x = rng.random()
        return "throttle" if x < 0.1 else "fault" if x < 0.2 else "fault-after" \
            if x < 0.3 else None

    with study_service(root, faults=chaos) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=QUIET)
        publish(study, "sandbox", echo=QUIET)
        work_every_hit(root, f"{url}/worker/sandbox")
        collect(study, echo=QUIET)
        collect(study, echo=QUIET)
    check_published_once(study)
    check_paid_once(study)


def test_concurrent_collects_pay_once(worked_study, tmp_path):
    import threading

    study = copy_study(worked_study, tmp_path / "s")
    errors: list[BaseException] = []

    def run():
        try:
            collect(Study.open(study.root), echo=QUIET)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    check_paid_once(study)
