"""HIT pages: the rating page rendered from hit_templates, as HTMLQuestion or ExternalQuestion
XML, and the Flask blueprint that serves external task pages and hosted images."""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
from urllib.parse import urlparse

from study import methods, store
from study.crowd import design
from study.crowd.hosting import (CACHE_CONTROL, CONTENT_TYPES, SIDES, Hosting, hosted_dir,
                                 image_of_appearance, naming_key, with_nonce)
from study.errors import StudyError

HTML_QUESTION_MAX_BYTES = 65535
FRAME_HEIGHT = 0  # 0 lets the worker site size the frame to the window
# What each similarity level looks like in a bokeh study, shown under the level's words.
EXAMPLES = {
    "almost identical": "you have to search to find any difference at all",
    "mostly similar": "small differences in the blur or at the edges of the subject",
    "similar": "the same kind of background blur, but clearly different in places",
    "somewhat similar": "the blur is much weaker or stronger, or the subject is blurred in parts",
    "mostly different": "e.g. the background is sharp where the original is blurred, or "
                        "colours changed",
}


def levels(scale, method: methods.TestMethod | None = None) -> list[dict]:
    """The scale's levels as the page shows them. `anchor` marks the level an output identical
    to the reference gets ("identical") and the one a mostly different output gets
    ("different"): the scale's ends, except on CCR's two-sided scale, whose "identical" is the
    middle and whose "different" is the second photo much worse than the first. A scale that
    reaches below zero is typed with keys 1, 2, ... from its low end."""
    labels = scale.labels or tuple(str(v) for v in scale.levels)
    two_sided = method is not None and method.name == methods.CCR
    signed = scale.low < 0
    out = []
    for k, (v, word) in enumerate(zip(scale.levels, labels), start=1):
        if two_sided:
            anchor = "identical" if v == 0 else "different" if v == scale.low else ""
        else:
            anchor = "identical" if v == scale.best else "different" if v == scale.worst else ""
        number = f"{v:+d}" if signed and v else str(v)
        out.append({"value": v, "number": number, "word": word,
                    "label": f"{number} \u2013 {word}", "example": EXAMPLES.get(word, ""),
                    "anchor": anchor, "key": str(k) if signed else str(v)})
    return out


# What each side of an item is called on the page, per method: (left, right), each as (label,
# image class). The similarity and DCR pages name the reference; the CCR page names only the
# order, and the reference is on either side (hit_items.swapped); the ACR page shows one photo.
SIDE_NAMES = {
    methods.ACR: (None, ("photo", "result")),
    methods.CCR: (("first photo", "first"), ("second photo", "second")),
}
DEFAULT_SIDE_NAMES = (("original", "reference"), ("processed", "result"))


def panes(item: dict, method: methods.TestMethod) -> list[dict]:
    """The photo panes of one item, left to right: label, image class and URL."""
    left, right = SIDE_NAMES.get(method.name, DEFAULT_SIDE_NAMES)
    urls = [item["reference_url"], item["result_url"]]
    if item.get("swapped"):
        urls.reverse()
    out = []
    for side, names, url in (("left", left, urls[0]), ("right", right, urls[1])):
        if names is not None:
            out.append({"side": side, "label": names[0], "cls": names[1], "url": url,
                        "alt": names[0] if names[0].endswith("photo") else names[0] + " photo"})
    if len(out) == 1:
        # The one pane shows the output (or the gold reference rated as one).
        out[0]["url"] = item["result_url"]
    return out


def pairwise_panes(item: dict) -> list[dict]:
    """The photo panes of one pairwise item: the original, then the outputs shown as A and B."""
    return [{"side": "original", "label": "original", "cls": "reference",
             "url": item["reference_url"], "alt": "original photo"},
            *({"side": "output", "label": name, "cls": f"result-{name.lower()}",
               "url": item[f"{name.lower()}_url"], "alt": f"photo {name}"} for name in "AB")]


def _env():
    from hit_templates import environment
    return environment()


def study_id(conn: sqlite3.Connection) -> str:
    sid = store.get_meta(conn, "study_id")
    if not sid:
        raise StudyError("study.db has no study id", hint="create the study with `study init`")
    return sid


def hit_key(sid: str, hit_index: int) -> str:
    """The opaque name of a HIT in task URLs (does not reveal the HIT's position)."""
    return hmac.new(sid.encode(), f"hit:{hit_index}".encode(), hashlib.sha256).hexdigest()[:24]


def page_items(conn: sqlite3.Connection, hosting: Hosting, hit_index: int) -> list[dict]:
    rows = design.hit_items(conn, hit_index)
    if not rows:
        raise StudyError(f"HIT {hit_index} has no items", where=str(hit_index))
    # Every appearance has its own URL and bytes: the page source cannot tell gold items.
    items = [{"position": r["position"], "swapped": bool(r["swapped"]),
              **{f"{side}_url": hosting.appearance_url(r[f"{side}_path"], hit_index,
                                                       r["position"], side)
                 for side in SIDES}} for r in rows]
    if rows[0]["method_b"]:
        from study.crowd.pairs import page_sides
        page_sides(items, rows, hosting, hit_index)
    return items


def render_page(items: list[dict], title: str, scale, action: str = "",
                assignment_id: str = "", min_screen: tuple[int, int] = (0, 0),
                method: methods.TestMethod | None = None) -> str:
    """The rating page of `method` (default: similarity on `scale`); `min_screen` (CSS pixels,
    0 for none) is the smallest window the page accepts ratings in, and tells a worker with a
    smaller one so at preview."""
    if items and "a_url" in items[0]:
        # Two outputs per item (pairwise) have a page of their own.
        return _env().get_template("pairwise.html.j2").render(
            items=[{**it, "panes": pairwise_panes(it)} for it in items], title=title,
            action=action, assignment_id=assignment_id, min_width=min_screen[0], min_height=min_screen[1])
    method = method or methods.get(methods.SIMILARITY, scale)
    shown = [{**it, "panes": panes(it, method)} for it in items]
    left, right = SIDE_NAMES.get(method.name, DEFAULT_SIDE_NAMES)
    # The help's "Space shows the <left> in place of the <right>".
    sides = (left[0] if left else "", right[0] if right[0].endswith("photo")
             else right[0] + " photo")
    return _env().get_template("task.html.j2").render(
        items=shown, title=title, levels=levels(scale, method), action=action,
        method=method, sides=sides, assignment_id=assignment_id, min_width=min_screen[0],
        min_height=min_screen[1])


def min_screen(settings) -> tuple[int, int]:
    return settings.hit.min_screen_width, settings.hit.min_screen_height


def html_question(content: str) -> str:
    size = len(content.encode("utf-8"))
    if size > HTML_QUESTION_MAX_BYTES:
        raise StudyError(
            f"the HIT page is {size} bytes, over the HTMLQuestion limit of "
            f"{HTML_QUESTION_MAX_BYTES}", where="study.toml design.items_per_hit",
            hint="use fewer items per HIT, or hit.question = \"external\"")
    if "]]>" in content:
        raise StudyError("the HIT page contains ']]>', which cannot go into CDATA")
    return _env().get_template("html_question.xml.j2").render(
        content=content, frame_height=FRAME_HEIGHT)


def external_question(url: str) -> str:
    return _env().get_template("external_question.xml.j2").render(
        url=url, frame_height=FRAME_HEIGHT)


def question_xml(study, conn: sqlite3.Connection, hosting: Hosting, hit_index: int) -> str:
    """The Question parameter of CreateHIT for one HIT, per hit.question."""
    s = study.settings
    if s.hit.question == "external":
        base = s.hosting.base_url.rstrip("/")
        # Images are hosted now so the page can be served later without the renders.
        page_items(conn, hosting, hit_index)
        return external_question(f"{base}/tasks/{hit_key(study_id(conn), hit_index)}")
    method = design.study_method(study, conn)
    content = render_page(page_items(conn, hosting, hit_index), methods.hit_text(s)[0], method.scale,
                          min_screen=min_screen(s), method=method)
    return html_question(content)


def _hit_index_for_key(conn: sqlite3.Connection, key: str) -> int | None:
    sid = study_id(conn)
    for (h,) in conn.execute("SELECT DISTINCT hit_index FROM hit_items"):
        if hmac.compare_digest(hit_key(sid, h), key):
            return h
    return None


def render_task_page(study, key: str, args) -> str:
    """The ExternalQuestion page of the HIT named `key`; `args` is the request's query
    (assignmentId, hitId, turkSubmitTo, workerId)."""
    conn = study.connect()
    try:
        h = _hit_index_for_key(conn, key)
        if h is None:
            raise StudyError(f"no HIT is named {key!r}", where=f"/tasks/{key}")
        hosting = Hosting(study, conn)
        items = page_items(conn, hosting, h)
        method = design.study_method(study, conn)
    finally:
        conn.close()
    submit_to = str(args.get("turkSubmitTo", "") or "")
    action = ""
    if urlparse(submit_to).scheme in ("http", "https"):
        action = submit_to.rstrip("/") + "/mturk/externalSubmit"
    return render_page(items, methods.hit_text(study.settings)[0], method.scale, action=action,
                       assignment_id=str(args.get("assignmentId", "") or ""),
                       min_screen=min_screen(study.settings), method=method)


_IMAGE_NAME = re.compile(r"^([0-9a-f]{64})\.(png|jpg|webp)$")
_APPEARANCE_NAME = re.compile(r"^([0-9a-f]{104})\.(png|jpg|webp)$")


def tasks_blueprint(study):
    """`/tasks/<hit_key>` (ExternalQuestion pages) and `/img/<name>.<ext>` (hosted images: one
    name per appearance, or the image's SHA-256 as pages published before used)."""
    from flask import Blueprint, Response, abort, request, send_file

    bp = Blueprint("crowd_tasks", __name__)

    @bp.get("/tasks/<key>")
    def task(key: str):
        try:
            html = render_task_page(study, key, request.args)
        except StudyError:
            abort(404)
        resp = Response(html, mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    key: list[bytes] = []

    @bp.get("/img/<name>")
    def image(name: str):
        m = _APPEARANCE_NAME.match(name)
        if m:
            return appearance(m.group(1), m.group(2))
        m = _IMAGE_NAME.match(name)
        path = hosted_dir(study) / name
        # A link placed in hosted/ would serve whatever it points at: never follow one.
        if not m or path.is_symlink() or not path.is_file():
            abort(404)
        resp = send_file(path, mimetype=CONTENT_TYPES[m.group(2)], conditional=True,
                         etag=m.group(1), max_age=31536000)
        resp.headers["Cache-Control"] = CACHE_CONTROL
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp

    def appearance(name: str, ext: str):
        if not key:
            key.append(naming_key(study))
        found = image_of_appearance(key[0], name)
        path = hosted_dir(study) / f"{found[0]}.{ext}" if found else None
        if path is None or not path.is_file():
            abort(404)
        resp = Response(with_nonce(path.read_bytes(), ext, found[1]), mimetype=CONTENT_TYPES[ext])
        resp.set_etag(name)
        resp.headers["Cache-Control"] = CACHE_CONTROL
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp.make_conditional(request)

    return bp
