"""The ITU-T rating methods (ACR, DCR, CCR) through the same pipeline as the similarity method:
their gold items and swapped sides in the design, their pages, their answers, CCR's mirror at
collect over real boto3 and HTTP, and `study demo --method ccr` end to end."""

from __future__ import annotations

import json
import re

import pytest
import requests

from study import methods
from study.crowd import design
from study.crowd.answers import parse_score
from study.crowd.collect import collect
from study.crowd.hosting import Hosting
from study.crowd.pages import html_question, page_items, question_xml, render_page
from study.crowd.publish import publish
from study.simulate import pages as sim_pages
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config, study_service, tags, work_one_hit


def method_study(tmp_path, method: str, items_per_hit: int = 10) -> Study:
    root = photo_dataset_study(tmp_path)
    set_config(root, f'[design]\nmethod = "{method}"\nitems_per_hit = {items_per_hit}\n'
                     f"ratings_per_item = 2\n")
    return Study.open(root)


def stored_items(conn):
    return conn.execute("SELECT hi.hit_index, hi.position, hi.swapped, i.* FROM hit_items hi "
                        "JOIN items i USING (item_id) ORDER BY hi.hit_index, hi.position"
                        ).fetchall()


@pytest.mark.parametrize("name", ["acr", "dcr", "ccr"])
def test_gold_items_follow_the_method(tmp_path, name):
    study = method_study(tmp_path, name)
    conn = study.connect()
    design.ensure_design(study, conn)
    rows = stored_items(conn)
    method = methods.get(name)
    golds = {r["kind"]: (r["expected_min"], r["expected_max"]) for r in rows if r["kind"] != "test"}
    assert golds["gold_reference"] == method.gold_reference
    if name == "acr":
        # Without the reference a sharp input is not "bad": no control gold.
        assert "gold_control" not in golds
    else:
        assert golds["gold_control"] == method.gold_control
    assert design.study_method(study, conn).name == name
    assert design.stored_scale(conn) == method.scale
    swapped = [r for r in rows if r["swapped"]]
    if name != "ccr":
        assert not swapped
        return
    # Half of each method's (and each gold's) appearances show the reference second.
    for key in {(r["method"], r["kind"]) for r in rows}:
        group = [r for r in rows if (r["method"], r["kind"]) == key]
        assert abs(2 * sum(r["swapped"] for r in group) - len(group)) <= 1, key


def test_ccr_swaps_are_deterministic_and_leave_the_hits_alone(tmp_path):
    ccr = method_study(tmp_path / "a", "ccr")
    sim = method_study(tmp_path / "b", "similarity-0-4")
    first, again = (design.make_design(ccr, ccr.connect()) for _ in range(2))
    assert first.swapped == again.swapped and first.fingerprint() == again.fingerprint()
    plain = design.make_design(sim, sim.connect())
    assert first.hits == plain.hits and plain.swapped == []
    # The similarity design keeps the form of its fingerprint from before test methods.
    assert plain.fingerprint() == json.dumps([[list(k) for k in hit] for hit in plain.hits])
    assert json.loads(first.fingerprint())["method"] == "ccr"


def test_ccr_topup_hits_show_every_second_item_swapped(tmp_path):
    from study.crowd.topup import _plan_topup_hit

    study = method_study(tmp_path, "ccr")
    conn = study.connect()
    design.ensure_design(study, conn)
    tests = [r["item_id"] for r in stored_items(conn) if r["kind"] == "test"][:6]
    h = _plan_topup_hit(conn, "sandbox", tests, 0)
    assert [r["swapped"] for r in design.hit_items(conn, h)] == [0, 1] * 3


def _page(study, hit_index: int = 0) -> tuple[str, list]:
    conn = study.connect()
    design.ensure_design(study, conn)
    method = design.study_method(study, conn)
    items = page_items(conn, Hosting(study, conn), hit_index)
    return render_page(items, "Rate", method.scale, method=method), items


def test_acr_page_shows_the_photo_alone(tmp_path):
    study = method_study(tmp_path, "acr")
    html, items = _page(study)
    t = tags(html)
    imgs = [a for tag, a in t if tag == "img"]
    assert len(imgs) == len(items) and {a["class"] for a in imgs} == {"result"}
    assert all(a["src"] == it["result_url"] for a, it in zip(imgs, items))
    assert "original" not in html.split("<form")[1].split("<script>")[0]
    assert not [a for tag, a in t if "hold" in a.get("class", "")]
    assert "how good is the quality of this photo?" in html
    radios = [a["value"] for tag, a in t if tag == "input" and a.get("name") == "rating_1"]
    assert radios == ["1", "2", "3", "4", "5"]
    assert "5 \u2013 excellent" in html and "1 \u2013 bad" in html
    page = sim_pages.task_page(html, "http://x/")
    assert all(it.alone and not it.two_sided for it in page.items)
    assert page.items[0].level(0, 4) == "5" and page.items[0].level(4, 4) == "1"


def test_dcr_page_shows_the_original_then_the_processed_photo(tmp_path):
    study = method_study(tmp_path, "dcr")
    html, items = _page(study)
    labels = re.findall(r'<span class="label">([^<]*)</span>', html)
    assert labels == ["original", "processed"] * len(items)
    assert "how annoying are the differences from the original?" in html
    assert "1 \u2013 very annoying" in html and "5 \u2013 imperceptible" in html
    item = sim_pages.task_page(html, "http://x/").items[0]
    assert item.level(0, 4) == "5" and item.level(4, 4) == "1"


def test_ccr_page_names_only_the_order(tmp_path):
    study = method_study(tmp_path, "ccr")
    conn = study.connect()
    design.ensure_design(study, conn)
    hits = {r["hit_index"] for r in stored_items(conn)}
    for h in sorted(hits):
        html, items = _page(study, h)
        t = tags(html)
        imgs = [a for tag, a in t if tag == "img"]
        assert [a["class"] for a in imgs] == ["first", "second"] * len(items)
        for k, it in enumerate(items):
            left, right = imgs[2 * k]["src"], imgs[2 * k + 1]["src"]
            expected = (it["result_url"], it["reference_url"]) if it["swapped"] else \
                (it["reference_url"], it["result_url"])
            assert (left, right) == expected
        # Every item looks the same in the source, swapped or not, gold or not.
        sections = re.findall(r"<section.*?</section>", html, flags=re.S)
        shapes = {re.sub(r"_\d+", "_", re.sub(r'"[^"]*"', '""', re.sub(r"Pair \d+", "", s)))
                  for s in sections}
        assert len(shapes) == 1
        assert "original" not in html.split("<form")[1].split("<script>")[0]
        assert "reference" not in html.split("<form")[1].split("<script>")[0]
    radios = [(a["value"], a.get("data-key")) for tag, a in t
              if tag == "input" and a.get("name") == "rating_1"]
    assert radios == [(str(v), str(k)) for k, v in enumerate(range(-3, 4), start=1)]
    assert "+3 \u2013 much better" in html and "-3 \u2013 much worse" in html
    assert "(<b>1</b> is -3, <b>7</b> is +3)" in html
    item = sim_pages.task_page(html, "http://x/").items[0]
    assert item.two_sided and not item.alone
    assert [item.level(d, 4) for d in (0, 2, 4)] == ["0", "-2", "-3"]
    assert [item.level(d, 4, mirrored=True) for d in (0, 2, 4)] == ["0", "2", "3"]


@pytest.mark.parametrize("name", ["similarity-0-4", "acr", "dcr", "ccr"])
def test_pages_fit_an_html_question_at_ten_items(tmp_path, name):
    """Ten test items and two gold items, with the study's own image URLs."""
    study = method_study(tmp_path, name)
    conn = study.connect()
    design.ensure_design(study, conn)
    method = design.study_method(study, conn)
    hosting = Hosting(study, conn)
    items = page_items(conn, hosting, 0) + page_items(conn, hosting, 1)
    items = [dict(it, position=p) for p, it in enumerate(items[:12], start=1)]
    assert len(items) == 12
    html = render_page(items, "Rate how similar two photos look", method.scale, method=method,
                       min_screen=(1024, 600))
    html_question(html)  # raises over the limit
    assert "<HTMLQuestion" in question_xml(study, conn, Hosting(study, conn), 0)


def test_ccr_answers_parse_across_zero():
    scale = methods.get("ccr").scale
    assert [parse_score(v, scale)[0] for v in ("-3", "+3", "0", "-1", "3")] == [-3, 3, 0, -1, 3]
    assert parse_score("4", scale)[0] is None and parse_score("-4", scale)[0] is None
    assert [scale.mirrored(v) for v in (-3, -1, 0, 2)] == [3, 1, 0, -2]


# How much worse than the reference each method's output looks, on the CCR scale.
SEEN = {"reference": 0, "depth-blend": -1, "scatter": -1, "gaussian": -2, "input": -3}


def test_ccr_stores_every_answer_as_the_output_against_the_reference(tmp_path):
    """Through publish, the worker site and collect (real HTTP, real boto3): a worker who sees
    an output worse than the reference by k answers -k where the reference comes first and +k
    where it comes second; every stored score reads -k."""
    study = method_study(tmp_path, "ccr")
    root = study.root
    with study_service(root) as (url, _market):
        publish(Study.open(root), "sandbox", echo=lambda _m: None)

        def answer(positions, query):
            conn = Study.open(root).connect()
            try:
                rows = {r["position"]: r for r in conn.execute(
                    "SELECT hi.position, hi.swapped, i.method FROM hits h JOIN hit_items hi "
                    "ON hi.hit_index = h.hit_index JOIN items i USING (item_id) "
                    "WHERE h.hit_id = ?", (query["hitId"],))}
            finally:
                conn.close()
            out = {}
            for p in positions:
                seen = SEEN[rows[p]["method"]]
                out[f"rating_{p}"] = str(-seen if rows[p]["swapped"] else seen)
                out[f"seconds_{p}"] = "7"
            return out

        session = requests.Session()
        done = 0
        while work_one_hit(session, f"{url}/worker/sandbox", "CCR1", answer):
            done += 1
        assert done >= 2
        collect(Study.open(root), echo=lambda _m: None)
    conn = Study.open(root).connect()
    rows = conn.execute("SELECT r.score, r.valid, hi.swapped, i.method FROM ratings r "
                        "JOIN assignments a USING (assignment_id) "
                        "JOIN hits h ON h.hit_id = a.hit_id "
                        "JOIN hit_items hi ON hi.hit_index = h.hit_index "
                        "AND hi.position = r.position JOIN items i ON i.item_id = r.item_id"
                        ).fetchall()
    assert rows and {r["swapped"] for r in rows} == {0, 1}
    assert all(r["score"] == SEEN[r["method"]] for r in rows)
    assert all(r["valid"] for r in rows)


@pytest.mark.slow
def test_demo_with_ccr_ranks_as_planted(tmp_path, run_cli):
    target = tmp_path / "demo"
    result = run_cli("demo", target, "--port", "0", "--method", "ccr", "--size", "256")
    summary = json.loads((target / "demo-summary.json").read_text())
    assert summary["method"] == "ccr" and summary["scale"] == "-3..3, higher is better"
    assert summary["ranking_matches"], summary
    assert "Comparison category rating (ccr), scale -3..3, higher is better" in result.output
    report = (target / "study" / "reports" / "report.md").read_text()
    assert "Scale -3..3, higher is better" in report

