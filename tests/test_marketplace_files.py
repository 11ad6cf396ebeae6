"""The marketplace's files over a real run: marketplace.db and its WAL and SHM files are made
0600, whatever the umask, and an existing world-readable file is closed to others."""

from __future__ import annotations

import os
import stat

import pytest
import requests

from study.marketplace import create_invite
from study.marketplace.testing import WorkerClient, running_marketplace
from test_marketplace_support import make_hit


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_database_wal_and_shm_are_private(tmp_path, permissive_umask):
    db = tmp_path / "marketplace.db"
    with running_marketplace(tmp_path, db_path=db) as mk:
        hit = make_hit(mk.client())
        w = WorkerClient(mk.base_url)
        w.login("files")
        w.accept(hit["HITId"])
        assert requests.get(mk.base_url + "/worker/sandbox/").ok
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert all(f.exists() for f in files)
        assert {str(f.name): _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_a_database_made_by_the_invite_command_is_private(tmp_path, permissive_umask):
    db = tmp_path / "other.db"
    create_invite(db, "x")
    assert _mode(db) == 0o600


def test_an_existing_world_readable_database_is_closed_to_others(tmp_path, permissive_umask):
    db = tmp_path / "old.db"
    create_invite(db, "x")
    os.chmod(db, 0o644)
    with running_marketplace(tmp_path, db_path=db) as mk:
        mk.client().get_account_balance()
    assert _mode(db) & 0o007 == 0


def test_a_set_group_id_folder_shares_the_databases_with_its_group_alone(tmp_path,
                                                                          permissive_umask):
    # The organiser shares a study with a group (chgrp GROUP DIR && chmod g+s DIR): both
    # databases and their WAL files become 0640 in the folder's group; others still get nothing.
    from study import store

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2770)
    db = shared / "marketplace.db"
    with running_marketplace(shared, db_path=db) as mk:
        hit = make_hit(mk.client())
        WorkerClient(mk.base_url).login("group")
        assert hit["HITId"]
        study_db = shared / "study.db"
        conn = store.connect(study_db)
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('x', 'y')")
        for path in (db, study_db):
            for f in (path, path.with_name(path.name + "-wal")):
                assert _mode(f) == 0o640, f
                assert os.stat(f).st_gid == os.stat(shared).st_gid
        conn.close()
    # A database made before the folder was shared keeps no access for others either.
    os.chmod(study_db, 0o666)
    store.connect(study_db).close()
    assert _mode(study_db) == 0o640
