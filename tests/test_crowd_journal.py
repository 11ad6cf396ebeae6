"""The journal's steps: a step's row and its state changes are stored together, and each fault
point leaves the state the crash it stands for would leave. And hosting many images at once
stores what hosting them one by one would."""

from __future__ import annotations

import json

import pytest

from study.crowd import design
from study.crowd.faults import InjectedFault
from study.crowd.hosting import Hosting, hosted_dir
from study.crowd.publish import publish
from study.studydir import Study
from test_crowd_support import (copy_study, fresh_faults, marketplace_hits,  # noqa: F401
                                ready_study, study_service)

QUIET = lambda _m: None  # noqa: E731

pytestmark = pytest.mark.usefixtures("fresh_faults")


def _state(study) -> tuple[list[str], list[str]]:
    conn = study.connect()
    try:
        steps = [r[0] for r in conn.execute("SELECT step FROM journal WHERE step LIKE "
                                            "'publish:create_hit:%' ORDER BY rowid")]
        states = [r[0] for r in conn.execute("SELECT state FROM hits ORDER BY hit_index")]
    finally:
        conn.close()
    return steps, states


@pytest.mark.parametrize("step, steps, states, made", [
    # announced and stored together; the call not made
    ("publish:create_hit:intent", ["intent"], ["planned"], 0),
    ("publish:create_hit:sent", ["intent", "sent"], ["creating"], 0),
    # the call made, nothing of its answer stored: neither the row nor the state
    ("publish:create_hit:done", ["intent", "sent"], ["creating"], 1),
])
def test_each_fault_point_leaves_the_state_of_its_crash(ready_study, tmp_path, monkeypatch,
                                                         step, steps, states, made):
    study = copy_study(ready_study, tmp_path / "s")
    with study_service(study.root):
        monkeypatch.setenv("STUDY_FAULT", step)
        with pytest.raises(InjectedFault):
            publish(study, "sandbox", echo=QUIET, preflight=False)
        monkeypatch.delenv("STUDY_FAULT")
        got_steps, got_states = _state(study)
        assert [s.rsplit(":", 1)[1] for s in got_steps] == steps
        assert got_states == states
        assert len(marketplace_hits(study)) == made


def test_a_finished_step_stores_its_row_with_its_state(ready_study, tmp_path):
    study = copy_study(ready_study, tmp_path / "s")
    with study_service(study.root):
        publish(study, "sandbox", echo=QUIET, preflight=False)
    conn = study.connect()
    try:
        done = {json.loads(r[0])["hit_index"]: json.loads(r[0])["hit_id"] for r in conn.execute(
            "SELECT detail FROM journal WHERE step = 'publish:create_hit:done'")}
        created = {r[0]: r[1] for r in conn.execute(
            "SELECT hit_index, hit_id FROM hits WHERE state = 'created'")}
    finally:
        conn.close()
    assert done == created and created


def test_hosting_many_images_at_once_is_hosting_them_one_by_one(ready_study, tmp_path):
    one_by_one = copy_study(ready_study, tmp_path / "a")
    at_once = copy_study(ready_study, tmp_path / "b")
    found = []
    for study, batch in ((one_by_one, False), (at_once, True)):
        conn = study.connect()
        try:
            d = design.ensure_design(study, conn)
            paths = [p for h in range(len(d.hits)) for r in design.hit_items(conn, h)
                     for p in (r["reference_path"], r["result_path"])]
            hosting = Hosting(study, conn)
            if batch:
                hosting.host_all(paths)
                hosting.host_all(paths)  # again: nothing left to do
            urls = [hosting.url_for(p) for p in paths]
            rows = conn.execute("SELECT sha256, ext, mode FROM hosted_images "
                                "ORDER BY sha256").fetchall()
        finally:
            conn.close()
        files = sorted(p.name for p in hosted_dir(study).iterdir() if p.is_file())
        assert files == sorted(f"{r[0]}.{r[1]}" for r in rows)
        assert all(not name.startswith(".") for name in files)  # no temporary file left
        found.append(([u.rsplit("/", 1)[1] for u in urls], [tuple(r) for r in rows], files))
    assert found[0] == found[1]
