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
