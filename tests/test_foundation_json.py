"""Commands that print results can print them as JSON instead."""

from __future__ import annotations

import json

from conftest import SUBJECTIVE_DATA


def test_init_render_and_report_print_json(tmp_path, ebb_dataset, run_cli):
    out = json.loads(run_cli("init", tmp_path / "s", "--dataset", ebb_dataset, "--json").stdout)
    assert out["images"] == ["1", "2", "10"] and out["port"] > 0
    rendered = json.loads(run_cli("render", "--json", "--methods", "input,reference",
                                  cwd=tmp_path / "s").stdout)
    assert rendered["failed"] == 0 and rendered["rendered"] == 6
    assert {r["method"] for r in rendered["track1"]} == {"input", "reference"}
    report = json.loads(run_cli("report", "--ratings", SUBJECTIVE_DATA / "vqeg_hd3_raw.csv",
                                "--scale", "1..5", "--higher-is-better", "--format", "json",
                                "--bootstrap", "50", "--out", tmp_path / "r", "--json").stdout)
    assert report["schema"] == "study-report" and len(report["methods"]) == 9
