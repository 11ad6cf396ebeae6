"""Helpers shared by the marketplace's safety tests: a HIT, a submitted assignment, requests
signed by botocore's own SigV4 signer, and the check that a refusal is in AWS's error shape."""

from __future__ import annotations

import json

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from study.marketplace.testing import WorkerClient

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
HTML_Q = (f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[<p>x</p>]]></HTMLContent>'
          f'<FrameHeight>400</FrameHeight></HTMLQuestion>')
TARGET = "MTurkRequesterServiceV20170117."


def make_hit(client, **over) -> dict:
    kw = dict(Title="Rate", Description="d", Reward="1.00", LifetimeInSeconds=3600,
              AssignmentDurationInSeconds=600, MaxAssignments=1, Question=HTML_Q)
    kw.update(over)
    return client.create_hit(**kw)["HIT"]


def submitted_assignment(mk, client, worker: str = "worker", realm: str = "sandbox"):
    """A HIT with one submitted assignment: (hit, assignment_id, WorkerClient)."""
    hit = make_hit(client)
    w = WorkerClient(mk.base_url, realm)
    w.login(worker)
    aid = w.accept(hit["HITId"])
    assert w.submit(aid, {"rating_1": "2"}).status_code == 200
    return hit, aid, w


def signed(url: str, operation: str, body: dict, key_id: str, secret: str,
           region: str = "us-east-1", service: str = "mturk-requester",
           sign_target: bool = True, extra: dict | None = None,
           raw: bytes | None = None) -> AWSRequest:
    """A request signed by botocore.auth.SigV4Auth, with `body` as JSON (or the bytes `raw`);
    `sign_target=False` adds X-Amz-Target only after signing, so it is not in SignedHeaders."""
    headers = {"Content-Type": "application/x-amz-json-1.1", **(extra or {})}
    if sign_target:
        headers["X-Amz-Target"] = TARGET + operation
    data = raw if raw is not None else json.dumps(body)
    req = AWSRequest("POST", url, data=data, headers=headers)
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(req)
    if not sign_target:
        req.headers["X-Amz-Target"] = TARGET + operation
    return req


def send(req: AWSRequest, **over) -> requests.Response:
    headers = dict(req.headers)
    headers.update(over)
    return requests.post(req.url, data=req.body, headers=headers, timeout=30)


def assert_aws_refusal(r: requests.Response, error_type: str | None = None,
                       status: int | None = None) -> dict:
    """A 4xx answer in AWS's JSON error shape (never a 5xx, never an HTML page)."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/x-amz-json-1.1"), r.text[:300]
    body = r.json()
    # MTurk's bare type: "RequestError", never "com.amazonaws...#RequestError".
    assert "#" not in body["__type"] and body["Message"]
    if error_type is not None:
        assert body["__type"] == error_type, body
    return body
