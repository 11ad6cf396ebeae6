"""Invitations to the live realm: the links through which real participants arrive, and where
a participant is sent with their completion code when they are done."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from urllib.parse import quote


def create_invite(db_path: str | Path, label: str, completion_code: str | None = None,
                  country: str = "US", hits_approved: int = 1000,
                  completion_url: str | None = None) -> str:
    """Create an invitation for the live realm and return its URL path
    (`/worker/live/join/<token>`). A recruiting platform appends its participant id
    (`?PROLIFIC_PID=...` or `?participant=...`). `completion_url`: where a participant is sent
    after each submission, with the completion code in place of `{code}` (or as `cc=`)."""
    from study.marketplace.datastore import Store
    if completion_url is not None and not re.match(r"^https?://[^\s]+$", completion_url):
        raise ValueError(f"the completion URL {completion_url!r} is not an http(s) URL")
    token = secrets.token_urlsafe(18)
    code = completion_code or secrets.token_hex(4).upper()
    store = Store(db_path)
    try:
        with store.transaction():
            store.insert_invite(token, label, code, country.upper(), int(hits_approved),
                                time.time(), completion_url)
    finally:
        store.close()
    return f"/worker/live/join/{token}"


def completion_link(invite) -> str | None:
    """The invitation's completion URL with its code filled in, or None."""
    url = invite["completion_url"] if invite is not None else None
    if not url:
        return None
    code = quote(invite["completion_code"], safe="")
    if "{code}" in url:
        return url.replace("{code}", code)
    return url + ("&" if "?" in url else "?") + f"cc={code}"
