"""The nine operations added for MTurk compatibility, each through a real boto3 client over real
HTTP: qualification requests from the worker site (by hand, by AnswerKey, AutoGranted),
DeleteQualificationType, ListHITsForQualificationType, review-policy results, file uploads,
and notifications delivered to SQS, SNS (moto's server) and an HTTP endpoint."""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from study.marketplace.testing import ManualClock, WorkerClient, running_marketplace
from tests.test_marketplace_api import MODEL, check_shape
from tests.test_marketplace_support import make_hit

QF_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionForm.xsd"
AK_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"


def selection(ident: str, options: str) -> str:
    sels = "".join(f"<Selection><SelectionIdentifier>{o}</SelectionIdentifier><Text>{o.upper()}"
                   f"</Text></Selection>" for o in options)
    return (f"<Question><QuestionIdentifier>{ident}</QuestionIdentifier><IsRequired>true"
            f"</IsRequired><QuestionContent><Text>Pick for {ident}</Text></QuestionContent>"
            f"<AnswerSpecification><SelectionAnswer><StyleSuggestion>radiobutton"
            f"</StyleSuggestion><Selections>{sels}</Selections></SelectionAnswer>"
            f"</AnswerSpecification></Question>")


TEST = (f'<QuestionForm xmlns="{QF_NS}"><Overview><Title>Colour test</Title></Overview>'
        f'{selection("q1", "ab")}{selection("q2", "ab")}</QuestionForm>')
ANSWER_KEY = (f'<AnswerKey xmlns="{AK_NS}">'
              "<Question><QuestionIdentifier>q1</QuestionIdentifier><AnswerOption>"
              "<SelectionIdentifier>a</SelectionIdentifier><AnswerScore>1</AnswerScore>"
              "</AnswerOption></Question>"
              "<Question><QuestionIdentifier>q2</QuestionIdentifier><AnswerOption>"
              "<SelectionIdentifier>b</SelectionIdentifier><AnswerScore>1</AnswerScore>"
              "</AnswerOption></Question>"
              "<QualificationValueMapping><PercentageMapping><MaximumSummedScore>2"
              "</MaximumSummedScore></PercentageMapping></QualificationValueMapping></AnswerKey>")
UPLOAD_FORM = (f'<QuestionForm xmlns="{QF_NS}"><Question><QuestionIdentifier>photo'
               f'</QuestionIdentifier><IsRequired>true</IsRequired><QuestionContent><Binary>'
               f'<MimeType><Type>image</Type><SubType>png</SubType></MimeType>'
               f'<DataURL>https://example.org/a.png</DataURL><AltText>a</AltText></Binary>'
               f'</QuestionContent><AnswerSpecification><FileUploadAnswer><MaxFileSizeInBytes>'
               f'1000</MaxFileSizeInBytes><MinFileSizeInBytes>1</MinFileSizeInBytes>'
               f'</FileUploadAnswer></AnswerSpecification></Question>'
               f'<Question><QuestionIdentifier>why</QuestionIdentifier><QuestionContent><Text>'
               f'Why?</Text></QuestionContent><AnswerSpecification><FreeTextAnswer/>'
               f'</AnswerSpecification></Question></QuestionForm>')


def recording(client, seen: dict):
    def record(http_response, parsed, model, **kwargs):
        if http_response.status_code == 200:
            seen.setdefault(model.name, []).append(parsed)
    client.meta.events.register("after-call.mturk", record)
    return client


def request_qualification(w: WorkerClient, qid: str, answers=None) -> requests.Response:
    return w.http.post(w.base_url + f"/worker/sandbox/qualifications/{qid}/request",
                       data=answers or {})


def test_qualification_requests_decided_by_hand_by_answer_key_and_auto_granted(tmp_path):
    seen: dict = {}
    with running_marketplace(tmp_path) as mk:
        c = recording(mk.client(), seen)
        by_hand = c.create_qualification_type(
            Name="by hand", Description="ask me", QualificationTypeStatus="Active"
        )["QualificationType"]["QualificationTypeId"]
        graded = c.create_qualification_type(
            Name="graded", Description="a test", QualificationTypeStatus="Active", Test=TEST,
            AnswerKey=ANSWER_KEY, TestDurationInSeconds=600)["QualificationType"]
        auto = c.create_qualification_type(
            Name="auto", Description="free", QualificationTypeStatus="Active",
            AutoGranted=True, AutoGrantedValue=5)["QualificationType"]["QualificationTypeId"]
        assert graded["Test"] == TEST and graded["AnswerKey"] == ANSWER_KEY

        workers = []
        for name in ("ann", "ben", "cat"):
            w = WorkerClient(mk.base_url)
            w.login(name)
            workers.append(w)
        listing = workers[0].http.get(mk.base_url + "/worker/sandbox/qualifications").text
        assert by_hand in listing and graded["QualificationTypeId"] in listing
        for w in workers:
            r = request_qualification(w, by_hand)
            assert r.status_code == 200 and "pending" in r.text.lower()
        again = request_qualification(workers[0], by_hand)
        assert again.status_code == 409  # one request at a time

        reqs, sizes = [], []
        page = c.list_qualification_requests(QualificationTypeId=by_hand, MaxResults=2)
        while page["QualificationRequests"]:
            reqs += page["QualificationRequests"]
            sizes.append(page["NumResults"])
            page = c.list_qualification_requests(QualificationTypeId=by_hand, MaxResults=2,
                                                 NextToken=page["NextToken"])
        assert sizes == [2, 1] and "NextToken" not in page
        by_worker = {r["WorkerId"]: r["QualificationRequestId"] for r in reqs}
        ann, ben, cat = (w.worker_id for w in workers)
        c.accept_qualification_request(QualificationRequestId=by_worker[ann], IntegerValue=7)
        c.reject_qualification_request(QualificationRequestId=by_worker[ben], Reason="no")
        assert c.get_qualification_score(QualificationTypeId=by_hand, WorkerId=ann
                                         )["Qualification"]["IntegerValue"] == 7
        with pytest.raises(c.exceptions.RequestError):
            c.get_qualification_score(QualificationTypeId=by_hand, WorkerId=ben)
        with pytest.raises(c.exceptions.RequestError) as err:
            c.accept_qualification_request(QualificationRequestId=by_worker[ben])
        assert "Pending" in err.value.response["Error"]["Message"]
        with pytest.raises(c.exceptions.RequestError):
            c.reject_qualification_request(QualificationRequestId="3NOSUCHREQUEST")
        # No RetryDelayInSeconds: a rejected worker may not ask again.
        assert request_qualification(workers[1], by_hand).status_code == 409
        assert [r["WorkerId"] for r in c.list_qualification_requests()["QualificationRequests"]
                ] == [cat]

        # The test page is a working form; the AnswerKey grades it (1 of 2 right: 50%).
        test_page = workers[0].http.get(
            mk.base_url + f"/worker/sandbox/qualifications/{graded['QualificationTypeId']}").text
        assert "name='q1'" in test_page and "value='a'" in test_page
        r = request_qualification(workers[0], graded["QualificationTypeId"],
                                  {"q1": "a", "q2": "a"})
        assert "granted" in r.text.lower()
        assert c.get_qualification_score(QualificationTypeId=graded["QualificationTypeId"],
                                         WorkerId=ann)["Qualification"]["IntegerValue"] == 50
        assert request_qualification(workers[1], graded["QualificationTypeId"],
                                     {"q1": "a"}).status_code == 400  # q2 is required
        request_qualification(workers[1], graded["QualificationTypeId"], {"q1": "a", "q2": "b"})
        assert c.get_qualification_score(QualificationTypeId=graded["QualificationTypeId"],
                                         WorkerId=ben)["Qualification"]["IntegerValue"] == 100

        assert "granted" in request_qualification(workers[2], auto).text.lower()
        assert c.get_qualification_score(QualificationTypeId=auto, WorkerId=cat
                                         )["Qualification"]["IntegerValue"] == 5

        # A Test without an AnswerKey waits for the requester, who sees the answers.
        c.update_qualification_type(QualificationTypeId=graded["QualificationTypeId"], Test=TEST,
                                    TestDurationInSeconds=600)
        request_qualification(workers[2], graded["QualificationTypeId"], {"q1": "b", "q2": "b"})
        pending = c.list_qualification_requests(
            QualificationTypeId=graded["QualificationTypeId"])["QualificationRequests"]
        assert len(pending) == 1 and pending[0]["Test"] == TEST
        assert "<SelectionIdentifier>b</SelectionIdentifier>" in pending[0]["Answer"]

        with pytest.raises(ClientError) as err:
            c.create_qualification_type(Name="bad", Description="d",
                                        QualificationTypeStatus="Active", Test=TEST,
                                        TestDurationInSeconds=60, AutoGranted=True)
        assert err.value.response["Error"]["Code"] == "ParameterValidationError"
    assert_model_shapes(seen)


def test_delete_qualification_type_and_the_hits_that_use_it(tmp_path):
    seen: dict = {}
    clock = ManualClock()
    with running_marketplace(tmp_path, clock=clock) as mk:
        c = recording(mk.client(), seen)
        qid = c.create_qualification_type(Name="gone soon", Description="d",
                                          QualificationTypeStatus="Active"
                                          )["QualificationType"]["QualificationTypeId"]
        req = [{"QualificationTypeId": qid, "Comparator": "Exists"}]
        using = [make_hit(c, QualificationRequirements=req) for _ in range(3)]
        make_hit(c)  # one without the requirement
        found, page = [], c.list_hits_for_qualification_type(QualificationTypeId=qid,
                                                             MaxResults=2)
        while page["HITs"]:
            found += page["HITs"]
            page = c.list_hits_for_qualification_type(QualificationTypeId=qid, MaxResults=2,
                                                      NextToken=page["NextToken"])
        assert sorted(h["HITId"] for h in found) == sorted(h["HITId"] for h in using)

        w = WorkerClient(mk.base_url)
        w.login("dee")
        request_qualification(w, qid)
        c.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=w.worker_id)
        assert c.delete_qualification_type(QualificationTypeId=qid) is not None
        with pytest.raises(c.exceptions.RequestError) as err:
            c.get_qualification_type(QualificationTypeId=qid)
        assert err.value.response["TurkErrorCode"] == \
            "AWS.MechanicalTurk.QualificationTypeDoesNotExist"
        assert qid not in {q["QualificationTypeId"] for q in c.list_qualification_types(
            MustBeRequestable=False, MustBeOwnedByCaller=True)["QualificationTypes"]}
        with pytest.raises(c.exceptions.RequestError):
            make_hit(c, QualificationRequirements=req)
        with pytest.raises(c.exceptions.RequestError):
            c.create_hit_with_hit_type(HITTypeId=using[0]["HITTypeId"], LifetimeInSeconds=600,
                                       Question=using[0]["Question"])
        assert c.list_qualification_requests()["NumResults"] == 0  # pending ones rejected
        # The worker still holds it for the HITs already made.
        assert w.accept(using[0]["HITId"])
        with pytest.raises(c.exceptions.RequestError) as err:
            c.create_qualification_type(Name="gone soon", Description="d",
                                        QualificationTypeStatus="Active")
        assert "already created a QualificationType with this name" in str(err.value)
        clock.advance(48 * 3600 + 1)
        c.create_qualification_type(Name="gone soon", Description="again",
                                    QualificationTypeStatus="Active")
        rp = c.list_review_policy_results_for_hit(HITId=using[0]["HITId"],
                                                  PolicyLevels=["Assignment", "HIT"],
                                                  RetrieveActions=True, RetrieveResults=True)
        assert rp["HITId"] == using[0]["HITId"] and "AssignmentReviewReport" not in rp
        with pytest.raises(c.exceptions.RequestError):
            c.list_review_policy_results_for_hit(HITId="3NOSUCHHIT")
    assert_model_shapes(seen)


def test_question_form_hit_with_a_file_upload_and_get_file_upload_url(tmp_path):
    seen: dict = {}
    with running_marketplace(tmp_path) as mk:
        c = recording(mk.client(), seen)
        hit = make_hit(c, Question=UPLOAD_FORM)
        w = WorkerClient(mk.base_url)
        w.login("eve")
        aid = w.accept(hit["HITId"])
        frame = w.frame_src(w.work_page(aid).text)
        page = w.http.get(frame if frame.startswith("http") else mk.base_url + frame).text
        assert "type='file' name='photo'" in page and "name='why'" in page
        r = w.http.post(mk.base_url + "/worker/sandbox/mturk/externalSubmit",
                        data={"assignmentId": aid, "why": "because"},
                        files={"photo": ("p.png", b"\x89PNG-bytes")})
        assert r.status_code == 200, r.text[:300]
        answer = c.get_assignment(AssignmentId=aid)["Assignment"]["Answer"]
        assert re.search(r"<QuestionIdentifier>photo</QuestionIdentifier><UploadedFileSizeInBytes>"
                         r"10</UploadedFileSizeInBytes><UploadedFileKey>\w+</UploadedFileKey>",
                         answer)
        assert "<FreeText>because</FreeText>" in answer
        url = c.get_file_upload_url(AssignmentId=aid, QuestionIdentifier="photo")["FileUploadURL"]
        assert url.startswith(mk.base_url)
        assert requests.get(url).content == b"\x89PNG-bytes"
        assert requests.get(url.split("?")[0] + "?token=forged").status_code == 403
        with pytest.raises(c.exceptions.RequestError):
            c.get_file_upload_url(AssignmentId=aid, QuestionIdentifier="why")
    assert_model_shapes(seen)


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


AWS = {"region_name": "us-east-1", "aws_access_key_id": "testing",
       "aws_secret_access_key": "testing"}


def read(sqs, url: str, n: int, timeout: float = 10.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                     WaitTimeSeconds=1).get("Messages", []):
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def test_notifications_reach_sqs_sns_and_an_http_endpoint(tmp_path, moto_endpoint):
    from flask import Flask, request as flask_request
    from study.marketplace.server import serve_in_thread
    aws = dict(AWS, endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", **aws)
    sns = boto3.client("sns", **aws)
    queue = sqs.create_queue(QueueName="mturk-events")["QueueUrl"]
    via_sns = sqs.create_queue(QueueName="mturk-sns")["QueueUrl"]
    topic = sns.create_topic(Name="mturk")["TopicArn"]
    arn = sqs.get_queue_attributes(QueueUrl=via_sns, AttributeNames=["QueueArn"]
                                   )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

    posted: list = []
    hook = Flask("hook")

    @hook.post("/events")
    def events():
        posted.append((dict(flask_request.headers), flask_request.get_data(as_text=True)))
        return ""

    hook_url, stop_hook = serve_in_thread(hook)
    seen: dict = {}
    try:
        with running_marketplace(tmp_path, aws=aws) as mk:
            c = recording(mk.client(), seen)
            spec = {"Destination": queue, "Transport": "SQS", "Version": "2006-05-05",
                    "EventTypes": ["Ping"]}
            c.send_test_event_notification(Notification=spec, TestEventType="Ping")
            (doc,) = read(sqs, queue, 1)
            assert set(doc) == {"Events", "EventDocId", "SourceAccount", "CustomerId",
                                "EventDocVersion"}
            assert doc["EventDocVersion"] == "2006-05-05" and doc["CustomerId"] == mk.key_id
            assert re.fullmatch(r"[0-9a-f]{40}", doc["EventDocId"])
            (event,) = doc["Events"]
            assert event["EventType"] == "Ping"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["EventTimestamp"])

            sns_spec = dict(spec, Destination=topic, Transport="SNS", Version="2014-08-15")
            c.send_test_event_notification(Notification=sns_spec,
                                           TestEventType="AssignmentSubmitted")
            (envelope,) = read(sqs, via_sns, 1)
            inner = json.loads(envelope["Message"])
            assert inner["Events"][0]["EventType"] == "AssignmentSubmitted"
            assert inner["EventDocVersion"] == "2014-08-15" and envelope["Subject"].isdigit()

            c.send_test_event_notification(Notification=dict(spec, Transport="SNS",
                                                             Destination=hook_url + "/events"),
                                           TestEventType="HITReviewable")
            headers, body = posted[-1]
            assert headers["X-Amz-Sns-Message-Type"] == "Notification"
            assert json.loads(json.loads(body)["Message"])["Events"][0]["EventType"] == \
                "HITReviewable"

            # Events of a HIT type as the work happens.
            hit = make_hit(c, MaxAssignments=2)
            with pytest.raises(ClientError) as err:
                c.update_notification_settings(HITTypeId=hit["HITTypeId"], Notification=spec)
            assert "Ping" in err.value.response["Error"]["Message"]
            c.update_notification_settings(HITTypeId=hit["HITTypeId"], Notification=dict(
                spec, EventTypes=["AssignmentAccepted", "AssignmentSubmitted",
                                  "AssignmentApproved"]), Active=True)
            w = WorkerClient(mk.base_url)
            w.login("fred")
            aid = w.accept(hit["HITId"])
            w.submit(aid, {"a": "1"})
            c.approve_assignment(AssignmentId=aid)
            docs = read(sqs, queue, 3)
            got = sorted(d["Events"][0]["EventType"] for d in docs)
            assert got == ["AssignmentAccepted", "AssignmentApproved", "AssignmentSubmitted"]
            for d in docs:
                e = d["Events"][0]
                assert (e["HITId"], e["AssignmentId"], e["HITTypeId"]) == (
                    hit["HITId"], aid, hit["HITTypeId"])
            # Active=False alone switches the notification off.
            c.update_notification_settings(HITTypeId=hit["HITTypeId"], Active=False)
            w2 = WorkerClient(mk.base_url)
            w2.login("gil")
            w2.accept(hit["HITId"])
            assert read(sqs, queue, 1, timeout=2) == []
            with pytest.raises(ClientError) as err:
                c.send_test_event_notification(Notification=dict(spec, Transport="Email",
                                                                 Destination="a@b.c"),
                                               TestEventType="Ping")
            assert err.value.response["Error"]["Code"] == "ParameterValidationError"
            with pytest.raises(c.exceptions.RequestError) as err:
                c.send_test_event_notification(Notification=dict(
                    spec, Destination=moto_endpoint + "/000000000000/no-such-queue"),
                    TestEventType="Ping")
            assert "could not be delivered" in err.value.response["Error"]["Message"]
    finally:
        stop_hook()
    assert_model_shapes(seen)


def assert_model_shapes(seen: dict) -> None:
    problems = []
    for op, responses in seen.items():
        output = MODEL.operation_model(op).output_shape
        for resp in responses:
            problems += [f"{op}{p}" for p in check_shape(output, resp)] if output else []
    assert problems == []


def test_what_time_does_is_notified_too(tmp_path, moto_endpoint):
    aws = dict(AWS, endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", **aws)
    queue = sqs.create_queue(QueueName="mturk-time")["QueueUrl"]
    clock = ManualClock()
    with running_marketplace(tmp_path, clock=clock, aws=aws) as mk:
        c = mk.client()
        hit = make_hit(c, MaxAssignments=1, AutoApprovalDelayInSeconds=3600)
        c.update_notification_settings(HITTypeId=hit["HITTypeId"], Notification={
            "Destination": queue, "Transport": "SQS", "Version": "2014-08-15",
            "EventTypes": ["AssignmentAbandoned", "HITReviewable", "AssignmentApproved",
                           "HITExpired"]})
        w = WorkerClient(mk.base_url)
        w.login("slow")
        late = w.accept(hit["HITId"])
        clock.advance(601)  # past the assignment's 600 s
        c.list_hits()  # any request lets time's changes happen
        w2 = WorkerClient(mk.base_url)
        w2.login("quick")
        done = w2.accept(hit["HITId"])
        w2.submit(done, {"a": "1"})  # the only slot is filled: Reviewable
        clock.advance(3601)  # past the auto-approval delay and the HIT's lifetime
        c.list_hits()
        events = [(d["Events"][0]["EventType"], d["Events"][0].get("AssignmentId"))
                  for d in read(sqs, queue, 4)]
        assert sorted(events) == sorted([("AssignmentAbandoned", late),
                                         ("HITReviewable", None),
                                         ("AssignmentApproved", done), ("HITExpired", None)])
        assert read(sqs, queue, 1, timeout=2) == []  # a full HIT is not Reviewable twice
