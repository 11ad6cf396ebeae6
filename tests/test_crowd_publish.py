"""`study publish`: the plan, the budget, the live guard, dry runs; `study status`."""

from __future__ import annotations

import json

from study.crowd.publish import APPROVAL_RATE, APPROVED_HITS
from study.studydir import Study
from test_crowd_support import (check_published_once, marketplace_hits, photo_dataset_study,
                                set_config, study_service)


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    out = run_cli("publish", "--dry-run", cwd=root).output
    # 2 HITs x 2 assignments x ($0.50 + $0.10 fee)
    assert "2 to create" in out and "$2.00 + fees $0.40 = $2.40" in out
    assert "$10.00/hour" in out and "dry run" in out
    assert not (root / "marketplace.db").exists()
    conn = Study.open(root).connect()
    for table in ("hits", "items", "hit_items", "hosted_images"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'crowd.%'").fetchone()[0] == 0


def test_over_budget_plan_is_refused(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    set_config(root, "[budget]\nmax_usd = 2.0\n")
    result = run_cli("publish", cwd=root, expect=2)
    assert "exceeds the budget of $2.00" in result.output
    assert "budget.max_usd" in result.output and "Traceback" not in result.output
    assert not (root / "marketplace.db").exists()


def test_live_needs_yes(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    result = run_cli("publish", "--live", cwd=root, expect=2)
    assert "needs --yes" in result.output and "Plan for the live realm" in result.output
    assert not (root / "marketplace.db").exists()


def test_sandbox_is_the_default_and_rerun_adds_nothing(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    with study_service(root):
        run_cli("publish", cwd=root)
        again = run_cli("publish", cwd=root).output
    assert "already published in the sandbox realm" in again
    study = Study.open(root)
    check_published_once(study)
    hits = marketplace_hits(study)
    assert all(h["MaxAssignments"] == 2 and h["Reward"] == "0.50" for h in hits)
    assert len({h["HITTypeId"] for h in hits}) == 1
    assert [r["Comparator"] for r in hits[0]["QualificationRequirements"]] == ["DoesNotExist"]
    status = json.loads(run_cli("status", "--json", cwd=root).output)
    assert status["publish"]["hits_published"] == 2 and status["publish"]["complete"]
    assert status["collect"]["items_complete"] == 0 and not status["collect"]["complete"]
    assert status["collect"]["committed_usd"] == "2.40"
    assert status["next"] == "study collect"


def test_status_and_ratings_of_a_fresh_study(tmp_path):
    from study.crowd.ratings import ratings_frame
    from study.crowd.status import crowd_status

    study = Study.open(photo_dataset_study(tmp_path))
    status = crowd_status(study)
    assert not status["publish"]["complete"] and not status["collect"]["complete"]
    frame = ratings_frame(study)
    assert frame.empty and list(frame.columns) == ["image", "method", "worker", "score",
                                                   "valid", "gold", "assignment", "seconds",
                                                   "reason", "expected_min", "expected_max"]


def test_live_without_funds_is_a_clear_error_and_rerun_is_safe(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    with study_service(root):
        result = run_cli("publish", "--live", "--yes", cwd=root, expect=2)
        assert "insufficient funds" in result.output and "add funds" in result.output
        assert "Traceback" not in result.output
        from study.marketplace import deposit
        deposit(root / "marketplace.db", "live", "100.00")
        run_cli("publish", "--live", "--yes", cwd=root)
    hits = marketplace_hits(Study.open(root), "live")
    assert len(hits) == 2
    assert marketplace_hits(Study.open(root), "sandbox") == []
    # Worker-history requirements apply in the live realm only.
    reqs = {r["QualificationTypeId"]: r for r in hits[0]["QualificationRequirements"]}
    assert reqs[APPROVAL_RATE]["IntegerValues"] == [95]
    assert reqs[APPROVED_HITS]["IntegerValues"] == [100]
    assert [r["Comparator"] for q, r in reqs.items()
            if q not in (APPROVAL_RATE, APPROVED_HITS)] == ["DoesNotExist"]


def test_unreachable_endpoint_is_a_clear_error(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("STUDY_RETRY_BASE_S", "0.001")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    root = photo_dataset_study(tmp_path)
    set_config(root, '[marketplace]\nendpoint = "http://127.0.0.1:9/requester/{realm}"\n')
    with study_service(root):
        result = run_cli("publish", cwd=root, expect=2)
    assert "cannot be reached" in result.output and "Traceback" not in result.output
    assert "http://127.0.0.1:9/requester/sandbox" in result.output


def test_publish_refuses_before_any_hit_when_images_cannot_be_loaded(tmp_path, run_cli):
    """Study B's base URL points at study A's running service: every image would 404."""
    a = photo_dataset_study(tmp_path / "a")
    b = photo_dataset_study(tmp_path / "b")
    with study_service(a) as (url_a, _market):
        set_config(b, f'[hosting]\nmode = "service"\nbase_url = "{url_a}"\n'
                      f'[serve]\nport = {url_a.rsplit(":", 1)[1]}\n')
        with study_service(b):  # B's own service runs, but its base URL is A's
            set_config(b, f'[hosting]\nmode = "service"\nbase_url = "{url_a}"\n'
                          f'[serve]\nport = {url_a.rsplit(":", 1)[1]}\n')
            out = run_cli("publish", cwd=b, expect=2).output
    assert "cannot be loaded; nothing was published" in out and f"{url_a}/img/" in out
    assert "HTTP 404" in out
    conn = Study.open(b).connect()
    assert conn.execute("SELECT COUNT(*) FROM hits WHERE state != 'planned'").fetchone()[0] == 0


def test_publish_and_collect_with_both_realms_is_an_error(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path)
    for command in ("publish", "collect"):
        out = run_cli(command, "--sandbox", "--live", cwd=root, expect=2).output
        assert "--sandbox and --live cannot be used together" in out


def test_a_command_never_uses_another_studys_service(tmp_path, run_cli):
    """Study B configured on study A's port: simulate and publish refuse A's service."""
    a = photo_dataset_study(tmp_path / "a")
    b = photo_dataset_study(tmp_path / "b")
    with study_service(a) as (url_a, _market):
        set_config(b, f'[hosting]\nmode = "service"\nbase_url = "{url_a}"\n'
                      f'[serve]\nport = {url_a.rsplit(":", 1)[1]}\n')
        out = run_cli("simulate", "--workers", "1", cwd=b, expect=2).output
        assert f"the service at {url_a} belongs to another study" in out
