"""The Requester API endpoint: JSON 1.1 over POST at /requester/<realm>, as boto3 speaks it.

Each request is authenticated (SigV4), rate-limited, checked against botocore's model of the
operation's input, then answered by study.marketplace.market. Errors are answered as AWS answers
them, so botocore raises its modelled exceptions (client.exceptions.RequestError, ServiceFault)
and retries what it retries (ThrottlingException, 5xx).
"""

from __future__ import annotations

import inspect
import json
import threading
import time
import uuid
from typing import Callable

from flask import Blueprint, Response, current_app, request

from study.marketplace import limits, shapes, sigv4
from study.marketplace.errors import RequestError
from study.marketplace.market import OPERATIONS as ANSWERS
from study.marketplace.market import Market
from study.marketplace.tables import REALMS

TARGET_PREFIX = "MTurkRequesterServiceV20170117."
CONTENT_TYPE = "application/x-amz-json-1.1"

OPERATIONS = tuple(ANSWERS)


class TokenBucket:
    """Requests per second per (requester key, realm), with a burst allowance."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, 2 * rate))
        self._state: dict[tuple, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, operation: str, realm: str, key_id: str = "") -> bool:
        """True when this request must be throttled."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get((key_id, realm), (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[(key_id, realm)] = (tokens, now)
                return True
            self._state[(key_id, realm)] = (tokens - 1.0, now)
            return False


def make_throttle(throttle) -> Callable | None:
    """None: no limit; a number: requests per second; a callable(operation, realm[, key_id]) ->
    bool (True = throttle this request)."""
    if throttle is None or callable(throttle):
        return throttle
    return TokenBucket(float(throttle))


def error_response(error_type: str, message: str, status: int = 400,
                   turk_code: str | None = None) -> Response:
    # MTurk sent the bare type ("RequestError", "ParameterValidationError"), no namespace.
    body = {"__type": error_type, "Message": message}
    if turk_code:
        body["TurkErrorCode"] = turk_code
    resp = Response(json.dumps(body), status=status, content_type=CONTENT_TYPE)
    resp.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    if error_type != "RequestError" and error_type != "ServiceFault":
        resp.headers["x-amzn-ErrorType"] = error_type
    return resp


def _market() -> Market:
    return current_app.extensions["marketplace"]


def _call_throttle(throttle, op: str, realm: str, key_id: str) -> bool:
    try:
        takes_key = len(inspect.signature(throttle).parameters) >= 3
    except (TypeError, ValueError):
        takes_key = True
    return bool(throttle(op, realm, key_id) if takes_key else throttle(op, realm))


def handle(realm: str) -> Response:
    market = _market()
    try:
        # Before the signature: an unsigned request must not make the server hold its body.
        body = limits.read_body(request.stream, request.content_length, limits.MAX_REQUEST_BYTES)
    except limits.Refused as exc:
        resp = error_response(exc.error_type, exc.message, exc.status)
        resp.headers["Connection"] = "close"
        return resp
    try:
        key_id = sigv4.verify(request.method, request.script_root + request.path,
                              request.query_string.decode("latin-1"), request.headers, body,
                              market.keys)
    except sigv4.AuthError as exc:
        return error_response(exc.code, exc.message, exc.status)

    target = request.headers.get("X-Amz-Target", "")
    if not target.startswith(TARGET_PREFIX):
        return error_response("UnknownOperationException",
                              f"Unknown target '{target[:100]}': expected "
                              f"{TARGET_PREFIX}<Operation>.")
    op = target[len(TARGET_PREFIX):]
    if op not in OPERATIONS:
        return error_response("UnknownOperationException", f"Unknown operation {op[:100]}.")

    throttle = market.throttle
    if throttle is not None and _call_throttle(throttle, op, realm, key_id):
        return error_response("ThrottlingException", "Rate exceeded", 400)

    fault = market.faults(op, realm) if market.faults is not None else None
    if fault == "throttle":
        return error_response("ThrottlingException", "Rate exceeded", 400)
    if fault == "fault":
        return error_response("ServiceFault", "Amazon Mechanical Turk is temporarily unable to "
                              "process your request. Try your call again.", 500,
                              "AWS.MechanicalTurk.ServiceFault")

    try:
        params = limits.parse_json(body)
    except limits.Refused as exc:
        turk_code = "AWS.MechanicalTurk.ParameterValidationError" \
            if exc.error_type == "RequestError" else None
        return error_response(exc.error_type, exc.message, exc.status, turk_code)
    try:
        shapes.validate(op, params)
    except shapes.ValidationProblem as exc:
        # What breaks the model (a null, a pattern, a length) MTurk answered as AWS's
        # ValidationException with Coral's text, e.g. "Value null at 'requesterFeedback'".
        return error_response("ValidationException", str(exc), 400)
    try:
        market.sweep(realm)
        result = market.call(op, realm, key_id, params or {})
    except RequestError as exc:
        return error_response(exc.error_type, exc.message, exc.status, exc.turk_code)
    except Exception:
        current_app.logger.exception("marketplace: %s failed", op)
        return error_response("ServiceFault", "Amazon Mechanical Turk is temporarily unable to "
                              "process your request. Try your call again.", 500,
                              "AWS.MechanicalTurk.ServiceFault")
    if fault == "fault-after":
        # The work is done but the answer is lost: what a client sees when a connection drops.
        return error_response("ServiceFault", "Amazon Mechanical Turk is temporarily unable to "
                              "process your request. Try your call again.", 500,
                              "AWS.MechanicalTurk.ServiceFault")
    if op == "GetFileUploadURL":  # the file is served by this server, wherever it is
        result["FileUploadURL"] = request.host_url.rstrip("/") + request.script_root + \
            result["FileUploadURL"]
    resp = Response(json.dumps(result), status=200, content_type=CONTENT_TYPE)
    resp.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return resp


def make_blueprint() -> Blueprint:
    bp = Blueprint("marketplace_requester", __name__)

    @bp.route("/requester/<realm>/", methods=["POST"], strict_slashes=False)
    def requester(realm: str):
        if realm not in REALMS:
            return error_response("UnknownOperationException",
                                  f"Unknown realm '{realm[:40]}': use sandbox or live.", 404)
        return handle(realm)

    @bp.route("/", methods=["POST"])
    def root():
        # An endpoint_url without its realm: a client reads AWS's error shape, not a page.
        limits.drain(request.stream, request.content_length)
        base = request.host_url.rstrip("/") + request.script_root
        return error_response("UnknownOperationException",
                              f"There is no Requester API at '/'. Use the endpoint "
                              f"{base}/requester/sandbox or {base}/requester/live.")

    return bp
