"""Study design, HIT pages and hosting in service mode."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from study.config import default_settings
from study.crowd import design
from study.crowd.hosting import Hosting
from study.crowd.pages import (HTML_QUESTION_MAX_BYTES, external_question,
                               hit_key, html_question, levels, page_items, question_xml, render_page,
                               render_task_page, study_id)
from study.errors import StudyError
from study.studydir import Study
from test_crowd_support import METHODS, add_renders, set_config, tags

SCALE = default_settings().scale.scale()


@pytest.fixture
def study(study_dir):
    return add_renders(study_dir)


def test_every_item_in_one_hit_with_gold_and_deterministic(study):
    conn = study.connect()
    n = len(design.ensure_design(study, conn).hits)
    d1 = design.make_design(study, conn)
    d2 = design.make_design(study, conn)
    assert d1.fingerprint() == d2.fingerprint()
    tests = [k for hit in d1.hits for k in hit if k[2] == "test"]
    assert len(tests) == len(set(tests)) == 3 * len(METHODS)
    assert n == len(d1.hits) == 2  # 15 items, 10 per HIT -> two HITs of 7 and 8
    for hit in d1.hits:
        kinds = Counter(k[2] for k in hit)
        assert kinds["gold_reference"] == 1 and kinds["gold_control"] == 1
        assert 7 <= kinds["test"] <= 10
    rows = conn.execute("SELECT * FROM items WHERE kind = 'gold_reference'").fetchall()
    assert all(r["reference_path"] == r["result_path"] and (r["expected_min"],
               r["expected_max"]) == (0, 1) for r in rows)
    control = conn.execute("SELECT * FROM items WHERE kind = 'gold_control'").fetchall()
    assert all(r["method"] == "input" and (r["expected_min"], r["expected_max"]) == (2, 4)
               for r in control)
    # A different seed gives a different order.
    set_config(study.root, "[design]\nitems_per_hit = 10\nratings_per_item = 5\nseed = 99\n")
    other = design.make_design(Study.open(study.root), conn)
    assert other.fingerprint() != d1.fingerprint()


def test_repeats_per_hit_show_test_items_twice(study):
    set_config(study.root, "[design]\nrepeats_per_hit = 1\n")
    repeated = Study.open(study.root)
    conn = repeated.connect()
    plain = design.make_design(study, conn)
    d = design.make_design(repeated, conn)
    assert len(d.hits) == len(plain.hits)
    for hit, before in zip(d.hits, plain.hits):
        assert len(hit) == len(before) + 1
        twice = [k for k in set(hit) if hit.count(k) == 2]
        assert len(twice) == 1 and twice[0][2] == "test"
        assert hit.index(twice[0]) != len(hit) - 1 - hit[::-1].index(twice[0])


def test_design_frozen_after_publication(study):
    conn = study.connect()
    design.ensure_design(study, conn)
    conn.execute("INSERT INTO hits (realm, hit_index, unique_token, max_assignments, reward, "
                 "state) VALUES ('sandbox', 0, 't', 5, '0.50', 'created')")
    set_config(study.root, "[design]\nitems_per_hit = 4\n")
    with pytest.raises(StudyError, match="design changed"):
        design.ensure_design(Study.open(study.root), conn)


def test_no_renders_is_a_clear_error(study_dir):
    study = Study.open(study_dir)
    with pytest.raises(StudyError, match="render"):
        design.ensure_design(study, study.connect())


def test_page_follows_the_contract(study):
    conn = study.connect()
    design.ensure_design(study, conn)
    hosting = Hosting(study, conn)
    items = page_items(conn, hosting, 0)
    html = render_page(items, "Rate", SCALE)
    t = tags(html)
    form = [a for tag, a in t if tag == "form"]
    assert form[0]["id"] == "rating-form" and form[0]["method"] == "post"
    sections = [a for tag, a in t if tag == "section"]
    assert [int(s["data-position"]) for s in sections] == list(range(1, len(items) + 1))
    for p in range(1, len(items) + 1):
        radios = [a["value"] for tag, a in t if tag == "input" and a.get("name") == f"rating_{p}"]
        assert radios == ["0", "1", "2", "3", "4"]
        assert any(a.get("name") == f"seconds_{p}" and a["type"] == "hidden"
                   for tag, a in t if tag == "input")
    assert any(a.get("name") == "assignmentId" for tag, a in t if tag == "input")
    submit = [a for tag, a in t if a.get("id") == "submit"]
    assert "disabled" in submit[0]
    for label in ("0 \u2013 almost identical", "1 \u2013 mostly similar", "2 \u2013 similar",
                  "3 \u2013 somewhat similar", "4 \u2013 mostly different"):
        assert label in html
    # Opaque image URLs, one per appearance, never a method or file name.
    srcs = [a["src"] for tag, a in t if tag == "img"]
    assert len(srcs) == 2 * len(items) == len(set(srcs))
    for src in srcs:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/img/[0-9a-f]{104}\.(png|jpg)", src)
    for method in METHODS:
        assert f"/{method}" not in html
    classes = [a["class"] for tag, a in t if tag == "img"]
    assert classes.count("reference") == classes.count("result") == len(items)
    assert "<script src" not in html and "<link" not in html


def test_gold_items_look_like_test_items(study):
    conn = study.connect()
    design.ensure_design(study, conn)
    html = render_page(page_items(conn, Hosting(study, conn), 0), "Rate", SCALE)
    sections = re.findall(r"<section.*?</section>", html, flags=re.S)
    shapes = {re.sub(r'"[^"]*"', '""', re.sub(r"Pair \d+", "", s)) for s in sections}
    shapes = {re.sub(r"_\d+", "_", s) for s in shapes}
    assert len(shapes) == 1


def test_gold_items_cannot_be_found_from_the_page_source(study):
    """The reference against itself, and the control's image that is also a test item, show
    distinct URLs and distinct bytes at every appearance; the pixels are the same."""
    import hashlib
    import io

    import numpy as np
    from flask import Flask
    from PIL import Image

    from study.crowd.pages import tasks_blueprint

    conn = study.connect()
    design.ensure_design(study, conn)
    hosting = Hosting(study, conn)
    app = Flask("t")
    app.register_blueprint(tasks_blueprint(study))
    client = app.test_client()
    served: dict[str, list[tuple[str, bytes]]] = {}     # source file -> (URL, bytes) shown
    for h in range(design.design_hit_count(conn)):
        rows = design.hit_items(conn, h)
        for row, item in zip(rows, page_items(conn, hosting, h)):
            for side in ("reference", "result"):
                url = item[f"{side}_url"]
                body = client.get(url[url.index("/img/"):])
                assert body.status_code == 200
                served.setdefault(row[f"{side}_path"], []).append((url, body.data))
    urls = [u for shown in served.values() for u, _ in shown]
    blobs = [hashlib.sha256(b).hexdigest() for shown in served.values() for _, b in shown]
    assert len(set(urls)) == len(urls) and len(set(blobs)) == len(blobs)
    gold = conn.execute("SELECT * FROM items WHERE kind = 'gold_reference'").fetchone()
    assert len(served[gold["reference_path"]]) >= 2      # both sides of the gold, and more
    for path, shown in served.items():
        # Every appearance shows the same pixels: the source in the study's one image format
        # (JPEG q95 4:4:4 by default, the reference included), close to the render.
        with open(path, "rb") as fh:
            source = np.asarray(Image.open(fh).convert("RGB"), float)
        truth = np.asarray(Image.open(hosting.file(path)).convert("RGB"))
        mse = np.mean((truth - source) ** 2)
        # (these test images are mostly pixel noise, the worst case for JPEG)
        assert mse == 0 or 10 * np.log10(255 ** 2 / mse) > 35
        for _, data in shown:
            assert Image.open(io.BytesIO(data)).format == "JPEG"
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), truth)
    # A name not sealed by this study's key is not served.
    name = urls[0].rsplit("/", 1)[1]
    forged = ("0" if name[30] != "0" else "1").join((name[:30], name[31:]))
    assert client.get(f"/img/{forged}").status_code == 404


def test_html_question_size_limit_with_long_urls(study):
    items = [{"position": p, "reference_url": "https://bucket.s3.amazonaws.com/" + "r" * 600,
              "result_url": "https://bucket.s3.amazonaws.com/" + "x" * 600} for p in range(1, 13)]
    xml = html_question(render_page(items, "Rate how similar two photos look", SCALE))
    assert xml.startswith("<?xml") and "<HTMLContent><![CDATA[" in xml
    assert len(xml.encode()) < HTML_QUESTION_MAX_BYTES
    many = items * 8
    with pytest.raises(StudyError, match="65535"):
        html_question(render_page(many, "Rate", SCALE))


def test_external_question_and_task_page(study):
    set_config(study.root, '[hit]\nquestion = "external"\n')
    study = Study.open(study.root)
    conn = study.connect()
    design.ensure_design(study, conn)
    xml = question_xml(study, conn, Hosting(study, conn), 1)
    key = hit_key(study_id(conn), 1)
    assert f"<ExternalURL>{study.settings.hosting.base_url}/tasks/{key}</ExternalURL>" in xml
    html = render_task_page(study, key, {"assignmentId": "A1",
                                         "turkSubmitTo": "http://m.example/worker/sandbox"})
    assert 'action="http://m.example/worker/sandbox/mturk/externalSubmit"' in html
    assert 'value="A1"' in html
    hostile = render_task_page(study, key, {"assignmentId": '"><script>x</script>',
                                            "turkSubmitTo": "javascript:alert(1)"})
    assert "<script>x</script>" not in hostile and "javascript:" not in hostile
    assert external_question("http://h/tasks/k&x").count("&amp;") == 1
    with pytest.raises(StudyError):
        render_task_page(study, "nope", {})


def test_tasks_blueprint_serves_pages_and_immutable_images(study):
    from flask import Flask

    from study.crowd.pages import tasks_blueprint

    conn = study.connect()
    design.ensure_design(study, conn)
    html = render_page(page_items(conn, Hosting(study, conn), 0), "Rate", SCALE)
    app = Flask("t")
    app.register_blueprint(tasks_blueprint(study))
    client = app.test_client()
    src = re.search(r'class="result" src="[^"]*(/img/[^"]+)"', html).group(1)
    resp = client.get(src)
    assert resp.status_code == 200 and resp.mimetype in ("image/png", "image/jpeg")
    assert "immutable" in resp.headers["Cache-Control"]
    assert client.get("/img/../study.db").status_code == 404
    assert client.get("/img/" + "0" * 64 + ".png").status_code == 404
    page = client.get(f"/tasks/{hit_key(study_id(conn), 0)}?assignmentId=X")
    assert page.status_code == 200 and b'id="rating-form"' in page.data
    assert client.get("/tasks/unknown").status_code == 404


def test_levels_are_worded_as_the_study_defines_them(study):
    assert [lv["label"] for lv in levels(study.settings.scale.scale())] == [
        "0 \u2013 almost identical", "1 \u2013 mostly similar", "2 \u2013 similar",
        "3 \u2013 somewhat similar", "4 \u2013 mostly different"]


def test_collect_keeps_each_items_viewing_record(study):
    """collect stores the page's per-item viewing record with the assignment and hands each
    item's largest zoom to quality control."""
    import json

    from study.crowd.collect import decide_assignment, store_assignment
    from study.crowd.quality import Policy
    from test_crowd_answers import xml

    conn = study.connect()
    design.ensure_design(study, conn)
    positions = [r["position"] for r in design.hit_items(conn, 0)]
    fields = []
    for p in positions:
        zoom = 0.5 if p == positions[0] else 1
        fields += [(f"rating_{p}", "2"), (f"seconds_{p}", "9.0"),
                   (f"view_{p}", json.dumps({"s": 9.0, "z": zoom, "f": p, "w": 1366,
                                             "h": 768, "r": 1}))]
    conn.execute("INSERT INTO hits (hit_index, realm, unique_token, hit_id, hit_type_id, "
                 "max_assignments, reward, state) "
                 "VALUES (0, 'sandbox', 'U0', 'H0', 'T0', 1, '0.50', 'created')")
    store_assignment(conn, "sandbox", 0, {"AssignmentId": "A0", "HITId": "H0",
                                          "WorkerId": "W0", "Answer": xml(fields)})
    info = json.loads(conn.execute("SELECT quality_json FROM assignments").fetchone()[0])
    assert info["views"][str(positions[1])] == {"seconds": 9.0, "max_zoom": 1.0,
                                                "flips": positions[1],
                                                "viewport": [1366, 768], "pixel_ratio": 1.0}
    decide_assignment(conn, "sandbox", "A0", Policy(require_native_view=True))
    reason = conn.execute("SELECT decision_reason FROM assignments").fetchone()[0]
    assert "1 pair(s) rated without ever being seen at 1:1" in reason
