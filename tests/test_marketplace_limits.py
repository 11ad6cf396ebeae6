"""Limits before work, over real HTTP: an oversized body is refused (413, AWS's shape) before it
is read or its signature checked; a worker's oversized answer is refused and not stored; malformed,
deeply nested, non-UTF-8 input and crafted NextTokens are 4xx in AWS's shape, never 500."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from study.marketplace.testing import WorkerClient, running_marketplace
from test_marketplace_support import (TARGET, assert_aws_refusal, make_hit, send, signed,
                                      submitted_assignment)


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("limits")) as m:
        yield m


def _raw(mk, operation: str, body: bytes):
    """A request whose raw body (any bytes at all) is signed by botocore's signer."""
    return send(signed(mk.endpoint("sandbox") + "/", operation, {}, mk.key_id, mk.secret,
                       raw=body))


def test_oversized_body_is_refused_before_authentication(mk):
    r = requests.post(mk.endpoint("sandbox") + "/", data=b"x" * (3 << 20), timeout=60,
                      headers={"X-Amz-Target": TARGET + "GetAccountBalance",
                               "Content-Type": "application/x-amz-json-1.1"})
    assert_aws_refusal(r, "RequestEntityTooLarge", 413)
    # The same size, correctly signed, is refused the same way.
    big = {"Title": "x" * (3 << 20)}
    req = signed(mk.endpoint("sandbox") + "/", "CreateHIT", big, mk.key_id, mk.secret)
    assert_aws_refusal(send(req), "RequestEntityTooLarge", 413)
    assert mk.client().get_account_balance()["AvailableBalance"]  # still serving


def test_a_20_mb_answer_is_refused_and_not_stored(mk):
    c = mk.client()
    hit = make_hit(c)
    w = WorkerClient(mk.base_url)
    w.login("big-comments")
    aid = w.accept(hit["HITId"])
    r = w.submit(aid, {"rating_1": "2", "comments": "x" * (20 << 20)})
    assert r.status_code == 413
    r = w.submit(aid, {"rating_1": "2", "comments": "y" * 20_000})
    assert r.status_code == 413
    assert c.list_assignments_for_hit(HITId=hit["HITId"])["NumResults"] == 0
    assert w.submit(aid, {"rating_1": "2", "comments": "fine"}).status_code == 200
    answer = c.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"][0]["Answer"]
    assert "fine" in answer and len(answer) < 1000


@pytest.mark.parametrize("body", [
    b"{not json",
    b"[" * 5000 + b"]" * 5000,
    b'{"HITId": ' + b"[" * 100 + b"]" * 100 + b"}",
    b'{"HITId": "\xff\xfe"}',
    b'{"HITId": "\\ud800"}',
    b'{"MaxResults": NaN}',
    b'{"MaxResults": 1e999}',
    b'{"MaxResults": 123456789012345678901234567890}',
    b"[]", b"0", b'"x"', b"null",
])
def test_malformed_requests_are_4xx_in_aws_shape(mk, body):
    operation = "ListHITs" if b"MaxResults" in body else "GetHIT"
    assert_aws_refusal(_raw(mk, operation, body))


def _token(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    "!!!", "\u00e9t\u00e9", _token([["x"], {}]), _token([None, None]), _token([1e308, [1]]),
    _token(["a", "b"]), _token([1.5, "\ud800"]), _token({"a": 1}), _token([True, "x"]),
])
@pytest.mark.parametrize("operation", ["ListHITs", "ListQualificationTypes", "ListWorkerBlocks",
                                       "ListReviewableHITs", "ListAssignmentsForHIT",
                                       "ListBonusPayments"])
def test_crafted_next_tokens_are_refused(mk, token, operation):
    c = mk.client()
    params = {"NextToken": token}
    if operation == "ListQualificationTypes":
        params["MustBeRequestable"] = False
    if operation in ("ListAssignmentsForHIT", "ListBonusPayments"):
        params["HITId"] = make_hit(c)["HITId"]
    req = signed(mk.endpoint("sandbox") + "/", operation, params, mk.key_id, mk.secret)
    body = assert_aws_refusal(send(req))
    assert "NextToken" in body["Message"] or "validation" in body["Message"]


def test_overlong_text_fields_are_refused(mk):
    c = mk.client()
    _, aid, w = submitted_assignment(mk, c, "long-reason")
    with pytest.raises(c.exceptions.RequestError):
        c.send_bonus(WorkerId=w.worker_id, BonusAmount="0.10", AssignmentId=aid,
                     Reason="r" * 70_000)
    assert c.list_bonus_payments(AssignmentId=aid)["NumResults"] == 0
