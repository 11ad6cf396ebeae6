"""Invitations to the live realm: the links through which real participants arrive, and where
a participant is sent with their completion code when they are done.

An invitation has one shared link (`/worker/live/join/<token>`), for a recruiting platform or a
public post, and any number of personal links, each naming one participant. A personal link
is `/worker/live/join?key=<key>`: the key is a WorkerId made when the link is made, signed with
the marketplace's secret, so it cannot be forged or altered and opens the same identity in any
browser. It travels in the query string, which the shipped proxy configuration keeps out of its
access log. What the shared link may do is the invitation's `shared_link` policy:

- `platform-id` (the default): it makes a new identity only for a visit that carries a recruiting
  platform's participant id (PROLIFIC_PID, ...), one identity per id;
- `closed`: it makes none; only personal links let participants in;
- `open`: anyone who opens it in a fresh browser becomes a new participant.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from itsdangerous import BadSignature, Signer

from study.marketplace.ids import WORKER_ID_RE, new_id

SHARED_LINK_POLICIES = ("platform-id", "closed", "open")
JOIN_PATH = "/worker/live/join"
_KEY_SALT = "marketplace-personal-link"


def create_invite(db_path: str | Path, label: str, completion_code: str | None = None,
                  country: str = "US", hits_approved: int = 1000,
                  completion_url: str | None = None, shared_link: str = "platform-id") -> str:
    """Create an invitation for the live realm and return its shared link's URL path
    (`/worker/live/join/<token>`). A recruiting platform appends its participant id
    (`?PROLIFIC_PID=...` or `?participant=...`). `completion_url`: where a participant is sent
    after each submission, with the completion code in place of `{code}` (or as `cc=`).
    `shared_link`: what the shared link may do (see SHARED_LINK_POLICIES)."""
    from study.marketplace.datastore import Store
    if completion_url is not None and not re.match(r"^https?://[^\s]+$", completion_url):
        raise ValueError(f"the completion URL {completion_url!r} is not an http(s) URL")
    if shared_link not in SHARED_LINK_POLICIES:
        raise ValueError(f"the shared-link policy {shared_link!r} is not one of "
                         f"{', '.join(SHARED_LINK_POLICIES)}")
    token = secrets.token_urlsafe(18)
    code = completion_code or secrets.token_hex(4).upper()
    store = Store(db_path)
    try:
        with store.transaction():
            store.insert_invite(token, label, code, country.upper(), int(hits_approved),
                                time.time(), completion_url, shared_link)
    finally:
        store.close()
    return f"{JOIN_PATH}/{token}"


def create_personal_links(db_path: str | Path, invitation: str, count: int
                          ) -> list[tuple[str, str]]:
    """Make `count` participants of the invitation whose shared link (URL, path or token) is
    `invitation`, each with a personal link: [(WorkerId, URL path)]. The links are not kept
    anywhere; the caller hands them out (`write_personal_links`)."""
    from study.marketplace.datastore import Store
    token = invitation.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    store = Store(db_path)
    try:
        invite = store.invite(token)
        if invite is None:
            raise LookupError(f"there is no invitation {invitation!r} in {db_path}")
        secret = store.meta("cookie_secret")
        made = []
        with store.transaction():
            now = time.time()
            for _ in range(count):
                worker_id = new_id("A", 14)
                store.insert_worker("live", worker_id, {
                    "country": invite["country"], "subdivision": None,
                    "base_approved": invite["base_approved"], "base_rejected": 0, "masters": 0,
                    "participant_id": None, "invite_token": token}, now)
                key = quote(personal_key(secret, worker_id))
                made.append((worker_id, f"{JOIN_PATH}?key={key}"))
    finally:
        store.close()
    return made


def write_personal_links(path: str | Path, base_url: str, links: list[tuple[str, str]]) -> Path:
    """Write the links as CSV (worker_id, link) to a new file that only its owner can read;
    an existing file is never overwritten (FileExistsError)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["worker_id", "link"])
    for worker_id, link in links:
        writer.writerow([worker_id, base_url.rstrip("/") + link])
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(out.getvalue())
    return path


def personal_key(secret: str, worker_id: str) -> str:
    """The key of a personal link: the WorkerId and its signature."""
    return Signer(secret, salt=_KEY_SALT).sign(worker_id).decode()


def worker_of_key(secret: str, key: str) -> str | None:
    """The WorkerId a personal link's key names, or None when it is not one we signed."""
    try:
        worker_id = Signer(secret, salt=_KEY_SALT).unsign(key).decode()
    except (BadSignature, UnicodeError):
        return None
    return worker_id if WORKER_ID_RE.match(worker_id) else None


def completion_link(invite) -> str | None:
    """The invitation's completion URL with its code filled in, or None."""
    url = invite["completion_url"] if invite is not None else None
    if not url:
        return None
    code = quote(invite["completion_code"], safe="")
    if "{code}" in url:
        return url.replace("{code}", code)
    return url + ("&" if "?" in url else "?") + f"cc={code}"
