"""Each requester key is its own account, over real HTTP with real boto3 clients: key B can
neither see nor touch key A's HITs, HIT types, qualification types, blocks, bonuses or money;
funds are held when a HIT is made and released when it expires or is deleted."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.config import Config

from study.marketplace.testing import ManualClock, WorkerClient, running_marketplace
from test_marketplace_support import make_hit, submitted_assignment

KEY_B, SECRET_B = "AKIDREQUESTERB", "secret-of-requester-b"


@pytest.fixture
def two(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_MARKETPLACE_KEYS", f"{KEY_B}:{SECRET_B}")
    clock = ManualClock()
    with running_marketplace(tmp_path, clock=clock, live_balance="10.00") as mk:
        b = botocore.session.get_session().create_client(
            "mturk", endpoint_url=mk.endpoint("sandbox"), region_name="us-east-1",
            aws_access_key_id=KEY_B, aws_secret_access_key=SECRET_B,
            config=Config(retries={"max_attempts": 1}))
        yield mk, mk.client(retries={"max_attempts": 1}), b, clock


def _code(err) -> str:
    return err.value.response.get("TurkErrorCode") or err.value.response["Error"]["Code"]


def test_key_b_cannot_list_read_expire_or_delete_a_s_hits(two):
    mk, a, b, _ = two
    hit, aid, w = submitted_assignment(mk, a, "iso-worker")
    assert b.list_hits()["NumResults"] == 0
    assert b.list_reviewable_hits()["NumResults"] == 0
    for call in (lambda: b.get_hit(HITId=hit["HITId"]),
                 lambda: b.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=0),
                 lambda: b.delete_hit(HITId=hit["HITId"]),
                 lambda: b.list_assignments_for_hit(HITId=hit["HITId"]),
                 lambda: b.create_additional_assignments_for_hit(
                     HITId=hit["HITId"], NumberOfAdditionalAssignments=1)):
        with pytest.raises(b.exceptions.RequestError) as err:
            call()
        assert _code(err) == "AWS.MechanicalTurk.HITDoesNotExist"
    for call in (lambda: b.get_assignment(AssignmentId=aid),
                 lambda: b.approve_assignment(AssignmentId=aid),
                 lambda: b.reject_assignment(AssignmentId=aid, RequesterFeedback="no"),
                 lambda: b.send_bonus(WorkerId=w.worker_id, BonusAmount="1.00",
                                      AssignmentId=aid, Reason="r")):
        with pytest.raises(b.exceptions.RequestError) as err:
            call()
        assert _code(err) == "AWS.MechanicalTurk.AssignmentDoesNotExist"
    with pytest.raises(b.exceptions.RequestError):
        b.create_hit_with_hit_type(HITTypeId=hit["HITTypeId"], LifetimeInSeconds=600,
                                   Question=hit["Question"])
    # A's HIT is untouched.
    mine = a.get_hit(HITId=hit["HITId"])["HIT"]
    assert mine["HITStatus"] == "Reviewable" or mine["HITStatus"] == "Assignable"
    assert a.get_assignment(AssignmentId=aid)["Assignment"]["AssignmentStatus"] == "Submitted"
    assert [h["HITId"] for h in a.list_hits()["HITs"]] == [hit["HITId"]]


def test_qualification_types_blocks_and_balances_are_per_key(two):
    mk, a, b, _ = two
    qa = a.create_qualification_type(Name="shared name", Description="A's",
                                     QualificationTypeStatus="Active")["QualificationType"]
    qb = b.create_qualification_type(Name="shared name", Description="B's",
                                     QualificationTypeStatus="Active")["QualificationType"]
    assert qa["QualificationTypeId"] != qb["QualificationTypeId"]
    with pytest.raises(b.exceptions.RequestError):
        b.get_qualification_type(QualificationTypeId=qa["QualificationTypeId"])
    with pytest.raises(b.exceptions.RequestError):
        b.associate_qualification_with_worker(QualificationTypeId=qa["QualificationTypeId"],
                                              WorkerId="AWORKER1", IntegerValue=1)
    owned = b.list_qualification_types(MustBeRequestable=True, MustBeOwnedByCaller=True)
    assert [q["Description"] for q in owned["QualificationTypes"]] == ["B's"]

    # A block by B does not keep the worker from A's HITs.
    hit_a = make_hit(a)
    w = WorkerClient(mk.base_url)
    wid = w.login("blocked-by-b")
    b.create_worker_block(WorkerId=wid, Reason="B does not want them")
    assert a.list_worker_blocks()["NumResults"] == 0
    assert hit_a["HITTypeId"] in [g["hit_type_id"] for g in w.groups()]
    a.create_worker_block(WorkerId=wid, Reason="A neither")
    b.delete_worker_block(WorkerId=wid, Reason="B forgives")
    assert w.groups() == []
    with pytest.raises(RuntimeError):
        w.accept(hit_a["HITId"])

    # Money: A's spending is A's alone.
    def balances(client):
        r = client.get_account_balance()
        return r["AvailableBalance"], r["OnHoldBalance"]

    before_a, before_b = balances(a), balances(b)
    hit, aid, _ = submitted_assignment(mk, a, "paid-by-a")
    assert balances(a)[1] != before_a[1] and balances(b) == before_b
    a.approve_assignment(AssignmentId=aid)
    assert balances(a)[0] != before_a[0] and balances(b) == before_b


def test_funds_are_held_at_create_hit_and_released_on_expiry_and_delete(two):
    mk, a, b, clock = two
    live = mk.client("live", retries={"max_attempts": 1})
    assert live.get_account_balance()["AvailableBalance"] == "10.00"
    # 3 assignments of $1.00 + 20%: $3.60 held, of $10.00.
    hit = make_hit(live, MaxAssignments=3, LifetimeInSeconds=600)
    bal = live.get_account_balance()
    assert (bal["AvailableBalance"], bal["OnHoldBalance"]) == ("10.00", "3.60")
    make_hit(live, MaxAssignments=5)  # $6.00 more: $9.60 of $10.00
    with pytest.raises(live.exceptions.RequestError) as err:
        make_hit(live, MaxAssignments=1)  # $1.20 more does not fit
    assert _code(err) == "AWS.MechanicalTurk.InsufficientFunds"
    with pytest.raises(live.exceptions.RequestError) as err:
        live.create_additional_assignments_for_hit(HITId=hit["HITId"],
                                                   NumberOfAdditionalAssignments=1)
    assert _code(err) == "AWS.MechanicalTurk.InsufficientFunds"
    assert live.get_account_balance()["OnHoldBalance"] == "9.60"

    # Another key's live account starts empty and is refused on its own.
    b_live = botocore.session.get_session().create_client(
        "mturk", endpoint_url=mk.endpoint("live"), region_name="us-east-1",
        aws_access_key_id=KEY_B, aws_secret_access_key=SECRET_B,
        config=Config(retries={"max_attempts": 1}))
    assert b_live.get_account_balance()["AvailableBalance"] == "0.00"
    with pytest.raises(b_live.exceptions.RequestError) as err:
        make_hit(b_live)
    assert _code(err) == "AWS.MechanicalTurk.InsufficientFunds"

    # Expiry releases the first HIT's hold; a HIT then fits again.
    clock.advance(601)
    assert live.get_account_balance()["OnHoldBalance"] == "6.00"
    third = make_hit(live, MaxAssignments=1, LifetimeInSeconds=600)
    assert live.get_account_balance()["OnHoldBalance"] == "7.20"
    # Expire and delete: its hold is released.
    live.update_expiration_for_hit(HITId=third["HITId"], ExpireAt=0)
    live.delete_hit(HITId=third["HITId"])
    assert live.get_account_balance()["OnHoldBalance"] == "6.00"
    assert live.get_account_balance()["AvailableBalance"] == "10.00"


def test_the_hold_follows_each_assignment(two):
    mk, a, b, clock = two
    hit = make_hit(a, MaxAssignments=3, LifetimeInSeconds=600, AssignmentDurationInSeconds=3600)

    def held():
        return a.get_account_balance()["OnHoldBalance"]

    workers = []
    for name in ("h1", "h2", "h3"):
        w = WorkerClient(mk.base_url)
        w.login(name)
        workers.append(w)
    assert held() == "3.60"
    a1, a2 = workers[0].accept(hit["HITId"]), workers[1].accept(hit["HITId"])
    assert workers[0].submit(a1, {"rating_1": "1"}).status_code == 200
    assert workers[1].return_(a2).status_code == 303
    assert held() == "3.60"  # a returned slot can be taken again
    available = a.get_account_balance()["AvailableBalance"]
    a.approve_assignment(AssignmentId=a1)
    assert held() == "2.40"
    assert float(available) - float(a.get_account_balance()["AvailableBalance"]) == \
        pytest.approx(1.20)
    a3 = workers[2].accept(hit["HITId"])
    clock.advance(601)  # expired with one assignment still being worked on
    assert held() == "1.20"
    assert workers[2].submit(a3, {"rating_1": "2"}).status_code == 200
    assert held() == "1.20"
    a.reject_assignment(AssignmentId=a3, RequesterFeedback="no")
    assert held() == "0.00"
    # Reopening the HIT holds its open slot again.
    a.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=clock() + 600)
    assert held() == "1.20"
