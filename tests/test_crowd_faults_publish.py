"""Crashes at every journal step of publish, then a re-run: each planned HIT exists exactly
once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from study.crowd import faults
from study.crowd.faults import InjectedFault
from study.crowd.journal import PUBLISH_STEPS
from study.crowd.publish import publish
from test_crowd_support import check_published_once, copy_study, photo_dataset_study

QUIET = lambda _m: None  # noqa: E731


@pytest.fixture(autouse=True)
def _fresh_faults(monkeypatch):
    monkeypatch.setenv("STUDY_RETRY_BASE_S", "0.01")
    faults.reset()
    yield
    faults.reset()


@pytest.fixture(scope="module")
def ready_study(tmp_path_factory):
    """A study with renders, R = 2, and a bonus; nothing published."""
    return photo_dataset_study(tmp_path_factory.mktemp("ready"))


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_publish_crash_at_every_step_then_rerun(ready_study, tmp_path, monkeypatch, step):
    study = copy_study(ready_study, tmp_path / "s")
    monkeypatch.setenv("STUDY_FAULT", f"{step}:2" if "create_hit" in step else step)
    with pytest.raises(InjectedFault):
        publish(study, "sandbox", echo=QUIET)
    monkeypatch.delenv("STUDY_FAULT")
    publish(study, "sandbox", echo=QUIET)
    publish(study, "sandbox", echo=QUIET)
    check_published_once(study)


def test_publish_killed_after_create_then_rerun(ready_study, tmp_path):
    """The process dies right after the marketplace made the HIT, before study.db knew."""
    study = copy_study(ready_study, tmp_path / "s")
    env = dict(os.environ, STUDY_FAULT="publish:create_hit:done:2", STUDY_FAULT_MODE="exit")
    proc = subprocess.run([sys.executable, "-m", "study", "publish"], cwd=study.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    publish(study, "sandbox", echo=QUIET)
    check_published_once(study)


