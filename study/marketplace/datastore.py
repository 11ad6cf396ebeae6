"""The marketplace's data layer: the only module that runs SQL on marketplace.db.

Connections run in WAL mode with a busy timeout; writers take the lock up front (BEGIN IMMEDIATE)
and keep transactions short, so a threaded server and other processes (a CLI `invite`, a second
server) can use the same file. Each thread keeps one pooled connection until its request ends;
every query below runs on it, so a query inside `transaction()` is part of that transaction.

This file is longer than most because it holds every statement of the marketplace, grouped by the
role that asks for it (sweeps, HITs, assignments, money, qualifications, workers, invitations).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

from study.marketplace.due import tracker
from study.marketplace.tables import (
    ADDED_COLUMNS,
    BY_REQUESTER,
    SANDBOX_START_CENTS,
    SCHEMA,
    SCHEMA_VERSION,
)
from study.files import private_database
from study.store import transaction as sqlite_transaction


class Account(NamedTuple):
    """A requester in a realm: every key is its own account, with its own data and money."""
    realm: str
    requester: str


POOL = ""  # the requester of what no key has claimed yet
OPEN = "('Accepted','Submitted','Approved','Rejected')"  # statuses that hold a HIT's slot
NOT_DELETED = ("NOT EXISTS (SELECT 1 FROM qualification_type_deletions d WHERE d.realm = q.realm "
               "AND d.qualification_type_id = q.qualification_type_id)")
HIT_SQL = """SELECT h.*, t.title, t.description, t.keywords, t.reward_cents,
    t.assignment_duration, t.auto_approval_delay, t.qual_json
    FROM hits h JOIN hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id"""


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode; transactions go through `transaction()`."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # In WAL mode with synchronous=NORMAL a commit is not flushed to disk, a checkpoint is:
    # the request that crosses the checkpoint's size waits for it. Past 1,000 pages (the
    # default) that was a quarter to a third of a CreateHIT's time; 8,000 pages (32 MB of
    # WAL) make it rare, and the WAL file is cut back to 64 MB when one has grown past it.
    conn.execute("PRAGMA wal_autocheckpoint = 8000")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    return conn


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: str) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path, threading.Lock())


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


class Store:
    """marketplace.db: the schema, the one transaction helper, and every query."""

    def __init__(self, path: str | Path, live_balance_cents: int = 0):
        # The resolved path keys the write lock, so every Store on one file shares it.
        self.path = str(Path(path).resolve())
        self.pool = Pool(self.path)
        self._init(live_balance_cents)
        self.due = tracker(self.path, os.stat(self.path).st_ino)

    # -- infrastructure ------------------------------------------------------------------------
    def _init(self, live_balance_cents: int) -> None:
        """Create or upgrade the schema; existing data is kept. A new file's live realm starts
        with `live_balance_cents`, for the first key that uses it."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        private_database(self.path)
        conn = self.conn()
        with self.transaction():
            fresh = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'mk_meta'"
                                     ).fetchone()
            if not fresh and "requester" not in self._columns("accounts"):
                self._upgrade_from_1()
            self._create_tables()
            for table, column in ADDED_COLUMNS:
                if column.split()[0] not in self._columns(table):
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            if fresh:
                conn.execute("INSERT INTO accounts (realm, requester, balance_cents) "
                             "VALUES ('live', ?, ?)",
                             (POOL, int(live_balance_cents)))
            conn.execute("INSERT OR REPLACE INTO mk_meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO mk_meta VALUES ('cookie_secret', ?)",
                         (secrets.token_hex(32),))

    def _create_tables(self) -> None:
        # Statement by statement: executescript() would commit the open transaction.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.conn().execute(statement)

    def _columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn().execute(f"PRAGMA table_info({table})")]

    def _upgrade_from_1(self) -> None:
        """Schema 1 had one account per realm shared by every key: its rows and balances go
        to the pool, for the first key that uses each realm."""
        conn = self.conn()
        for table in BY_REQUESTER:
            conn.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
        # The old indexes keep their names until their tables go, so tables first, then data,
        # then the indexes again.
        self._create_tables()
        for table in BY_REQUESTER:
            cols = ", ".join(self._columns(f"{table}_v1"))
            conn.execute(f"INSERT INTO {table} ({cols}, requester) SELECT {cols}, '' "
                         f"FROM {table}_v1")
            conn.execute(f"DROP TABLE {table}_v1")

    def conn(self) -> sqlite3.Connection:
        return self.pool.get()

    def close(self) -> None:
        self.pool.close_all()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A short transaction on this thread's connection; one inside another joins it.

        write=True holds the write lock from its start (no upgrade deadlocks). Threads of one
        process queue on a Python lock first: SQLite's busy handler sleeps in steps of up to
        100 ms, which under 50 concurrent writers costs far more than the writes themselves.
        Other processes still wait through busy_timeout. write=False reads one snapshot.
        """
        conn = self.conn()
        if conn.in_transaction:
            yield conn
            return
        lock = _write_lock(self.path) if write else None
        if lock is not None:
            lock.acquire()
        try:
            with sqlite_transaction(conn, immediate=write):
                yield conn
        finally:
            if lock is not None:
                lock.release()

    def _one(self, sql: str, args=()):
        return self.conn().execute(sql, args).fetchone()

    def _all(self, sql: str, args=()) -> list:
        return self.conn().execute(sql, args).fetchall()

    def _run(self, sql: str, args=()) -> int:
        return self.conn().execute(sql, args).rowcount

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM mk_meta WHERE key = ?", (key,))
        return row[0] if row else None

    # -- accounts -----------------------------------------------------------------------------
    def has_account(self, acct: Account) -> bool:
        return self._one("SELECT 1 FROM accounts WHERE realm = ? AND requester = ?",
                         acct) is not None

    def open_account(self, acct: Account) -> None:
        """The key's account in the realm, made on its first request. The first key in a realm
        takes over the pool: the live realm's starting funds and what schema 1 held."""
        with self.transaction():
            if self.has_account(acct):
                return
            realm = acct.realm
            first = self._one("SELECT 1 FROM accounts WHERE realm = ? AND requester != ?",
                              (realm, POOL)) is None
            pool = self._one("SELECT balance_cents, held_cents FROM accounts WHERE realm = ? AND "
                             "requester = ?", (realm, POOL))
            balance = SANDBOX_START_CENTS if realm == "sandbox" else 0
            held = 0
            if first and pool is not None:
                balance, held = pool
                self._run("DELETE FROM accounts WHERE realm = ? AND requester = ?", (realm, POOL))
                for table in BY_REQUESTER[1:]:
                    self._run(f"UPDATE {table} SET requester = ? WHERE realm = ? AND "
                              f"requester = ?", (acct.requester, realm, POOL))
            self._run("INSERT INTO accounts (realm, requester, balance_cents, held_cents) "
                      "VALUES (?, ?, ?, ?)", (*acct, balance, held))

    def accounts(self, realm: str) -> list[str]:
        """The requesters with an account in the realm ('' for the pool)."""
        return [r[0] for r in self._all("SELECT requester FROM accounts WHERE realm = ? "
                                        "ORDER BY requester", (realm,))]

    def deposit(self, acct: Account, cents: int) -> None:
        self._run("INSERT INTO accounts (realm, requester, balance_cents) VALUES (?, ?, ?) "
                  "ON CONFLICT (realm, requester) DO UPDATE SET "
                  "balance_cents = balance_cents + excluded.balance_cents",
                  (*acct, cents))

    def balance(self, acct: Account) -> int:
        row = self._one("SELECT balance_cents FROM accounts WHERE realm = ? AND requester = ?",
                        acct)
        return row[0] if row else 0

    def charge(self, acct: Account, cents: int) -> None:
        self._run("UPDATE accounts SET balance_cents = balance_cents - ? WHERE realm = ? AND "
                  "requester = ?", (cents, *acct))

    def funds(self, acct: Account) -> tuple[int, int]:
        """(balance, held) of the account."""
        row = self._one("SELECT balance_cents, held_cents FROM accounts WHERE realm = ? AND "
                        "requester = ?", acct)
        return (row[0], row[1]) if row else (0, 0)

    def held(self, acct: Account) -> int:
        row = self._one("SELECT held_cents FROM accounts WHERE realm = ? AND requester = ?", acct)
        return row[0] if row else 0

    def hold_basis(self, realm: str, hit_id: str, now: float):
        """What one HIT's hold is computed from: its requester, reward, max assignments, whether
        it is open, how many assignments are done and busy, and what it holds now."""
        return self._one(
            "SELECT h.requester, h.disposed, h.held_cents, t.reward_cents, h.max_assignments, "
            "h.expiration > ? AS open, "
            "(SELECT COUNT(*) FROM assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id "
            "AND a.status IN ('Approved','Rejected')) AS done, "
            "(SELECT COUNT(*) FROM assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id "
            "AND a.status IN ('Accepted','Submitted')) AS busy "
            "FROM hits h JOIN hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id "
            "WHERE h.realm = ? AND h.hit_id = ?", (now, realm, hit_id))

    def set_hold(self, acct: Account, hit_id: str, old: int, new: int) -> None:
        self._run("UPDATE hits SET held_cents = ? WHERE realm = ? AND hit_id = ?",
                  (new, acct.realm, hit_id))
        self._run("UPDATE accounts SET held_cents = held_cents + ? WHERE realm = ? AND "
                  "requester = ?", (new - old, *acct))

    # -- what time does: expiry sweeps ---------------------------------------------------------
    def sweep_due(self, realm: str, now: float) -> bool:
        """Whether a sweep has work: from memory (see due.py), and from the database itself at
        most once a second, for what another process wrote."""
        at = self.due.at(realm)
        if at is None or at <= now:
            return True
        return self.due.recheck_now(realm) and self._due_in_db(realm, now)

    def _due_in_db(self, realm: str, now: float) -> bool:
        return bool(self._one(
            "SELECT EXISTS(SELECT 1 FROM assignments WHERE realm = ? AND status = 'Accepted' "
            "AND deadline <= ?) OR EXISTS(SELECT 1 FROM assignments WHERE realm = ? AND "
            "status = 'Submitted' AND auto_approval_time <= ?) OR EXISTS(SELECT 1 FROM hits "
            "WHERE realm = ? AND expiry_swept = 0 AND expiration <= ?)",
            (realm, now, realm, now, realm, now))[0])

    def next_due(self, realm: str) -> tuple[float | None, int]:
        """(the earliest time a sweep will have work, or None; the tracker's version before
        it was read), for `due.settle` once the transaction it was read in is committed."""
        version = self.due.version(realm)
        row = self._one(
            "SELECT MIN(t) FROM (SELECT MIN(deadline) AS t FROM assignments WHERE realm = ? AND "
            "status = 'Accepted' UNION ALL SELECT MIN(auto_approval_time) FROM assignments "
            "WHERE realm = ? AND status = 'Submitted' UNION ALL SELECT MIN(expiration) FROM hits "
            "WHERE realm = ? AND expiry_swept = 0)", (realm, realm, realm))
        return row[0], version

    def abandon_overdue(self, realm: str, now: float) -> list:
        """Abandon what ran past its deadline; returns their (assignment_id, hit_id) rows."""
        rows = self._all("SELECT assignment_id, hit_id FROM assignments WHERE realm = ? AND "
                         "status = 'Accepted' AND deadline <= ?", (realm, now))
        self._run("UPDATE assignments SET status = 'Abandoned' WHERE realm = ? AND "
                  "status = 'Accepted' AND deadline <= ?", (realm, now))
        return rows

    def expired_unswept(self, realm: str, now: float) -> list[str]:
        """HITs whose expiry has come and not yet been accounted for (and marks it done)."""
        hit_ids = [r[0] for r in self._all(
            "SELECT hit_id FROM hits WHERE realm = ? AND expiry_swept = 0 AND expiration <= ?",
            (realm, now))]
        self._run("UPDATE hits SET expiry_swept = 1 WHERE realm = ? AND expiry_swept = 0 AND "
                  "expiration <= ?", (realm, now))
        return hit_ids

    def auto_approval_due(self, realm: str, now: float) -> list:
        return self._all(
            "SELECT a.assignment_id, a.hit_id, a.auto_approval_time, t.reward_cents, "
            "h.max_assignments, h.requester FROM assignments a JOIN hits h ON "
            "h.realm = a.realm AND "
            "h.hit_id = a.hit_id JOIN hit_types t ON t.realm = h.realm AND "
            "t.hit_type_id = h.hit_type_id "
            "WHERE a.realm = ? AND a.status = 'Submitted' AND a.auto_approval_time <= ?",
            (realm, now))

    # -- HIT types and HITs --------------------------------------------------------------------
    def hit_type_by_fingerprint(self, acct: Account, fingerprint: str) -> str | None:
        row = self._one("SELECT hit_type_id FROM hit_types WHERE realm = ? AND requester = ? "
                        "AND fingerprint = ?", (*acct, fingerprint))
        return row[0] if row else None

    def insert_hit_type(self, acct: Account, hit_type_id: str, fingerprint: str, props: dict,
                        reward_cents: int, qual_json: str, now: float) -> None:
        self._run("INSERT INTO hit_types (realm, hit_type_id, fingerprint, title, description, "
                  "keywords, reward_cents, assignment_duration, auto_approval_delay, qual_json, "
                  "created, requester) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (acct.realm, hit_type_id, fingerprint, props["Title"], props["Description"],
                   props["Keywords"], reward_cents, props["AssignmentDurationInSeconds"],
                   props["AutoApprovalDelayInSeconds"], qual_json, now, acct.requester))

    def hit_type_terms(self, acct: Account, hit_type_id: str):
        """(reward_cents, qual_json) of the requester's HIT type, or None."""
        return self._one("SELECT reward_cents, qual_json FROM hit_types WHERE realm = ? AND "
                         "requester = ? AND hit_type_id = ?", (*acct, hit_type_id))

    def hit_type_reward(self, acct: Account, hit_type_id: str) -> int | None:
        row = self._one("SELECT reward_cents FROM hit_types WHERE realm = ? AND requester = ? "
                        "AND hit_type_id = ?", (*acct, hit_type_id))
        return None if row is None else row[0]

    def hit_row(self, realm: str, hit_id: str, requester: str | None = None):
        """The HIT, whoever made it, or only when `requester` made it."""
        if requester is None:
            return self._one(HIT_SQL + " WHERE h.realm = ? AND h.hit_id = ?", (realm, hit_id))
        return self._one(HIT_SQL + " WHERE h.realm = ? AND h.hit_id = ? AND h.requester = ?",
                         (realm, hit_id, requester))

    def hit_by_token(self, acct: Account, token: str):
        return self._one("SELECT hit_id, created FROM hits WHERE realm = ? AND requester = ? "
                         "AND unique_request_token = ?", (*acct, token))

    def clear_hit_token(self, realm: str, hit_id: str) -> None:
        self._run("UPDATE hits SET unique_request_token = NULL WHERE realm = ? AND hit_id = ?",
                  (realm, hit_id))

    def insert_hit(self, acct: Account, hit_id: str, hit_type_id: str, question: str,
                   max_assignments: int, expiration: float, annotation: str | None, now: float,
                   token: str | None) -> None:
        self._run("INSERT INTO hits (realm, hit_id, hit_type_id, question, max_assignments, "
                  "expiration, requester_annotation, created, unique_request_token, requester) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (acct.realm, hit_id, hit_type_id, question, max_assignments, expiration,
                   annotation, now, token, acct.requester))
        self.due.lower(acct.realm, expiration)

    def hit_rows(self, acct: Account, hit_type_id: str | None, after: list | None,
                 limit: int | None) -> list:
        """The requester's live HITs in creation order, after the (created, hit_id) of `after`."""
        sql = HIT_SQL + " WHERE h.realm = ? AND h.requester = ? AND h.disposed = 0"
        args: list = [*acct]
        if hit_type_id is not None:
            sql += " AND h.hit_type_id = ?"
            args.append(hit_type_id)
        if after:
            sql += " AND (h.created > ? OR (h.created = ? AND h.hit_id > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY h.created, h.hit_id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self._all(sql, args)

    def assignment_counts(self, realm: str, hit_ids: list[str]) -> dict[str, dict]:
        out = {h: {"pending": 0, "taken": 0, "completed": 0} for h in hit_ids}
        for i in range(0, len(hit_ids), 500):
            chunk = hit_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._all(
                    f"SELECT hit_id, SUM(status = 'Accepted') AS pending, "
                    f"SUM(status IN {OPEN}) AS taken, "
                    f"SUM(status IN ('Approved','Rejected')) AS completed FROM assignments "
                    f"WHERE realm = ? AND hit_id IN ({marks}) GROUP BY hit_id", [realm, *chunk]):
                out[r["hit_id"]] = {"pending": r["pending"], "taken": r["taken"],
                                    "completed": r["completed"]}
        return out

    def set_hit(self, realm: str, hit_id: str, column: str, value) -> None:
        assert column in ("expiration", "reviewing", "hit_type_id", "disposed", "expiry_swept")
        self._run(f"UPDATE hits SET {column} = ? WHERE realm = ? AND hit_id = ?",
                  (value, realm, hit_id))
        if column == "expiration":
            self.due.lower(realm, value)

    def add_max_assignments(self, realm: str, hit_id: str, n: int) -> None:
        self._run("UPDATE hits SET max_assignments = max_assignments + ? WHERE realm = ? AND "
                  "hit_id = ?", (n, realm, hit_id))

    def extension_by_token(self, acct: Account, token: str):
        return self._one("SELECT hit_id, created FROM extensions WHERE realm = ? AND "
                         "requester = ? AND unique_request_token = ?", (*acct, token))

    def forget_extension(self, acct: Account, token: str) -> None:
        self._run("DELETE FROM extensions WHERE realm = ? AND requester = ? AND "
                  "unique_request_token = ?", (*acct, token))

    def insert_extension(self, acct: Account, token: str, hit_id: str, now: float) -> None:
        self._run("INSERT INTO extensions (realm, unique_request_token, hit_id, created, "
                  "requester) VALUES (?, ?, ?, ?, ?)",
                  (acct.realm, token, hit_id, now, acct.requester))

    def question(self, realm: str, hit_id: str) -> str | None:
        row = self._one("SELECT question FROM hits WHERE realm = ? AND hit_id = ? AND "
                        "disposed = 0", (realm, hit_id))
        return row[0] if row else None

    # -- assignments ---------------------------------------------------------------------------
    def assignment(self, realm: str, assignment_id: str):
        """The assignment with its HIT's requester and auto-approval delay."""
        return self._one("SELECT a.*, t.auto_approval_delay, h.requester FROM assignments a "
                         "JOIN hits h ON h.realm = a.realm AND h.hit_id = a.hit_id JOIN "
                         "hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id "
                         "WHERE a.realm = ? AND a.assignment_id = ?", (realm, assignment_id))

    def assignments_of_hit(self, realm: str, hit_id: str, statuses: list[str],
                           after: list | None, limit: int) -> list:
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT * FROM assignments WHERE realm = ? AND hit_id = ? AND status IN ({marks})"
        args: list = [realm, hit_id, *statuses]
        if after:
            sql += " AND (accept_time > ? OR (accept_time = ? AND assignment_id > ?))"
            args += [after[0], after[0], after[1]]
        return self._all(sql + " ORDER BY accept_time, assignment_id LIMIT ?", [*args, limit])

    def count_submitted(self, realm: str, hit_id: str) -> int:
        return self._one("SELECT COUNT(*) FROM assignments WHERE realm = ? AND hit_id = ? AND "
                         "status = 'Submitted'", (realm, hit_id))[0]

    def open_assignment_of(self, realm: str, hit_id: str, worker_id: str):
        return self._one(f"SELECT assignment_id, status FROM assignments WHERE realm = ? AND "
                         f"hit_id = ? AND worker_id = ? AND status IN {OPEN}",
                         (realm, hit_id, worker_id))

    def insert_assignment(self, realm: str, assignment_id: str, hit_id: str, worker_id: str,
                          now: float, deadline: float) -> None:
        self._run("INSERT INTO assignments (realm, assignment_id, hit_id, worker_id, status, "
                  "accept_time, deadline) VALUES (?, ?, ?, ?, 'Accepted', ?, ?)",
                  (realm, assignment_id, hit_id, worker_id, now, deadline))
        self.due.lower(realm, deadline)

    def set_status(self, realm: str, assignment_id: str, status: str) -> None:
        self._run("UPDATE assignments SET status = ? WHERE realm = ? AND assignment_id = ?",
                  (status, realm, assignment_id))

    def mark_submitted(self, realm: str, assignment_id: str, now: float, auto_at: float,
                       answer: str) -> None:
        self._run("UPDATE assignments SET status = 'Submitted', submit_time = ?, "
                  "auto_approval_time = ?, answer = ? WHERE realm = ? AND assignment_id = ?",
                  (now, auto_at, answer, realm, assignment_id))
        self.due.lower(realm, auto_at)

    def mark_approved(self, realm: str, assignment_id: str, when: float,
                      feedback: str | None = None) -> None:
        self._run("UPDATE assignments SET status = 'Approved', approval_time = ?, "
                  "rejection_time = NULL, requester_feedback = COALESCE(?, requester_feedback) "
                  "WHERE realm = ? AND assignment_id = ?", (when, feedback, realm, assignment_id))

    def mark_rejected(self, realm: str, assignment_id: str, when: float, feedback: str) -> None:
        self._run("UPDATE assignments SET status = 'Rejected', rejection_time = ?, "
                  "requester_feedback = ? WHERE realm = ? AND assignment_id = ?",
                  (when, feedback, realm, assignment_id))

    def worked_for(self, acct: Account, worker_id: str) -> bool:
        return self._one("SELECT 1 FROM assignments a JOIN hits h ON h.realm = a.realm AND "
                         "h.hit_id = a.hit_id WHERE a.realm = ? AND h.requester = ? AND "
                         "a.worker_id = ? LIMIT 1", (*acct, worker_id)) is not None

    def hit_cost_basis(self, realm: str, hit_id: str) -> tuple[int, int]:
        r = self._one("SELECT t.reward_cents, h.max_assignments FROM hits h JOIN hit_types t "
                      "ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id WHERE h.realm = ? "
                      "AND h.hit_id = ?", (realm, hit_id))
        return r[0], r[1]

    # -- bonuses -------------------------------------------------------------------------------
    def bonus_by_token(self, acct: Account, token: str):
        return self._one("SELECT assignment_id, grant_time FROM bonuses WHERE realm = ? AND "
                         "requester = ? AND unique_request_token = ?", (*acct, token))

    def clear_bonus_token(self, acct: Account, token: str) -> None:
        self._run("UPDATE bonuses SET unique_request_token = NULL WHERE realm = ? AND "
                  "requester = ? AND unique_request_token = ?", (*acct, token))

    def insert_bonus(self, acct: Account, worker_id: str, assignment_id: str, hit_id: str,
                     cents: int, reason: str, now: float, token: str | None) -> None:
        self._run("INSERT INTO bonuses (realm, worker_id, assignment_id, hit_id, amount_cents, "
                  "reason, grant_time, unique_request_token, requester) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (acct.realm, worker_id, assignment_id, hit_id, cents, reason, now, token,
                   acct.requester))

    def bonuses(self, acct: Account, column: str, value: str, after_id: int | None,
                limit: int) -> list:
        assert column in ("hit_id", "assignment_id")
        sql = f"SELECT * FROM bonuses WHERE realm = ? AND requester = ? AND {column} = ?"
        args: list = [*acct, value]
        if after_id is not None:
            sql += " AND bonus_id > ?"
            args.append(after_id)
        return self._all(sql + " ORDER BY bonus_id LIMIT ?", [*args, limit])

    # -- qualifications and blocks -------------------------------------------------------------
    def qual_type(self, acct: Account, qid: str):
        """The requester's qualification type, unless it was deleted."""
        return self._one("SELECT * FROM qualification_types q WHERE realm = ? AND "
                         "requester = ? AND qualification_type_id = ? AND " + NOT_DELETED,
                         (*acct, qid))

    def qual_type_named(self, acct: Account, name: str):
        """(id, when it was deleted or None) of the requester's type with this name."""
        return self._one("SELECT q.qualification_type_id, d.deleted FROM qualification_types q "
                         "LEFT JOIN qualification_type_deletions d ON d.realm = q.realm AND "
                         "d.qualification_type_id = q.qualification_type_id WHERE q.realm = ? "
                         "AND q.requester = ? AND q.name = ?", (*acct, name))

    def insert_qual_type(self, acct: Account, qid: str, p: dict, now: float) -> None:
        self._run("INSERT INTO qualification_types (realm, qualification_type_id, name, "
                  "description, keywords, status, test, answer_key, test_duration, retry_delay, "
                  "auto_granted, auto_granted_value, created, requester) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (acct.realm, qid, p["Name"], p["Description"], p.get("Keywords"),
                   p["QualificationTypeStatus"], p.get("Test"), p.get("AnswerKey"),
                   p.get("TestDurationInSeconds"), p.get("RetryDelayInSeconds"),
                   int(p.get("AutoGranted", False)), p.get("AutoGrantedValue"), now,
                   acct.requester))

    def set_qual_type(self, acct: Account, qid: str, column: str, value) -> None:
        assert column in ("description", "status", "retry_delay", "auto_granted",
                          "auto_granted_value", "test", "answer_key", "test_duration")
        self._run(f"UPDATE qualification_types SET {column} = ? WHERE realm = ? AND "
                  f"requester = ? AND qualification_type_id = ?", (value, *acct, qid))

    def qual_types(self, acct: Account) -> list:
        return self._all("SELECT * FROM qualification_types q WHERE realm = ? AND requester = ? "
                         "AND " + NOT_DELETED + " ORDER BY created, qualification_type_id", acct)

    def requestable_qual_types(self, realm: str) -> list:
        """Every requester's active, undeleted types: what a worker may ask for."""
        return self._all("SELECT * FROM qualification_types q WHERE realm = ? AND "
                         "status = 'Active' AND " + NOT_DELETED + " ORDER BY name, created",
                         (realm,))

    def any_qual_type(self, realm: str, qid: str):
        """A qualification type of any requester (the worker site's view), unless deleted."""
        return self._one("SELECT * FROM qualification_types q WHERE realm = ? AND "
                         "qualification_type_id = ? AND " + NOT_DELETED, (realm, qid))

    def delete_qual_type(self, realm: str, qid: str, now: float) -> None:
        self._run("INSERT OR IGNORE INTO qualification_type_deletions VALUES (?, ?, ?)",
                  (realm, qid, now))
        self._run("UPDATE qualification_requests SET status = 'Rejected', reason = "
                  "'The qualification type was deleted.' WHERE realm = ? AND "
                  "qualification_type_id = ? AND status = 'Pending'", (realm, qid))

    def purge_qual_type(self, realm: str, qid: str) -> None:
        """Forget a type whose disposal has completed (its name is free again)."""
        for table in ("qualification_types", "qualifications", "qualification_requests",
                      "qualification_type_deletions"):
            self._run(f"DELETE FROM {table} WHERE realm = ? AND qualification_type_id = ?",
                      (realm, qid))

    def hits_requiring(self, acct: Account, qid: str, after: list | None, limit: int) -> list:
        """The requester's live HITs whose type has a requirement on the qualification type."""
        sql = (HIT_SQL + " WHERE h.realm = ? AND h.requester = ? AND h.disposed = 0 AND "
               "t.qual_json LIKE ?")
        args: list = [*acct, f'%"QualificationTypeId": "{qid}"%']
        if after:
            sql += " AND (h.created > ? OR (h.created = ? AND h.hit_id > ?))"
            args += [after[0], after[0], after[1]]
        return self._all(sql + " ORDER BY h.created, h.hit_id LIMIT ?", [*args, limit])

    # -- qualification requests ----------------------------------------------------------------
    def insert_qual_request(self, realm: str, request_id: str, qid: str, worker_id: str,
                            answer: str | None, status: str, now: float) -> None:
        self._run("INSERT INTO qualification_requests (realm, request_id, qualification_type_id,"
                  " worker_id, answer, status, submit_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (realm, request_id, qid, worker_id, answer, status, now))

    def latest_qual_request(self, realm: str, qid: str, worker_id: str):
        return self._one("SELECT * FROM qualification_requests WHERE realm = ? AND "
                         "qualification_type_id = ? AND worker_id = ? ORDER BY submit_time DESC "
                         "LIMIT 1", (realm, qid, worker_id))

    def qual_request(self, acct: Account, request_id: str):
        """A request for one of the requester's (undeleted) types, with the type's test."""
        return self._one("SELECT r.*, q.test FROM qualification_requests r JOIN "
                         "qualification_types q ON q.realm = r.realm AND "
                         "q.qualification_type_id = r.qualification_type_id WHERE r.realm = ? "
                         "AND q.requester = ? AND r.request_id = ? AND " + NOT_DELETED,
                         (*acct, request_id))

    def pending_qual_requests(self, acct: Account, qid: str | None, after: list | None,
                              limit: int) -> list:
        sql = ("SELECT r.*, q.test FROM qualification_requests r JOIN qualification_types q ON "
               "q.realm = r.realm AND q.qualification_type_id = r.qualification_type_id WHERE "
               "r.realm = ? AND q.requester = ? AND r.status = 'Pending' AND " + NOT_DELETED)
        args: list = [*acct]
        if qid is not None:
            sql += " AND r.qualification_type_id = ?"
            args.append(qid)
        if after:
            sql += " AND (r.submit_time > ? OR (r.submit_time = ? AND r.request_id > ?))"
            args += [after[0], after[0], after[1]]
        return self._all(sql + " ORDER BY r.submit_time, r.request_id LIMIT ?", [*args, limit])

    def decide_qual_request(self, realm: str, request_id: str, status: str,
                            reason: str | None) -> None:
        self._run("UPDATE qualification_requests SET status = ?, reason = ? WHERE realm = ? AND "
                  "request_id = ?", (status, reason, realm, request_id))

    # -- HIT layouts ---------------------------------------------------------------------------
    def insert_layout(self, layout_id: str, name: str, content: str, now: float) -> None:
        self._run("INSERT INTO hit_layouts VALUES (?, ?, ?, ?)", (layout_id, name, content, now))

    def layout(self, layout_id: str) -> str | None:
        row = self._one("SELECT content FROM hit_layouts WHERE layout_id = ?", (layout_id,))
        return row[0] if row else None

    # -- uploaded files ------------------------------------------------------------------------
    def insert_upload(self, realm: str, key: str, assignment_id: str, question_id: str,
                      filename: str, content: bytes) -> None:
        self._run("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                  (realm, key, assignment_id, question_id, filename, content))

    def upload_of(self, realm: str, assignment_id: str, question_id: str):
        return self._one("SELECT upload_key, filename FROM uploads WHERE realm = ? AND "
                         "assignment_id = ? AND question_id = ?", (realm, assignment_id,
                                                                   question_id))

    def upload(self, realm: str, key: str):
        """The file, unless its HIT was deleted (MTurk deleted uploads with their HIT)."""
        return self._one("SELECT u.filename, u.content FROM uploads u JOIN assignments a ON "
                         "a.realm = u.realm AND a.assignment_id = u.assignment_id JOIN hits h ON "
                         "h.realm = a.realm AND h.hit_id = a.hit_id WHERE u.realm = ? AND "
                         "u.upload_key = ? AND h.disposed = 0", (realm, key))

    # -- notification settings -----------------------------------------------------------------
    def notification_setting(self, acct: Account, hit_type_id: str):
        return self._one("SELECT spec_json, active FROM notification_settings WHERE realm = ? "
                         "AND requester = ? AND hit_type_id = ?", (*acct, hit_type_id))

    def set_notification(self, acct: Account, hit_type_id: str, spec_json: str,
                         active: bool) -> None:
        self._run("INSERT INTO notification_settings VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                  "(realm, requester, hit_type_id) DO UPDATE SET spec_json = excluded.spec_json,"
                  " active = excluded.active", (*acct, hit_type_id, spec_json, int(active)))

    def notification_of_hit(self, realm: str, hit_id: str):
        """(requester, hit_type_id, spec_json, active) of a HIT and its type's notification
        setting (spec_json None when it has none), or None when there is no such HIT."""
        return self._one("SELECT h.requester, h.hit_type_id, n.spec_json, n.active FROM hits h "
                         "LEFT JOIN notification_settings n ON n.realm = h.realm AND "
                         "n.requester = h.requester AND n.hit_type_id = h.hit_type_id "
                         "WHERE h.realm = ? AND h.hit_id = ?", (realm, hit_id))

    def grant(self, realm: str, qid: str, worker_id: str, value: int, now: float) -> None:
        self._run("INSERT INTO qualifications VALUES (?, ?, ?, ?, 'Granted', ?) "
                  "ON CONFLICT (realm, qualification_type_id, worker_id) DO UPDATE SET "
                  "integer_value = excluded.integer_value, status = 'Granted', "
                  "grant_time = excluded.grant_time", (realm, qid, worker_id, value, now))

    def revoke(self, realm: str, qid: str, worker_id: str) -> bool:
        return self._run("DELETE FROM qualifications WHERE realm = ? AND qualification_type_id = ?"
                         " AND worker_id = ?", (realm, qid, worker_id)) > 0

    def qualification(self, realm: str, qid: str, worker_id: str):
        return self._one("SELECT * FROM qualifications WHERE realm = ? AND "
                         "qualification_type_id = ? AND worker_id = ?", (realm, qid, worker_id))

    def qualifications(self, realm: str, qid: str, status: str | None, after: str | None,
                       limit: int) -> list:
        sql = "SELECT * FROM qualifications WHERE realm = ? AND qualification_type_id = ?"
        args: list = [realm, qid]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if after is not None:
            sql += " AND worker_id > ?"
            args.append(after)
        return self._all(sql + " ORDER BY worker_id LIMIT ?", [*args, limit])

    def granted_values(self, acct: Account, worker_id: str) -> list:
        """The worker's values of the requester's active qualification types."""
        return self._all("SELECT q.qualification_type_id, q.integer_value FROM qualifications q "
                         "JOIN qualification_types t ON t.realm = q.realm AND "
                         "t.qualification_type_id = q.qualification_type_id WHERE q.realm = ? "
                         "AND t.requester = ? AND q.worker_id = ? AND q.status = 'Granted' AND "
                         "t.status = 'Active'", (*acct, worker_id))

    def auto_granted(self, acct: Account) -> list:
        return self._all("SELECT qualification_type_id, auto_granted_value FROM "
                         "qualification_types WHERE realm = ? AND requester = ? AND "
                         "auto_granted = 1 AND status = 'Active'", acct)

    def block(self, acct: Account, worker_id: str, reason: str, now: float) -> None:
        self._run("INSERT INTO worker_blocks (realm, worker_id, reason, created, requester) "
                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (realm, requester, worker_id) DO UPDATE "
                  "SET reason = excluded.reason",
                  (acct.realm, worker_id, reason, now, acct.requester))

    def unblock(self, acct: Account, worker_id: str) -> None:
        self._run("DELETE FROM worker_blocks WHERE realm = ? AND requester = ? AND "
                  "worker_id = ?", (*acct, worker_id))

    def blocks(self, acct: Account, after: str | None, limit: int) -> list:
        sql, args = "SELECT * FROM worker_blocks WHERE realm = ? AND requester = ?", [*acct]
        if after is not None:
            sql += " AND worker_id > ?"
            args.append(after)
        return self._all(sql + " ORDER BY worker_id LIMIT ?", [*args, limit])

    def blocked_by(self, realm: str, worker_id: str) -> set[str]:
        """The requesters who blocked the worker."""
        return {r[0] for r in self._all("SELECT requester FROM worker_blocks WHERE realm = ? "
                                        "AND worker_id = ?", (realm, worker_id))}

    def insert_notification(self, acct: Account, worker_id: str, subject: str, message: str,
                            now: float) -> None:
        self._run("INSERT INTO notifications (realm, worker_id, subject, message, created, "
                  "requester) VALUES (?, ?, ?, ?, ?, ?)",
                  (acct.realm, worker_id, subject, message, now, acct.requester))

    # -- workers -------------------------------------------------------------------------------
    def worker(self, realm: str, worker_id: str):
        return self._one("SELECT * FROM workers WHERE realm = ? AND worker_id = ?",
                         (realm, worker_id))

    def insert_worker(self, realm: str, worker_id: str, profile: dict, now: float) -> None:
        """Create the worker's row unless it exists; `profile` holds the columns' first values."""
        self._run("INSERT INTO workers (realm, worker_id, country, subdivision, base_approved, "
                  "base_rejected, masters, participant_id, invite_token, created) VALUES "
                  "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (realm, worker_id) DO NOTHING",
                  (realm, worker_id, profile["country"], profile["subdivision"],
                   profile["base_approved"], profile["base_rejected"], profile["masters"],
                   profile["participant_id"], profile["invite_token"], now))

    def set_worker(self, realm: str, worker_id: str, column: str, value) -> None:
        assert column in ("country", "subdivision", "base_approved", "base_rejected", "masters",
                          "participant_id", "invite_token", "platform")
        self._run(f"UPDATE workers SET {column} = ? WHERE realm = ? AND worker_id = ?",
                  (value, realm, worker_id))

    def worker_record(self, realm: str, worker_id: str) -> tuple[int, int]:
        """(approved, rejected) assignments of the worker in this marketplace."""
        return tuple(self._one(
            "SELECT COALESCE(SUM(status = 'Approved'), 0), COALESCE(SUM(status = 'Rejected'), 0)"
            " FROM assignments WHERE realm = ? AND worker_id = ?", (realm, worker_id)))

    def open_groups(self, realm: str, worker_id: str, now: float) -> list:
        """HIT types with a HIT the worker has not taken and that has a free slot."""
        return self._all(
            "SELECT t.hit_type_id, t.requester, t.title, t.description, t.keywords, "
            "t.reward_cents, t.assignment_duration, t.qual_json, COUNT(*) AS hits, "
            "MIN(h.expiration) AS expires "
            "FROM hits h JOIN hit_types t ON t.realm = h.realm AND t.hit_type_id = h.hit_type_id "
            "WHERE h.realm = ? AND h.disposed = 0 AND h.expiration > ? AND h.max_assignments > "
            f"(SELECT COUNT(*) FROM assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id "
            f"AND a.status IN {OPEN}) AND NOT EXISTS "
            "(SELECT 1 FROM assignments a WHERE a.realm = h.realm AND a.hit_id = h.hit_id AND "
            f"a.worker_id = ? AND a.status IN {OPEN}) "
            "GROUP BY t.hit_type_id ORDER BY MIN(h.created)", (realm, now, worker_id))

    def open_hits_of_type(self, realm: str, worker_id: str, hit_type_id: str, now: float,
                          limit: int) -> list[str]:
        return [r[0] for r in self._all(
            "SELECT h.hit_id FROM hits h WHERE h.realm = ? AND h.hit_type_id = ? AND h.disposed = 0 "
            "AND h.expiration > ? AND h.max_assignments > (SELECT COUNT(*) FROM assignments a "
            f"WHERE a.realm = h.realm AND a.hit_id = h.hit_id AND a.status IN {OPEN}) "
            "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.realm = h.realm AND "
            f"a.hit_id = h.hit_id AND a.worker_id = ? AND a.status IN {OPEN}) "
            "ORDER BY h.created, h.hit_id LIMIT ?", (realm, hit_type_id, now, worker_id, limit))]

    # -- invitations and participants (live realm) ---------------------------------------------
    def insert_invite(self, token: str, label: str, code: str, country: str,
                      hits_approved: int, now: float, completion_url: str | None,
                      shared_link: str) -> None:
        self._run("INSERT INTO invites (token, realm, label, completion_code, country, "
                  "base_approved, created, completion_url, shared_link) "
                  "VALUES (?, 'live', ?, ?, ?, ?, ?, ?, ?)",
                  (token, label, code, country, hits_approved, now, completion_url, shared_link))

    def invite(self, token: str):
        return self._one("SELECT * FROM invites WHERE token = ? AND realm = 'live'", (token,))

    def invite_of(self, worker_id: str):
        """The invitation the live worker came through."""
        return self._one("SELECT i.* FROM workers w JOIN invites i ON i.token = w.invite_token "
                         "WHERE w.realm = 'live' AND w.worker_id = ?", (worker_id,))

    def participant(self, invite_token: str, participant_id: str) -> str | None:
        """The live worker who joined through this invitation with this platform id."""
        row = self._one("SELECT worker_id FROM workers WHERE realm = 'live' AND "
                        "invite_token = ? AND participant_id = ?", (invite_token, participant_id))
        return row[0] if row else None
