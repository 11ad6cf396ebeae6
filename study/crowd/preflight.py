"""Before any HIT is created: can a worker's browser load what the HITs will show?

Every image (and, for ExternalQuestion HITs, one task page) is fetched through the public
address the HITs will carry. A base URL that points at another study's service, a service that is
not running, or a bucket that refuses reads is found here, before money is committed.

In S3 mode every appearance is an object of its own, so each is fetched. The service makes every
appearance of an image from one hosted file and the study's key, so there one appearance of each
image answers for all of its appearances. A few threads fetch at once, each over one kept-alive
connection."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from study.errors import StudyError

TIMEOUT_S = 5.0
SHOWN_FAILURES = 8
THREADS = 8


def _fetch(http, url: str, want: str) -> str | None:
    """Why `url` cannot be shown, or None when it answers with the wanted kind of content."""
    import requests

    try:
        resp = http.get(url, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        return f"{url}: no answer ({type(exc).__name__})"
    if resp.status_code != 200:
        return f"{url}: HTTP {resp.status_code}"
    kind = resp.headers.get("Content-Type", "")
    if not kind.startswith(want) or not resp.content:
        return f"{url}: answered {kind or 'no content type'}, not {want}"
    return None


def preflight(study, conn: sqlite3.Connection, hosting, hit_indexes: list[int]) -> int:
    """Fetch every image of the HITs about to be created (and one task page); raise a
    StudyError naming the failures. Returns the number of URLs checked."""
    import requests

    urls = _image_urls(conn, hosting, hit_indexes)
    if study.settings.hit.question == "external" and hit_indexes:
        from study.crowd.pages import hit_key, study_id
        base = study.settings.hosting.base_url.rstrip("/")
        urls[f"{base}/tasks/{hit_key(study_id(conn), hit_indexes[0])}"] = "text/html"
    local = threading.local()
    sessions: list = []
    lock = threading.Lock()

    def fetch(url_want) -> str | None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = requests.Session()
            with lock:
                sessions.append(http)
        return _fetch(http, *url_want)

    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            failures = [f for f in pool.map(fetch, urls.items()) if f]
    finally:
        for http in sessions:
            http.close()
    if failures:
        shown = failures[:SHOWN_FAILURES]
        more = len(failures) - len(shown)
        raise StudyError(
            f"{len(failures)} of {len(urls)} page and image URL(s) the HITs would show cannot "
            "be loaded; nothing was published:\n    " + "\n    ".join(shown)
            + (f"\n    ... and {more} more" if more else ""),
            where="study.toml hosting.base_url",
            hint="start this study's `study serve` (its port is serve.port), and make "
                 "hosting.base_url the address workers' browsers reach it at")
    return len(urls)


def _image_urls(conn: sqlite3.Connection, hosting, hit_indexes: list[int]) -> dict[str, str]:
    """URL -> the content type it must answer with, for the images of these HITs."""
    from study.crowd import design
    from study.crowd.hosting import SIDES
    from study.crowd.pages import page_items

    urls: dict[str, str] = {}
    if hosting.mode != "service":
        for h in hit_indexes:
            for item in page_items(conn, hosting, h):
                for side in SIDES + ("result_b",):
                    if item.get(f"{side}_url"):
                        urls[item[f"{side}_url"]] = "image/"
        return urls
    seen: set[str] = set()
    for h in hit_indexes:
        for r in design.hit_items(conn, h):
            # Pairwise items show a second output.
            for side in SIDES + (("result_b",) if r["method_b"] else ()):
                path = r[f"{side}_path"]
                sha = hosting.identify(path)[0]
                if sha not in seen:
                    seen.add(sha)
                    urls[hosting.appearance_url(path, h, r["position"], side)] = "image/"
    return urls
