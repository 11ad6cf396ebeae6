"""Fault tests of whole processes: `study publish` killed at random moments, two `study collect`
at once, and the service restarted while workers are in the middle of their HITs. Real child
processes, real SQLite files, real HTTP and real boto3."""

from __future__ import annotations

import html
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from e2e_support import (free_port, pages, processes, stop_process, study_marketplace,
                         wait_until_up)
from study.crowd.pages import study_id
from study.marketplace.testing import WorkerClient
from study.service import announce_service
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config, tags, use_service_url

pytestmark = pytest.mark.slow

KILL_TRIALS = 20
SEED = 1234


def _db_rows(study: Study, sql: str, *args) -> list[sqlite3.Row]:
    conn = study.connect()
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------ publish killed

@pytest.fixture(scope="module")
def publish_study(tmp_path_factory):
    """A rendered, unpublished study of 8 HITs, and how long an uninterrupted publish of it
    takes as a process (import, plan, qualification, HIT type, every HIT)."""
    base = tmp_path_factory.mktemp("publish")
    root = photo_dataset_study(base / "src")
    set_config(root, "[design]\nitems_per_hit = 2\nratings_per_item = 2\n")
    probe = base / "probe"
    shutil.copytree(root, probe)
    with processes(base / "logs") as procs:
        started = time.monotonic()
        procs.run(probe, "publish", "--sandbox", "--yes", "--skip-preflight", log="probe")
        duration = time.monotonic() - started
    designed = int(_db_rows(Study.open(probe), "SELECT value FROM meta WHERE key = "
                                                "'crowd.design_hits'")[0][0])
    assert 8 <= designed <= 10
    return root, duration


def _published_once(study: Study, tmp_path: Path) -> None:
    """Each planned HIT exists exactly once on the marketplace, under one HIT type and the one
    qualification of the study, and study.db says the same."""
    conn = study.connect()
    try:
        sid = study_id(conn)
    finally:
        conn.close()
    designed = int(_db_rows(study, "SELECT value FROM meta WHERE key = 'crowd.design_hits'")
                   [0][0])
    rows = _db_rows(study, "SELECT * FROM hits WHERE realm = 'sandbox'")
    with study_marketplace(study, tmp_path) as mk:
        client = mk.client("sandbox")
        hits = list(pages(client, "list_hits", "HITs"))
        quals = [q for q in pages(client, "list_qualification_types", "QualificationTypes",
                                  MustBeRequestable=False, MustBeOwnedByCaller=True)
                 if sid in q["Name"]]
    tokens = [h["RequesterAnnotation"] for h in hits]
    assert sorted(tokens) == sorted(f"{sid}-sandbox-hit-{i}" for i in range(designed))
    assert len({h["HITTypeId"] for h in hits}) == 1
    assert len(quals) == 1
    assert all(h["MaxAssignments"] == 2 for h in hits)
    assert len(rows) == designed
    assert all(r["state"] == "created" for r in rows)
    assert {r["hit_id"]: r["unique_token"] for r in rows} == \
        {h["HITId"]: h["RequesterAnnotation"] for h in hits}


def test_publish_killed_at_random_moments_then_rerun(publish_study, tmp_path):
    """SIGKILL after a delay drawn from [0, T] (T: an uninterrupted publish), so kills land in
    start-up, planning, qualification and HIT-type creation, and between HIT creations; a
    re-run, and one more, leave every planned HIT exactly once."""
    from study.crowd.publish import publish

    source, duration = publish_study
    rng = random.Random(SEED)
    landed = Counter()
    with processes(tmp_path / "logs") as procs:
        for trial in range(KILL_TRIALS):
            root = tmp_path / f"t{trial}"
            shutil.copytree(source, root)
            delay = rng.uniform(0, duration)
            proc = procs.start(root, "publish", "--sandbox", "--yes", "--skip-preflight", log=f"killed{trial}")
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:  # still running: the usual case
                pass
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            landed[_last_step(root)] += 1
            procs.run(root, "publish", "--sandbox", "--yes", "--skip-preflight", log=f"rerun{trial}")
            again = publish(Study.open(root), "sandbox", yes=True, echo=lambda _m: None,
                            preflight=False)
            assert again.to_create == []
            _published_once(Study.open(root), tmp_path / f"m{trial}")
    print("publish killed after:", dict(landed))


def _last_step(root: Path) -> str:
    """Where the killed publish got to, from its journal (for the test's log); study.db must
    be readable whatever the moment of the kill."""
    rows = _db_rows(Study.open(root), "SELECT step FROM journal ORDER BY rowid DESC LIMIT 1")
    if rows:
        return rows[0][0]
    planned = _db_rows(Study.open(root), "SELECT value FROM meta WHERE key = 'crowd.design'")
    return "planned, before any call" if planned else "start-up"


# ------------------------------------------------------------------ shared helpers

@pytest.fixture
def service():
    """`create_app(study)` on a real threaded HTTP server in this process, announced in
    <study>/.serve.json as `study serve` announces itself; stopped at the end."""
    from study.marketplace.server import serve_in_thread
    from study.web import create_app

    running = []

    def start(root: Path, port: int = 0) -> str:
        app = create_app(Study.open(root))
        url, stop = serve_in_thread(app, "127.0.0.1", port)
        announce_service(Study.open(root), url)
        running.append((root, app, stop))
        return url

    def stop_last() -> None:
        root, app, stop = running.pop()
        stop()
        app.extensions["marketplace"].pool.close_all()
        (root / ".serve.json").unlink(missing_ok=True)

    yield start
    while running:
        stop_last()


def _hosted_study(base: Path, items_per_hit: int, ratings: int = 2) -> Path:
    root = photo_dataset_study(base, ratings_per_item=ratings)
    set_config(root, f"[design]\nitems_per_hit = {items_per_hit}\nratings_per_item = {ratings}\n")
    return root


def _point_hosting_at(root: Path, url: str) -> None:
    use_service_url(root, url)


# ------------------------------------------------------------------ two collects at once

def test_two_collects_at_once_pay_nothing_twice(tmp_path, service):
    from study.crowd.publish import publish
    from study.simulate import simulate_crowd

    root = _hosted_study(tmp_path / "s", items_per_hit=5)
    # A strict policy, so that a missed check pair is a rejection: both decisions must be made
    # for this test to mean anything.
    set_config(root, "[quality]\ngold_min_accuracy = 0.75\nreject_below_gold_accuracy = 0.75\n")
    port = free_port()
    _point_hosting_at(root, f"http://127.0.0.1:{port}")
    url = service(root, port)
    study = Study.open(root)
    publish(study, "sandbox", echo=lambda _m: None)
    # Straight-liners first (one HIT each), so there are rejections to make: one level for every
    # pair always misses a check pair (the identical pair wants one of the two best levels, the
    # control one of the worst three). Then careful workers.
    site = f"{url}/worker/sandbox"
    spam = simulate_crowd(site, workers=2, seed=SEED, mix={"straightliner": 1.0},
                          concurrency=1, max_hits_per_worker=1, progress=False, deadline_s=120)
    good = simulate_crowd(site, workers=6, seed=SEED + 1, mix={"careful": 1.0}, concurrency=1,
                          progress=False, deadline_s=120)
    assert spam.totals()["submitted"] == 2, spam.table()
    assert good.totals()["submitted"] == 4, good.table()

    import boto3

    keys = study.secrets()
    client = boto3.session.Session().client(
        "mturk", endpoint_url=f"{url}/requester/sandbox", region_name="us-east-1",
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"])
    before = Decimal(client.get_account_balance()["AvailableBalance"])

    with processes(tmp_path / "logs") as procs:
        first = procs.start(root, "collect", "--sandbox", log="collect1")
        second = procs.start(root, "collect", "--sandbox", log="collect2")
        for proc in (first, second):
            assert proc.wait(timeout=180) == 0, proc.log_path.read_text()[-3000:]

    hits = list(pages(client, "list_hits", "HITs"))
    reward = {h["HITId"]: Decimal(h["Reward"]) for h in hits}
    assignments = [a for h in hits for a in pages(
        client, "list_assignments_for_hit", "Assignments", HITId=h["HITId"])]
    submitted = {a["AssignmentId"]: a for a in assignments}
    decisions = _db_rows(study, "SELECT assignment_id, decision FROM assignments")
    assert {r["assignment_id"] for r in decisions} == set(submitted)
    assert all(a["AssignmentStatus"] in ("Approved", "Rejected") for a in assignments)

    payments = _db_rows(study, "SELECT kind, assignment_id, state FROM payments")
    assert Counter((p["kind"], p["assignment_id"]) for p in payments).most_common(1)[0][1] == 1
    assert all(p["state"] == "done" for p in payments)
    sent = Counter((r["step"], json.loads(r["detail"])["assignment_id"]) for r in _db_rows(
        study, "SELECT step, detail FROM journal WHERE step IN ('collect:approve:sent', "
               "'collect:reject:sent', 'collect:bonus:sent')"))
    assert sent and max(sent.values()) == 1, sent
    kinds = {p["assignment_id"]: set() for p in payments}
    for p in payments:
        kinds[p["assignment_id"]].add(p["kind"])
    assert all(len(k & {"approve", "reject"}) == 1 for k in kinds.values())

    spent = Decimal("0")
    approved = 0
    for a in assignments:
        bonuses = list(pages(client, "list_bonus_payments", "BonusPayments",
                             AssignmentId=a["AssignmentId"]))
        assert len(bonuses) <= 1
        if a["AssignmentStatus"] == "Approved":
            approved += 1
            spent += _with_fee(reward[a["HITId"]])
        else:
            assert not bonuses
        spent += sum(_with_fee(Decimal(b["BonusAmount"])) for b in bonuses)
    after = Decimal(client.get_account_balance()["AvailableBalance"])
    assert approved > 0 and approved < len(assignments)  # both decisions were made
    assert before - after == spent
    # Top-ups for the rejected work were sent once too.
    topped = sum(r["count"] for r in _db_rows(study, "SELECT count FROM topups WHERE "
                                                     "state = 'done'"))
    planned = sum(r[0] for r in _db_rows(study, "SELECT max_assignments FROM hits"))
    assert sum(h["MaxAssignments"] for h in hits) == planned + topped


def _with_fee(amount: Decimal) -> Decimal:
    """An amount plus MTurk's 20% commission (HITs here have fewer than 10 assignments)."""
    cents = int(amount * 100)
    fee = max(1, int((Decimal(cents) * Decimal("0.20")).to_integral_value("ROUND_HALF_UP")))
    return Decimal(cents + fee) / 100


# ------------------------------------------------------------------ service restarted

class Session:
    """One worker, with a browser's cookies, from sign-in to submit."""

    def __init__(self, url: str, name: str):
        self.worker = WorkerClient(url)
        self.worker.login(name)
        self.assignment_id = ""
        self.hit_id = ""

    def take_a_hit(self) -> None:
        groups = self.worker.groups()
        assert groups, "no HIT offered"
        preview = self.worker.preview_group(groups[0]["hit_type_id"])
        form = [a for t, a in tags(preview.text) if t == "form" and a.get("id") == "accept-form"]
        assert form, preview.text[:500]
        self.hit_id = form[0]["action"].rstrip("/").split("/")[-2]
        self.assignment_id = self.worker.accept(self.hit_id)

    def submit(self) -> int:
        """Open the work page and the task page, rate every item, submit; the number of
        items rated."""
        work = self.worker.work_page(self.assignment_id)
        assert work.status_code == 200, work.text[:500]
        src = self.worker.frame_src(work.text)
        query = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
        assert query["assignmentId"] == self.assignment_id
        page = self.worker.http.get(src if src.startswith("http")
                                    else self.worker.base_url + src)
        page.raise_for_status()
        positions = sorted(int(a["data-position"]) for t, a in tags(page.text)
                           if t == "section" and "data-position" in a)
        assert positions
        fields = {}
        for p in positions:
            fields[f"rating_{p}"] = str(p % 5)
            fields[f"seconds_{p}"] = "5.0"
        r = self.worker.submit(self.assignment_id, fields)
        assert r.status_code == 200, html.unescape(r.text[:500])
        return len(positions)


def test_service_restart_mid_session_loses_no_assignment(tmp_path, service):
    """`study serve` is killed while workers hold accepted HITs, some submitted; a new service
    on the same port and the same files takes over the workers' sessions (same cookies), and
    `study collect` then holds every submitted assignment with all its ratings."""
    from study.crowd.publish import publish

    root = _hosted_study(tmp_path / "s", items_per_hit=5)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _point_hosting_at(root, url)
    with processes(tmp_path / "logs") as procs:
        serve = procs.start(root, "serve", "--host", "127.0.0.1", "--port", str(port),
                            log="serve")
        wait_until_up(f"{url}/healthz", serve)
        publish(Study.open(root), "sandbox", echo=lambda _m: None)

        workers = [Session(url, f"W{i}") for i in range(5)]
        for w in workers:
            w.take_a_hit()
        rated = {}
        for w in workers[:2]:
            rated[w.assignment_id] = w.submit()

        stop_process(serve, signal.SIGKILL)
        for w in workers:  # a browser's connections die with the server; its cookies stay
            w.worker.http.close()
        # The new service runs in this process: `study serve` cannot take the port back while
        # the killed one's connections linger (see the test below).
        assert service(root, port) == url

        for w in workers[2:]:
            rated[w.assignment_id] = w.submit()
        assert len(rated) == 5

        procs.run(root, "collect", "--sandbox", "--no-approve", log="collect")
    study = Study.open(root)
    stored = {r["assignment_id"]: r["n"] for r in _db_rows(
        study, "SELECT a.assignment_id, COUNT(r.position) AS n FROM assignments a "
               "LEFT JOIN ratings r USING (assignment_id) GROUP BY a.assignment_id")}
    assert stored == rated
    per_hit = {r["hit_id"]: r["n"] for r in _db_rows(
        study, "SELECT h.hit_id, COUNT(*) AS n FROM hits h JOIN hit_items hi "
               "ON hi.hit_index = h.hit_index GROUP BY h.hit_id")}
    assert all(rated[w.assignment_id] == per_hit[w.hit_id] for w in workers)
    scores = _db_rows(study, "SELECT position, score, valid FROM ratings")
    assert all(r["score"] == r["position"] % 5 for r in scores)


def test_study_serve_restarts_on_its_port_after_a_crash(tmp_path):
    root = _hosted_study(tmp_path / "s", items_per_hit=5)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _point_hosting_at(root, url)
    with processes(tmp_path / "logs") as procs:
        serve = procs.start(root, "serve", "--host", "127.0.0.1", "--port", str(port),
                            log="serve1")
        wait_until_up(f"{url}/healthz", serve)
        worker = WorkerClient(url)
        worker.login("W1")
        worker.groups()  # a browser's keep-alive connection, open when the server dies
        stop_process(serve, signal.SIGKILL)
        serve = procs.start(root, "serve", "--host", "127.0.0.1", "--port", str(port),
                            log="serve2")
        wait_until_up(f"{url}/healthz", serve)
        assert worker.groups() == []
