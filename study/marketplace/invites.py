"""Invitations to the live realm: the links through which real participants arrive."""

from __future__ import annotations

import secrets
import time
from pathlib import Path


def create_invite(db_path: str | Path, label: str, completion_code: str | None = None,
                  country: str = "US", hits_approved: int = 1000) -> str:
    """Create an invitation for the live realm and return its URL path
    (`/worker/live/join/<token>`); append `?participant=<id>` for an outside recruiter's id."""
    from study.marketplace.datastore import Store
    token = secrets.token_urlsafe(18)
    code = completion_code or secrets.token_hex(4).upper()
    store = Store(db_path)
    try:
        with store.transaction():
            store.insert_invite(token, label, code, country.upper(), int(hits_approved),
                                time.time())
    finally:
        store.close()
    return f"/worker/live/join/{token}"
