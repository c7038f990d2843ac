-- Named queries of the PostgreSQL store, loaded once at import by
-- replaybook.store.postgres.sql. Each section starts with "-- name: <name>" and holds
-- one statement. Parameters are psycopg placeholders (%(name)s, or %s in the
-- statements run with executemany). Timestamps are returned as ISO-8601 UTC text with
-- microseconds, formatted by the server, so both backends print the same strings.

-- executions --------------------------------------------------------------------

-- name: insert_execution
INSERT INTO executions
    (id, playbook_path, playbook_version, parent_id, parent_step, status,
     created_at, updated_at, last_seq)
VALUES
    (%(id)s, %(playbook_path)s, %(playbook_version)s, %(parent_id)s, %(parent_step)s,
     'running', %(now)s, %(now)s, 0)

-- name: get_execution
SELECT id, playbook_path, playbook_version, status,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       parent_id, parent_step, last_seq
FROM executions
WHERE id = %(id)s

-- name: get_last_seq
SELECT last_seq FROM executions WHERE id = %(id)s

-- The WHERE clause is put together from the filter_* sections below.
-- name: list_executions
SELECT id, playbook_path, playbook_version, status,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       parent_id, parent_step, last_seq
FROM executions
{where}
ORDER BY created_at DESC, created_order DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: filter_status
status = %(status)s

-- name: filter_playbook_path
playbook_path = %(playbook_path)s

-- name: filter_parent_id
parent_id = %(parent_id)s

-- append ------------------------------------------------------------------------

-- Per-execution ordering: the UPDATE takes the execution row's lock (held until
-- commit) and only matches while last_seq is still the writer's expected_seq. A
-- concurrent appender waits for the lock, then re-checks the condition against the
-- committed row and matches nothing: a SeqConflict, and its transaction is rolled
-- back. The status is only written when given (a HOT update otherwise).
-- name: advance_execution
UPDATE executions
SET last_seq = %(new_seq)s, updated_at = %(now)s
WHERE id = %(id)s AND last_seq = %(expected_seq)s

-- name: advance_execution_with_status
UPDATE executions
SET last_seq = %(new_seq)s, updated_at = %(now)s, status = %(status)s
WHERE id = %(id)s AND last_seq = %(expected_seq)s

-- name: complete_jobs
-- Every job whose outcome the append records, fenced by its lease token; the ids
-- returned are the ones still leased (a missing one makes the append stale).
DELETE FROM jobs j
USING unnest(%(ids)s::bigint[], %(tokens)s::text[]) AS done (id, lease_token)
WHERE j.id = done.id AND j.execution_id = %(execution_id)s
  AND j.lease_token = done.lease_token AND j.status = 'leased'
RETURNING j.id

-- name: cancel_jobs
DELETE FROM jobs WHERE execution_id = %(execution_id)s

-- One statement for all of an append's events (and one for its jobs), the rows as
-- one JSON array: far cheaper than a statement, or an array parameter, per column
-- when a group commit writes many. `data` and `payload` arrive as JSON text.
-- name: insert_events
INSERT INTO events
    (execution_id, seq, id, type, at, step, visit, idx, attempt, data, logic_version)
SELECT %(execution_id)s, e.seq, e.id, e.type, %(at)s, e.step, e.visit, e.idx, e.attempt,
       e.data::json, %(logic_version)s
FROM json_to_recordset(%(rows)s::json)
     AS e (seq bigint, id text, type text, step text, visit integer, idx integer,
           attempt integer, data text)

-- name: insert_jobs
INSERT INTO jobs
    (execution_id, step, visit, attempt, idx, pool, payload, available_at, due_at)
SELECT %(execution_id)s, j.step, j.visit, j.attempt, j.idx, j.pool, j.payload::json,
       %(now)s + j.delay_ms * interval '1 millisecond',
       %(now)s + j.delay_ms * interval '1 millisecond'  -- due when available
FROM json_to_recordset(%(rows)s::json)
     AS j (step text, visit integer, attempt integer, idx integer, pool text,
           payload text, delay_ms bigint, n bigint)
ORDER BY j.n  -- ids in the order the jobs were decided

-- Wakes every watcher (LISTEN); delivered when the transaction commits.
-- name: notify
SELECT pg_notify(%(channel)s, %(message)s)

-- The data column is json: returned as its text, decoded by the store (key order kept).
-- name: read_events
SELECT id, seq, type,
       to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       step, visit, idx, attempt, data::text, logic_version
FROM events
WHERE execution_id = %(execution_id)s AND seq > %(after_seq)s
ORDER BY seq
LIMIT %(limit)s

-- queue -------------------------------------------------------------------------

-- A job is due when queued and available, or leased with an expired lease; both
-- are "due_at <= now". One statement walks the due jobs oldest first, skipping the
-- rows other leasers hold locked, and marks each one leased with a fresh token.
-- The returned rows carry their previous due_at so the caller can order them.
-- %(pools)s is a text[] of pool names; %(with_null)s also selects jobs without a pool.
-- name: lease_jobs_any_pool
WITH due AS (
    SELECT id, due_at
    FROM jobs
    WHERE due_at <= %(now)s
    ORDER BY due_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET status = 'leased', lease_token = replace(gen_random_uuid()::text, '-', ''),
    worker_id = %(worker_id)s, lease_expires_at = %(expires_at)s, due_at = %(expires_at)s,
    leases = j.leases + 1
FROM due
WHERE j.id = due.id
RETURNING j.id, j.execution_id, j.step, j.visit, j.attempt, j.idx, j.pool,
          j.payload::text, j.leases, j.lease_token, due.due_at

-- name: lease_jobs_in_pools
WITH due AS (
    SELECT id, due_at
    FROM jobs
    WHERE due_at <= %(now)s
      AND (pool = ANY (%(pools)s::text[]) OR (%(with_null)s AND pool IS NULL))
    ORDER BY due_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET status = 'leased', lease_token = replace(gen_random_uuid()::text, '-', ''),
    worker_id = %(worker_id)s, lease_expires_at = %(expires_at)s, due_at = %(expires_at)s,
    leases = j.leases + 1
FROM due
WHERE j.id = due.id
RETURNING j.id, j.execution_id, j.step, j.visit, j.attempt, j.idx, j.pool,
          j.payload::text, j.leases, j.lease_token, due.due_at

-- name: heartbeat
UPDATE jobs
SET lease_expires_at = %(expires_at)s, due_at = %(expires_at)s
WHERE id = %(id)s AND lease_token = %(lease_token)s AND status = 'leased'

-- Back to the queue, keeping its place (available_at is already in the past), and
-- wake the watchers: the job can be leased at once.
-- name: release
WITH released AS (
    UPDATE jobs
    SET status = 'queued', due_at = available_at, lease_token = NULL, worker_id = NULL,
        lease_expires_at = NULL
    WHERE id = %(id)s AND lease_token = %(lease_token)s AND status = 'leased'
    RETURNING execution_id
)
SELECT pg_notify(%(channel)s, execution_id || ':1') FROM released

-- Seconds from %(now)s to the earliest due_at, computed by the server on exact
-- microsecond timestamps (0 when the job is due at exactly now).
-- name: next_due_any_pool
SELECT extract(epoch FROM min(due_at) - %(now)s)::float8 FROM jobs

-- name: next_due_in_pools
SELECT extract(epoch FROM min(due_at) - %(now)s)::float8 FROM jobs
WHERE pool = ANY (%(pools)s::text[]) OR (%(with_null)s AND pool IS NULL)

-- catalog -----------------------------------------------------------------------

-- Registrations of one path are serialised, so two registering at once cannot both
-- take the next version number.
-- name: lock_catalog_path
SELECT pg_advisory_xact_lock(hashtext('replaybook.catalog'), hashtext(%(path)s))

-- name: latest_playbook
SELECT path, version, name, content, content_hash,
       to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM catalog
WHERE path = %(path)s
ORDER BY version DESC
LIMIT 1

-- name: get_playbook_version
SELECT path, version, name, content, content_hash,
       to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM catalog
WHERE path = %(path)s AND version = %(version)s

-- name: insert_playbook
INSERT INTO catalog (path, version, name, content, content_hash, registered_at)
VALUES (%(path)s, %(version)s, %(name)s, %(content)s, %(content_hash)s, %(registered_at)s)

-- name: list_playbooks
SELECT DISTINCT ON (path) path, version, name, content, content_hash,
       to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM catalog
ORDER BY path, version DESC

-- name: playbook_versions
SELECT path, version, name, content, content_hash,
       to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM catalog
WHERE path = %(path)s
ORDER BY version

-- credentials -------------------------------------------------------------------

-- name: put_credential
INSERT INTO credentials (name, type, data, created_at, updated_at)
VALUES (%(name)s, %(type)s, %(data)s, %(now)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET type = excluded.type, data = excluded.data,
    updated_at = excluded.updated_at

-- name: get_credential
SELECT name, type, data,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM credentials
WHERE name = %(name)s

-- name: list_credentials
SELECT name, type, data,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM credentials
ORDER BY name

-- name: delete_credential
DELETE FROM credentials WHERE name = %(name)s

-- retention ---------------------------------------------------------------------

-- Top-level executions finished before %(before)s with a status in %(statuses)s, and
-- every execution below them; a tree with any execution still running is left whole.
-- The roots are locked so a concurrent append cannot revive one while it is pruned.
-- Rows are (root id, id).
-- name: prunable_executions
WITH RECURSIVE roots AS (
    SELECT id, status FROM executions
    WHERE parent_id IS NULL AND updated_at < %(before)s
      AND status = ANY (%(statuses)s::text[])
    FOR UPDATE
), tree (root, id, status) AS (
    SELECT id, id, status FROM roots
    UNION ALL
    SELECT tree.root, e.id, e.status FROM executions e JOIN tree ON e.parent_id = tree.id
)
SELECT root, id FROM tree
WHERE root NOT IN (SELECT root FROM tree WHERE status = 'running')
ORDER BY root, id

-- name: prune_events
DELETE FROM events WHERE execution_id = ANY (%(ids)s::text[])

-- name: prune_jobs
DELETE FROM jobs WHERE execution_id = ANY (%(ids)s::text[])

-- name: prune_executions
DELETE FROM executions WHERE id = ANY (%(ids)s::text[])

-- schedules ---------------------------------------------------------------------

-- name: insert_schedule
INSERT INTO schedules
    (id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
     created_at, updated_at, last_slot)
VALUES
    (%(id)s, %(playbook_path)s, %(playbook_version)s, %(cron)s, %(timezone)s, %(payload)s,
     %(catch_up)s, false, %(now)s, %(now)s, NULL)
RETURNING id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')

-- name: get_schedule
SELECT id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM schedules WHERE id = %(id)s

-- name: list_schedules
SELECT id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM schedules ORDER BY created_at, id

-- Resuming moves the cursor to now: slots that passed while paused are not caught up.
-- name: set_schedule_paused
UPDATE schedules
SET paused = %(paused)s, updated_at = %(now)s,
    last_slot = CASE WHEN %(paused)s THEN last_slot ELSE greatest(last_slot, %(now)s) END
WHERE id = %(id)s

-- name: delete_schedule
DELETE FROM schedules WHERE id = %(id)s

-- name: delete_schedule_slots
DELETE FROM schedule_slots WHERE schedule_id = %(id)s

-- Moves the cursor to %(slot)s if it is behind it (and the schedule is active); the
-- row lock it takes orders racing claimers, and the claim that follows in the same
-- transaction inserts the slot's row.
-- name: advance_schedule
UPDATE schedules SET last_slot = %(slot)s
WHERE id = %(id)s AND NOT paused AND (last_slot IS NULL OR last_slot < %(slot)s)

-- name: insert_schedule_slot
INSERT INTO schedule_slots (schedule_id, slot, claimed_at, claimed_by)
VALUES (%(id)s, %(slot)s, %(now)s, %(claimed_by)s)
ON CONFLICT DO NOTHING

-- name: set_slot_execution
UPDATE schedule_slots SET execution_id = %(execution_id)s
WHERE schedule_id = %(id)s AND slot = %(slot)s

-- name: schedule_slots
SELECT schedule_id, to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), claimed_by, execution_id
FROM schedule_slots WHERE schedule_id = %(id)s
ORDER BY slot DESC LIMIT %(limit)s

-- Claimed slots whose execution was never recorded (the claimer stopped in between).
-- name: unstarted_slots
SELECT schedule_id, to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), claimed_by, execution_id
FROM schedule_slots WHERE execution_id IS NULL AND claimed_at < %(before)s
ORDER BY slot

-- hooks -------------------------------------------------------------------------

-- name: put_hook
INSERT INTO hooks
    (name, playbook_path, playbook_version, auth, secret_credential, created_at, updated_at)
VALUES (%(name)s, %(playbook_path)s, %(playbook_version)s, %(auth)s, %(secret_credential)s,
        %(now)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET playbook_path = excluded.playbook_path,
    playbook_version = excluded.playbook_version, auth = excluded.auth,
    secret_credential = excluded.secret_credential, updated_at = excluded.updated_at
RETURNING name, playbook_path, playbook_version, auth, secret_credential,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')

-- name: get_hook
SELECT name, playbook_path, playbook_version, auth, secret_credential,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM hooks WHERE name = %(name)s

-- name: list_hooks
SELECT name, playbook_path, playbook_version, auth, secret_credential,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM hooks ORDER BY name

-- name: delete_hook
DELETE FROM hooks WHERE name = %(name)s

-- stats -------------------------------------------------------------------------

-- name: executions_by_status
SELECT status, count(*) FROM executions GROUP BY status

-- Outstanding work, for metrics: counts, the longest wait of a due queued job and the
-- oldest leased job's age (since it became available), in seconds at %(now)s.
-- name: queue_stats
SELECT
    count(*) FILTER (WHERE status = 'queued'),
    count(*) FILTER (WHERE status = 'queued' AND available_at <= %(now)s),
    count(*) FILTER (WHERE status = 'leased'),
    count(*) FILTER (WHERE status = 'leased' AND lease_expires_at < %(now)s),
    coalesce(extract(epoch FROM %(now)s - min(available_at)
        FILTER (WHERE status = 'queued' AND available_at <= %(now)s)), 0)::float8,
    coalesce(extract(epoch FROM %(now)s - min(available_at)
        FILTER (WHERE status = 'leased')), 0)::float8
FROM jobs

-- name: running_jobs
SELECT id, execution_id, step, idx, attempt, worker_id,
       extract(epoch FROM lease_expires_at - %(now)s)::float8
FROM jobs
WHERE status = 'leased'
ORDER BY worker_id, id
LIMIT %(limit)s

-- migrations --------------------------------------------------------------------

-- Every opener takes this lock before looking at the schema, so concurrent openers
-- apply each migration exactly once. %(scope)s is the schema name (or '').
-- name: lock_migrations
SELECT pg_advisory_xact_lock(hashtext('replaybook.migrations'), hashtext(%(scope)s))

-- name: schema_migrations_exists
SELECT to_regclass('schema_migrations') IS NOT NULL

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)
