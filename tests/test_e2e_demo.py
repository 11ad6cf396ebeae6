"""`study demo`, the README's main command, end to end at its default settings; and the same
seed run again while another process loads the CPU gives the same report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Fields that measure this machine, not the study.
TIMING_FIELDS = {"runtime_s", "seconds", "elapsed_s"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def cpu_load():
    """Another process keeping a CPU busy, until stopped: the demo's threads (server, crowd)
    are scheduled differently, and each request takes another time."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])]


@pytest.mark.slow
def test_demo_ranks_as_planted_flags_the_spammers_and_repeats_under_load(tmp_path, run_cli):
    target = tmp_path / "demo"
    result = run_cli("demo", target, "--port", "0")
    summary = json.loads((target / "demo-summary.json").read_text())
    assert summary["ranking_matches"], summary
    assert summary["report_ranking"][0] == "reference"
    assert summary["flags"]["recall"] == 1.0, summary["flags"]
    reports = target / "study" / "reports"
    for name in ("report.md", "report.html", "report.tex", "report.json", "methods.csv"):
        assert (reports / name).is_file(), name
    status = json.loads(run_cli("status", "--json", cwd=target / "study").stdout)
    assert all(status[stage]["complete"] for stage in
               ("dataset", "render", "publish", "collect", "report")), status
    assert status["next"] is None
    assert "study serve" in result.output  # how to open the dashboard
    assert "precision" in result.output and "recall" in result.output
    assert not (target / "study" / ".serve.json").exists()

    again = tmp_path / "again"
    load = cpu_load()
    try:
        run_cli("demo", again, "--port", "0")
    finally:
        for p in load:
            p.kill()
            p.wait()
    first = json.loads((reports / "report.json").read_text())
    second = json.loads((again / "study" / "reports" / "report.json").read_text())
    assert without_timings(second) == without_timings(first)
