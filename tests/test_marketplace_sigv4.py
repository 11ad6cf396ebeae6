"""SigV4 as AWS checks it, with botocore's own signer as the oracle: every header that steers
the request (host, x-amz-date, x-amz-target, any x-amz-*) must be signed, and the credential
scope must name this service and its region. Refusals are 4xx in AWS's shape and change nothing."""

from __future__ import annotations

import pytest

from study.marketplace.testing import running_marketplace
from test_marketplace_support import assert_aws_refusal, send, signed, submitted_assignment


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("sigv4")) as m:
        yield m


def _sign(mk, operation, body, **kw):
    return signed(mk.endpoint("sandbox") + "/", operation, body, mk.key_id, mk.secret, **kw)


def test_botocore_signature_is_accepted(mk):
    r = send(_sign(mk, "GetAccountBalance", {}))
    assert r.status_code == 200 and "AvailableBalance" in r.json()
    # Extra x-amz-* headers are fine when they are signed.
    r = send(_sign(mk, "GetAccountBalance", {}, extra={"X-Amz-Meta-Note": "signed"}))
    assert r.status_code == 200


def test_an_unsigned_target_cannot_turn_a_read_into_an_approval(mk):
    c = mk.client()
    _, aid, _ = submitted_assignment(mk, c, "target-swap")
    read = _sign(mk, "GetAssignment", {"AssignmentId": aid}, sign_target=False)
    assert "x-amz-target" not in read.headers["Authorization"]
    r = send(read, **{"X-Amz-Target": "MTurkRequesterServiceV20170117.ApproveAssignment"})
    body = assert_aws_refusal(r, "InvalidSignatureException")
    assert "X-Amz-Target" in body["Message"]
    assert c.get_assignment(AssignmentId=aid)["Assignment"]["AssignmentStatus"] == "Submitted"


@pytest.mark.parametrize("header", ["X-Amz-Security-Token", "X-Amz-Meta-Anything"])
def test_every_x_amz_header_sent_must_be_signed(mk, header):
    r = send(_sign(mk, "GetAccountBalance", {}), **{header: "added-after-signing"})
    assert_aws_refusal(r, "InvalidSignatureException")


def test_host_and_date_must_be_signed(mk):
    req = _sign(mk, "GetAccountBalance", {})
    auth = req.headers["Authorization"]
    for dropped in ("host;", ";x-amz-date"):
        assert dropped in auth
        r = send(req, Authorization=auth.replace(dropped, ""))
        assert_aws_refusal(r)


@pytest.mark.parametrize("region", ["eu-west-1", "zz-nowhere-9"])
def test_credential_scope_region_is_checked(mk, region):
    r = send(_sign(mk, "GetAccountBalance", {}, region=region))
    body = assert_aws_refusal(r, "InvalidSignatureException")
    assert "region" in body["Message"]


def test_credential_scope_service_is_checked(mk):
    r = send(_sign(mk, "GetAccountBalance", {}, service="sqs"))
    assert_aws_refusal(r, "InvalidSignatureException")


@pytest.mark.parametrize("auth", [
    "AWS4-HMAC-SHA256 Credential=\u00e9/x, SignedHeaders=host, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=A/20200101/us-east-1/mturk-requester/aws4_request, "
    "SignedHeaders=;;;, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=////, SignedHeaders=host, Signature=" + "f" * 64,
    "Bearer x", "AWS4-HMAC-SHA256", "\u00ff" * 10_000,
])
def test_garbage_authorization_is_a_4xx_in_aws_shape(mk, auth):
    req = _sign(mk, "GetAccountBalance", {})
    r = send(req, Authorization=auth.encode("utf-8").decode("latin-1"))
    assert_aws_refusal(r)


def test_a_wrong_signature_changes_nothing(mk):
    c = mk.client()
    hits_before = c.list_hits()["NumResults"]
    req = _sign(mk, "CreateHIT", {"Title": "t"})
    r = send(req, Authorization=req.headers["Authorization"][:-4] + "0000")
    assert_aws_refusal(r, "InvalidSignatureException")
    assert c.list_hits()["NumResults"] == hits_before
