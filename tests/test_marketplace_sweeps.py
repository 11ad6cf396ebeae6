"""The sweep's due time is kept in memory (study/marketplace/due.py): every write that sets an
earlier deadline, auto-approval time or expiration must bring the next sweep forward, whichever
Market object or process wrote it, and a time that moves later must not hide an earlier one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from study.marketplace.due import RECHECK_S
from study.marketplace.testing import ManualClock, WorkerClient, running_marketplace
from test_marketplace_semantics import make_hit


def _status(client, aid: str) -> str:
    return client.get_assignment(AssignmentId=aid)["Assignment"]["AssignmentStatus"]


def test_an_earlier_time_written_after_a_later_one_is_not_missed(tmp_path):
    clock = ManualClock(time.time())
    with running_marketplace(tmp_path, clock=clock) as mk:
        c = mk.client()
        far = make_hit(c, LifetimeInSeconds=86400, AssignmentDurationInSeconds=3600,
                       AutoApprovalDelayInSeconds=86400)
        w = WorkerClient(mk.base_url)
        w.login("first")
        w.accept(far["HITId"])  # due times so far: an hour away and later
        clock.advance(1)
        c.get_account_balance()  # a sweep settles on the hour-away deadline
        near = make_hit(c, LifetimeInSeconds=86400, AssignmentDurationInSeconds=3600,
                        AutoApprovalDelayInSeconds=60)
        aid = w.accept(near["HITId"])
        w.submit(aid, {"r": "1"})
        clock.advance(59)
        assert _status(c, aid) == "Submitted"
        clock.advance(2)  # the auto-approval time, a minute away, comes first
        assert _status(c, aid) == "Approved"

        short = make_hit(c, LifetimeInSeconds=86400)
        c.update_expiration_for_hit(HITId=short["HITId"], ExpireAt=clock() + 30)
        clock.advance(31)
        assert c.get_hit(HITId=short["HITId"])["HIT"]["HITStatus"] == "Reviewable"
        assert short["HITId"] in {h["HITId"] for h in c.list_reviewable_hits()["HITs"]}


def test_a_deadline_written_through_another_market_on_the_same_file(tmp_path):
    clock = ManualClock(time.time())
    db = tmp_path / "shared.db"
    with running_marketplace(tmp_path, db_path=db, clock=clock, key_id="AKIDSAME",
                             secret="same-secret") as one, \
            running_marketplace(tmp_path, db_path=db, clock=clock, key_id="AKIDSAME",
                                secret="same-secret") as two:
        c_two = two.client()
        c_two.get_account_balance()  # its sweep settles: nothing pending
        hit = make_hit(one.client(), MaxAssignments=1, AssignmentDurationInSeconds=120)
        w = WorkerClient(one.base_url)
        w.login("through-one")
        w.accept(hit["HITId"])
        clock.advance(121)
        h = c_two.get_hit(HITId=hit["HITId"])["HIT"]
        assert h["NumberOfAssignmentsAvailable"] == 1  # abandoned, seen by the other Market


CHILD = textwrap.dedent("""
    import sys
    from study.marketplace.datastore import Account
    from study.marketplace.market import Market
    from study.marketplace import worker_flow
    db, key, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    m = Market(db, {key: "x"}, clock=lambda: start)
    hit = m.call("CreateHIT", "sandbox", key, dict(
        Title="t", Description="d", Reward="0.10", LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=120, MaxAssignments=1,
        Question=sys.stdin.read()))["HIT"]
    worker_flow.ensure_worker(m, "sandbox", "from-another-process")
    worker_flow.accept(m, "sandbox", "from-another-process", hit["HITId"])
    print(hit["HITId"])
""")


def test_a_deadline_written_by_another_process_is_seen_within_the_recheck(tmp_path):
    from test_marketplace_semantics import HTML_Q
    clock = ManualClock(time.time())
    with running_marketplace(tmp_path, clock=clock) as mk:
        c = mk.client()
        c.get_account_balance()  # this process settles: nothing pending
        repo = Path(__file__).resolve().parents[1]
        hit_id = subprocess.run(
            [sys.executable, "-c", CHILD, str(mk.db_path), mk.key_id, str(clock())],
            input=HTML_Q, capture_output=True, text=True, check=True, cwd=repo,
            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}).stdout.strip()
        clock.advance(121)
        time.sleep(RECHECK_S + 0.1)
        h = c.get_hit(HITId=hit_id)["HIT"]
        assert h["NumberOfAssignmentsPending"] == 0 and h["NumberOfAssignmentsAvailable"] == 1
