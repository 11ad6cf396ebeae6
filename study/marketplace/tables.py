"""The marketplace's tables (its own SQLite file, separate from a study's study.db).

One row per realm-scoped entity; every table carries `realm` so the sandbox and the live
marketplace share a file but never share data. What a requester makes (HIT types, HITs,
qualification types, blocks, bonuses, messages) and its account also carry `requester`, the key
id that made it: each key is its own requester account and sees only its own. Requester ''
holds what no key has claimed yet (the live realm's starting funds, data from schema 1).
Only study.marketplace.datastore runs this schema.
"""

from __future__ import annotations

REALMS = ("sandbox", "live")
SANDBOX_START_CENTS = 1_000_000  # MTurk's sandbox showed $10,000.00

SCHEMA_VERSION = 3
# Columns added since schema 1 to tables that are otherwise unchanged; a file that lacks one
# gains it when opened. Schema 3: an invitation's shared-link policy (see invites.py).
ADDED_COLUMNS = (("workers", "platform TEXT"), ("invites", "completion_url TEXT"),
                 ("invites", "shared_link TEXT NOT NULL DEFAULT 'platform-id'"))
# Tables that gained a `requester` column in schema 2.
BY_REQUESTER = ("accounts", "hit_types", "hits", "extensions", "qualification_types",
                "worker_blocks", "bonuses", "notifications")
SCHEMA = """
CREATE TABLE IF NOT EXISTS mk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    realm TEXT NOT NULL,
    requester TEXT NOT NULL,
    balance_cents INTEGER NOT NULL,
    -- the sum of hits.held_cents of the requester's HITs
    held_cents INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (realm, requester)
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
    requester TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (realm, hit_type_id),
    UNIQUE (realm, requester, fingerprint)
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
    requester TEXT NOT NULL DEFAULT '',
    -- what the HIT may still pay (reward and fee of its open or unfinished assignments),
    -- and whether its expiry has been accounted for
    held_cents INTEGER NOT NULL DEFAULT 0,
    expiry_swept INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (realm, hit_id)
);
CREATE INDEX IF NOT EXISTS hits_expiring ON hits (realm, expiry_swept, expiration);
CREATE INDEX IF NOT EXISTS hits_by_created ON hits (realm, created, hit_id);
CREATE INDEX IF NOT EXISTS hits_by_requester ON hits (realm, requester, created, hit_id);
CREATE INDEX IF NOT EXISTS hits_by_type ON hits (realm, hit_type_id, created);
CREATE UNIQUE INDEX IF NOT EXISTS hits_by_token ON hits (realm, requester, unique_request_token)
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
    requester TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (realm, requester, unique_request_token)
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
    requester TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (realm, qualification_type_id),
    UNIQUE (realm, requester, name)
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
-- A worker's request for a qualification type (Pending until the requester or the type's
-- AnswerKey decides: Granted or Rejected).
CREATE TABLE IF NOT EXISTS qualification_requests (
    realm TEXT NOT NULL,
    request_id TEXT NOT NULL,
    qualification_type_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    answer TEXT,
    status TEXT NOT NULL,
    submit_time REAL NOT NULL,
    reason TEXT,
    PRIMARY KEY (realm, request_id)
);
CREATE INDEX IF NOT EXISTS qualification_requests_by_type ON qualification_requests
    (realm, qualification_type_id, status, submit_time);
-- DeleteQualificationType: the type is gone for the requester at once, but its name stays
-- taken until the disposal completes (48 hours, as MTurk documented).
CREATE TABLE IF NOT EXISTS qualification_type_deletions (
    realm TEXT NOT NULL,
    qualification_type_id TEXT NOT NULL,
    deleted REAL NOT NULL,
    PRIMARY KEY (realm, qualification_type_id)
);
-- UpdateNotificationSettings: where a HIT type's events go.
CREATE TABLE IF NOT EXISTS notification_settings (
    realm TEXT NOT NULL,
    requester TEXT NOT NULL,
    hit_type_id TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    active INTEGER NOT NULL,
    PRIMARY KEY (realm, requester, hit_type_id)
);
-- Files workers uploaded as FileUploadAnswers (a QuestionForm HIT), served by GetFileUploadURL.
CREATE TABLE IF NOT EXISTS uploads (
    realm TEXT NOT NULL,
    upload_key TEXT NOT NULL,
    assignment_id TEXT NOT NULL,
    question_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (realm, upload_key)
);
CREATE INDEX IF NOT EXISTS uploads_by_answer ON uploads (realm, assignment_id, question_id);
-- HIT layouts registered with `study marketplace layout add`: HTML with ${name} parameters,
-- filled from CreateHIT's HITLayoutParameters.
CREATE TABLE IF NOT EXISTS hit_layouts (
    layout_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS worker_blocks (
    realm TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    requester TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (realm, requester, worker_id)
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
    unique_request_token TEXT,
    requester TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS bonuses_by_token ON bonuses
    (realm, requester, unique_request_token) WHERE unique_request_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS notifications (
    realm TEXT NOT NULL,
    notification_id INTEGER PRIMARY KEY,
    worker_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    created REAL NOT NULL,
    requester TEXT NOT NULL DEFAULT ''
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
    platform TEXT,
    PRIMARY KEY (realm, worker_id)
);
CREATE INDEX IF NOT EXISTS workers_by_participant ON workers (realm, invite_token, participant_id)
    WHERE participant_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS invites (
    token TEXT PRIMARY KEY,
    realm TEXT NOT NULL,
    label TEXT NOT NULL,
    completion_code TEXT NOT NULL,
    country TEXT NOT NULL DEFAULT 'US',
    base_approved INTEGER NOT NULL DEFAULT 1000,
    created REAL NOT NULL,
    completion_url TEXT,
    shared_link TEXT NOT NULL DEFAULT 'platform-id'
);
"""
