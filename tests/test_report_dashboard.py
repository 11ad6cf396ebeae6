"""The requester dashboard against a study's real database: the same intervals as `study
report`, a report card that is never done while collection is incomplete, and the assignments
excluded from the analysis counted apart from those rejected."""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np
import pytest

from study.studydir import Study
from study.web import create_app

TRUTH = {"good": 0.5, "fair": 1.8, "poor": 3.2}
TOKEN = "dashboard-test-token"


def rate(root, approved: int, extra: dict[str, str] | None = None) -> None:
    """Ratings as `study collect` stores them: 8 workers rate every item of one HIT; the first
    `approved` assignments are approved, `extra` gives other workers' decisions."""
    rng = np.random.default_rng(0)
    con = sqlite3.connect(root / "study.db")
    images = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY image_id")]
    con.execute("INSERT INTO methods (name, kind, spec_json) VALUES ('reference', 'builtin', "
                "'{\"builtin\": \"reference\", \"kind\": \"builtin\"}')")
    for k, m in enumerate(TRUTH):
        con.execute("INSERT INTO methods (name, kind, spec_json, team) VALUES (?, 'builtin', '{}', ?)",
                    (m, f"Team {m}"))
    for img in images:
        con.execute("INSERT INTO renders (method, image_id, status, psnr, ssim, runtime_s) "
                    "VALUES ('reference', ?, 'done', ?, 1.0, 0.001)", (img, float("inf")))
        for k, m in enumerate(TRUTH):
            con.execute("INSERT INTO renders (method, image_id, status, psnr, ssim, runtime_s) "
                        "VALUES (?, ?, 'done', ?, ?, 0.1)", (m, img, 25.0 - k, 0.9 - 0.05 * k))
    items = []
    for img in images:
        for m in TRUTH:
            items.append((con.execute("INSERT INTO items (image_id, method, kind, reference_path, "
                                      "result_path) VALUES (?, ?, 'test', 'r', 'x')",
                                      (img, m)).lastrowid, m))
    for pos, (item, _) in enumerate(items, 1):
        con.execute("INSERT INTO hit_items (hit_index, position, item_id) VALUES (0, ?, ?)",
                    (pos, item))
    con.execute("INSERT INTO hits (realm, hit_index, unique_token, hit_id, max_assignments, reward, "
                "state) VALUES ('sandbox', 0, 't0', 'H', 8, '0.50', 'created')")
    decisions = {f"W{w}": "approve" for w in range(approved)} | (extra or {})
    for w in range(8):
        worker = f"W{w}"
        con.execute("INSERT INTO assignments (assignment_id, realm, hit_id, hit_index, worker_id, "
                    "status, decision) VALUES (?, 'sandbox', 'H', 0, ?, 'Submitted', ?)",
                    (f"A{w}", worker, decisions.get(worker)))
        decision = decisions.get(worker)
        # Collect leaves the ratings of work it did not approve out, saying why.
        kept = decision in (None, "approve")
        for pos, (item, m) in enumerate(items, 1):
            score = int(np.clip(np.rint(TRUTH[m] + rng.normal(0, 0.6)), 0, 4))
            con.execute("INSERT INTO ratings (assignment_id, position, item_id, worker_id, score, "
                        "seconds, valid, reason) VALUES (?, ?, ?, ?, ?, 3.0, ?, ?)",
                        (f"A{w}", pos, item, worker, score, int(kept),
                         "" if kept else f"{decision}: planted by the test"))
    con.commit()
    con.close()


@pytest.fixture
def dashboard(study_dir):
    def open_dashboard():
        app = create_app(Study.open(study_dir), dashboard_token=TOKEN)
        return app.test_client()
    return open_dashboard


def get(client, path: str):
    resp = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200, resp.data[:500]
    return resp


def test_dashboard_intervals_are_the_reports(study_dir, run_cli, dashboard):
    rate(study_dir, approved=8)
    run_cli("report", "--format", "json", cwd=study_dir)
    report = json.loads((study_dir / "reports" / "report.json").read_text())
    data = get(dashboard(), "/dashboard/data.json").get_json()
    keys = ("method", "rank", "mos", "ci95_low", "ci95_high", "group")
    assert [{k: m[k] for k in keys} for m in data["methods"]] == \
        [{k: m[k] for k in keys} for m in report["methods"]]
    assert data["analysis"]["bootstrap"] == report["settings"]["bootstrap"] == 2000
    html = get(dashboard(), "/dashboard/").get_data(as_text=True)
    good = report["methods"][[m["method"] for m in report["methods"]].index("good")]
    assert f"[{good['ci95_low']:.2f}, {good['ci95_high']:.2f}]" in html
    assert "The same analysis as <code>study report</code>" in html


def test_report_card_is_not_done_while_collection_is_incomplete(study_dir, run_cli, dashboard):
    rate(study_dir, approved=3)  # 5 valid ratings per item are required
    run_cli("report", "--format", "json,html", cwd=study_dir)
    data = get(dashboard(), "/dashboard/data.json").get_json()
    n_items = len(data["status"]["collect"]["items"])
    assert n_items > 0 and data["status"]["report"]["files"]
    assert data["report_card"]["complete"] is False
    assert data["report_card"]["text"].startswith(
        f"collection incomplete: 0 of {n_items} items have all their ratings")
    html = get(dashboard(), "/dashboard/").get_data(as_text=True)
    stage = re.search(r'<div class="stage ([^"]*)" id="stage-report">(.*?)</div>\s*</div>',
                      html, re.S)
    assert "done" not in stage.group(1)
    assert "collection incomplete: 0 of" in stage.group(2)


def test_report_card_is_done_once_collected_and_reported(study_dir, run_cli, dashboard):
    rate(study_dir, approved=8)
    data = get(dashboard(), "/dashboard/data.json").get_json()
    assert data["status"]["collect"]["complete"] and data["report_card"]["complete"] is False
    run_cli("report", "--format", "json", cwd=study_dir)
    data = get(dashboard(), "/dashboard/data.json").get_json()
    assert data["report_card"] == {"complete": True, "text": "report.json"}


def test_excluded_and_rejected_are_counted_apart(study_dir, dashboard, run_cli):
    rate(study_dir, approved=5, extra={"W5": "exclude", "W6": "exclude", "W7": "reject"})
    data = get(dashboard(), "/dashboard/data.json").get_json()
    spend = data["spend"]
    assert (spend["approved"], spend["excluded"], spend["rejected"]) == (7, 2, 1)
    html = get(dashboard(), "/dashboard/").get_data(as_text=True)
    cells = dict(re.findall(r"<th>([^<]+)</th><td class=\"num\">([^<]+)</td>", html))
    assert cells["Excluded from the analysis"] == "2"
    assert cells["Rejected (not paid)"] == "1"
    assert cells["Approved (paid)"] == "7"
    # Per worker, whether its ratings are in the analysis and whether it was paid are two columns.
    run_cli("report", "--format", "json", cwd=study_dir)
    html = get(dashboard(), "/dashboard/").get_data(as_text=True)
    table = html[html.index('id="workers"'):]
    assert "<th>Analysis</th><th>Rejected (not paid)</th>" in table
    rows = {m[0]: m[1] for m in re.findall(r"<tr><td>(W\d)</td>(.*?)</tr>", table, re.S)}
    assert "excluded (collect)" in rows["W5"] and "<td>no</td>" in rows["W5"]
    assert "excluded (collect)" in rows["W7"] and "<td>yes</td>" in rows["W7"]
    assert ">kept<" in rows["W0"] and "<td>no</td>" in rows["W0"]
