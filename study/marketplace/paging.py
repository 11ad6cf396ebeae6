"""NextToken for the List operations: an opaque, URL-safe encoding of where the page ended."""

from __future__ import annotations

import base64
import json

from study.marketplace.errors import param_error


def encode(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode(token: str | None) -> list | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) != 2:
            raise ValueError
        return key
    except Exception:
        raise param_error(f"The NextToken '{token[:60]}' is not valid.")


def page(p: dict) -> tuple[int, list | None]:
    """(MaxResults, where the previous page ended) of a List request."""
    return p.get("MaxResults", 10), decode(p.get("NextToken"))
