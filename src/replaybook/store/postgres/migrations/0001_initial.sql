-- Replaybook PostgreSQL schema, version 1: the same tables as the SQLite store.
-- Applied by replaybook.store.postgres.migrate in one transaction under an advisory
-- lock, and recorded in schema_migrations (which the runner creates itself).
-- Timestamps are timestamptz holding microseconds; queries return them as ISO-8601
-- UTC text ('2024-05-01T12:00:00.000000Z'), exactly as the SQLite store does.

-- One row per execution: a summary of its event log, updated by every append.
-- updated_at and last_seq are not indexed, and fillfactor leaves room on each page,
-- so an append's update of this row is a HOT update (no index write).
CREATE TABLE executions (
    id               text        NOT NULL PRIMARY KEY,
    playbook_path    text        NOT NULL,
    playbook_version integer     NOT NULL,
    parent_id        text,
    parent_step      text,
    status           text        NOT NULL,  -- running | completed | failed | cancelled
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_seq         bigint      NOT NULL DEFAULT 0,
    -- Creation order, breaking ties between executions created at the same instant.
    created_order    bigint      GENERATED ALWAYS AS IDENTITY
) WITH (fillfactor = 80);

CREATE INDEX executions_created ON executions (created_at, created_order);
CREATE INDEX executions_status ON executions (status, created_at, created_order);
CREATE INDEX executions_playbook ON executions (playbook_path, created_at, created_order);
CREATE INDEX executions_parent ON executions (parent_id, created_at, created_order);

-- The event log: gap-free seq per execution. data is json (not jsonb): the text is
-- kept as written, so key order and big integers survive.
CREATE TABLE events (
    execution_id  text        NOT NULL REFERENCES executions (id),
    seq           bigint      NOT NULL,
    id            text        NOT NULL,
    type          text        NOT NULL,
    at            timestamptz NOT NULL,
    step          text,
    visit         integer,
    idx           integer,
    attempt       integer,
    data          json        NOT NULL,
    logic_version integer     NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- The work queue. A job is deleted when completed or cancelled, so the table only
-- holds outstanding work. due_at is when the job can next be leased: available_at
-- while queued, lease_expires_at while leased; one index on it serves every lease
-- (walked in order with FOR UPDATE SKIP LOCKED; the pool filter is applied while
-- walking it). Cancelling an execution's jobs scans the outstanding work, which
-- saves an index write on every enqueue and completion.
CREATE TABLE jobs (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id     text        NOT NULL REFERENCES executions (id),
    step             text        NOT NULL,
    visit            integer     NOT NULL,
    attempt          integer     NOT NULL,
    idx              integer,
    pool             text,
    payload          json,                  -- NULL when empty
    status           text        NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'leased')),
    available_at     timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    lease_token      text,
    worker_id        text,
    lease_expires_at timestamptz,
    leases           integer     NOT NULL DEFAULT 0
);

CREATE INDEX jobs_due ON jobs (due_at, id);

-- Registered playbooks: every distinct content of a path is a new version.
CREATE TABLE catalog (
    path          text        NOT NULL,
    version       integer     NOT NULL,
    name          text        NOT NULL,
    content       text        NOT NULL,
    content_hash  text        NOT NULL,  -- sha256 hex of the UTF-8 content
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (path, version)
);

-- Named credentials. `data` is ciphertext made above the store (replaybook.credentials):
-- the store never holds a plaintext secret.
CREATE TABLE credentials (
    name       text        NOT NULL PRIMARY KEY,
    type       text        NOT NULL,
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
