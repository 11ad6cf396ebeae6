"""HIT event notifications: where a HIT type's events go (UpdateNotificationSettings), a test
message (SendTestEventNotification), and the events themselves as the work happens.

A message is MTurk's event document, JSON: {"Events": [{"EventType", "EventTimestamp", "HITId",
"AssignmentId", "HITTypeId"}], "EventDocId", "SourceAccount", "CustomerId", "EventDocVersion"}.
It goes through boto3 to an SQS queue (the body is the document) or an SNS topic (the document
is the Message, the Subject epoch milliseconds), as MTurk sent it; an SNS destination that is an
http(s) URL instead gets the SNS HTTP envelope POSTed to it. The AWS side is configured with
the marketplace's `aws` settings (endpoint_url, region_name, keys) or boto3's defaults.
Events during the work are sent from a background thread: a slow queue never holds up a worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
import uuid

from study.marketplace.errors import RequestError, param_error, stamp

log = logging.getLogger("study.marketplace.notifications")
VERSIONS = ("2006-05-05", "2014-08-15")  # both were accepted in practice
SOURCE_ACCOUNT = "000000000000"


def _check_spec(spec: dict, test: bool) -> None:
    if spec["Transport"] == "Email":
        raise param_error("The Email transport is not supported; use SQS or SNS.")
    if spec["Version"] not in VERSIONS:
        raise param_error(f"Version {spec['Version'][:40]} is not valid; use "
                          f"{' or '.join(VERSIONS)}.")
    if not spec["EventTypes"]:
        raise param_error("EventTypes must list at least one event type.")
    if "Ping" in spec["EventTypes"] and not test:
        raise param_error("The Ping event is only valid for the SendTestEventNotification "
                          "operation.")
    dest = spec["Destination"]
    if spec["Transport"] == "SQS" and not re.match(r"^https?://\S+$", dest):
        raise param_error(f"The Destination {dest[:100]} is not an SQS queue URL.")
    if spec["Transport"] == "SNS" and not re.match(r"^(arn:aws:sns:\S+|https?://\S+)$", dest):
        raise param_error(f"The Destination {dest[:100]} is not an SNS topic ARN.")


def update_notification_settings(market, acct, p):
    store = market.store
    with store.transaction():
        if store.hit_type_reward(acct, p["HITTypeId"]) is None:
            raise RequestError(f"HITType {p['HITTypeId']} does not exist. {stamp(market.now())}",
                               "AWS.MechanicalTurk.HITTypeDoesNotExist")
        old = store.notification_setting(acct, p["HITTypeId"])
        spec = p.get("Notification")
        if spec is not None:
            _check_spec(spec, test=False)
            spec_json = json.dumps(spec)
        elif old is not None:
            spec_json = old["spec_json"]
        else:
            raise param_error(f"HIT type {p['HITTypeId']} has no notification yet: give a "
                              f"Notification.")
        # A new specification is active unless told otherwise; Active alone switches it.
        active = p.get("Active", True if spec is not None else bool(old["active"]))
        store.set_notification(acct, p["HITTypeId"], spec_json, active)
    return {}


def send_test_event_notification(market, acct, p):
    spec = p["Notification"]
    _check_spec(spec, test=True)
    event = {"EventType": p["TestEventType"], "EventTimestamp": _iso(market.now()),
             "HITId": "3TESTHITID0000000000000000000", "HITTypeId": "3TESTHITTYPE00000000000000000"}
    if p["TestEventType"].startswith("Assignment"):
        event["AssignmentId"] = "3TESTASSIGNMENTID00000000000000000000000"
    try:
        deliver(market, spec, document(acct, spec, [event]), market.now())
    except Exception as exc:  # the requester learns why the destination refused it
        raise RequestError(f"The test notification could not be delivered to "
                           f"{spec['Destination'][:200]}: {str(exc)[:300]} "
                           f"{stamp(market.now())}", "AWS.MechanicalTurk.NotificationFailed")
    return {}


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def document(acct, spec: dict, events: list[dict]) -> dict:
    body = json.dumps(events, sort_keys=True)
    return {"Events": events,
            "EventDocId": hashlib.sha1(f"{uuid.uuid4()}{body}".encode()).hexdigest(),
            "SourceAccount": SOURCE_ACCOUNT, "CustomerId": acct.requester,
            "EventDocVersion": spec["Version"]}


def _region(dest: str, default: str) -> str:
    m = re.search(r"arn:aws:sns:([a-z0-9-]+):", dest) or \
        re.search(r"sqs\.([a-z0-9-]+)\.amazonaws\.com", dest)
    return m.group(1) if m else default


def deliver(market, spec: dict, doc: dict, now: float) -> None:
    """Send one event document to the specification's destination (raises on failure)."""
    import boto3
    text = json.dumps(doc)
    dest = spec["Destination"]
    settings = dict(market.aws or {})
    settings.setdefault("region_name", _region(dest, "us-east-1"))
    if spec["Transport"] == "SQS":
        boto3.session.Session().client("sqs", **settings).send_message(
            QueueUrl=dest, MessageBody=text)
    elif dest.startswith("arn:"):
        boto3.session.Session().client("sns", **settings).publish(
            TopicArn=dest, Message=text, Subject=str(int(now * 1000)))
    else:
        import requests
        envelope = {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                    "TopicArn": "", "Subject": str(int(now * 1000)), "Message": text,
                    "Timestamp": _iso(now).replace("Z", ".000Z"), "SignatureVersion": "1"}
        r = requests.post(dest, data=json.dumps(envelope), timeout=10, headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification"})
        r.raise_for_status()


def announce(market, realm: str, hit_id: str, event_type: str,
             assignment_id: str | None = None) -> None:
    """Send the event to the HIT type's destination if it asked for it (after the change was
    committed; failures are logged, never shown to the worker or requester)."""
    from study.marketplace.datastore import Account
    owner = market.store.notification_of_hit(realm, hit_id)
    if owner is None or owner["spec_json"] is None or not owner["active"]:
        return
    acct = Account(realm, owner["requester"])
    spec = json.loads(owner["spec_json"])
    if event_type not in spec["EventTypes"]:
        return
    now = market.now()
    event = {"EventType": event_type, "EventTimestamp": _iso(now), "HITId": hit_id}
    if assignment_id is not None:
        event["AssignmentId"] = assignment_id
    event["HITTypeId"] = owner["hit_type_id"]
    doc = document(acct, spec, [event])

    def send() -> None:
        try:
            deliver(market, spec, doc, now)
        except Exception:
            log.warning("notification %s for HIT %s not delivered to %s", event_type, hit_id,
                        spec["Destination"], exc_info=True)

    threading.Thread(target=send, name="mturk-notification", daemon=True).start()


def announce_if_reviewable(market, realm: str, hit_id: str, expired: bool = False) -> None:
    """HITReviewable, when the HIT has just become Reviewable: its last slot's work came in,
    or (`expired`) it expired with slots still open. A full HIT that then expires was
    Reviewable already."""
    from study.marketplace.hits import hit_dicts
    row = market.store.hit_row(realm, hit_id)
    if row is None:
        return
    d = hit_dicts(market, realm, [row])[0]
    if d["HITStatus"] == "Reviewable" and (d["NumberOfAssignmentsAvailable"] > 0) == expired:
        announce(market, realm, hit_id, "HITReviewable")
