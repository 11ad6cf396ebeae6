"""HIT layouts: HTML registered once (`study marketplace layout add NAME FILE`, as a requester
made a project on MTurk's website) and used by CreateHIT's HITLayoutId, its ${name} parameters
filled from HITLayoutParameters. The HIT's Question is the filled page as an HTMLQuestion."""

from __future__ import annotations

import re
import time
from pathlib import Path

from study.marketplace.errors import RequestError, param_error, stamp
from study.marketplace.ids import new_id
from study.marketplace.questions import HTML_QUESTION_NS, MAX_QUESTION_BYTES

PARAMETER = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


def add_layout(db_path: str | Path, name: str, content: str) -> str:
    """Register a layout; returns its HITLayoutId."""
    from study.marketplace.datastore import Store
    if not content.strip():
        raise ValueError("the layout is empty")
    if len(content.encode("utf-8")) > MAX_QUESTION_BYTES - 500:
        raise ValueError(f"the layout is larger than {MAX_QUESTION_BYTES - 500} bytes")
    layout_id = new_id()
    store = Store(db_path)
    try:
        with store.transaction():
            store.insert_layout(layout_id, name, content, time.time())
    finally:
        store.close()
    return layout_id


def question_from_layout(market, p: dict) -> str:
    """The HTMLQuestion of a HIT made from a layout (raises for an unknown layout or a
    parameter the layout names and the request does not give)."""
    content = market.store.layout(p["HITLayoutId"])
    if content is None:
        raise RequestError(f"HITLayout {p['HITLayoutId']} does not exist. {stamp(market.now())}",
                           "AWS.MechanicalTurk.HITLayoutDoesNotExist")
    values = {x["Name"]: x["Value"] for x in p.get("HITLayoutParameters") or []}
    missing = sorted(set(PARAMETER.findall(content)) - set(values))
    if missing:
        raise param_error(f"The HITLayout {p['HITLayoutId']} needs the parameters "
                          f"{', '.join(missing)} in HITLayoutParameters.")
    filled = PARAMETER.sub(lambda m: values[m.group(1)], content)
    # CDATA cannot hold "]]>": split it across two sections.
    body = filled.replace("]]>", "]]]]><![CDATA[>")
    return (f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}"><HTMLContent><![CDATA[{body}]]>'
            f'</HTMLContent><FrameHeight>0</FrameHeight></HTMLQuestion>')
