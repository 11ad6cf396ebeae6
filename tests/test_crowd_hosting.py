"""Hosting many images at once and the preflight over them: every hosted file whole and served,
nothing written twice, and one missing image still stops a publish."""

from __future__ import annotations

import os

import pytest
import requests

from study.crowd import design
from study.crowd.hosting import Hosting, hosted_dir
from study.crowd.preflight import preflight
from study.errors import StudyError
from study.studydir import Study
from test_crowd_support import photo_dataset_study, study_service


def _designed(root):
    study = Study.open(root)
    conn = study.connect()
    d = design.ensure_design(study, conn)
    hits = list(range(len(d.hits)))
    paths = [r[f"{side}_path"] for h in hits for r in design.hit_items(conn, h)
             for side in ("reference", "result")]
    return study, conn, hits, paths


def test_host_all_names_each_encoded_copy_once_and_serves_it_whole(tmp_path):
    root = photo_dataset_study(tmp_path)
    with study_service(root) as (url, _market):
        study, conn, hits, paths = _designed(root)
        try:
            hosting = Hosting(study, conn)
            hosting.host_all(paths)
            rows = conn.execute("SELECT sha256, ext, location FROM hosted_images").fetchall()
            assert len(rows) == len({hosting.identify(p)[0] for p in paths}) > 1
            for r in rows:
                hosted = hosted_dir(study) / f"{r['sha256']}.{r['ext']}"
                assert r["location"] == str(hosted) and not hosted.is_symlink()
                assert oct(hosted.stat().st_mode & 0o777) == oct(0o644)
            for p in paths[:4]:
                sha, ext = hosting.identify(p)
                hosted = hosted_dir(study) / f"{sha}.{ext}"
                # The hosted name is the encoded copy itself: its bytes were written once.
                assert os.path.samefile(hosted, hosting.file(p))
                got = requests.get(f"{url}/img/{sha}.{ext}", timeout=10)
                assert got.status_code == 200 and got.content == hosted.read_bytes()
            before = {f: f.stat().st_mtime_ns for f in hosted_dir(study).glob("*.*")}
            Hosting(study, conn).host_all(paths)  # a second run writes nothing again
            assert {f: f.stat().st_mtime_ns for f in hosted_dir(study).glob("*.*")} == before
            assert preflight(study, conn, Hosting(study, conn), hits) == len(rows)
        finally:
            conn.close()


def test_host_all_copies_where_links_cannot_be_made(tmp_path, monkeypatch):
    root = photo_dataset_study(tmp_path)
    study, conn, _hits, paths = _designed(root)
    try:
        def no_links(*_a, **_k):
            raise OSError("hard links are not supported here")

        monkeypatch.setattr(os, "link", no_links)
        hosting = Hosting(study, conn)
        hosting.host_all(paths)
        sha, ext = hosting.identify(paths[0])
        hosted = hosted_dir(study) / f"{sha}.{ext}"
        assert not os.path.samefile(hosted, hosting.file(paths[0]))
        assert hosted.read_bytes() == hosting.file(paths[0]).read_bytes()
        assert not list(hosted_dir(study).glob(".*.tmp"))
    finally:
        conn.close()


def test_preflight_finds_the_one_image_that_cannot_be_loaded(tmp_path):
    root = photo_dataset_study(tmp_path)
    with study_service(root):
        study, conn, hits, paths = _designed(root)
        try:
            hosting = Hosting(study, conn)
            hosting.host_all(paths)
            sha, ext = hosting.identify(paths[-1])
            # A hosted file that is there but is no image any more (a missing one would be
            # hosted again on the way).
            broken = hosted_dir(study) / f"{sha}.{ext}"
            broken.unlink()
            broken.write_bytes(b"not an image")
            with pytest.raises(StudyError, match=r"^1 of \d+ page and image URL"):
                preflight(study, conn, Hosting(study, conn), hits)
        finally:
            conn.close()
