"""The marketplace's own SQLite file (separate from a study's study.db).

One row per realm-scoped entity; every table carries `realm` so the sandbox and the live
marketplace share a file but never share data. Connections run in WAL mode with a busy timeout;
writers take the lock up front (BEGIN IMMEDIATE) and keep transactions short, so a threaded server
and other processes (a CLI `invite`, a second server) can use the same file.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REALMS = ("sandbox", "live")
SANDBOX_START_CENTS = 1_000_000  # MTurk's sandbox showed $10,000.00

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS mk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    realm TEXT PRIMARY KEY,
    balance_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hit_types (
    realm TEXT NOT NULL,
    hit_type_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    keywords TEXT,
    reward_cents INTEGER NOT NULL,
    assignment_duration INTEGER NOT NULL,
    auto_approval_delay INTEGER NOT NULL,
    qual_json TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (realm, hit_type_id),
    UNIQUE (realm, fingerprint)
);
CREATE TABLE IF NOT EXISTS hits (
    realm TEXT NOT NULL,
    hit_id TEXT NOT NULL,
    hit_type_id TEXT NOT NULL,
    question TEXT NOT NULL,
    max_assignments INTEGER NOT NULL,
    expiration REAL NOT NULL,
    requester_annotation TEXT,
    review_status TEXT NOT NULL DEFAULT 'NotReviewed',
    reviewing INTEGER NOT NULL DEFAULT 0,
    disposed INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    unique_request_token TEXT,
    PRIMARY KEY (realm, hit_id)
);
CREATE INDEX IF NOT EXISTS hits_by_created ON hits (realm, created, hit_id);
CREATE INDEX IF NOT EXISTS hits_by_type ON hits (realm, hit_type_id, created);
CREATE UNIQUE INDEX IF NOT EXISTS hits_by_token ON hits (realm, unique_request_token)
    WHERE unique_request_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS assignments (
    realm TEXT NOT NULL,
    assignment_id TEXT NOT NULL,
    hit_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    -- Accepted, Submitted, Approved, Rejected, Returned, Abandoned
    status TEXT NOT NULL,
    accept_time REAL NOT NULL,
    deadline REAL NOT NULL,
    submit_time REAL,
    auto_approval_time REAL,
    approval_time REAL,
    rejection_time REAL,
    answer TEXT,
    requester_feedback TEXT,
    PRIMARY KEY (realm, assignment_id)
);
CREATE INDEX IF NOT EXISTS assignments_by_hit ON assignments (realm, hit_id, status);
CREATE INDEX IF NOT EXISTS assignments_by_worker ON assignments (realm, worker_id, hit_id);
CREATE INDEX IF NOT EXISTS assignments_due ON assignments (realm, status, deadline);
CREATE INDEX IF NOT EXISTS assignments_auto ON assignments (realm, status, auto_approval_time);
CREATE TABLE IF NOT EXISTS extensions (
    realm TEXT NOT NULL,
    unique_request_token TEXT NOT NULL,
    hit_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (realm, unique_request_token)
);
CREATE TABLE IF NOT EXISTS qualification_types (
    realm TEXT NOT NULL,
    qualification_type_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    keywords TEXT,
    status TEXT NOT NULL,
    test TEXT,
    answer_key TEXT,
    test_duration INTEGER,
    retry_delay INTEGER,
    auto_granted INTEGER NOT NULL DEFAULT 0,
    auto_granted_value INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (realm, qualification_type_id),
    UNIQUE (realm, name)
);
CREATE TABLE IF NOT EXISTS qualifications (
    realm TEXT NOT NULL,
    qualification_type_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    integer_value INTEGER,
    status TEXT NOT NULL,
    grant_time REAL NOT NULL,
    PRIMARY KEY (realm, qualification_type_id, worker_id)
);
CREATE TABLE IF NOT EXISTS worker_blocks (
    realm TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (realm, worker_id)
);
CREATE TABLE IF NOT EXISTS bonuses (
    realm TEXT NOT NULL,
    bonus_id INTEGER PRIMARY KEY,
    worker_id TEXT NOT NULL,
    assignment_id TEXT NOT NULL,
    hit_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    reason TEXT NOT NULL,
    grant_time REAL NOT NULL,
    unique_request_token TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS bonuses_by_token ON bonuses (realm, unique_request_token)
    WHERE unique_request_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS notifications (
    realm TEXT NOT NULL,
    notification_id INTEGER PRIMARY KEY,
    worker_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    realm TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    country TEXT NOT NULL DEFAULT 'US',
    subdivision TEXT,
    base_approved INTEGER NOT NULL DEFAULT 0,
    base_rejected INTEGER NOT NULL DEFAULT 0,
    masters INTEGER NOT NULL DEFAULT 0,
    participant_id TEXT,
    invite_token TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (realm, worker_id)
);
CREATE TABLE IF NOT EXISTS invites (
    token TEXT PRIMARY KEY,
    realm TEXT NOT NULL,
    label TEXT NOT NULL,
    completion_code TEXT NOT NULL,
    country TEXT NOT NULL DEFAULT 'US',
    base_approved INTEGER NOT NULL DEFAULT 1000,
    created REAL NOT NULL
);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode; use `write()` for transactions."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(conn: sqlite3.Connection) -> threading.Lock:
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path, threading.Lock())


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction that holds the write lock from its start (no upgrade deadlocks).

    Threads of one process queue on a Python lock first: SQLite's busy handler sleeps in steps
    of up to 100 ms, which under 50 concurrent writers costs far more than the writes
    themselves. Other processes still wait through busy_timeout.
    """
    lock = _write_lock(conn)
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")


def init_db(path: str | Path, live_balance_cents: int = 0) -> None:
    """Create the schema and the two accounts if missing; existing data is kept."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        # Every statement is IF NOT EXISTS, so two processes starting at once both succeed.
        conn.executescript(SCHEMA)
        with write(conn):
            conn.execute("INSERT OR IGNORE INTO mk_meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO mk_meta VALUES ('cookie_secret', ?)",
                         (secrets.token_hex(32),))
            conn.execute("INSERT OR IGNORE INTO accounts VALUES ('sandbox', ?)",
                         (SANDBOX_START_CENTS,))
            conn.execute("INSERT OR IGNORE INTO accounts VALUES ('live', ?)",
                         (int(live_balance_cents),))
    finally:
        conn.close()


class Pool:
    """Connections handed to threads: a thread keeps its connection until `release()` (called
    when a request ends), then the connection goes back to a small idle list for the next one."""

    MAX_IDLE = 32

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = connect(self.path)
            self._local.conn = conn
        return conn

    def release(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        with self._lock:
            if len(self._idle) < self.MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close_all(self) -> None:
        self.release()
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except sqlite3.Error:
                pass


def create_invite(db_path: str | Path, label: str, completion_code: str | None = None,
                  country: str = "US", hits_approved: int = 1000) -> str:
    """Create an invitation for the live realm and return its URL path
    (`/worker/live/join/<token>`); append `?participant=<id>` for an outside recruiter's id."""
    init_db(db_path)
    token = secrets.token_urlsafe(18)
    code = completion_code or secrets.token_hex(4).upper()
    import time
    conn = connect(db_path)
    try:
        with write(conn):
            conn.execute("INSERT INTO invites VALUES (?, 'live', ?, ?, ?, ?, ?)",
                         (token, label, code, country.upper(), int(hits_approved), time.time()))
    finally:
        conn.close()
    return f"/worker/live/join/{token}"


def deposit(db_path: str | Path, realm: str, amount: str) -> str:
    """Add funds to a realm's account; returns the new balance as a dollar string."""
    from study.marketplace.money import parse_cents, fmt_cents
    if realm not in REALMS:
        raise ValueError(f"unknown realm {realm!r}")
    cents = parse_cents(amount)
    init_db(db_path)
    conn = connect(db_path)
    try:
        with write(conn):
            conn.execute("UPDATE accounts SET balance_cents = balance_cents + ? WHERE realm = ?",
                         (cents, realm))
            bal = conn.execute("SELECT balance_cents FROM accounts WHERE realm = ?",
                               (realm,)).fetchone()[0]
    finally:
        conn.close()
    return fmt_cents(bal)
