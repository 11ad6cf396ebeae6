"""`study demo`, the README's main command, end to end at its default settings."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_ranks_as_planted_and_flags_the_spammers(tmp_path, run_cli):
    target = tmp_path / "demo"
    result = run_cli("demo", target, "--port", "0")
    summary = json.loads((target / "demo-summary.json").read_text())
    assert summary["ranking_matches"], summary
    assert summary["report_ranking"][0] == "reference"
    assert summary["spammers"] and summary["spammers_flagged"] == summary["spammers"]
    reports = target / "study" / "reports"
    for name in ("report.md", "report.html", "report.tex", "report.json", "methods.csv"):
        assert (reports / name).is_file(), name
    status = json.loads(run_cli("status", "--json", cwd=target / "study").stdout)
    assert all(status[stage]["complete"] for stage in
               ("dataset", "render", "publish", "collect", "report")), status
    assert status["next"] is None
    assert "study serve" in result.output  # how to open the dashboard
    assert not (target / "study" / ".serve.json").exists()
