"""Live participants' identity over real HTTP. Through a shared link: made at the first visit
and bound to a signed cookie, never derived from the link's parameters; a platform id is an
attribute held by one identity; by default the shared link makes an identity only for a visit
with a platform id. Through a personal link: a signed key names one identity in any browser, and
an altered key names none. A block holds either way; a completion URL receives the code."""

from __future__ import annotations

import os
import sqlite3
import stat
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from itsdangerous import Signer

from study.marketplace import create_invite, worker_id_for
from study.marketplace.invites import create_personal_links
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
    path = create_invite(mk.db_path, "one identity", shared_link="open")
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


def _workers(mk) -> int:
    with sqlite3.connect(mk.db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM workers").fetchone()[0]


def _signed_in_as(r) -> str | None:
    """The WorkerId a join's final page shows, or None when it signed nobody in."""
    import re
    m = re.search(r'id="worker-id">([^<]+)<', r.text)
    return m.group(1) if m else None


def test_a_personal_link_is_one_participant_in_any_browser(mk):
    path = create_invite(mk.db_path, "personal", shared_link="closed")
    (first, link), (second, other) = create_personal_links(mk.db_path, path, 2)
    assert link.startswith("/worker/live/join?key=") and first != second
    seen = set()
    for _ in range(2):  # two browsers without cookies
        s, r = _join(mk, link)
        assert r.status_code == 200 and "mkw_live" in s.cookies
        seen.add(_signed_in_as(r))
    assert seen == {first}
    s, r = _join(mk, other)
    assert _signed_in_as(r) == second
    # Someone else's link opened in a signed-in browser does not switch whose work it does
    # (a participant could otherwise be made to work as whoever sent them a link) ...
    cookie = s.cookies.get("mkw_live")
    s, r = _join(mk, link, session=s)
    assert r.status_code == 409 and "Signed in as someone else" in r.text
    assert s.cookies.get("mkw_live") == cookie
    # ... until the browser signs out.
    s.post(mk.base_url + "/worker/live/logout")
    s, r = _join(mk, link, session=s)
    assert _signed_in_as(r) == first


def test_an_altered_personal_link_is_refused_and_creates_nothing(mk):
    path = create_invite(mk.db_path, "altered", shared_link="closed")
    (wid, link), (other, _) = create_personal_links(mk.db_path, path, 2)
    key = link.split("key=", 1)[1]
    _, sig = key.rsplit(".", 1)
    secret = mk.market.cookie_secret
    made_up = "A" + "Z" * 13
    # One character of the signature: its first, whose six bits all count (the last character
    # of unpadded base64 carries bits that decoding drops, so changing it may change nothing).
    at = len(key) - len(sig)
    forged = [
        key[:at] + ("A" if key[at] != "A" else "B") + key[at + 1:],
        f"{other}.{sig}",                                    # another participant, this signature
        f"{made_up}.{sig}",
        Signer(secret, salt="marketplace-worker").sign(wid).decode(),  # another use's signature
        Signer("not-the-secret", salt="marketplace-personal-link").sign(made_up).decode(),
        wid, "", "x" * 5000, "%C3%A9." + sig,
    ]
    before = _workers(mk)
    for bad in forged:
        s, r = _join(mk, f"/worker/live/join?key={bad}")
        assert 400 <= r.status_code < 500, bad
        assert "mkw_live" not in s.cookies and _signed_in_as(r) is None
    # A key the marketplace signed for a WorkerId it never made names nobody either.
    valid_for_nobody = Signer(secret, salt="marketplace-personal-link").sign(made_up).decode()
    s, r = _join(mk, f"/worker/live/join?key={valid_for_nobody}")
    assert r.status_code == 404 and "mkw_live" not in s.cookies
    assert _workers(mk) == before


def test_a_participant_blocked_through_a_personal_link_stays_blocked(mk, live):
    hit = make_hit(live, MaxAssignments=3)
    path = create_invite(mk.db_path, "personal blocks", shared_link="closed")
    [(wid, link)] = create_personal_links(mk.db_path, path, 1)
    w = WorkerClient(mk.base_url, "live")
    assert w.join(link) == wid
    aid = w.accept(hit["HITId"])
    assert w.submit(aid, {"rating_1": "1"}).status_code == 200
    live.create_worker_block(WorkerId=wid, Reason="spam")
    for _ in range(2):  # a fresh browser each time: the same participant, still blocked
        again = WorkerClient(mk.base_url, "live")
        assert again.join(link) == wid
        assert again.groups() == []
        r = again.http.post(mk.base_url + f"/worker/live/hits/{hit['HITId']}/accept",
                            allow_redirects=False)
        assert r.status_code == 403
    # Nor can the shared link of that invitation make them someone new.
    s, r = _join(mk, path)
    assert r.status_code == 403 and "mkw_live" not in s.cookies
    s, r = _join(mk, path, "?PROLIFIC_PID=5fblocked")
    assert r.status_code == 403 and "mkw_live" not in s.cookies
    assert live.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsAvailable"] == 2


def test_the_shared_link_needs_a_platform_id_unless_the_invitation_says_otherwise(mk):
    default = create_invite(mk.db_path, "default policy")
    before = _workers(mk)
    for query in ("", "?STUDY_ID=s1&SESSION_ID=x", "?PROLIFIC_PID=%20%20"):
        s, r = _join(mk, default, query)
        assert r.status_code == 403 and "Participant id needed" in r.text, query
        assert "mkw_live" not in s.cookies
    assert _workers(mk) == before
    s, r = _join(mk, default, "?PROLIFIC_PID=5fwith&STUDY_ID=s1")
    assert r.status_code == 200 and _signed_in_as(r)
    # The browser that joined keeps its identity when it comes back without the id.
    s, r = _join(mk, default, session=s)
    assert r.status_code == 200 and _signed_in_as(r)

    closed = create_invite(mk.db_path, "closed policy", shared_link="closed")
    s, r = _join(mk, closed, "?PROLIFIC_PID=5fclosed")
    assert r.status_code == 403 and "Personal link needed" in r.text
    assert "mkw_live" not in s.cookies
    [(wid, link)] = create_personal_links(mk.db_path, closed, 1)
    assert _signed_in_as(_join(mk, link)[1]) == wid  # personal links always work

    opened = create_invite(mk.db_path, "open policy", shared_link="open")
    assert _join(mk, opened)[1].status_code == 200
    with pytest.raises(ValueError):
        create_invite(mk.db_path, "bad policy", shared_link="sometimes")


def test_a_personal_link_holds_one_platform_id(mk):
    path = create_invite(mk.db_path, "personal with ids")
    (wid, link), (other, link2) = create_personal_links(mk.db_path, path, 2)
    s, r = _join(mk, link, "&PROLIFIC_PID=5fowner")
    assert _signed_in_as(r) == wid
    s, r = _join(mk, link, "&PROLIFIC_PID=5fsomeoneelse")  # the link passed on
    assert r.status_code == 409 and "mkw_live" not in s.cookies
    s, r = _join(mk, link2, "&PROLIFIC_PID=5fowner")  # an id another identity holds
    assert r.status_code == 409 and "mkw_live" not in s.cookies
    s, r = _join(mk, path, "?PROLIFIC_PID=5fowner")  # nor through the shared link
    assert r.status_code == 409 and "mkw_live" not in s.cookies
    assert _signed_in_as(_join(mk, link, "&PROLIFIC_PID=5fowner")[1]) == wid


def test_the_completion_redirect_works_through_a_personal_link(mk, live):
    hit = make_hit(live)
    path = create_invite(mk.db_path, "personal done", completion_code="P3RS0N",
                         completion_url="https://example.org/done?study=7", shared_link="closed")
    [(wid, link)] = create_personal_links(mk.db_path, path, 1)
    w = WorkerClient(mk.base_url, "live")
    assert w.join(link) == wid
    aid = w.accept(hit["HITId"])
    top = w.http.post(mk.base_url + "/worker/live/mturk/externalSubmit", allow_redirects=False,
                      data={"assignmentId": aid, "rating_1": "4"},
                      headers={"Sec-Fetch-Dest": "document"})
    assert top.status_code == 303
    assert parse_qs(urlsplit(top.headers["Location"]).query) == {"study": ["7"],
                                                                  "cc": ["P3RS0N"]}
    got = live.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert [(a["WorkerId"], a["AssignmentStatus"]) for a in got] == [(wid, "Submitted")]


def test_the_invite_command_writes_personal_links_once_to_a_private_file(mk, tmp_path):
    from click.testing import CliRunner
    from study.marketplace.commands import marketplace_group
    old = os.umask(0o022)
    try:
        out = tmp_path / "links.csv"
        runner = CliRunner()
        r = runner.invoke(marketplace_group, [
            "invite", "--db", str(mk.db_path), "--base-url", mk.base_url, "--personal", "3",
            "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        shared = r.output.splitlines()[0]
        assert shared.startswith(mk.base_url + "/worker/live/join/") and "key=" not in r.output
        rows = out.read_text().splitlines()
        assert rows[0] == "worker_id,link" and len(rows) == 4
        for row in rows[1:]:
            wid, link = row.split(",")
            assert _signed_in_as(requests.get(link)) == wid
        assert _join(mk, shared.removeprefix(mk.base_url), "?PROLIFIC_PID=5fcli")[1] \
            .status_code == 403  # --personal closes the shared link unless told otherwise
        r = runner.invoke(marketplace_group, [
            "invite", "--db", str(mk.db_path), "--personal", "1", "--out", str(out)])
        assert r.exit_code != 0 and "exists" in str(r.exception)
        assert len(out.read_text().splitlines()) == 4
        more = tmp_path / "more.csv"
        r = runner.invoke(marketplace_group, [
            "invite", "--db", str(mk.db_path), "--base-url", mk.base_url, "--personal", "2",
            "--to", shared, "--out", str(more)])
        assert r.exit_code == 0, r.output
        assert stat.S_IMODE(os.stat(more).st_mode) == 0o600
        assert len(more.read_text().splitlines()) == 3
    finally:
        os.umask(old)


def test_a_database_from_before_the_shared_link_policy_gains_it(tmp_path):
    from study.marketplace.datastore import Store
    db = tmp_path / "old.db"
    path = create_invite(db, "made before the policy")
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE invites DROP COLUMN shared_link")
    store = Store(db)
    try:
        assert store.invite(path.rsplit("/", 1)[1])["shared_link"] == "platform-id"
    finally:
        store.close()
