"""Stock MTurk HIT pages served so they work here: an HTMLQuestion written for MTurk posts to
MTurk's externalSubmit URL, loads MTurk's helper script (externalHIT_v1.js) and its element
library (crowd-html-elements.js). When the page is served, those URLs are rewritten to this
marketplace's submit URL and to local scripts that behave the same (Mephisto's
wrap_crowd_source.js is the precedent); nothing else of the requester's HTML changes."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

SUBMIT_URLS = re.compile(r"https?://(?:www|workersandbox)\.mturk\.com/mturk/externalSubmit")
SCRIPTS = {
    "https://s3.amazonaws.com/mturk-public/externalHIT_v1.js": "externalHIT_v1.js",
    "https://assets.crowd.aws/crowd-html-elements.js": "crowd-html-elements.js",
}
_DIR = Path(__file__).with_name("templates")


def serve_html(content: str, submit_url: str, script_base: str) -> str:
    """The requester's HTML with MTurk's submit URLs and script URLs pointed here."""
    content = SUBMIT_URLS.sub(submit_url, content)
    for url, name in SCRIPTS.items():
        content = content.replace(url, f"{script_base}/{name}")
    return content


@lru_cache(maxsize=None)
def script(name: str) -> str | None:
    """A local stand-in script by file name, or None."""
    if name not in SCRIPTS.values():
        return None
    return (_DIR / name).read_text(encoding="utf-8")
