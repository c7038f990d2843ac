-- Replaybook SQLite schema, version 1.
-- Applied by replaybook.store.sqlite.migrate inside one BEGIN IMMEDIATE transaction and
-- recorded in schema_migrations (which the runner creates itself).

-- One row per execution: a summary of its event log, updated by every append.
CREATE TABLE executions (
    id               TEXT    NOT NULL PRIMARY KEY,
    playbook_path    TEXT    NOT NULL,
    playbook_version INTEGER NOT NULL,
    parent_id        TEXT,
    parent_step      TEXT,
    status           TEXT    NOT NULL,  -- running | completed | failed | cancelled
    created_at       TEXT    NOT NULL,  -- ISO-8601 UTC, microseconds, 'Z'
    updated_at       TEXT    NOT NULL,
    last_seq         INTEGER NOT NULL DEFAULT 0
);

-- Listing is newest first (created_at DESC, rowid DESC); the filtered variants use
-- the composite indexes. updated_at and last_seq are not indexed so an append never
-- touches an index of this table.
CREATE INDEX executions_created ON executions (created_at);
CREATE INDEX executions_status ON executions (status, created_at);
CREATE INDEX executions_playbook ON executions (playbook_path, created_at);
CREATE INDEX executions_parent ON executions (parent_id, created_at);

-- The event log: gap-free seq per execution, data as JSON text (key order kept).
CREATE TABLE events (
    execution_id  TEXT    NOT NULL REFERENCES executions (id),
    seq           INTEGER NOT NULL,
    id            TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    at            TEXT    NOT NULL,
    step          TEXT,
    visit         INTEGER,
    idx           INTEGER,
    attempt       INTEGER,
    data          TEXT    NOT NULL,
    logic_version INTEGER NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

-- The work queue. A job is deleted when completed or cancelled, so the table only
-- holds outstanding work. due_at is when the job can next be leased: available_at
-- while queued, lease_expires_at while leased; one index on it serves every lease
-- (the pool filter is applied while walking it). Every index here costs a page write
-- per enqueue, lease and completion, so there is no other: cancelling an execution's
-- jobs scans the outstanding work. Ids are never reused while a job exists; a reused
-- id after deletion is harmless because completions are fenced by the lease token.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    execution_id     TEXT    NOT NULL REFERENCES executions (id),
    step             TEXT    NOT NULL,
    visit            INTEGER NOT NULL,
    attempt          INTEGER NOT NULL,
    idx              INTEGER,
    pool             TEXT,
    payload          TEXT,              -- JSON object, NULL when empty
    status           TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'leased')),
    available_at     REAL    NOT NULL,  -- unix seconds
    due_at           REAL    NOT NULL,
    lease_token      TEXT,
    worker_id        TEXT,
    lease_expires_at REAL,
    leases           INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX jobs_due ON jobs (due_at);

-- Registered playbooks: every distinct content of a path is a new version.
CREATE TABLE catalog (
    path          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    content       TEXT    NOT NULL,
    content_hash  TEXT    NOT NULL,  -- sha256 hex of the UTF-8 content
    registered_at TEXT    NOT NULL,
    PRIMARY KEY (path, version)
);
