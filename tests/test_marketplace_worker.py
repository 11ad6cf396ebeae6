"""The worker site over real HTTP: sign-in, groups, preview, accept, work, return, submit,
qualification enforcement, blocks, live invitations and escaping."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from study.marketplace import create_invite
from study.marketplace.testing import WorkerClient, running_marketplace

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
EXT_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
ANS_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
PAGE = "<!DOCTYPE html><html><body><p id='task'>rate me</p></body></html>"
HTML_Q = f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{PAGE}]]></HTMLContent><FrameHeight>500</FrameHeight></HTMLQuestion>'


def ext_q(url):
    return (f'<ExternalQuestion xmlns="{EXT_NS}"><ExternalURL>{url}</ExternalURL>'
            f'<FrameHeight>0</FrameHeight></ExternalQuestion>')


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("mkw"), live_balance="100.00") as m:
        yield m


@pytest.fixture(scope="module")
def client(mk):
    return mk.client("sandbox")


def make_hit(client, **over):
    kw = dict(Title="Rate images", Description="d", Reward="0.10", LifetimeInSeconds=3600,
              AssignmentDurationInSeconds=600, MaxAssignments=1, Question=HTML_Q)
    kw.update(over)
    return client.create_hit(**kw)["HIT"]


def answers(xml_text):
    root = ET.fromstring(xml_text)
    assert root.tag == f"{{{ANS_NS}}}QuestionFormAnswers"
    return [(a.find(f"{{{ANS_NS}}}QuestionIdentifier").text, a.find(f"{{{ANS_NS}}}FreeText").text)
            for a in root.findall(f"{{{ANS_NS}}}Answer")]


def test_full_flow_preview_accept_work_submit(mk, client):
    hit = make_hit(client, Title="Flow <b>bold</b>", MaxAssignments=2)
    w = WorkerClient(mk.base_url)
    wid = w.login("worker one")
    assert wid.startswith("A") and wid == wid.upper()
    groups = w.groups()
    assert hit["HITTypeId"] in [g["hit_type_id"] for g in groups]
    listing = w.http.get(mk.base_url + "/worker/sandbox/").text
    assert "Flow &lt;b&gt;bold&lt;/b&gt;" in listing and "<b>bold</b>" not in listing

    preview = w.preview_group(hit["HITTypeId"])
    assert preview.url.endswith(f"/worker/sandbox/hits/{hit['HITId']}")
    src = w.frame_src(preview.text)
    q = parse_qs(urlsplit(src).query)
    assert q["assignmentId"] == ["ASSIGNMENT_ID_NOT_AVAILABLE"] and q["hitId"] == [hit["HITId"]]
    assert q["turkSubmitTo"] == [mk.base_url + "/worker/sandbox"] and q["workerId"] == [wid]
    assert 'id="accept-form" class="inline" method="post"' in preview.text
    # Sandboxed in an opaque origin: the HIT's scripts can read nothing of this site.
    assert 'sandbox="allow-scripts allow-forms allow-popups' in preview.text
    assert "allow-same-origin" not in preview.text
    assert w.http.get(mk.base_url + src).text == PAGE  # HTMLContent verbatim

    aid = w.accept(hit["HITId"])
    assert w.accept(hit["HITId"]) == aid  # accepting again returns the open assignment
    page = w.work_page(aid)
    assert page.status_code == 200
    q = parse_qs(urlsplit(w.frame_src(page.text)).query)
    assert q["assignmentId"] == [aid] and q["workerId"] == [wid]
    assert client.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsPending"] == 1

    fields = [("rating_1", "3"), ("seconds_1", "4.2"), ("rating_2", "0"),
              ("comments", "<script>alert(1)</script> & é"), ("multi", "a"), ("multi", "b")]
    r = w.submit(aid, fields)
    assert r.status_code == 200 and 'id="submitted"' in r.text
    a = client.get_assignment(AssignmentId=aid)["Assignment"]
    assert a["AssignmentStatus"] == "Submitted"
    assert a["Answer"].startswith('<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers')
    assert answers(a["Answer"]) == [("rating_1", "3"), ("seconds_1", "4.2"), ("rating_2", "0"),
                                    ("comments", "<script>alert(1)</script> & é"),
                                    ("multi", "a|b")]
    again = w.submit(aid, {"rating_1": "1"})
    assert again.status_code == 409
    assert answers(client.get_assignment(AssignmentId=aid)["Assignment"]["Answer"])[0][1] == "3"
    # One assignment per worker per HIT.
    with pytest.raises(RuntimeError, match="already worked"):
        w.accept(hit["HITId"])
    assert hit["HITTypeId"] not in [g["hit_type_id"] for g in w.groups()]


def test_return_frees_the_slot_and_other_workers_cannot_touch_it(mk, client):
    hit = make_hit(client)
    w = WorkerClient(mk.base_url)
    w.login("returner")
    aid = w.accept(hit["HITId"])
    other = WorkerClient(mk.base_url)
    other.login("other")
    assert other.work_page(aid).status_code == 404
    assert other.return_(aid).status_code == 404
    with pytest.raises(RuntimeError):
        other.accept(hit["HITId"])  # the only slot is taken
    assert w.return_(aid).status_code == 303
    h = client.get_hit(HITId=hit["HITId"])["HIT"]
    assert h["NumberOfAssignmentsAvailable"] == 1 and h["NumberOfAssignmentsPending"] == 0
    assert w.submit(aid, {"x": "1"}).status_code == 409
    aid2 = other.accept(hit["HITId"])
    assert aid2 != aid


def test_external_question_gets_mturk_parameters(mk, client):
    hit = make_hit(client, Question=ext_q("https://tasks.example.org/page?study=7"))
    w = WorkerClient(mk.base_url)
    wid = w.login("ext")
    aid = w.accept(hit["HITId"])
    src = w.frame_src(w.work_page(aid).text)
    parts = urlsplit(src)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://tasks.example.org/page"
    q = parse_qs(parts.query)
    assert q["study"] == ["7"] and q["assignmentId"] == [aid] and q["hitId"] == [hit["HITId"]]
    # An accepted assignment's turkSubmitTo carries its submit capability.
    assert q["turkSubmitTo"][0].startswith(mk.base_url + "/worker/sandbox/s/")
    assert q["workerId"] == [wid]


def test_qualification_requirements_are_enforced(mk, client):
    qt = client.create_qualification_type(Name="trained", Description="passed training",
                                          QualificationTypeStatus="Active")["QualificationType"]
    qid = qt["QualificationTypeId"]
    reqs = [
        {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [95]},
        {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [100]},
        {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
         "LocaleValues": [{"Country": "US"}, {"Country": "GB"}]},
        {"QualificationTypeId": qid, "Comparator": "GreaterThan", "IntegerValues": [1],
         "ActionsGuarded": "PreviewAndAccept"},
    ]
    hit = make_hit(client, QualificationRequirements=reqs, MaxAssignments=5, Title="Qualified")

    def worker(name, **profile):
        w = WorkerClient(mk.base_url)
        return w, w.login(name, **profile)

    cases = {
        "low-rate": dict(percent_approved=90),
        "few-hits": dict(hits_approved=50),
        "wrong-country": dict(locale="DE"),
    }
    for name, profile in cases.items():
        w, wid = worker(name, **profile)
        client.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=wid,
                                                   IntegerValue=5)
        assert hit["HITTypeId"] not in [g["hit_type_id"] for g in w.groups()], name
        with pytest.raises(RuntimeError, match="qualification"):
            w.accept(hit["HITId"])

    w, wid = worker("untrained", locale="GB")
    assert w.preview(hit["HITId"]).status_code == 403  # guarded for preview too
    client.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=wid,
                                               IntegerValue=1)
    assert w.preview(hit["HITId"]).status_code == 403  # 1 is not > 1
    client.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=wid,
                                               IntegerValue=2)
    assert w.preview(hit["HITId"]).status_code == 200
    assert hit["HITTypeId"] in [g["hit_type_id"] for g in w.groups()]
    aid = w.accept(hit["HITId"])
    w.submit(aid, {"r": "1"})
    # Rejections lower the approval rate: 19 approved of 20 is 95%, one more rejection is not.
    w2, wid2 = worker("borderline", hits_approved=100, percent_approved=100)
    client.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=wid2,
                                               IntegerValue=9)
    assert hit["HITTypeId"] in [g["hit_type_id"] for g in w2.groups()]
    client.disassociate_qualification_from_worker(QualificationTypeId=qid, WorkerId=wid2)
    assert w2.preview(hit["HITId"]).status_code == 403


def test_cap_qualification_and_masters(mk, client):
    cap = client.create_qualification_type(Name="done before", Description="cap",
                                           QualificationTypeStatus="Active")["QualificationType"]
    hit = make_hit(client, Title="Capped", MaxAssignments=3, QualificationRequirements=[
        {"QualificationTypeId": cap["QualificationTypeId"], "Comparator": "DoesNotExist"}])
    w = WorkerClient(mk.base_url)
    wid = w.login("capped")
    assert hit["HITTypeId"] in [g["hit_type_id"] for g in w.groups()]
    client.associate_qualification_with_worker(QualificationTypeId=cap["QualificationTypeId"],
                                               WorkerId=wid, IntegerValue=1)
    assert hit["HITTypeId"] not in [g["hit_type_id"] for g in w.groups()]

    masters = make_hit(client, Title="Masters only", QualificationRequirements=[
        {"QualificationTypeId": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "Comparator": "Exists"}])
    plain = WorkerClient(mk.base_url)
    plain.login("plain")
    with pytest.raises(RuntimeError):
        plain.accept(masters["HITId"])
    master = WorkerClient(mk.base_url)
    master.login("master", masters=1)
    master.accept(masters["HITId"])


def test_blocked_worker_sees_nothing_and_cannot_accept(mk, client):
    hit = make_hit(client, Title="Blockable")
    w = WorkerClient(mk.base_url)
    wid = w.login("spammer")
    client.create_worker_block(WorkerId=wid, Reason="failed gold items")
    assert w.groups() == []
    with pytest.raises(RuntimeError, match="cannot work"):
        w.accept(hit["HITId"])
    client.delete_worker_block(WorkerId=wid)
    w.accept(hit["HITId"])


def test_last_slot_goes_to_exactly_one_of_many_concurrent_workers(mk, client):
    hit = make_hit(client, MaxAssignments=3)
    got, errors = [], []
    workers = []
    for i in range(10):
        w = WorkerClient(mk.base_url)
        w.login(f"racer{i}")
        workers.append(w)

    def go(w):
        try:
            got.append(w.accept(hit["HITId"]))
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=go, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and len(set(got)) == 3 and len(errors) == 7
    assert client.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Unassignable"


def test_sign_in_is_required_and_cookies_are_tamper_proof(mk, client):
    anon = requests.Session()
    r = anon.get(mk.base_url + "/worker/sandbox/", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/worker/sandbox/login")
    assert anon.get(mk.base_url + "/worker/live/").status_code == 401
    assert anon.post(mk.base_url + "/worker/live/login", data={"worker_id": "x"}).status_code in (404, 405)
    anon.cookies.set("mkw_sandbox", "forged", path="/worker/sandbox")
    assert anon.get(mk.base_url + "/worker/sandbox/", allow_redirects=False).status_code == 303
    hit = make_hit(client)
    r = anon.post(mk.base_url + f"/worker/sandbox/hits/{hit['HITId']}/accept", allow_redirects=False)
    assert r.status_code == 303  # to the sign-in form
    assert anon.get(mk.base_url + "/worker/moon/").status_code == 404
    assert anon.post(mk.base_url + "/worker/sandbox/mturk/externalSubmit",
                     data={"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}).status_code == 400


def test_live_workers_join_by_invitation_and_get_a_completion_code(mk):
    live = mk.client("live")
    hit = make_hit(live, Title="Live study")
    path = create_invite(mk.db_path, "prolific batch 1", completion_code="C0DE42")
    w = WorkerClient(mk.base_url, realm="live")
    wid = w.join(path, participant="5f1a2b3c4d")
    assert wid.startswith("A")
    assert hit["HITTypeId"] in [g["hit_type_id"] for g in w.groups()]
    aid = w.accept(hit["HITId"])
    r = w.submit(aid, {"rating_1": "2"})
    assert 'id="completion-code">C0DE42<' in r.text
    assert live.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"][0]["WorkerId"] == wid
    bad = requests.get(mk.base_url + "/worker/live/join/not-a-token")
    assert bad.status_code == 404
    # A sandbox session does not open the live site.
    sb = WorkerClient(mk.base_url)
    sb.login("sandboxer")
    assert sb.http.get(mk.base_url + "/worker/live/").status_code == 401
