"""Defensive parsing of QuestionFormAnswers XML.

An answer comes from a browser we do not control: fields may be missing, unknown, repeated,
out of range, non-numeric or hostile. Parsing never raises; every rating comes back with
`valid` and, when invalid, the reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

MAX_XML_BYTES = 1 << 20
MAX_SECONDS = 24 * 3600.0
_FIELD = re.compile(r"^(rating|seconds|view)_(\d{1,4})$")
MAX_VIEW_CHARS = 400
MAX_ZOOM = 64.0
MAX_FLIPS = 100000
MAX_SCREEN = 100000
KNOWN_FIELDS = {"comments", "assignmentId", "hitId", "workerId", "turkSubmitTo"}


@dataclass
class ItemAnswer:
    position: int
    score: int | None
    seconds: float | None
    valid: bool
    reason: str = ""
    # How the item was looked at (see parse_view), None when the page sent no readable record.
    view: dict | None = None


@dataclass
class ParsedAnswer:
    items: dict[int, ItemAnswer]
    comments: str = ""
    problems: list[str] = field(default_factory=list)  # about the assignment as a whole


def shown(value: str, limit: int = 40) -> str:
    """A value quoted safely for a reason text: repr, truncated."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_fields(xml: str | bytes | None) -> tuple[list[tuple[str, str]], list[str]]:
    """(QuestionIdentifier, value) pairs in document order, and problems met reading them."""
    if xml is None or (isinstance(xml, (str, bytes)) and not xml.strip()):
        return [], ["empty answer"]
    raw = xml.encode("utf-8", "replace") if isinstance(xml, str) else xml
    if len(raw) > MAX_XML_BYTES:
        return [], [f"answer too large ({len(raw)} bytes)"]
    try:
        # No DTDs: entity expansion is the classic XML bomb, and answers never need one.
        root = safe_xml.fromstring(raw, forbid_dtd=True)
    except DefusedXmlException:
        return [], ["answer XML declares a DTD or entities"]
    except Exception as exc:  # noqa: BLE001 - ParseError, unknown encodings, bad bytes, ...
        return [], [f"answer is not well-formed XML ({type(exc).__name__}: "
                    f"{str(exc)[:120]})"]
    if _local(root.tag) != "QuestionFormAnswers":
        return [], [f"answer root element is {shown(_local(root.tag))}, "
                    "not QuestionFormAnswers"]
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for answer in root:
        if _local(answer.tag) != "Answer":
            problems.append(f"unexpected element {shown(_local(answer.tag))}")
            continue
        qid, value = None, None
        for child in answer:
            name = _local(child.tag)
            if name == "QuestionIdentifier":
                qid = (child.text or "").strip()
            elif name in ("FreeText", "SelectionIdentifier"):
                value = child.text or ""
        if not qid:
            problems.append("an answer without a QuestionIdentifier")
            continue
        pairs.append((qid, "" if value is None else value))
    return pairs, problems


def parse_score(value: str, scale) -> tuple[int | None, str]:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d{1,6}", text):
        return None, f"rating {shown(value)} is not a whole number"
    score = int(text)
    if not scale.low <= score <= scale.high:
        return None, f"rating {score} is outside {scale.spec}"
    return score, ""


def parse_seconds(value: str) -> float | None:
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        return None
    return seconds


def _number(value, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0 <= value <= hi else None


def parse_view(value: str) -> dict | None:
    """The page's viewing record of one item, `{"s": seconds on screen, "z": largest zoom in
    screen pixels per image pixel (1 = 1:1), "f": flips between the photos, "w", "h": window
    size in CSS pixels, "r": devicePixelRatio}`, as {"seconds", "max_zoom", "flips",
    "viewport": [w, h], "pixel_ratio"}; None when it is missing, too long or malformed.
    A number out of range is dropped (None), the rest kept."""
    if not value or len(value) > MAX_VIEW_CHARS:
        return None
    try:
        raw = json.loads(value)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    flips = _number(raw.get("f"), MAX_FLIPS)
    w, h = _number(raw.get("w"), MAX_SCREEN), _number(raw.get("h"), MAX_SCREEN)
    return {"seconds": _number(raw.get("s"), MAX_SECONDS),
            "max_zoom": _number(raw.get("z"), MAX_ZOOM),
            "flips": None if flips is None else int(flips),
            "viewport": None if w is None or h is None else [int(w), int(h)],
            "pixel_ratio": _number(raw.get("r"), 16.0)}


def parse_answers(xml: str | bytes | None, positions: list[int], scale) -> ParsedAnswer:
    """The ratings on `scale` for the HIT positions `positions` found in one assignment's
    answer."""
    pairs, problems = read_fields(xml)
    readable = not problems or bool(pairs)
    values: dict[tuple[str, int], list[str]] = {}
    comments: list[str] = []
    expected = set(positions)
    for qid, value in pairs:
        m = _FIELD.match(qid)
        if m and int(m.group(2)) in expected:
            values.setdefault((m.group(1), int(m.group(2))), []).append(value)
        elif qid == "comments":
            comments.append(value)
        elif qid not in KNOWN_FIELDS:
            problems.append(f"unknown field {shown(qid)}")
    items: dict[int, ItemAnswer] = {}
    for p in positions:
        ratings = values.get(("rating", p), [])
        secs = values.get(("seconds", p), [])
        seconds = parse_seconds(secs[0]) if len(secs) == 1 else None
        views = values.get(("view", p), [])
        view = parse_view(views[0]) if len(views) == 1 else None
        if not readable:
            items[p] = ItemAnswer(p, None, None, False, problems[0])
        elif not ratings:
            items[p] = ItemAnswer(p, None, seconds, False, f"rating_{p} missing")
        elif len(ratings) > 1:
            items[p] = ItemAnswer(p, None, seconds, False,
                                  f"rating_{p} given {len(ratings)} times")
        else:
            score, why = parse_score(ratings[0], scale)
            items[p] = ItemAnswer(p, score, seconds, score is not None, why)
        items[p].view = view
    text = "\n".join(comments)
    return ParsedAnswer(items=items, comments=text[:2000], problems=problems)
