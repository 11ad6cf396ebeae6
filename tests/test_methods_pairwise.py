"""Pairwise comparison through the shared pipeline: the pair design (balanced A/B sides, gold
pairs both ways round, a rating study's undecided neighbours), the page, collect's mirroring of
swapped positions over real boto3 and HTTP, the choice checks, the report, and the demo."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests

from study.crowd import design, pages
from study.crowd.hosting import Hosting
from study.errors import StudyError
from study.marketplace import worker_id_for
from study.simulate import pages as page_contract
from study.studydir import Study
from test_crowd_support import (BLEND, hit_rows, photo_dataset_study, set_config,
                                study_service, work_one_hit)

PAIRWISE = '[design]\nmethod = "pairwise"\nitems_per_hit = 10\nratings_per_item = 2\n'


@pytest.fixture(scope="module")
def pairwise_root(tmp_path_factory):
    root = photo_dataset_study(tmp_path_factory.mktemp("pairwise"))
    set_config(root, PAIRWISE)
    return root


def stored(root):
    study = Study.open(root)
    conn = study.connect()
    try:
        d = design.ensure_design(study, conn)
        rows = {h: design.hit_items(conn, h) for h in range(len(d.hits))}
    finally:
        conn.close()
    return study, d, rows


def test_every_pair_on_every_image_with_sides_balanced_and_gold_both_ways(pairwise_root):
    study, d, rows = stored(pairwise_root)
    tests = [i for i in d.items if i.kind == "test"]
    # 3 images x 10 pairs of the 5 methods.
    assert len(tests) == 30 and len({(i.image_id, i.method, i.method_b) for i in tests}) == 30
    shown = Counter()          # (method, shown as A)
    per_pair = Counter()
    for h, hit in rows.items():
        golds = [r for r in hit if r["kind"] != "test"]
        # Two gold pairs per HIT: the reference against the control, once each way round.
        assert len(golds) == 2 and {g["swapped"] for g in golds} == {0, 1}
        assert all(g["method"] == "reference" and g["method_b"] == "input"
                   and (g["expected_min"], g["expected_max"]) == (1, 1) for g in golds)
        swapped = [r["swapped"] for r in hit]
        assert abs(2 * sum(swapped) - len(swapped)) <= 2, swapped
        for r in hit:
            if r["kind"] == "test":
                a, b = (r["method_b"], r["method"]) if r["swapped"] else (r["method"], r["method_b"])
                shown[a, True] += 1
                shown[b, False] += 1
                per_pair[(r["method"], r["method_b"]), r["swapped"]] += 1
    # Every pair shown each way round equally often (3 images: 2 and 1), so every method is
    # "A" about half the time.
    for (pair, sw), n in per_pair.items():
        assert abs(n - per_pair[pair, 1 - sw]) <= 1
    for m in study.settings.methods:
        assert abs(shown[m, True] - shown[m, False]) <= 2


def test_the_design_follows_the_seed(pairwise_root, tmp_path):
    study = Study.open(pairwise_root)
    conn = study.connect()
    try:
        first = design.make_design(study, conn).fingerprint()
        assert design.make_design(study, conn).fingerprint() == first
    finally:
        conn.close()
    import shutil
    other = tmp_path / "other"
    shutil.copytree(pairwise_root, other)
    set_config(other, PAIRWISE + "seed = 7\n")
    study = Study.open(other)
    conn = study.connect()
    try:
        assert design.make_design(study, conn).fingerprint() != first
    finally:
        conn.close()


def test_the_page_shows_the_reference_a_and_b_and_fits_an_html_question(pairwise_root):
    study, d, rows = stored(pairwise_root)
    conn = study.connect()
    try:
        hosting = Hosting(study, conn)
        items = pages.page_items(conn, hosting, 0)
        xml = pages.question_xml(study, conn, hosting, 0)   # raises over 64 KB
        html = pages.render_page(items, "t", design.study_scale(study, conn))
    finally:
        conn.close()
    assert len(xml.encode()) < pages.HTML_QUESTION_MAX_BYTES
    for item, r in zip(items, rows[0]):
        # Swapped: the item's method_b is A.
        assert (item["a_url"], item["b_url"]) == (
            (item["result_b_url"], item["result_url"]) if r["swapped"]
            else (item["result_url"], item["result_b_url"]))
    task = page_contract.task_page(html, "http://x/")
    assert [it.position for it in task.items] == [r["position"] for r in rows[0]]
    for it in task.items:
        assert it.reference_url and it.result_url and it.result_b_url
        assert it.choices == {"a": "1", "b": "0"}
        assert f"seconds_{it.position}" in task.hidden and f"view_{it.position}" in task.hidden
    assert "preview-notice" in html and "screen-notice" in html


def pick(root, how):
    """An answer function over the worker site: "A" every time, or "careful" (the output
    closer to the reference by the test renders' blend, and the reference on gold pairs)."""
    def answer(positions, query):
        rows = hit_rows(root, query["hitId"])
        out = {}
        for p in positions:
            r = rows[p]
            if how == "A":
                out[f"rating_{p}"] = "1"
            else:
                method_closer = BLEND.get(r["method"], 0.0) <= BLEND.get(r["method_b"], 1.0)
                # The page's "1" is A, which is the item's method unless swapped.
                out[f"rating_{p}"] = "1" if method_closer != bool(r["swapped"]) else "0"
            out[f"seconds_{p}"] = "6.5"
            out[f"view_{p}"] = json.dumps({"s": 6.5, "z": 1, "f": 1, "w": 1600, "h": 900, "r": 1})
        return out
    return answer


def test_collect_mirrors_swapped_choices_and_the_report_ranks_them(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    set_config(root, PAIRWISE)
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        site = f"{url}/worker/sandbox"
        lazy = requests.Session()
        assert work_one_hit(lazy, site, "LAZY", pick(root, "A"))
        for w in range(2):
            s = requests.Session()
            while work_one_hit(s, site, f"GOOD{w}", pick(root, "careful")):
                pass
        run_cli("collect", cwd=root)
    study = Study.open(root)
    conn = study.connect()
    try:
        lazy_rows = conn.execute(
            "SELECT r.score, hi.swapped, a.decision, a.decision_reason FROM ratings r "
            "JOIN assignments a USING (assignment_id) JOIN hit_items hi ON "
            "hi.hit_index = a.hit_index AND hi.position = r.position WHERE a.worker_id = ?",
            (worker_id_for("LAZY"),)).fetchall()
        good = conn.execute(
            "SELECT r.score, i.method, i.method_b, a.decision FROM ratings r JOIN assignments a "
            "USING (assignment_id) JOIN items i ON i.item_id = r.item_id WHERE a.worker_id != ?",
            (worker_id_for("LAZY"),)).fetchall()
    finally:
        conn.close()
    # "A" every time is stored as the item's method where A showed it, method_b where swapped.
    assert lazy_rows and all(r["score"] == 1 - r["swapped"] for r in lazy_rows)
    assert {r["decision"] for r in lazy_rows} == {"exclude"}
    assert "chose A on all" in lazy_rows[0]["decision_reason"]
    # The careful workers' choices are stored in the study's orientation: 1 = method closer.
    assert good and all(r["score"] == int(BLEND.get(r["method"], 0.0)
                                          <= BLEND.get(r["method_b"], 1.0)) for r in good)
    assert {r["decision"] for r in good} == {"approve"}

    out = run_cli("report", cwd=root).output
    assert "pairwise choices" in out
    rep = json.loads((study.reports_dir / "report.json").read_text())
    assert rep["schema"] == "study-pairwise-report"
    ranked = [m["method"] for m in sorted(rep["methods"], key=lambda m: m["rank"])]
    assert ranked == sorted(BLEND, key=BLEND.get)
    # 30 pairs x 2, less the HIT whose second slot the excluded worker took (its top-up is
    # published, not worked).
    assert rep["counts"]["judgements"] == 50 and rep["counts"]["workers"] == 2
    assert any("not run on choices" in n for n in rep["quality"]["notes"])
    md = (study.reports_dir / "report.md").read_text()
    assert "| 1 | reference |" in md and "Compared pairs" in md


def rating_report(path, order, decided, alpha=0.05):
    """A rating study's report.json as `study report` writes it (the fields a follow-up reads):
    `order` best first, `decided` the pairs whose adjusted p is below alpha."""
    methods = []
    for k, m in enumerate(order):
        p = {o: (0.001 if {m, o} in [set(d) for d in decided] else 0.5) for o in order if o != m}
        methods.append({"method": m, "rank": k + 1, "mos": 0.5 + 0.3 * k, "group": "a",
                        "p_values": p})
    path.write_text(json.dumps({"schema": "study-report", "settings": {"alpha": alpha},
                                "methods": methods}))
    return path


ORDER = ["reference", "depth-blend", "scatter", "gaussian", "input"]


def test_a_follow_up_round_judges_the_undecided_neighbours_only(pairwise_root, tmp_path):
    import shutil
    root = tmp_path / "follow"
    shutil.copytree(pairwise_root, root)
    report = rating_report(tmp_path / "rating.json", ORDER,
                           decided=[("reference", "depth-blend"), ("gaussian", "input")])
    set_config(root, PAIRWISE + f'pairs = "neighbours"\npairs_from = "{report}"\n')
    study = Study.open(root)
    conn = study.connect()
    try:
        d = design.make_design(study, conn)
        pairs = {(i.method, i.method_b) for i in d.items if i.kind == "test"}
        # Stored in study.toml's order (input, gaussian, depth-blend, scatter, reference).
        assert pairs == {("depth-blend", "scatter"), ("gaussian", "scatter")}
        # Every neighbour decided: nothing to follow up, said so.
        rating_report(report, ORDER, decided=list(zip(ORDER[:-1], ORDER[1:])))
        with pytest.raises(StudyError, match="decided every pair"):
            design.make_design(study, conn)
        # A pairwise report is not a rating study's verdict.
        report.write_text(json.dumps({"schema": "study-pairwise-report", "methods": []}))
        with pytest.raises(StudyError, match="not a study report"):
            design.make_design(study, conn)
        set_config(root, PAIRWISE + 'pairs = "neighbours"\n')
        with pytest.raises(StudyError, match="needs the rating study"):
            design.make_design(Study.open(root), conn)
    finally:
        conn.close()


def test_the_follow_up_report_says_which_design_decided_which_pair():
    import numpy as np
    import pandas as pd

    from analysis import pairwise as pw
    from analysis.report.preferences import render_markdown, report_dict
    from study.crowd.pairs import undecided_in

    rng = np.random.default_rng(1)
    order = ["m0", "m1", "m2", "m3"]
    padj = pd.DataFrame(0.5, index=order, columns=order)
    padj.loc["m0", "m1"] = padj.loc["m1", "m0"] = 0.001
    verdict = {"order": order, "p_adjusted": padj, "alpha": 0.05, "path": "rating.json",
               "mos": dict(zip(order, [0.5, 1.5, 1.55, 1.6])), "groups": {}}
    undecided = undecided_in(verdict, order)
    assert undecided == [("m1", "m2"), ("m2", "m3")]
    quality = pd.DataFrame([[0.0, 1.4, 1.0, 0.97]] * 10, columns=order)
    tasks = pw.plan(undecided, range(10), judgements=12, per_worker=20, seed=0)
    from study.simulate.pairwise import simulate
    data = simulate(tasks, quality, 0.5, rng)
    prefs = pw.analyse(data, bootstrap=100, seed=0)
    rep = report_dict(prefs, verdict)
    decided = {(d["a"], d["b"]): d["decided_by"] for d in rep["follow_up"]["decided"]}
    assert decided == {("m0", "m1"): "ratings", ("m1", "m2"): "pairwise",
                       ("m2", "m3"): "neither"}
    assert "Which design decided which pair" in render_markdown(rep)
    assert all("rating_mos" in m for m in rep["methods"])


@pytest.mark.slow
def test_demo_pairwise_ranks_as_planted(tmp_path, run_cli):
    target = tmp_path / "demo"
    result = run_cli("demo", target, "--method", "pairwise", "--size", "256", "--port", "0")
    summary = json.loads((target / "demo-summary.json").read_text())
    assert summary["method"] == "pairwise" and summary["ranking_matches"], summary
    assert summary["collect_flags"]["recall"] >= 0.8, summary["collect_flags"]
    assert "most often chosen first" in result.output


def test_a_follow_up_round_end_to_end_with_the_simulated_crowd(tmp_path, run_cli, monkeypatch):
    """A pairwise round after a rating study that left two neighbours undecided: the simulated
    crowd reads the pairwise page, collect keeps the careful workers' choices, and the report
    places the rating study's MOS beside the preference scale and says which design decided
    each neighbouring pair."""
    from study.crowd.publish import publish
    from study.crowd.status import crowd_status
    from study.simulate.crowd import simulate_crowd

    monkeypatch.setenv("STUDY_RETRY_BASE_S", "0.01")
    root = photo_dataset_study(tmp_path)
    order = sorted(BLEND, key=BLEND.get)
    report = rating_report(tmp_path / "rating.json", order,
                           decided=[(order[0], order[1]), (order[3], order[4])])
    set_config(root, '[design]\nmethod = "pairwise"\nitems_per_hit = 10\nratings_per_item = 4\n'
                     f'pairs = "neighbours"\npairs_from = "{report}"\n')
    quiet = lambda _m: None  # noqa: E731
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=quiet)
        for round_ in range(6):
            simulate_crowd(f"{url}/worker/sandbox", workers=8, seed=round_,
                           mix={"careful": 0.75, "spammer": 0.25}, concurrency=4,
                           progress=False, deadline_s=120)
            run_cli("collect", cwd=root)
            if crowd_status(study)["collect"]["complete"]:
                break
    assert crowd_status(study)["collect"]["complete"]
    out = run_cli("report", cwd=root).output
    rep = json.loads((study.reports_dir / "report.json").read_text())
    # Only the undecided neighbours were judged: depth-blend ~ scatter ~ gaussian.
    assert {(p["a"], p["b"]) for p in rep["pairs"]} <= {
        ("depth-blend", "scatter"), ("scatter", "depth-blend"), ("scatter", "gaussian"),
        ("gaussian", "scatter")}
    assert {m["method"] for m in rep["methods"]} == {"depth-blend", "scatter", "gaussian"}
    assert all(m["rating_mos"] is not None for m in rep["methods"])
    decided = {(d["a"], d["b"]): d["decided_by"] for d in rep["follow_up"]["decided"]}
    assert decided[order[0], order[1]] == "ratings" and decided[order[3], order[4]] == "ratings"
    assert all(decided[p] in ("pairwise", "neither") for p in
               [(order[1], order[2]), (order[2], order[3])])
    assert "decided by" in out
    md = (study.reports_dir / "report.md").read_text()
    assert "Rating MOS" in md and "Which design decided which pair" in md
