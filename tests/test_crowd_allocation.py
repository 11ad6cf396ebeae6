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
from study.web import create_app


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
        looked = in_flight = None
        for round_ in range(8):
            simulate_crowd(f"{url}/worker/sandbox", workers=10, seed=round_,
                           mix={"careful": 1.0}, concurrency=4, progress=False, deadline_s=120)
            collect(study, echo=lambda _m: None)
            conn = study.connect()
            stored = store.get_meta(conn, "crowd.sandbox.allocation")
            conn.close()
            if stored and looked is None:
                looked = json.loads(stored)
            if stored and in_flight is None and not json.loads(stored)["stop"]:
                in_flight = json.loads(stored)
                page = dashboard_page(root)
                assert 'id="allocation"' in page and "Undecided pairs" in page
                assert "Projected spend" in page and "Next round:" in page
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
    assert "adaptive allocation, after round" in out and "stop" in out
    # The dashboard's figures: spend so far, projected, and what uniform allocation costs.
    view = status["collect"]["allocation_view"]
    assert view["stop"] and view["undecided"] == [] and view["next_usd"] == 0
    assert 0 < view["committed_usd"] <= view["projected_usd"] <= view["uniform_usd"]
    assert "Stopped:" in dashboard_page(root)
    if in_flight is not None:   # a round in flight says what it costs and what it is for
        assert any(line.startswith("  costs") for line in in_flight["lines"])
        assert any("undecided pair(s):" in line for line in in_flight["lines"])
        assert in_flight["next_assignments"] > 0 and in_flight["undecided"]


def dashboard_page(root) -> str:
    client = create_app(Study.open(root), dashboard_token="t").test_client()
    resp = client.get("/dashboard/", headers={"Authorization": "Bearer t"})
    assert resp.status_code == 200
    return resp.get_data(as_text=True)
