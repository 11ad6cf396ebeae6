"""Ownership in the worker flow, over real HTTP: only the worker session that accepted an
assignment can submit it, return it, view it, or open its task page with its assignment id."""

from __future__ import annotations

import pytest
import requests

from study.marketplace.testing import WorkerClient, running_marketplace
from test_marketplace_support import make_hit


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("own")) as m:
        yield m


@pytest.fixture
def accepted(mk):
    c = mk.client()
    hit = make_hit(c)
    owner = WorkerClient(mk.base_url)
    owner.login("owner")
    aid = owner.accept(hit["HITId"])
    other = WorkerClient(mk.base_url)
    other.login("other")
    return c, hit, aid, owner, other


def _submitted(c, hit) -> int:
    return c.list_assignments_for_hit(HITId=hit["HITId"])["NumResults"]


def test_submit_needs_the_owners_session(mk, accepted):
    c, hit, aid, owner, other = accepted
    url = mk.base_url + "/worker/sandbox/mturk/externalSubmit"
    for method in ("post", "get"):
        key = "data" if method == "post" else "params"
        anon = requests.request(method, url, allow_redirects=False,
                                **{key: {"assignmentId": aid, "rating_1": "0"}})
        assert anon.status_code == 303 and anon.headers["Location"].endswith("/login")
    assert other.submit(aid, {"rating_1": "0"}).status_code == 404
    assert _submitted(c, hit) == 0
    assert owner.submit(aid, {"rating_1": "4"}).status_code == 200
    answer = c.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"][0]["Answer"]
    assert "<FreeText>4</FreeText>" in answer


def test_return_and_view_need_the_owners_session(mk, accepted):
    c, hit, aid, owner, other = accepted
    assert other.return_(aid).status_code == 404
    assert other.work_page(aid).status_code == 404
    anon = requests.Session()
    r = anon.post(mk.base_url + f"/worker/sandbox/assignments/{aid}/return",
                  allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/login")
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsPending"] == 1
    assert owner.work_page(aid).status_code == 200


def test_the_task_page_with_an_assignment_opens_for_its_worker_only(mk, accepted):
    c, hit, aid, owner, other = accepted
    src = WorkerClient.frame_src(owner.work_page(aid).text)
    assert f"assignmentId={aid}" in src
    assert owner.http.get(mk.base_url + src).status_code == 200
    assert other.http.get(mk.base_url + src).status_code == 404
    assert requests.get(mk.base_url + src).status_code == 404
    # Previews stay open to anyone.
    preview = WorkerClient.frame_src(requests.get(
        mk.base_url + f"/worker/sandbox/hits/{hit['HITId']}").text)
    assert requests.get(mk.base_url + preview).status_code == 200


def test_the_submit_capability_speaks_for_its_assignment_only(mk):
    """A sandboxed HIT page posts without the worker's cookie, through the capability in
    turkSubmitTo; the capability of one assignment cannot submit another."""
    from urllib.parse import parse_qs, urlsplit

    client = mk.client()
    hit = make_hit(client, MaxAssignments=2)
    submit_to = {}
    for name in ("one", "two"):
        w = WorkerClient(mk.base_url)
        w.login(name)
        aid = w.accept(hit["HITId"])
        q = parse_qs(urlsplit(w.frame_src(w.work_page(aid).text)).query)
        submit_to[aid] = q["turkSubmitTo"][0]
    (a1, s1), (a2, _s2) = submit_to.items()
    # No cookie: the capability alone submits its own assignment ...
    assert requests.post(f"{s1}/mturk/externalSubmit", timeout=10,
                         data={"assignmentId": a1, "x": "1"}).status_code == 200
    # ... and not another one, nor with a forged token.
    assert requests.post(f"{s1}/mturk/externalSubmit", timeout=10,
                         data={"assignmentId": a2, "x": "1"}).status_code == 403
    forged = s1.rsplit("/", 1)[0] + "/eyJhIjoiWCJ9.bad"
    assert requests.post(f"{forged}/mturk/externalSubmit", timeout=10,
                         data={"assignmentId": a2, "x": "1"}).status_code == 403
    statuses = {a["AssignmentId"]: a["AssignmentStatus"] for a in
                client.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]}
    assert statuses == {a1: "Submitted"}
