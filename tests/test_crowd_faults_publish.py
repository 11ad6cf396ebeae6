"""Crashes at every journal step of publish, then a re-run: each planned HIT exists exactly
once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from study.crowd.faults import InjectedFault
from study.crowd.journal import PUBLISH_STEPS
from study.crowd.publish import publish
from study.studydir import Study
from test_crowd_support import (check_published_once, copy_study, fresh_faults,  # noqa: F401
                                ready_study, study_service)

QUIET = lambda _m: None  # noqa: E731


pytestmark = pytest.mark.usefixtures("fresh_faults")


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_publish_crash_at_every_step_then_rerun(ready_study, tmp_path, monkeypatch, step):
    root = copy_study(ready_study, tmp_path / "s").root
    with study_service(root):
        study = Study.open(root)
        monkeypatch.setenv("STUDY_FAULT", f"{step}:2" if "create_hit" in step else step)
        with pytest.raises(InjectedFault):
            publish(study, "sandbox", echo=QUIET)
        monkeypatch.delenv("STUDY_FAULT")
        publish(study, "sandbox", echo=QUIET)
        publish(study, "sandbox", echo=QUIET)
        check_published_once(study)


def test_publish_killed_after_create_then_rerun(ready_study, tmp_path):
    """The process dies right after the marketplace made the HIT, before study.db knew."""
    root = copy_study(ready_study, tmp_path / "s").root
    with study_service(root):
        study = Study.open(root)
        env = dict(os.environ, STUDY_FAULT="publish:create_hit:done:2", STUDY_FAULT_MODE="exit")
        proc = subprocess.run([sys.executable, "-m", "study", "publish"], cwd=study.root,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 137, proc.stderr
        publish(study, "sandbox", echo=QUIET)
        check_published_once(study)


