"""Publish to the bundled marketplace over real HTTP with real boto3, let workers work, collect:
every item ends with R valid ratings, spammers are excluded, every payment happens once."""

from __future__ import annotations

from decimal import Decimal

import requests

from study.crowd.client import requester
from study.crowd.ratings import ratings_frame
from study.crowd.status import crowd_status
from study.marketplace import worker_id_for
from study.studydir import Study
from study.crowd.collect import REPEAT_REASON
from test_crowd_support import (add_renders, answers_for, photo_dataset_study, set_config,
                                study_service, work_every_hit, work_one_hit)

R = 3


def test_publish_work_collect(study_dir, run_cli):
    add_renders(study_dir)
    set_config(study_dir, f"[design]\nitems_per_hit = 10\nratings_per_item = {R}\n")
    set_config(study_dir, "[quality]\nbonus_usd = 0.10\nbonus_reason = \"Thanks\"\n"
                          "block_after_failures = 1\n")
    with study_service(study_dir) as (url, market):
        out = run_cli("publish", cwd=study_dir).output
        assert "2 to create" in out and "$/hour" not in out and "/hour" in out
        site = f"{url}/worker/sandbox"
        # The spammer goes first and takes one slot of each HIT.
        spam = requests.Session()
        assert work_one_hit(spam, site, "SPAM1", answers_for(study_dir, "spammer"))
        assert work_one_hit(spam, site, "SPAM1", answers_for(study_dir, "spammer"))
        done = 0
        for w in range(2):
            s = requests.Session()
            while work_one_hit(s, site, f"GOOD{w}", answers_for(study_dir, "careful")):
                done += 1
        assert done == 4
        out = run_cli("collect", cwd=study_dir).output
        assert "1 blocked" in out
        study = Study.open(study_dir)
        conn = study.connect()
        dec = dict(conn.execute("SELECT decision, COUNT(*) FROM assignments GROUP BY 1"))
        assert dec == {"approve": 4, "reject": 2}
        reasons = [r[0] for r in conn.execute(
            "SELECT decision_reason FROM assignments WHERE decision = 'reject'")]
        assert all("check pairs" in r for r in reasons)
        # Each HIT got one more assignment for the rejected one.
        assert conn.execute("SELECT COUNT(*) FROM topups WHERE state = 'done'").fetchone()[0] == 2
        s = requests.Session()
        while work_one_hit(s, site, "GOOD9", answers_for(study_dir, "careful")):
            pass
        # The blocked spammer is offered nothing more.
        assert work_one_hit(spam, site, "SPAM1", answers_for(study_dir, "spammer")) is None
        run_cli("collect", cwd=study_dir)
        again = run_cli("collect", cwd=study_dir).output
        assert "0 new" in again
        frame = ratings_frame(study, valid_only=True)
        tests = frame[~frame.gold]
        counts = tests.groupby(["image", "method"]).size()
        assert len(counts) == 15 and (counts == R).all()
        everything = ratings_frame(study)
        spammer = worker_id_for("SPAM1")
        assert spammer in set(everything.worker) and spammer not in set(frame.worker)
        assert set(everything.columns) >= {"image", "method", "worker", "score", "valid",
                                           "gold", "assignment", "seconds", "reason"}
        assert not everything[everything.worker == spammer].valid.any()
        # One payment per assignment, and the marketplace agrees.
        pay = conn.execute("SELECT kind, COUNT(*), COUNT(DISTINCT assignment_id) FROM payments "
                           "WHERE state = 'done' GROUP BY kind").fetchall()
        assert {r[0]: (r[1], r[2]) for r in pay} == {"approve": (6, 6), "reject": (2, 2),
                                                     "bonus": (6, 6)}
        status = crowd_status(study)
        assert status["publish"]["complete"] and status["collect"]["complete"]
        assert status["collect"]["items_complete"] == 15
        assert Decimal(status["collect"]["spent_usd"]) == 6 * (Decimal("0.60") + Decimal("0.12"))
        with requester(study, "sandbox") as api:
            balance = Decimal(api.call("get_account_balance")["AvailableBalance"])
        assert Decimal("10000.00") - balance == Decimal(status["collect"]["spent_usd"])


def test_topup_beyond_the_ten_assignment_rule_makes_new_hits(tmp_path, run_cli):
    """R = 9: replacing a rejected assignment would take a HIT to 10 assignments, which MTurk
    refuses for HITs made with fewer, so the short items go into new HITs. A worker who meets
    an item again there is paid, but only their first rating of it counts."""
    root = photo_dataset_study(tmp_path, ratings_per_item=9)
    set_config(root, "[budget]\nmax_usd = 500.0\n")
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        site = f"{url}/worker/sandbox"
        work_every_hit(root, site, careful_workers=8)
        out = run_cli("collect", "--no-approve", cwd=root).output
        assert "2 new HITs" in out and "0 approvals" in out
        study = Study.open(root)
        conn = study.connect()
        assert conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == 0
        with requester(study, "sandbox") as api:
            a = conn.execute("SELECT assignment_id FROM assignments").fetchone()[0]
            assert api.call("get_assignment", AssignmentId=a)["Assignment"][
                "AssignmentStatus"] == "Submitted"
        out = run_cli("collect", cwd=root).output
        assert "16 approvals, 2 rejections" in out and "0 new HITs" in out
        assert conn.execute("SELECT COUNT(*) FROM topups").fetchone()[0] == 0
        # GOOD0 rated every item already; its ratings in a new HIT do not count.
        assert work_one_hit(requests.Session(), site, "GOOD0", answers_for(root, "careful"))
        for _ in range(4):
            s = requests.Session()
            while work_one_hit(s, site, "NEW1", answers_for(root, "careful")):
                pass
            run_cli("collect", cwd=root)
            if crowd_status(study)["collect"]["complete"]:
                break
        assert crowd_status(study)["collect"]["complete"]
        good0 = worker_id_for("GOOD0")
        rows = conn.execute(
            "SELECT r.valid, r.reason, a.decision FROM ratings r JOIN assignments a "
            "USING (assignment_id) JOIN items i ON i.item_id = r.item_id WHERE a.worker_id = ? "
            "AND a.hit_index >= 2 AND i.kind = 'test'", (good0,)).fetchall()
        assert rows and all(not r["valid"] and r["reason"] == REPEAT_REASON and
                            r["decision"] == "approve" for r in rows)
        valid = ratings_frame(study, valid_only=True)
        tests = valid[~valid.gold]
        assert not tests.duplicated(["image", "method", "worker"]).any()
        assert (tests.groupby(["image", "method"]).size() == 9).all()


def test_hit_cap_per_worker(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    set_config(root, "[hit]\nmax_hits_per_worker = 1\n")
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        site = f"{url}/worker/sandbox"
        s = requests.Session()
        assert work_one_hit(s, site, "GOOD0", answers_for(root, "careful"))
        out = run_cli("collect", cwd=root).output
        assert "1 at the HIT cap" in out
        assert work_one_hit(s, site, "GOOD0", answers_for(root, "careful")) is None
        assert work_one_hit(requests.Session(), site, "GOOD1", answers_for(root, "careful"))
