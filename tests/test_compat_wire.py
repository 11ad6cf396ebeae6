"""Wire-level fidelity with what MTurk sent (study/marketplace/COMPATIBILITY.md): paging as
client code written against MTurk walks it, MTurk's error types, codes and messages, HITGroupId,
timestamps, and refusals of malformed requests in AWS's JSON error shape. Real boto3 and real
HTTP against the real marketplace server."""

from __future__ import annotations

import re

import pytest
import requests
from botocore.exceptions import ClientError

from study.marketplace.testing import WorkerClient, running_marketplace
from tests.test_marketplace_support import assert_aws_refusal, make_hit, send, signed, \
    submitted_assignment


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("wire")) as m:
        yield m


def raw(mk, operation: str, body: dict, realm: str = "sandbox") -> requests.Response:
    return send(signed(mk.endpoint(realm), operation, body, mk.key_id, mk.secret))


def mephisto_walk(call, key: str, **kw) -> tuple[list, list[int]]:
    """Mephisto's get_outstanding_hits loop: KeyError unless every non-empty page has a
    NextToken; ends only on an empty page."""
    resp = call(MaxResults=2, **kw)
    items, sizes = list(resp[key]), [resp["NumResults"]]
    while len(resp[key]) > 0:
        resp = call(MaxResults=2, NextToken=resp["NextToken"], **kw)
        items += resp[key]
        sizes.append(resp["NumResults"])
    assert "NextToken" not in resp  # the empty page past the end carries none
    return items, sizes


def test_every_list_operation_pages_as_mturk_did(tmp_path):
    with running_marketplace(tmp_path) as mk:
        c = mk.client()
        hits = [make_hit(c, MaxAssignments=5) for _ in range(4)]
        hit = hits[0]
        workers = []
        for name in ("w1", "w2", "w3"):
            w = WorkerClient(mk.base_url)
            wid = w.login(name)
            aid = w.accept(hit["HITId"])
            w.submit(aid, {"a": "1"})
            workers.append((wid, aid))
        qid = c.create_qualification_type(Name="q", Description="d",
                                          QualificationTypeStatus="Active"
                                          )["QualificationType"]["QualificationTypeId"]
        for wid, aid in workers:
            c.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=wid)
            c.create_worker_block(WorkerId=wid, Reason="")
            c.send_bonus(WorkerId=wid, AssignmentId=aid, BonusAmount="0.10", Reason="")
        for h in hits[1:]:
            c.update_expiration_for_hit(HITId=h["HITId"], ExpireAt=0)

        found, sizes = mephisto_walk(c.list_hits, "HITs")
        assert sorted(h["HITId"] for h in found) == sorted(h["HITId"] for h in hits)
        assert sizes == [2, 2, 0]
        found, sizes = mephisto_walk(c.list_reviewable_hits, "HITs")
        assert len(found) == 3 and sizes == [2, 1, 0]
        found, sizes = mephisto_walk(c.list_assignments_for_hit, "Assignments",
                                     HITId=hit["HITId"])
        assert {a["AssignmentId"] for a in found} == {aid for _, aid in workers}
        assert sizes == [2, 1, 0]
        for call, key, kw in [
            (c.list_workers_with_qualification_type, "Qualifications",
             {"QualificationTypeId": qid}),
            (c.list_worker_blocks, "WorkerBlocks", {}),
            (c.list_bonus_payments, "BonusPayments", {"HITId": hit["HITId"]}),
            (c.list_qualification_types, "QualificationTypes",
             {"MustBeRequestable": False, "MustBeOwnedByCaller": False}),
        ]:
            found, sizes = mephisto_walk(call, key, **kw)
            assert len(found) == sum(sizes) >= 3 and sizes[-1] == 0, call
        # boto3's paginator stops on the empty page too, and sees each item once.
        pages = list(c.get_paginator("list_hits").paginate(PaginationConfig={"PageSize": 3}))
        assert [p["NumResults"] for p in pages] == [3, 1, 0]


def test_errors_have_mturks_bare_type_code_and_message(mk):
    r = raw(mk, "GetHIT", {"HITId": "3NOSUCHHIT"})
    body = assert_aws_refusal(r, "RequestError", 400)
    assert body["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist"
    assert re.fullmatch(r"Hit 3NOSUCHHIT does not exist\. \(\d{13}\)", body["Message"])
    c = mk.client()
    with pytest.raises(c.exceptions.RequestError) as err:
        c.get_hit(HITId="3NOSUCHHIT")
    assert err.value.response["Error"]["Code"] == "RequestError"


def test_reject_takes_an_empty_feedback_and_refuses_a_missing_one_as_mturk_did(mk):
    c = mk.client()
    _, aid, _ = submitted_assignment(mk, c, "feedback")
    r = raw(mk, "RejectAssignment", {"AssignmentId": aid})
    body = assert_aws_refusal(r, "ValidationException", 400)
    assert body["Message"] == ("1 validation error detected: Value null at 'requesterFeedback' "
                               "failed to satisfy constraint: Member must not be null")
    with pytest.raises(ClientError) as err:
        c.reject_assignment(AssignmentId=aid, RequesterFeedback="x" * 1025)
    assert err.value.response["Error"]["Code"] == "ParameterValidationError"
    with pytest.raises(ClientError) as err:
        c.reject_assignment(AssignmentId=aid, RequesterFeedback="bell \x07")
    assert "ASCII characters 0-8" in err.value.response["Error"]["Message"]
    c.reject_assignment(AssignmentId=aid, RequesterFeedback="")
    assert c.get_assignment(AssignmentId=aid)["Assignment"]["AssignmentStatus"] == "Rejected"
    with pytest.raises(c.exceptions.RequestError) as err:
        c.reject_assignment(AssignmentId=aid, RequesterFeedback="")
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidAssignmentState"
    assert "This operation can be called with a status of: Submitted" in str(err.value)


def test_bonus_constraints_and_repeated_token_as_mturk_answered(mk):
    c = mk.client()
    hit, aid, w = submitted_assignment(mk, c, "bonus")
    # botocore does not check patterns: the service sent this text (Dallinger#1052).
    with pytest.raises(ClientError) as err:
        c.send_bonus(WorkerId=w.worker_id, AssignmentId=aid, BonusAmount="0.9752", Reason="r")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == (
        "1 validation error detected: Value '0.9752' at 'bonusAmount' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[0-9]+(\\.)?[0-9]{0,2}$")
    body = assert_aws_refusal(raw(mk, "SendBonus", {"WorkerId": w.worker_id,
                                                   "AssignmentId": aid, "BonusAmount": "1"}),
                              "ValidationException")
    assert "Value null at 'reason'" in body["Message"]
    c.send_bonus(WorkerId=w.worker_id, AssignmentId=aid, BonusAmount="0.50", Reason="r",
                 UniqueRequestToken="tok-1")
    with pytest.raises(c.exceptions.RequestError) as err:
        c.send_bonus(WorkerId=w.worker_id, AssignmentId=aid, BonusAmount="0.50", Reason="r",
                     UniqueRequestToken="tok-1")
    assert re.fullmatch(r'The idempotency token "tok-1" has already been processed\. \(\d+\)',
                        err.value.response["Error"]["Message"])


def test_insufficient_funds_in_mturks_words(mk):
    live = mk.client("live")
    with pytest.raises(live.exceptions.RequestError) as err:
        make_hit(live)
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.InsufficientFunds"
    assert err.value.response["Error"]["Message"].startswith(
        "This Requester has insufficient funds in their account to complete this transaction.")


def test_hit_group_id_differs_from_the_type_id_and_is_stable_per_type(mk):
    c = mk.client()
    a = make_hit(c, Title="group test")
    b = make_hit(c, Title="group test")
    other = make_hit(c, Title="another group")
    assert a["HITTypeId"] == b["HITTypeId"] and a["HITGroupId"] == b["HITGroupId"]
    assert a["HITGroupId"] != a["HITTypeId"] and other["HITGroupId"] != a["HITGroupId"]
    assert re.fullmatch(r"[0-9A-Z]{30}", a["HITGroupId"])
    assert c.get_hit(HITId=a["HITId"])["HIT"]["HITGroupId"] == a["HITGroupId"]
    # MTurk's worker links, by group id and by type id, lead to a HIT of the group.
    w = WorkerClient(mk.base_url)
    w.login("linker")
    for path in (f"/worker/sandbox/mturk/preview?groupId={a['HITGroupId']}",
                 f"/worker/sandbox/projects/{a['HITTypeId']}/tasks"):
        r = w.http.get(mk.base_url + path)
        assert r.status_code == 200 and r.url.rsplit("/", 1)[1] in (a["HITId"], b["HITId"])


def test_timestamps_are_epoch_seconds_to_the_millisecond(mk):
    c = mk.client()
    hit, aid, _ = submitted_assignment(mk, c, "clock")
    got = raw(mk, "GetAssignment", {"AssignmentId": aid}).json()
    stamps = [got["HIT"]["CreationTime"], got["HIT"]["Expiration"],
              got["Assignment"]["AcceptTime"], got["Assignment"]["SubmitTime"]]
    for t in stamps:
        assert isinstance(t, (int, float)) and round(t, 3) == t, t
        assert len(repr(t).partition(".")[2]) <= 3, t


def test_malformed_requests_are_answered_in_aws_json(mk):
    # POST / (an endpoint_url without its realm): JSON, not an HTML 405.
    r = requests.post(mk.base_url + "/", data="{}", headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance"})
    body = assert_aws_refusal(r, "UnknownOperationException")
    assert "/requester/sandbox" in body["Message"]
    # A signed request without X-Amz-Target, or with an unknown one.
    req = signed(mk.endpoint(), "GetAccountBalance", {}, mk.key_id, mk.secret, sign_target=False)
    del req.headers["X-Amz-Target"]
    assert_aws_refusal(send(req), "UnknownOperationException")
    assert_aws_refusal(raw(mk, "MakeCoffee", {}), "UnknownOperationException")


def test_deleting_a_deleted_hit_says_so_as_mturk_did(mk):
    c = mk.client()
    hit = make_hit(c)
    c.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=0)
    c.delete_hit(HITId=hit["HITId"])
    with pytest.raises(c.exceptions.RequestError) as err:
        c.delete_hit(HITId=hit["HITId"])
    # Dallinger treats this message as "already deleted".
    assert "currently in the state 'Disposed'" in err.value.response["Error"]["Message"]
    assert "This operation can be called with a status of: Reviewing, Reviewable" in \
        err.value.response["Error"]["Message"]
