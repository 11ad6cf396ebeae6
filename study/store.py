"""The study's SQLite store: connection settings, schema, forward migrations, the one
write-transaction helper, and the statements the stages run on it.

`study.db` is the single source of truth of a study. Every connection runs in WAL mode with
foreign keys on and a busy timeout, so several processes (a `study serve`, a `study collect`,
render shards) can share it. The schema only moves forward: MIGRATIONS[i] takes version i to i+1.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from study import files

MIGRATIONS: list[str] = [
    # 1: the whole first schema.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE images (
        image_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        input_path TEXT NOT NULL,
        reference_path TEXT NOT NULL,
        depth_path TEXT,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        input_sha256 TEXT NOT NULL,
        reference_sha256 TEXT NOT NULL,
        notices TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE methods (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        team TEXT, author TEXT, framework TEXT, hardware TEXT,
        runtime_reported REAL
    );
    CREATE TABLE renders (
        method TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(image_id),
        status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        path TEXT,
        sha256 TEXT,
        width INTEGER,
        height INTEGER,
        runtime_s REAL,
        device TEXT,
        error TEXT,
        psnr REAL,
        ssim REAL,
        border_crop INTEGER,
        finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (method, image_id)
    );
    CREATE TABLE items (
        item_id INTEGER PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(image_id),
        method TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'test'
            CHECK (kind IN ('test', 'gold_reference', 'gold_control')),
        reference_path TEXT NOT NULL,
        result_path TEXT NOT NULL,
        expected_min INTEGER,
        expected_max INTEGER,
        UNIQUE (image_id, method, kind)
    );
    CREATE TABLE hit_items (
        hit_index INTEGER NOT NULL,
        position INTEGER NOT NULL,
        item_id INTEGER NOT NULL REFERENCES items(item_id),
        realm TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (hit_index, position)
    );
    CREATE TABLE hits (
        realm TEXT NOT NULL,
        hit_index INTEGER NOT NULL,
        unique_token TEXT NOT NULL UNIQUE,
        hit_id TEXT UNIQUE,
        hit_type_id TEXT,
        max_assignments INTEGER NOT NULL,
        reward TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'planned' CHECK (state IN ('planned', 'creating', 'created')),
        created_at TEXT,
        PRIMARY KEY (realm, hit_index)
    );
    CREATE TABLE topups (
        realm TEXT NOT NULL,
        hit_index INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        unique_token TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'intent' CHECK (state IN ('intent', 'done', 'failed')),
        error TEXT,
        PRIMARY KEY (realm, hit_index, seq)
    );
    CREATE TABLE assignments (
        assignment_id TEXT PRIMARY KEY,
        realm TEXT NOT NULL,
        hit_id TEXT NOT NULL,
        hit_index INTEGER NOT NULL,
        worker_id TEXT NOT NULL,
        status TEXT NOT NULL,
        answer_xml TEXT,
        accept_time TEXT,
        submit_time TEXT,
        fetched_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        decision TEXT CHECK (decision IN ('approve', 'exclude', 'reject')),
        decision_reason TEXT NOT NULL DEFAULT '',
        quality_json TEXT
    );
    CREATE TABLE ratings (
        assignment_id TEXT NOT NULL REFERENCES assignments(assignment_id),
        position INTEGER NOT NULL,
        item_id INTEGER REFERENCES items(item_id),
        worker_id TEXT NOT NULL,
        score INTEGER,
        seconds REAL,
        valid INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (assignment_id, position)
    );
    CREATE TABLE payments (
        kind TEXT NOT NULL CHECK (kind IN ('approve', 'reject', 'bonus')),
        assignment_id TEXT NOT NULL REFERENCES assignments(assignment_id),
        worker_id TEXT NOT NULL,
        amount_usd REAL NOT NULL DEFAULT 0,
        unique_token TEXT UNIQUE,
        reason TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'intent'
            CHECK (state IN ('intent', 'done', 'superseded', 'failed')),
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (kind, assignment_id)
    );
    CREATE TABLE workers (
        realm TEXT NOT NULL,
        worker_id TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        excluded INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (realm, worker_id)
    );
    CREATE TABLE hosted_images (
        sha256 TEXT PRIMARY KEY,
        ext TEXT NOT NULL,
        mode TEXT NOT NULL,
        location TEXT NOT NULL
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        step TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: test methods (study.methods). An item may show two outputs (pairwise: method and
    # method_b) and be an attention trap or part of a qualification HIT; a HIT position may
    # show its item the other way round (CCR's reference second, pairwise's method_b as "A").
    # SQLite cannot change a CHECK or UNIQUE constraint in place, so items is rebuilt (with
    # foreign keys off, see apply_migrations) keeping every item_id.
    """
    CREATE TABLE items_new (
        item_id INTEGER PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(image_id),
        method TEXT NOT NULL,
        method_b TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'test'
            CHECK (kind IN ('test', 'gold_reference', 'gold_control', 'trap', 'training',
                            'qualifying')),
        reference_path TEXT NOT NULL,
        result_path TEXT NOT NULL,
        result_b_path TEXT NOT NULL DEFAULT '',
        expected_min INTEGER,
        expected_max INTEGER,
        UNIQUE (image_id, method, method_b, kind)
    );
    INSERT INTO items_new (item_id, image_id, method, kind, reference_path, result_path,
                           expected_min, expected_max)
        SELECT item_id, image_id, method, kind, reference_path, result_path, expected_min,
               expected_max FROM items;
    DROP TABLE items;
    ALTER TABLE items_new RENAME TO items;
    ALTER TABLE hit_items ADD COLUMN swapped INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: training and qualification (study.crowd.qualify): one row per submitted assignment of
    # the qualification HIT, its grade and whether its approval and grant were sent; and a
    # payment kind for the bonus for agreeing with the consensus (study.crowd.agreement), paid
    # once per assignment beside the flat bonus. payments is rebuilt for its CHECK.
    """
    CREATE TABLE qualification_assignments (
        assignment_id TEXT PRIMARY KEY,
        realm TEXT NOT NULL,
        hit_id TEXT NOT NULL,
        worker_id TEXT NOT NULL,
        answer_xml TEXT,
        submit_time TEXT,
        score INTEGER NOT NULL,
        total INTEGER NOT NULL,
        passed INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        approved INTEGER NOT NULL DEFAULT 0,
        granted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE payments_new (
        kind TEXT NOT NULL CHECK (kind IN ('approve', 'reject', 'bonus', 'agreement_bonus')),
        assignment_id TEXT NOT NULL REFERENCES assignments(assignment_id),
        worker_id TEXT NOT NULL,
        amount_usd REAL NOT NULL DEFAULT 0,
        unique_token TEXT UNIQUE,
        reason TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'intent'
            CHECK (state IN ('intent', 'done', 'superseded', 'failed')),
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (kind, assignment_id)
    );
    INSERT INTO payments_new SELECT kind, assignment_id, worker_id, amount_usd, unique_token,
        reason, state, note, updated_at FROM payments;
    DROP TABLE payments;
    ALTER TABLE payments_new RENAME TO payments;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path | str, *, migrate: bool = True) -> sqlite3.Connection:
    """Open a study database with the settings every caller relies on."""
    files.private_database(path)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=NORMAL")
    if migrate:
        apply_migrations(conn)
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema forward to SCHEMA_VERSION; returns the version reached."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        from study.errors import StudyError
        raise StudyError(
            f"study.db has schema version {current}, newer than this program knows "
            f"({SCHEMA_VERSION})", hint="upgrade the `study` package")
    if current >= SCHEMA_VERSION:
        return current
    # A step may rebuild a table that others reference (SQLite's documented way to change a
    # constraint); foreign keys are off for that and checked before each step commits.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        while current < SCHEMA_VERSION:
            with transaction(conn):
                # Re-read inside the write lock: another process may have migrated meanwhile.
                current = schema_version(conn)
                if current >= SCHEMA_VERSION:
                    break
                for statement in _statements(MIGRATIONS[current]):
                    conn.execute(statement)
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.IntegrityError(
                        f"schema step {current + 1} leaves {len(broken)} broken references")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (current + 1,))
                current += 1
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return current


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


@contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """A write transaction, the one every writer of a SQLite database in this project uses:
    BEGIN IMMEDIATE takes the write lock up front, so two processes never both decide on the
    same row (and a reader never upgrades into a deadlock); any exception rolls it back."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


# ------------------------------------------------------------------ methods and renders

def save_method(conn: sqlite3.Connection, name: str, kind: str | None, spec_json: str,
                team: str | None, author: str | None, framework: str | None,
                hardware: str | None, runtime_reported: float | None) -> None:
    conn.execute(
        "INSERT INTO methods (name, kind, spec_json, team, author, framework, hardware,"
        " runtime_reported) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
        "kind=excluded.kind, spec_json=excluded.spec_json, team=excluded.team, "
        "author=excluded.author, framework=excluded.framework, "
        "hardware=excluded.hardware, runtime_reported=excluded.runtime_reported",
        (name, kind, spec_json, team, author, framework, hardware, runtime_reported))


def record_render_done(conn: sqlite3.Connection, method: str, image_id: str, path: str,
                       sha256: str, width: int, height: int, runtime_s: float | None,
                       device: str, psnr: float | None, ssim: float | None,
                       border_crop: int | None) -> None:
    conn.execute(
        "INSERT INTO renders (method, image_id, status, path, sha256, width, height, runtime_s, "
        "device, error, psnr, ssim, border_crop, finished_at) VALUES "
        "(?,?,'done',?,?,?,?,?,?,NULL,?,?,?,strftime('%Y-%m-%dT%H:%M:%fZ','now')) "
        "ON CONFLICT(method, image_id) DO UPDATE SET status='done', path=excluded.path, "
        "sha256=excluded.sha256, width=excluded.width, height=excluded.height, "
        "runtime_s=excluded.runtime_s, device=excluded.device, error=NULL, "
        "psnr=excluded.psnr, ssim=excluded.ssim, border_crop=excluded.border_crop, "
        "finished_at=excluded.finished_at",
        (method, image_id, path, sha256, width, height, runtime_s, device, psnr, ssim,
         border_crop))


def record_render_failed(conn: sqlite3.Connection, method: str, image_id: str, error: str,
                         device: str | None) -> None:
    conn.execute(
        "INSERT INTO renders (method, image_id, status, path, sha256, width, height, runtime_s, "
        "device, error, psnr, ssim, border_crop, finished_at) VALUES "
        "(?,?,'failed',NULL,NULL,NULL,NULL,NULL,?,?,NULL,NULL,NULL,"
        "strftime('%Y-%m-%dT%H:%M:%fZ','now')) "
        "ON CONFLICT(method, image_id) DO UPDATE SET status='failed', path=NULL, sha256=NULL, "
        "width=NULL, height=NULL, runtime_s=NULL, device=excluded.device, error=excluded.error, "
        "psnr=NULL, ssim=NULL, border_crop=NULL, finished_at=excluded.finished_at",
        (method, image_id, device, error))


def done_renders(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(method, image_id, path) of every output recorded as done."""
    return conn.execute(
        "SELECT method, image_id, path FROM renders WHERE status='done'").fetchall()


def unscored_renders(conn: sqlite3.Connection, border_crop: int) -> list[sqlite3.Row]:
    """(method, image_id, path) of done outputs without PSNR/SSIM at this border crop."""
    return conn.execute(
        "SELECT method, image_id, path FROM renders WHERE status='done' AND "
        "(psnr IS NULL OR border_crop IS NULL OR border_crop != ?)", (border_crop,)).fetchall()


def set_render_scores(conn: sqlite3.Connection, method: str, image_id: str, psnr: float,
                      ssim: float, border_crop: int) -> None:
    conn.execute("UPDATE renders SET psnr=?, ssim=?, border_crop=? "
                 "WHERE method=? AND image_id=?", (psnr, ssim, border_crop, method, image_id))


def image_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])


def render_totals(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    """Per method, over the study's images: done and failed counts, and over done outputs the
    mean PSNR, SSIM and runtime, the devices used and the smallest border crop."""
    return {r["method"]: r for r in conn.execute(
        "SELECT r.method, SUM(r.status='done') AS done, SUM(r.status='failed') AS failed, "
        "AVG(CASE WHEN r.status='done' THEN r.psnr END) AS psnr, "
        "AVG(CASE WHEN r.status='done' THEN r.ssim END) AS ssim, "
        "AVG(CASE WHEN r.status='done' THEN r.runtime_s END) AS runtime_s, "
        "GROUP_CONCAT(DISTINCT CASE WHEN r.status='done' THEN r.device END) AS device, "
        "MIN(CASE WHEN r.status='done' THEN r.border_crop END) AS border_crop "
        "FROM renders r JOIN images i ON i.image_id = r.image_id GROUP BY r.method")}
