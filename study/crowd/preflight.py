"""Before any HIT is created: can a worker's browser load what the HITs will show?

Every image URL (and, for ExternalQuestion HITs, one task page) is fetched through the public
address the HITs will carry. A base URL that points at another study's service, a service that is
not running, or a bucket that refuses reads is found here, before money is committed."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

from study.errors import StudyError

TIMEOUT_S = 5.0
SHOWN_FAILURES = 8


def _fetch(url: str, want: str) -> str | None:
    """Why `url` cannot be shown, or None when it answers with the wanted kind of content."""
    import requests

    try:
        resp = requests.get(url, timeout=TIMEOUT_S)
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
    from study.crowd.pages import hit_key, page_items, study_id

    urls: dict[str, str] = {}
    for h in hit_indexes:
        for item in page_items(conn, hosting, h):
            urls[item["reference_url"]] = "image/"
            urls[item["result_url"]] = "image/"
    if study.settings.hit.question == "external" and hit_indexes:
        base = study.settings.hosting.base_url.rstrip("/")
        urls[f"{base}/tasks/{hit_key(study_id(conn), hit_indexes[0])}"] = "text/html"
    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = [f for f in pool.map(lambda kv: _fetch(*kv), urls.items()) if f]
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
