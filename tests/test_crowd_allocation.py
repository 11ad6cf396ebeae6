"""Adaptive allocation through the real loop: publish asks for the first round only and records
the plan; each collect round looks at the ratings and tops up only the items still undecided;
`study status` says what the next round buys; uniform allocation is unchanged."""

from __future__ import annotations

import json

from test_crowd_support import photo_dataset_study, set_config, study_service

from study import store
from study.crowd.collect import collect
from study.crowd.publish import publish, published_params
from study.crowd.ratings import ratings_frame
from study.crowd.status import crowd_status
from study.simulate.crowd import simulate_crowd
from study.studydir import Study


def test_adaptive_rounds_rate_only_undecided_items(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("STUDY_RETRY_BASE_S", "0.01")
    root = photo_dataset_study(tmp_path, ratings_per_item=6)
    set_config(root, "[design]\nitems_per_hit = 10\nratings_per_item = 6\n"
                     "allocation = \"adaptive\"\ninitial_ratings_per_item = 2\n")
    lines: list[str] = []
    with study_service(root) as (url, _market):
        study = Study.open(root)
        plan = publish(study, "sandbox", echo=lines.append)
        assert plan.assignments_per_hit == 2
        assert any("adaptive: 2 ratings per item now" in line for line in lines)
        conn = study.connect()
        params = published_params(conn, "sandbox")
        conn.close()
        assert params["allocation"] == "adaptive" and params["ratings_per_item"] == 6
        assert params["initial_ratings_per_item"] == 2
        looked = None
        for round_ in range(8):
            simulate_crowd(f"{url}/worker/sandbox", workers=10, seed=round_,
                           mix={"careful": 1.0}, concurrency=4, progress=False, deadline_s=120)
            collect(study, echo=lambda _m: None)
            conn = study.connect()
            stored = store.get_meta(conn, "crowd.sandbox.allocation")
            conn.close()
            if stored and looked is None:
                looked = json.loads(stored)
            if crowd_status(study)["collect"]["complete"]:
                break
        status = crowd_status(study)
        assert status["collect"]["complete"], status["collect"]["summary"]
    assert looked is not None, "a look follows the first complete round"
    assert looked["lines"] and looked["pairs"]
    wanted = looked["wanted"].values()
    assert min(wanted) >= 2 and max(wanted) <= 6
    final = json.loads(store.get_meta(Study.open(root).connect(), "crowd.sandbox.allocation"))
    assert final["stop"]
    tests = ratings_frame(study, valid_only=True)
    tests = tests[~tests.gold]
    counts = tests.groupby(["image", "method"]).size()
    assert (counts >= 2).all() and not tests.duplicated(["image", "method", "worker"]).any()
    out = run_cli("--study", root, "status").output
    assert "adaptive allocation, after the last round:" in out and "stop" in out
