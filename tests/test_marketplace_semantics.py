"""Time, money, persistence and refusals: expiry and auto-approval under an injected clock, a
restart in the middle of a study, throttling and faults retried by botocore, SigV4 refusals,
keys from the environment and the `study marketplace` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import botocore
import botocore.session
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from study.marketplace.testing import (ManualClock, WorkerClient, running_marketplace,
                                       serve_process)

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
HTML_Q = (f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[<p>x</p>]]></HTMLContent>'
          f'<FrameHeight>400</FrameHeight></HTMLQuestion>')


def make_hit(client, **over):
    kw = dict(Title="Rate", Description="d", Reward="1.00", LifetimeInSeconds=3600,
              AssignmentDurationInSeconds=600, MaxAssignments=2, Question=HTML_Q,
              AutoApprovalDelayInSeconds=7200)
    kw.update(over)
    return client.create_hit(**kw)["HIT"]


@pytest.fixture
def timed(tmp_path):
    clock = ManualClock(time.time())
    with running_marketplace(tmp_path, clock=clock) as mk:
        yield mk, clock


def test_lifetime_expiry(timed):
    mk, clock = timed
    c = mk.client()
    hit = make_hit(c, LifetimeInSeconds=60)
    w = WorkerClient(mk.base_url)
    w.login("late")
    clock.advance(61)
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"
    assert w.groups() == []
    with pytest.raises(RuntimeError, match="no longer available"):
        w.accept(hit["HITId"])
    c.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=clock() + 600)
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Assignable"
    w.accept(hit["HITId"])


def test_assignment_duration_expiry_and_unassignable(timed):
    mk, clock = timed
    c = mk.client()
    hit = make_hit(c, MaxAssignments=1, LifetimeInSeconds=200, AssignmentDurationInSeconds=120)
    slow, fast = WorkerClient(mk.base_url), WorkerClient(mk.base_url)
    slow.login("slow")
    fast.login("fast")
    aid = slow.accept(hit["HITId"])
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Unassignable"
    clock.advance(121)  # the slow worker ran out of time: the slot is free again
    h = c.get_hit(HITId=hit["HITId"])["HIT"]
    assert h["HITStatus"] == "Assignable" and h["NumberOfAssignmentsAvailable"] == 1
    assert slow.submit(aid, {"r": "1"}).status_code == 409
    aid2 = fast.accept(hit["HITId"])
    clock.advance(100)  # lifetime over, but the accepted assignment can still be submitted
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Unassignable"
    assert fast.submit(aid2, {"r": "2"}).status_code == 200
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"
    assert [a["AssignmentId"] for a in
            c.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]] == [aid2]


def test_auto_approval_pays_after_the_delay(timed):
    mk, clock = timed
    c = mk.client()
    hit = make_hit(c, AutoApprovalDelayInSeconds=3600)
    w = WorkerClient(mk.base_url)
    w.login("patient")
    aid = w.accept(hit["HITId"])
    w.submit(aid, {"r": "1"})
    a = c.get_assignment(AssignmentId=aid)["Assignment"]
    assert a["AssignmentStatus"] == "Submitted"
    assert (a["AutoApprovalTime"] - a["SubmitTime"]).total_seconds() == pytest.approx(3600)
    clock.advance(3599)
    assert c.get_assignment(AssignmentId=aid)["Assignment"]["AssignmentStatus"] == "Submitted"
    clock.advance(2)
    a = c.get_assignment(AssignmentId=aid)["Assignment"]
    assert a["AssignmentStatus"] == "Approved" and a["ApprovalTime"] == a["AutoApprovalTime"]
    assert c.get_account_balance()["AvailableBalance"] == "9998.80"  # 1.00 + 20% fee
    with pytest.raises(c.exceptions.RequestError):
        c.reject_assignment(AssignmentId=aid, RequesterFeedback="too late")


def test_unique_request_token_expires_after_24_hours(timed):
    mk, clock = timed
    c = mk.client()
    first = make_hit(c, UniqueRequestToken="t-24h")
    clock.advance(23 * 3600)
    with pytest.raises(c.exceptions.RequestError):
        make_hit(c, UniqueRequestToken="t-24h")
    clock.advance(2 * 3600)
    second = make_hit(c, UniqueRequestToken="t-24h")
    assert second["HITId"] != first["HITId"]


def test_restart_in_the_middle_of_a_study_loses_nothing(tmp_path):
    db = tmp_path / "market.db"
    with running_marketplace(tmp_path, db_path=db, key_id="AKIDRESTART",
                             secret="s3cret-s3cret") as mk:
        c = mk.client()
        hit = make_hit(c, MaxAssignments=3, UniqueRequestToken="restart-1")
        done, busy = WorkerClient(mk.base_url), WorkerClient(mk.base_url)
        done.login("done")
        busy.login("busy")
        a1 = done.accept(hit["HITId"])
        done.submit(a1, {"rating_1": "3"})
        c.approve_assignment(AssignmentId=a1)
        a2 = busy.accept(hit["HITId"])  # accepted, not yet submitted
        balance = c.get_account_balance()["AvailableBalance"]
        cookies = busy.http.cookies.get_dict()
    with running_marketplace(tmp_path, db_path=db, key_id="AKIDRESTART",
                             secret="s3cret-s3cret") as mk2:
        c2 = mk2.client()
        assert c2.get_account_balance()["AvailableBalance"] == balance
        h = c2.get_hit(HITId=hit["HITId"])["HIT"]
        assert h["NumberOfAssignmentsPending"] == 1 and h["NumberOfAssignmentsCompleted"] == 1
        with pytest.raises(c2.exceptions.RequestError):
            make_hit(c2, UniqueRequestToken="restart-1")
        # The worker's session survives the restart (new port, same cookie).
        again = WorkerClient(mk2.base_url)
        for name, value in cookies.items():
            again.http.cookies.set(name, value, path="/worker/sandbox")
        assert again.work_page(a2).status_code == 200
        assert again.submit(a2, {"rating_1": "1"}).status_code == 200
        statuses = {a["AssignmentId"]: a["AssignmentStatus"] for a in
                    c2.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]}
        assert statuses == {a1: "Approved", a2: "Submitted"}


class FailFirst:
    """Answer the first `n` calls of `op` with `kind`."""

    def __init__(self, op, n, kind):
        self.op, self.n, self.kind, self.calls = op, n, kind, 0

    def __call__(self, op, realm):
        if op != self.op:
            return None
        self.calls += 1
        return self.kind if self.calls <= self.n else None


def test_throttling_is_retried_by_botocore(tmp_path):
    with running_marketplace(tmp_path) as mk:
        mk.market.faults = FailFirst("GetAccountBalance", 2, "throttle")
        c = mk.client(retries={"max_attempts": 5, "mode": "standard"})
        r = c.get_account_balance()
        assert r["AvailableBalance"] == "10000.00" and r["ResponseMetadata"]["RetryAttempts"] == 2
        mk.market.faults = FailFirst("GetAccountBalance", 1, "throttle")
        once = mk.client(retries={"total_max_attempts": 1, "mode": "standard"})
        with pytest.raises(ClientError) as err:
            once.get_account_balance()
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        # The built-in rate limit (requests per second per key and realm) throttles too.
        mk.market.faults = None
        from study.marketplace.api import TokenBucket
        mk.market.throttle = TokenBucket(rate=0.5, burst=1)
        once.get_account_balance()
        with pytest.raises(ClientError) as err:
            once.get_account_balance()
        assert err.value.response["Error"]["Code"] == "ThrottlingException"


def test_server_faults_and_lost_answers(tmp_path):
    with running_marketplace(tmp_path) as mk:
        mk.market.faults = FailFirst("GetAccountBalance", 1, "fault")
        c = mk.client(retries={"max_attempts": 3, "mode": "standard"})
        assert c.get_account_balance()["ResponseMetadata"]["RetryAttempts"] == 1
        mk.market.faults = FailFirst("GetAccountBalance", 1, "fault")
        once = mk.client(retries={"total_max_attempts": 1, "mode": "standard"})
        with pytest.raises(once.exceptions.ServiceFault):
            once.get_account_balance()
        # The HIT is made but the answer lost: botocore's retry meets the idempotency token.
        mk.market.faults = FailFirst("CreateHIT", 1, "fault-after")
        with pytest.raises(c.exceptions.RequestError) as err:
            make_hit(c, UniqueRequestToken="lost-answer")
        assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.HitAlreadyExists"
        assert c.list_hits()["NumResults"] == 1


def _signed(mk, body: dict, secret=None, key_id=None, service="mturk-requester", date=None):
    data = json.dumps(body)
    req = AWSRequest("POST", mk.endpoint("sandbox") + "/", data=data, headers={
        "X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance",
        "Content-Type": "application/x-amz-json-1.1"})
    auth_cls = SigV4Auth
    if date is not None:
        class DatedSigV4(SigV4Auth):
            # Sign as if at `date` (botocore stamps the current time otherwise).
            def _modify_request_before_signing(self, request):
                request.context["timestamp"] = date
                super()._modify_request_before_signing(request)
        auth_cls = DatedSigV4
    auth_cls(Credentials(key_id or mk.key_id, secret or mk.secret), service,
             "us-east-1").add_auth(req)
    return req


def test_sigv4_refusals(tmp_path):
    with running_marketplace(tmp_path) as mk:
        s = botocore.session.get_session()

        def client(**kw):
            return s.create_client("mturk", endpoint_url=mk.endpoint("sandbox"),
                                   region_name="us-east-1",
                                   config=Config(retries={"max_attempts": 1}), **kw)

        with pytest.raises(ClientError) as err:
            client(aws_access_key_id=mk.key_id, aws_secret_access_key="wrong").get_account_balance()
        assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
        with pytest.raises(ClientError) as err:
            client(aws_access_key_id="AKIDUNKNOWN", aws_secret_access_key="x").get_account_balance()
        assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
        unsigned = s.create_client("mturk", endpoint_url=mk.endpoint("sandbox"),
                                   region_name="us-east-1",
                                   config=Config(signature_version=botocore.UNSIGNED,
                                                 retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as err:
            unsigned.get_account_balance()
        assert err.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"

        good = _signed(mk, {})
        assert requests.post(good.url, data=good.body, headers=dict(good.headers)).status_code == 200
        tampered = requests.post(good.url, data=b'{"x": 1}', headers=dict(good.headers))
        assert tampered.status_code == 400
        assert tampered.json()["__type"] == "InvalidSignatureException"
        other = _signed(mk, {}, service="s3")
        r = requests.post(other.url, data=other.body, headers=dict(other.headers))
        assert "correct service" in r.json()["Message"]
        old = _signed(mk, {}, date="20200101T000000Z")
        r = requests.post(old.url, data=old.body, headers=dict(old.headers))
        assert r.json()["__type"] == "InvalidSignatureException"
        assert "Signature expired" in r.json()["Message"]


def test_keys_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_MARKETPLACE_KEYS", "AKIDENV1:secret-one, AKIDENV2:secret-two")
    with running_marketplace(tmp_path) as mk:
        for key_id, secret in (("AKIDENV1", "secret-one"), ("AKIDENV2", "secret-two")):
            c = botocore.session.get_session().create_client(
                "mturk", endpoint_url=mk.endpoint("live"), region_name="us-east-1",
                aws_access_key_id=key_id, aws_secret_access_key=secret)
            assert c.get_account_balance()["AvailableBalance"] == "0.00"


def test_serve_command_prints_endpoints_but_no_secret(tmp_path):
    env = dict(os.environ, STUDY_MARKETPLACE_KEYS="AKIDCLI:very-secret-value")
    db = tmp_path / "cli.db"
    proc = subprocess.Popen([sys.executable, "-m", "study", "marketplace", "serve", "--port", "0",
                             "--db", str(db)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        out = "".join(lines)
        assert "very-secret-value" not in out
        sandbox = next(line.split(": ", 1)[1].strip() for line in lines
                       if line.startswith("Requester API (sandbox)"))
        assert any(line.startswith("Requester API (live)") for line in lines)
        assert any("/worker/sandbox/" in line for line in lines)
        c = botocore.session.get_session().create_client(
            "mturk", endpoint_url=sandbox, region_name="us-east-1",
            aws_access_key_id="AKIDCLI", aws_secret_access_key="very-secret-value")
        assert c.get_account_balance()["AvailableBalance"] == "10000.00"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_invite_and_deposit_commands(tmp_path):
    from click.testing import CliRunner
    from study.marketplace.commands import marketplace_group
    db = str(tmp_path / "m.db")
    runner = CliRunner()
    r = runner.invoke(marketplace_group, ["invite", "--db", db, "--label", "batch",
                                          "--base-url", "http://h:1"])
    assert r.exit_code == 0 and r.output.startswith("http://h:1/worker/live/join/")
    r = runner.invoke(marketplace_group, ["deposit", "--db", db, "25.50"])
    assert r.exit_code == 0 and "live balance: $25.50" in r.output
    r = runner.invoke(marketplace_group, ["deposit", "--db", db, "lots"])
    assert r.exit_code != 0


def test_two_server_processes_share_one_database_safely(tmp_path):
    import threading
    db = tmp_path / "shared.db"
    with serve_process(db, {"AKIDTWO": "two-secret"}) as other_base, \
            running_marketplace(tmp_path, db_path=db, key_id="AKIDTWO",
                                secret="two-secret") as mk:
        hit = make_hit(mk.client(), MaxAssignments=3)
        workers = []
        for i in range(10):
            w = WorkerClient(mk.base_url if i % 2 else other_base)
            w.login(f"two-{i}")
            workers.append(w)
        got, refused = [], []

        def go(w):
            try:
                got.append(w.accept(hit["HITId"]))
            except RuntimeError:
                refused.append(w)

        threads = [threading.Thread(target=go, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(got)) == 3 and len(refused) == 7
        h = mk.client().get_hit(HITId=hit["HITId"])["HIT"]
        assert h["NumberOfAssignmentsPending"] == 3 and h["NumberOfAssignmentsAvailable"] == 0
