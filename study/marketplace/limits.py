"""Limits checked before any work: the size of a request, the depth and text of its JSON, and the
size of a worker's answers. A request over a limit is refused before its body is read into
memory, before its signature is computed and before anything is stored."""

from __future__ import annotations

import json
import math

# A Requester API body holds at most a 64 KB Question plus short fields; JSON escaping can
# triple non-ASCII text, so 1 MiB leaves room and still bounds what one request may cost.
MAX_REQUEST_BYTES = 1 << 20
# Any one string in a Requester API request (the Question's own cap is 65,535 bytes).
MAX_STRING_CHARS = 65_535
MAX_JSON_DEPTH = 32
# A worker's submission: the whole form, the number of fields and each answer. The task
# page caps its comments box at 1,000 characters; ratings are a few characters each.
MAX_FORM_BYTES = 1 << 20
MAX_ANSWER_FIELDS = 1000
MAX_ANSWER_CHARS = 10_000
# How much of an oversized body is read and dropped so the client sees the refusal on a
# keep-alive connection; beyond this the connection is closed instead.
MAX_DRAIN_BYTES = 64 << 20


class Refused(Exception):
    """Input over a limit or malformed: (error type, message, HTTP status)."""

    def __init__(self, error_type: str, message: str, status: int = 400):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


def read_body(stream, content_length: int | None, limit: int) -> bytes:
    """The body, or Refused(413) without keeping more than `limit` bytes of it in memory."""
    if content_length is not None and content_length > limit:
        drain(stream, content_length)
        raise _too_large(limit)
    body = stream.read(limit + 1)
    if len(body) > limit:
        drain(stream, None)
        raise _too_large(limit)
    return body


def drain(stream, content_length: int | None) -> bool:
    """Read and drop what is left of a body (up to MAX_DRAIN_BYTES); False when it was not
    all read, so the connection must close."""
    if content_length is not None and content_length > MAX_DRAIN_BYTES:
        return False
    left = MAX_DRAIN_BYTES
    while left > 0:
        chunk = stream.read(min(1 << 16, left))
        if not chunk:
            return True
        left -= len(chunk)
    return False


def _too_large(limit: int) -> Refused:
    return Refused("RequestEntityTooLarge",
                   f"The request body is larger than the limit of {limit} bytes.", 413)


def parse_json(body: bytes):
    """The JSON document of a request, checked for depth, text and numbers (raises Refused)."""
    if not body:
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("SerializationException", "The request body is not valid UTF-8.")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Refused("SerializationException", "The request body is not valid JSON.")
    _check_values(value)
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _check_values(value) -> None:
    """Depth, text and numbers of a parsed document, walked without recursion."""
    stack = [(value, "request", 1)]
    while stack:
        v, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Refused("SerializationException",
                          f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(v, dict):
            for k, item in v.items():
                _check_text(k, where)
                stack.append((item, f"{where}.{k[:40]}", depth + 1))
        elif isinstance(v, list):
            stack.extend((item, f"{where}.{i + 1}", depth + 1) for i, item in enumerate(v))
        elif isinstance(v, str):
            _check_text(v, where)
        elif isinstance(v, float) and not math.isfinite(v):
            raise Refused("SerializationException", f"'{where}' is not a finite number.")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 1 << 63:
            raise Refused("SerializationException", f"'{where}' is out of range.")


def _check_text(text: str, where: str) -> None:
    if len(text) > MAX_STRING_CHARS:
        raise Refused("RequestError", f"'{where}' is {len(text)} characters; the limit is "
                                      f"{MAX_STRING_CHARS}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (\ud800) decodes from JSON but can be neither stored nor sent back.
        raise Refused("SerializationException", f"'{where}' holds an invalid character.")


def check_answers(fields: list[tuple[str, str]]) -> None:
    """A worker's submitted fields are within the limits (raises Refused with a 413)."""
    if len(fields) > MAX_ANSWER_FIELDS:
        raise Refused("TooManyAnswers", f"The submission has {len(fields)} fields; the limit "
                                        f"is {MAX_ANSWER_FIELDS}.", 413)
    for name, value in fields:
        if len(name) > 256 or len(value) > MAX_ANSWER_CHARS:
            raise Refused("AnswerTooLong", f"The answer '{name[:40]}' is longer than "
                                           f"{MAX_ANSWER_CHARS} characters.", 413)
