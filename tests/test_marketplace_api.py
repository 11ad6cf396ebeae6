"""The Requester API through a real boto3 client over real HTTP: every supported operation, every
response checked against botocore's output shapes, validation and AWS-style errors."""

from __future__ import annotations

import datetime as dt
import re
import time

import botocore.session
import pytest
from botocore.exceptions import ClientError

from study.marketplace.api import OPERATIONS
from study.marketplace.testing import WorkerClient, running_marketplace

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
EXT_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
PAGE = ('<!DOCTYPE html><html><body><form id="rating-form" method="post">'
        '<input type="hidden" name="assignmentId"></form></body></html>')
HTML_Q = f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{PAGE}]]></HTMLContent><FrameHeight>600</FrameHeight></HTMLQuestion>'
EXT_Q = f'<ExternalQuestion xmlns="{EXT_NS}"><ExternalURL>https://example.org/task?x=1</ExternalURL><FrameHeight>0</FrameHeight></ExternalQuestion>'

MODEL = botocore.session.get_session().get_service_model("mturk")
COMPAT_OPERATIONS = ("DeleteQualificationType", "ListHITsForQualificationType",
                     "ListQualificationRequests", "AcceptQualificationRequest",
                     "RejectQualificationRequest", "ListReviewPolicyResultsForHIT",
                     "GetFileUploadURL", "UpdateNotificationSettings",
                     "SendTestEventNotification")


def check_shape(shape, value, path="") -> list[str]:
    """Problems of `value` (as botocore parsed it) against an output shape."""
    problems: list[str] = []
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected a structure, got {type(value).__name__}"]
        for name in shape.required_members:
            if name not in value:
                problems.append(f"{path}.{name}: required member missing")
        for name, v in value.items():
            if name == "ResponseMetadata" and not path:
                continue
            if name not in shape.members:
                problems.append(f"{path}.{name}: not in the model")
                continue
            problems += check_shape(shape.members[name], v, f"{path}.{name}")
    elif t == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        for i, item in enumerate(value):
            problems += check_shape(shape.member, item, f"{path}[{i}]")
    elif t == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {type(value).__name__}"]
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in enum {shape.enum}")
        meta = shape.metadata
        if "pattern" in meta and not re.search(meta["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
        if "min" in meta and len(value) < meta["min"]:
            problems.append(f"{path}: shorter than {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: longer than {meta['max']}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
    elif t == "timestamp":
        if not isinstance(value, dt.datetime):
            problems.append(f"{path}: expected a timestamp, got {value!r}")
    return problems


@pytest.fixture(scope="module")
def mk(tmp_path_factory):
    with running_marketplace(tmp_path_factory.mktemp("mk")) as m:
        yield m


@pytest.fixture(scope="module")
def recorded():
    return {}


@pytest.fixture(scope="module")
def client(mk, recorded):
    c = mk.client("sandbox")

    def record(http_response, parsed, model, **kwargs):
        if http_response.status_code == 200:
            recorded.setdefault(model.name, []).append(parsed)

    c.meta.events.register("after-call.mturk", record)
    return c


def hit_kwargs(**over):
    kw = dict(Title="Rate images", Description="Compare two photos", Reward="0.50",
              LifetimeInSeconds=3600, AssignmentDurationInSeconds=600, MaxAssignments=3,
              Question=HTML_Q, Keywords="images, rating")
    kw.update(over)
    return kw


def test_every_operation_and_every_response_matches_the_model(mk, client, recorded):
    c = client
    bal = c.get_account_balance()
    assert bal["AvailableBalance"] == "10000.00"

    qt = c.create_qualification_type(Name="study cap", Description="HITs done in this study",
                                     QualificationTypeStatus="Active", Keywords="cap")
    qid = qt["QualificationType"]["QualificationTypeId"]
    assert c.get_qualification_type(QualificationTypeId=qid)["QualificationType"]["Name"] == "study cap"
    upd = c.update_qualification_type(QualificationTypeId=qid, Description="changed")
    assert upd["QualificationType"]["Description"] == "changed"
    owned = c.list_qualification_types(MustBeRequestable=False, MustBeOwnedByCaller=True)
    assert [q["QualificationTypeId"] for q in owned["QualificationTypes"]] == [qid]
    everything = c.list_qualification_types(MustBeRequestable=False, MustBeOwnedByCaller=False,
                                            MaxResults=100)
    ids = {q["QualificationTypeId"] for q in everything["QualificationTypes"]}
    assert {"000000000000000000L0", "00000000000000000040", "00000000000000000071",
            "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", qid} <= ids
    assert c.get_qualification_type(
        QualificationTypeId="00000000000000000071")["QualificationType"]["Name"] == "Worker_Locale"

    reqs = [
        {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [95]},
        {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
         "LocaleValues": [{"Country": "US"}, {"Country": "GB"}]},
        {"QualificationTypeId": qid, "Comparator": "DoesNotExist", "ActionsGuarded": "Accept"},
    ]
    ht = c.create_hit_type(Title="Rate images", Description="Compare two photos", Reward="0.40",
                           AssignmentDurationInSeconds=600, AutoApprovalDelayInSeconds=3600,
                           QualificationRequirements=reqs, Keywords="images")
    type_id = ht["HITTypeId"]
    again = c.create_hit_type(Title="Rate images", Description="Compare two photos", Reward="0.40",
                              AssignmentDurationInSeconds=600, AutoApprovalDelayInSeconds=3600,
                              QualificationRequirements=reqs, Keywords="images")
    assert again["HITTypeId"] == type_id  # identical properties, same HIT type

    h1 = c.create_hit_with_hit_type(HITTypeId=type_id, MaxAssignments=2, LifetimeInSeconds=3600,
                                    Question=HTML_Q, RequesterAnnotation="batch 1",
                                    UniqueRequestToken="study-hit-1")["HIT"]
    assert h1["HITStatus"] == "Assignable" and h1["QualificationRequirements"] == reqs
    assert h1["Reward"] == "0.40" and h1["RequesterAnnotation"] == "batch 1"
    h2 = c.create_hit(**hit_kwargs(Question=EXT_Q, MaxAssignments=1))["HIT"]
    h3 = c.create_hit(**hit_kwargs(MaxAssignments=5))["HIT"]
    assert c.get_hit(HITId=h1["HITId"])["HIT"]["HITTypeId"] == type_id

    # Two workers do h1 over HTTP; one does h3.
    done = []
    for name in ("alice", "bob"):
        w = WorkerClient(mk.base_url)
        wid = w.login(name)
        aid = w.accept(h1["HITId"])
        assert w.submit(aid, {"rating_1": "2", "seconds_1": "3.1"}).status_code == 200
        done.append((wid, aid))
    w3 = WorkerClient(mk.base_url)
    w3.login("carol")
    a3 = w3.accept(h3["HITId"])
    w3.submit(a3, {"rating_1": "4"})

    la = c.list_assignments_for_hit(HITId=h1["HITId"], MaxResults=1)
    assert la["NumResults"] == 1 and "NextToken" in la
    la2 = c.list_assignments_for_hit(HITId=h1["HITId"], MaxResults=1, NextToken=la["NextToken"])
    got = {la["Assignments"][0]["AssignmentId"], la2["Assignments"][0]["AssignmentId"]}
    assert got == {aid for _, aid in done}
    # As MTurk: the last non-empty page has a NextToken too; the page after it is empty.
    last = c.list_assignments_for_hit(HITId=h1["HITId"], MaxResults=2, NextToken=la["NextToken"])
    assert last["NumResults"] == 1 and "NextToken" in last
    end = c.list_assignments_for_hit(HITId=h1["HITId"], MaxResults=2, NextToken=last["NextToken"])
    assert end["NumResults"] == 0 and end["Assignments"] == [] and "NextToken" not in end

    (alice, a_aid), (bob, b_aid) = done
    ga = c.get_assignment(AssignmentId=a_aid)
    assert ga["Assignment"]["WorkerId"] == alice and ga["HIT"]["HITId"] == h1["HITId"]
    assert "<FreeText>2</FreeText>" in ga["Assignment"]["Answer"]

    c.approve_assignment(AssignmentId=a_aid, RequesterFeedback="thanks")
    c.reject_assignment(AssignmentId=b_aid, RequesterFeedback="gold items failed")
    c.approve_assignment(AssignmentId=b_aid, OverrideRejection=True)
    assert c.get_assignment(AssignmentId=b_aid)["Assignment"]["AssignmentStatus"] == "Approved"
    c.send_bonus(WorkerId=alice, BonusAmount="0.25", AssignmentId=a_aid, Reason="careful work",
                 UniqueRequestToken="bonus-1")
    bonus_by_hit = c.list_bonus_payments(HITId=h1["HITId"])
    assert [b["BonusAmount"] for b in bonus_by_hit["BonusPayments"]] == ["0.25"]
    assert c.list_bonus_payments(AssignmentId=a_aid)["NumResults"] == 1
    # 2 approvals of 0.40 + 20% fee, a 0.25 bonus + 20% fee (0.05).
    assert c.get_account_balance()["AvailableBalance"] == f"{10000 - 2 * 0.48 - 0.30:.2f}"

    c.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=alice, IntegerValue=3,
                                          SendNotification=False)
    score = c.get_qualification_score(QualificationTypeId=qid, WorkerId=alice)["Qualification"]
    assert score["IntegerValue"] == 3 and score["Status"] == "Granted"
    lw = c.list_workers_with_qualification_type(QualificationTypeId=qid)
    assert [q["WorkerId"] for q in lw["Qualifications"]] == [alice]
    c.disassociate_qualification_from_worker(QualificationTypeId=qid, WorkerId=alice,
                                             Reason="reset")
    assert c.list_workers_with_qualification_type(QualificationTypeId=qid)["NumResults"] == 0

    c.create_worker_block(WorkerId=bob, Reason="spam")
    assert c.list_worker_blocks()["WorkerBlocks"] == [{"WorkerId": bob, "Reason": "spam"}]
    c.delete_worker_block(WorkerId=bob, Reason="appeal")
    assert c.list_worker_blocks()["NumResults"] == 0

    nw = c.notify_workers(Subject="Thanks", MessageText="More HITs soon", WorkerIds=[alice, "ANOBODY1"])
    assert [f["WorkerId"] for f in nw["NotifyWorkersFailureStatuses"]] == ["ANOBODY1"]

    c.create_additional_assignments_for_hit(HITId=h1["HITId"], NumberOfAdditionalAssignments=2,
                                            UniqueRequestToken="extend-1")
    assert c.get_hit(HITId=h1["HITId"])["HIT"]["MaxAssignments"] == 4

    c.update_hit_type_of_hit(HITId=h2["HITId"], HITTypeId=type_id)
    assert c.get_hit(HITId=h2["HITId"])["HIT"]["Reward"] == "0.40"

    # Expire h3 now: its one submitted assignment makes it Reviewable.
    c.update_expiration_for_hit(HITId=h3["HITId"], ExpireAt=dt.datetime(2015, 1, 1))
    rev = c.list_reviewable_hits(HITTypeId=h3["HITTypeId"])
    assert [h["HITId"] for h in rev["HITs"]] == [h3["HITId"]]
    c.update_hit_review_status(HITId=h3["HITId"], Revert=False)
    assert c.get_hit(HITId=h3["HITId"])["HIT"]["HITStatus"] == "Reviewing"
    assert c.list_reviewable_hits(Status="Reviewing")["NumResults"] == 1
    c.update_hit_review_status(HITId=h3["HITId"], Revert=True)
    assert c.get_hit(HITId=h3["HITId"])["HIT"]["HITStatus"] == "Reviewable"
    with pytest.raises(c.exceptions.RequestError):
        c.delete_hit(HITId=h3["HITId"])  # its assignment is still Submitted
    c.approve_assignment(AssignmentId=a3)
    c.delete_hit(HITId=h3["HITId"])
    assert c.get_hit(HITId=h3["HITId"])["HIT"]["HITStatus"] == "Disposed"

    page1 = c.list_hits(MaxResults=1)
    page2 = c.list_hits(MaxResults=1, NextToken=page1["NextToken"])
    assert page1["HITs"][0]["HITId"] != page2["HITs"][0]["HITId"]
    every = c.list_hits(MaxResults=100)
    assert {h["HITId"] for h in every["HITs"]} == {h1["HITId"], h2["HITId"]}  # h3 deleted

    # The operations of qualification requests, disposal, review results, uploads and
    # notifications are driven through a real client in tests/test_compat_operations.py.
    assert set(recorded) == set(OPERATIONS) - set(COMPAT_OPERATIONS), \
        set(OPERATIONS) - set(COMPAT_OPERATIONS) - set(recorded)
    problems = []
    for op, responses in recorded.items():
        output = MODEL.operation_model(op).output_shape
        for resp in responses:
            problems += [f"{op}{p}" for p in check_shape(output, resp)]
    assert problems == []


def test_timestamps_are_epoch_numbers_on_the_wire(mk):
    import json
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    c = mk.client()
    hit = c.create_hit(**hit_kwargs())["HIT"]
    body = json.dumps({"HITId": hit["HITId"]})
    req = AWSRequest("POST", mk.endpoint("sandbox") + "/", data=body, headers={
        "X-Amz-Target": "MTurkRequesterServiceV20170117.GetHIT",
        "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(mk.key_id, mk.secret), "mturk-requester", "us-east-1").add_auth(req)
    raw = requests.post(req.url, data=body, headers=dict(req.headers.items())).json()
    assert isinstance(raw["HIT"]["CreationTime"], (int, float))
    assert abs(raw["HIT"]["CreationTime"] - time.time()) < 60


def test_unique_request_token_names_the_existing_hit(mk):
    c = mk.client()
    first = c.create_hit(**hit_kwargs(UniqueRequestToken="tok-A"))["HIT"]
    with pytest.raises(c.exceptions.RequestError) as err:
        c.create_hit(**hit_kwargs(UniqueRequestToken="tok-A"))
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.HitAlreadyExists"
    assert first["HITId"] in err.value.response["Error"]["Message"]
    with pytest.raises(c.exceptions.RequestError):
        c.create_hit_with_hit_type(HITTypeId=first["HITTypeId"], LifetimeInSeconds=60,
                                   Question=HTML_Q, UniqueRequestToken="tok-A")
    hits = c.list_hits(MaxResults=100)["HITs"]
    assert sum(h["HITId"] == first["HITId"] for h in hits) == 1


def test_bonus_and_extension_tokens_are_idempotent(mk):
    c = mk.client()
    hit = c.create_hit(**hit_kwargs(MaxAssignments=2))["HIT"]
    w = WorkerClient(mk.base_url)
    wid = w.login("dave")
    aid = w.accept(hit["HITId"])
    w.submit(aid, {"rating_1": "1"})
    before = c.get_account_balance()["AvailableBalance"]
    c.send_bonus(WorkerId=wid, BonusAmount="1.00", AssignmentId=aid, Reason="r",
                 UniqueRequestToken="b-dave")
    with pytest.raises(c.exceptions.RequestError) as err:
        c.send_bonus(WorkerId=wid, BonusAmount="1.00", AssignmentId=aid, Reason="r",
                     UniqueRequestToken="b-dave")
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.DuplicateRequest"
    assert c.list_bonus_payments(AssignmentId=aid)["NumResults"] == 1
    assert float(before) - float(c.get_account_balance()["AvailableBalance"]) == pytest.approx(1.20)
    c.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=1,
                                            UniqueRequestToken="x-dave")
    with pytest.raises(c.exceptions.RequestError):
        c.create_additional_assignments_for_hit(HITId=hit["HITId"],
                                                NumberOfAdditionalAssignments=1,
                                                UniqueRequestToken="x-dave")
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["MaxAssignments"] == 3


def test_approve_twice_and_the_ten_assignment_rule(mk):
    c = mk.client()
    hit = c.create_hit(**hit_kwargs(MaxAssignments=9))["HIT"]
    w = WorkerClient(mk.base_url)
    w.login("erin")
    aid = w.accept(hit["HITId"])
    w.submit(aid, {"rating_1": "0"})
    c.approve_assignment(AssignmentId=aid)
    with pytest.raises(c.exceptions.RequestError) as err:
        c.approve_assignment(AssignmentId=aid)
    assert "This operation can be called with a status of: Submitted" in str(err.value)
    with pytest.raises(c.exceptions.RequestError) as err:
        c.reject_assignment(AssignmentId=aid, RequesterFeedback="no")
    assert "status of: Submitted" in str(err.value)
    with pytest.raises(c.exceptions.RequestError) as err:
        c.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=1)
    assert "fewer than 10" in str(err.value)
    big = c.create_hit(**hit_kwargs(MaxAssignments=10))["HIT"]
    c.create_additional_assignments_for_hit(HITId=big["HITId"], NumberOfAdditionalAssignments=5)
    assert c.get_hit(HITId=big["HITId"])["HIT"]["MaxAssignments"] == 15


def test_fees_are_higher_for_hits_with_ten_or_more_assignments(mk):
    c = mk.client()
    big = c.create_hit(**hit_kwargs(MaxAssignments=10, Reward="1.00"))["HIT"]
    w = WorkerClient(mk.base_url)
    w.login("fay")
    aid = w.accept(big["HITId"])
    w.submit(aid, {"rating_1": "0"})
    before = float(c.get_account_balance()["AvailableBalance"])
    assert c.get_account_balance()["OnHoldBalance"] != "0.00"
    c.approve_assignment(AssignmentId=aid)
    assert before - float(c.get_account_balance()["AvailableBalance"]) == pytest.approx(1.40)


# (override, words of the message, the error MTurk answered: ValidationException for what
# breaks botocore's model, ParameterValidationError for MTurk's own checks, RequestError for a
# missing entity.)
VE, PVE, RE = "ValidationException", "ParameterValidationError", "RequestError"
BAD = [
    (dict(Reward="0.5x"), "regular expression", VE),
    (dict(Reward="1.234"), "regular expression", VE),
    (dict(Title="x" * 129), "128", PVE),
    (dict(LifetimeInSeconds=29), "between 30", PVE),
    (dict(AssignmentDurationInSeconds=365 * 86400 + 1), "between 30", PVE),
    (dict(AutoApprovalDelayInSeconds=31 * 86400), "AutoApprovalDelayInSeconds", PVE),
    (dict(Question="<HTMLQuestion><HTMLContent>x</HTMLContent></HTMLQuestion>"), "namespace", PVE),
    (dict(Question=f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent>'), "well-formed", PVE),
    (dict(Question=f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{"x" * 66000}]]>'
                   f'</HTMLContent><FrameHeight>1</FrameHeight></HTMLQuestion>'), "65535", RE),
    (dict(Question=f'<ExternalQuestion xmlns="{EXT_NS}"><ExternalURL>javascript:alert(1)'
                   f'</ExternalURL><FrameHeight>0</FrameHeight></ExternalQuestion>'), "http", PVE),
    (dict(QualificationRequirements=[{"QualificationTypeId": "00000000000000000040",
                                      "Comparator": "GreaterThan", "IntegerValues": [i]}
                                     for i in range(11)]), "at most 10", PVE),
    (dict(QualificationRequirements=[{"QualificationTypeId": "00000000000000000040",
                                      "Comparator": "Between", "IntegerValues": [1]}]), "enum", VE),
    (dict(QualificationRequirements=[{"QualificationTypeId": "3NOSUCHQUALIFICATION",
                                      "Comparator": "Exists"}]), "does not exist", RE),
    (dict(QualificationRequirements=[{"QualificationTypeId": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH",
                                      "Comparator": "Exists"}]), "other realm", PVE),
    (dict(MaxAssignments=0), "MaxAssignments", PVE),
]


@pytest.mark.parametrize("override,needle,code", BAD, ids=[str(i) for i in range(len(BAD))])
def test_invalid_create_hit_is_refused_with_mturks_error(mk, override, needle, code):
    c = mk.client(retries={"max_attempts": 1})
    with pytest.raises(ClientError) as err:
        c.create_hit(**hit_kwargs(**override))
    assert err.value.response["Error"]["Code"] == code
    assert needle in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_max_results_above_100_and_bad_tokens_are_refused(mk):
    c = mk.client()
    with pytest.raises(ClientError) as err:
        c.list_hits(MaxResults=101)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 100" in str(err.value)
    with pytest.raises(ClientError) as err:
        c.list_hits(NextToken="not-a-token")
    assert err.value.response["Error"]["Code"] == "ParameterValidationError"
    with pytest.raises(c.exceptions.RequestError) as err:
        c.get_hit(HITId="3DOESNOTEXIST")
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist"


def test_every_operation_of_botocores_model_is_answered():
    assert sorted(OPERATIONS) == sorted(MODEL.operation_names)
    assert len(OPERATIONS) == 39


def test_live_realm_is_separate_and_starts_without_funds(mk):
    live = mk.client("live")
    assert live.get_account_balance()["AvailableBalance"] == "0.00"
    with pytest.raises(live.exceptions.RequestError) as err:
        live.create_hit(**hit_kwargs())
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.InsufficientFunds"
    assert live.list_hits()["NumResults"] == 0
    assert mk.client("sandbox").list_hits()["NumResults"] > 0
