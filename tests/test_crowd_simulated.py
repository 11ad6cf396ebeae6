"""The whole loop with the simulated crowd: publish, work, collect (and top up) until every item
has R valid ratings, with the spammers and straight-liners excluded."""

from __future__ import annotations

from study.crowd.collect import REPEAT_REASON, collect
from study.crowd.publish import publish
from study.crowd.ratings import ratings_frame
from study.crowd.status import crowd_status
from study.marketplace import worker_id_for
from study.simulate.crowd import simulate_crowd
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config, study_service

R = 3


def test_simulated_crowd_until_every_item_has_r_valid_ratings(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_RETRY_BASE_S", "0.01")
    root = photo_dataset_study(tmp_path, ratings_per_item=R)
    set_config(root, "[quality]\nblock_after_failures = 1\nbonus_usd = 0.05\n"
                     "bonus_reason = \"Thanks\"\n")
    mix = {"careful": 0.5, "sloppy": 0.1, "spammer": 0.2, "straightliner": 0.2}
    quiet = lambda _m: None  # noqa: E731
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=quiet)
        low_quality: set[str] = set()
        for round_ in range(6):
            result = simulate_crowd(f"{url}/worker/sandbox", workers=10, seed=round_, mix=mix,
                                    concurrency=4, progress=False, deadline_s=120)
            low_quality |= {worker_id_for(w) for w in result.low_quality_workers}
            collect(study, echo=quiet)
            if crowd_status(study)["collect"]["complete"]:
                break
    status = crowd_status(study)
    assert status["collect"]["complete"], status["collect"]["summary"]
    valid = ratings_frame(study, valid_only=True)
    tests = valid[~valid.gold]
    counts = tests.groupby(["image", "method"]).size()
    assert len(counts) == 15 and (counts >= R).all()
    # Quality control kept the low-quality workers' ratings out of the analysis.
    everything = ratings_frame(study)
    flagged = low_quality & set(everything.worker)
    assert flagged, "the crowd should have included spammers or straight-liners who worked"
    assert not (set(valid.worker) & flagged)
    # No worker rated an item twice among the valid ratings.
    assert not tests.duplicated(["image", "method", "worker"]).any()


def test_an_acr_study_runs_end_to_end_by_settings_alone(tmp_path, run_cli):
    """1..5, higher is better: the page, the gold ranges, the simulated crowd, collect and the
    report all follow the scale from study.toml."""
    root = photo_dataset_study(tmp_path, ratings_per_item=2)
    set_config(root, '[scale]\nlow = 1\nlabels = ["bad", "poor", "fair", "good", "excellent"]\n'
                     'higher_is_better = true\n')
    quiet = lambda _m: None  # noqa: E731
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=quiet)
        for round_ in range(4):
            simulate_crowd(f"{url}/worker/sandbox", workers=8, seed=round_,
                           mix={"careful": 1.0}, concurrency=4, progress=False, deadline_s=120)
            collect(study, echo=quiet)
            if crowd_status(study)["collect"]["complete"]:
                break
    frame = ratings_frame(study, valid_only=True)
    assert set(frame.score) <= {1, 2, 3, 4, 5} and frame.score.max() == 5
    gold = frame[frame.gold]
    # The reference against itself is rated at the good end (honest raters may miss one check
    # pair of two and still count).
    assert (gold[gold.method == "reference"].score >= 4).mean() >= 0.75
    run_cli("--study", root, "report", "--format", "json")
    import json
    report = json.loads((root / "reports" / "report.json").read_text())
    assert report["scale"]["higher_is_better"] is True and report["scale"]["low"] == 1
    ranked = [m["method"] for m in sorted(report["methods"], key=lambda m: m["rank"])]
    mos = {m["method"]: m["mos"] for m in report["methods"]}
    # Only the reference stands far enough apart to be ranked reliably at two ratings per item
    # by workers as noisy as real subjects; on this scale it has the highest MOS.
    assert ranked[0] == "reference", ranked
    assert mos["reference"] > mos["input"] + 1, mos


def test_a_repeated_pair_judges_the_worker_and_counts_once(tmp_path):
    """design.repeats_per_hit = 1: every HIT shows one test item twice; collect keeps the first
    rating for the analysis and measures how far the two lie apart."""
    import json

    root = photo_dataset_study(tmp_path, ratings_per_item=2)
    set_config(root, "[design]\nitems_per_hit = 10\nratings_per_item = 2\nrepeats_per_hit = 1\n")
    quiet = lambda _m: None  # noqa: E731
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=quiet)
        simulate_crowd(f"{url}/worker/sandbox", workers=6, seed=3, mix={"careful": 1.0},
                       concurrency=6, progress=False, deadline_s=120)
        collect(study, echo=quiet)
    conn = study.connect()
    assignments = conn.execute("SELECT * FROM assignments").fetchall()
    assert assignments
    for a in assignments:
        rows = conn.execute("SELECT r.*, i.kind FROM ratings r JOIN items i USING (item_id) "
                            "WHERE assignment_id = ?", (a["assignment_id"],)).fetchall()
        repeats = [r for r in rows if r["reason"] == REPEAT_REASON]
        assert len(repeats) == 1 and repeats[0]["kind"] == "test" and not repeats[0]["valid"]
        first = [r for r in rows if r["item_id"] == repeats[0]["item_id"] and r["valid"]]
        assert len(first) == 1 or a["decision"] != "approve"
        checks = json.loads(a["quality_json"])["checks"]
        assert checks["repeat_difference"] == abs(repeats[0]["score"] - (
            [r for r in rows if r["item_id"] == repeats[0]["item_id"]
             and r["position"] != repeats[0]["position"]][0]["score"]))
    valid = ratings_frame(study, valid_only=True)
    assert not valid[~valid.gold].duplicated(["image", "method", "worker"]).any()


def test_satisficers_are_excluded_and_honest_workers_kept(tmp_path, run_cli):
    """A crowd with 30 % satisficers rates photos larger than a screen shows at 1:1, as a real
    bokeh study's are. A satisficer presses "whole photo" and judges from the overview; the page
    records that it never saw a pair at 1:1, and quality control excludes its work from the
    analysis (paid, not rejected). Honest workers, who keep the 1:1 view the page opens with,
    are kept, and the report says who was excluded and who was rejected as two things."""
    import json

    from study.simulate.workers import CAREFUL, SATISFICER

    root = large_photo_study(tmp_path, ratings_per_item=3)
    quiet = lambda _m: None  # noqa: E731
    with study_service(root) as (url, _market):
        study = Study.open(root)
        publish(study, "sandbox", echo=quiet)
        result = simulate_crowd(f"{url}/worker/sandbox", workers=10, seed=2,
                                mix={CAREFUL: 0.7, SATISFICER: 0.3}, concurrency=4,
                                progress=False, deadline_s=120)
        collect(study, echo=quiet)
    worked = {w.worker_id: w.kind for w in result.workers if w.submitted}
    satisficers = {worker_id_for(w) for w, k in worked.items() if k == SATISFICER}
    honest = {worker_id_for(w) for w, k in worked.items() if k == CAREFUL}
    assert satisficers and honest
    conn = study.connect()
    decisions = {}
    for a in conn.execute("SELECT worker_id, decision, decision_reason FROM assignments"):
        decisions.setdefault(a["worker_id"], []).append((a["decision"], a["decision_reason"]))
    conn.close()
    for w in satisficers:
        assert all(d == "exclude" and "1:1" in why for d, why in decisions[w]), decisions[w]
    for w in honest:
        assert all(d == "approve" for d, _ in decisions[w]), decisions[w]
    run_cli("--study", root, "report", "--format", "json,md")
    report = json.loads((root / "reports" / "report.json").read_text())
    rows = {w["worker"]: w for w in report["workers"]}
    for w in satisficers:
        assert rows[w]["screening"] == "excluded" and rows[w]["excluded_by"] == "collect"
        assert rows[w]["rejected"] is False and "1:1" in rows[w]["reason"]
    assert all(rows[w]["screening"] == "kept" for w in honest)
    md = (root / "reports" / "report.md").read_text()
    assert "excluded from the analysis at collect" in md and "Rejected (not paid)" in md


def large_photo_study(base, ratings_per_item: int, factor: int = 16):
    """photo_dataset_study's study on photos `factor` times as large (1200 x 1792): the same
    pictures, so the methods differ as much, but taller than any common screen shows at 1:1."""
    from PIL import Image

    from conftest import CLI
    from test_crowd_support import add_renders, make_bokeh_dataset

    dataset = make_bokeh_dataset(base / "ebb", size=(75, 112))
    for path in (dataset / "test").glob("*/*.png"):
        with Image.open(path) as im:
            big = im.resize((im.width * factor, im.height * factor), Image.Resampling.BICUBIC)
        big.save(path)
    root = base / "study"
    CLI()("init", root, "--dataset", dataset)
    add_renders(root)
    set_config(root, f"[design]\nitems_per_hit = 10\nratings_per_item = {ratings_per_item}\n")
    return root
