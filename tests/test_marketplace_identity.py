"""Live participants' identity over real HTTP: made at the first visit and bound to a signed
cookie, never derived from the link's parameters; a platform id is an attribute held by one
identity; a block holds; a completion URL receives the completion code."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from study.marketplace import create_invite, worker_id_for
from study.marketplace.testing import WorkerClient, running_marketplace
from test_marketplace_support import make_hit


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("identity"), live_balance="100.00") as m:
        yield m


@pytest.fixture(scope="module")
def live(mk):
    return mk.client("live")


def _join(mk, path: str, query: str = "", session=None):
    s = session or requests.Session()
    return s, s.get(mk.base_url + path + query, allow_redirects=True)


def test_a_shared_link_and_a_known_participant_id_do_not_make_you_that_participant(mk, live):
    hit = make_hit(live)
    path = create_invite(mk.db_path, "shared link")
    victim = WorkerClient(mk.base_url, "live")
    vid = victim.join(path, participant="victim123")
    assert vid != worker_id_for("victim123")
    aid = victim.accept(hit["HITId"])
    attacker, r = _join(mk, path, "?participant=victim123")
    assert r.status_code == 409 and "mkw_live" not in attacker.cookies
    r = attacker.post(mk.base_url + f"/worker/live/assignments/{aid}/return")
    assert r.status_code == 401
    assert attacker.get(mk.base_url + f"/worker/live/assignments/{aid}").status_code == 401
    assert live.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsPending"] == 1
    assert victim.join(path, participant="victim123") == vid  # the victim's browser still works


def test_one_browser_holds_one_identity_through_one_link(mk):
    path = create_invite(mk.db_path, "one identity")
    w = WorkerClient(mk.base_url, "live")
    first = w.join(path, participant="p-one")
    assert w.join(path) == first and w.join(path, participant="p-one") == first
    r = w.http.get(mk.base_url + path + "?participant=p-two")
    assert r.status_code == 409
    anon = WorkerClient(mk.base_url, "live")
    assert anon.join(path) != first  # no platform id, no cookie: a different person


def test_a_blocked_participant_stays_blocked(mk, live):
    hit = make_hit(live, MaxAssignments=3)
    path = create_invite(mk.db_path, "blocks")
    w = WorkerClient(mk.base_url, "live")
    assert w.http.get(mk.base_url + path + "?PROLIFIC_PID=5f00bad&STUDY_ID=s1").ok
    wid = w.join(path)  # the cookie, not the link, says who this is
    aid = w.accept(hit["HITId"])
    assert w.submit(aid, {"rating_1": "1"}).status_code == 200
    live.create_worker_block(WorkerId=wid, Reason="spam")
    assert w.groups() == []
    fresh, r = _join(mk, path, "?PROLIFIC_PID=5f00bad&STUDY_ID=s1&SESSION_ID=y")
    assert r.status_code == 409 and "mkw_live" not in fresh.cookies
    assert fresh.post(mk.base_url + f"/worker/live/hits/{hit['HITId']}/accept",
                      allow_redirects=False).status_code == 401
    assert live.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsAvailable"] == 2


def test_completion_url_receives_the_code(mk, live):
    hit = make_hit(live)
    path = create_invite(mk.db_path, "prolific", completion_code="C0DE99",
                         completion_url="https://app.prolific.com/submissions/complete")
    w = WorkerClient(mk.base_url, "live")
    w.join(path, participant="5f00done")
    aid = w.accept(hit["HITId"])
    r = w.submit(aid, {"rating_1": "3"})
    assert r.status_code == 200 and 'id="completion-code">C0DE99<' in r.text
    assert 'href="https://app.prolific.com/submissions/complete?cc=C0DE99"' in r.text
    hit2 = make_hit(live)
    aid2 = w.accept(hit2["HITId"])
    top = w.http.post(mk.base_url + "/worker/live/mturk/externalSubmit", allow_redirects=False,
                      data={"assignmentId": aid2, "rating_1": "1"},
                      headers={"Sec-Fetch-Dest": "document"})
    assert top.status_code == 303
    assert parse_qs(urlsplit(top.headers["Location"]).query) == {"cc": ["C0DE99"]}
