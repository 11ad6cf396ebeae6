"""NextToken for the List operations: an opaque, URL-safe encoding of where the page ended."""

from __future__ import annotations

import base64
import json
import math

from study.marketplace.errors import param_error


def encode(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode(token: str | None) -> list | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (ValueError, RecursionError):
        key = None
    # A token is only ever [number, text-or-integer]; anything else was not made here.
    if isinstance(key, list) and len(key) == 2 and _number(key[0]) \
            and (_text(key[1]) or _number(key[1])):
        return key
    raise param_error(f"The NextToken '{token[:60]}' is not valid.")


def _text(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")  # a lone surrogate could not be bound to a query
    except UnicodeEncodeError:
        return False
    return True


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and abs(value) < 1 << 53


def answer(items_key: str, items: list, last_key: list | None) -> dict:
    """A List answer as MTurk gave it: a NextToken on every non-empty page, the last one too
    (clients loop `while resp["HITs"]: ...NextToken=resp["NextToken"]`), none on the empty
    page past the end; NumResults is the size of this page. `last_key`: where it ended."""
    out: dict = {}
    if items:
        out["NextToken"] = encode(last_key)
    out["NumResults"] = len(items)
    out[items_key] = items
    return out


def page(p: dict) -> tuple[int, list | None]:
    """(MaxResults, where the previous page ended) of a List request."""
    return p.get("MaxResults", 10), decode(p.get("NextToken"))
