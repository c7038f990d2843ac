-- Named queries of the SQLite store, loaded once at import by
-- replaybook.store.sqlite.sql. Each section starts with "-- name: <name>" and holds
-- one statement. Parameters are named (:name).

-- executions --------------------------------------------------------------------

-- name: insert_execution
INSERT INTO executions
    (id, playbook_path, playbook_version, parent_id, parent_step, status,
     created_at, updated_at, last_seq)
VALUES
    (:id, :playbook_path, :playbook_version, :parent_id, :parent_step, 'running',
     :now, :now, 0)

-- name: get_execution
SELECT id, playbook_path, playbook_version, status, created_at, updated_at,
       parent_id, parent_step, last_seq
FROM executions
WHERE id = :id

-- name: get_last_seq
SELECT last_seq FROM executions WHERE id = :id

-- The WHERE clause is put together from the filter_* sections below.
-- name: list_executions
SELECT id, playbook_path, playbook_version, status, created_at, updated_at,
       parent_id, parent_step, last_seq
FROM executions
{where}
ORDER BY created_at DESC, rowid DESC
LIMIT :limit OFFSET :offset

-- name: filter_status
status = :status

-- name: filter_playbook_path
playbook_path = :playbook_path

-- name: filter_parent_id
parent_id = :parent_id

-- append ------------------------------------------------------------------------

-- Optimistic concurrency: matches no row when another writer appended first.
-- Without a status change no indexed column is written (one page less per commit).
-- name: advance_execution
UPDATE executions
SET last_seq = :new_seq, updated_at = :now
WHERE id = :id AND last_seq = :expected_seq

-- name: advance_execution_with_status
UPDATE executions
SET last_seq = :new_seq, updated_at = :now, status = :status
WHERE id = :id AND last_seq = :expected_seq

-- Fenced completion: matches no row when the lease was lost.
-- name: complete_job
DELETE FROM jobs
WHERE id = :id AND execution_id = :execution_id AND lease_token = :lease_token
  AND status = 'leased'

-- name: cancel_jobs
DELETE FROM jobs WHERE execution_id = :execution_id

-- name: insert_event
INSERT INTO events
    (execution_id, seq, id, type, at, step, visit, idx, attempt, data, logic_version)
VALUES
    (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: insert_job
INSERT INTO jobs
    (execution_id, step, visit, attempt, idx, pool, payload, available_at, due_at)
VALUES
    (?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: read_events
SELECT id, seq, type, at, step, visit, idx, attempt, data, logic_version
FROM events
WHERE execution_id = :execution_id AND seq > :after_seq
ORDER BY seq
LIMIT :limit

-- queue -------------------------------------------------------------------------

-- A job is due when queued and available, or leased with an expired lease; both
-- are "due_at <= now". Leasing selects the due jobs, then marks each one leased
-- with its own token (lease_job), in one BEGIN IMMEDIATE transaction.
-- name: due_jobs_any_pool
SELECT id, execution_id, step, visit, attempt, idx, pool, payload, leases
FROM jobs
WHERE due_at <= :now
ORDER BY due_at, id
LIMIT :limit

-- :pools is a JSON array of pool names; :with_null also selects jobs without a pool.
-- name: due_jobs_in_pools
SELECT id, execution_id, step, visit, attempt, idx, pool, payload, leases
FROM jobs
WHERE due_at <= :now
  AND (pool IN (SELECT value FROM json_each(:pools)) OR (:with_null AND pool IS NULL))
ORDER BY due_at, id
LIMIT :limit

-- name: lease_job
UPDATE jobs
SET status = 'leased', lease_token = ?, worker_id = ?, lease_expires_at = ?, due_at = ?,
    leases = leases + 1
WHERE id = ?

-- name: heartbeat
UPDATE jobs
SET lease_expires_at = :expires_at, due_at = :expires_at
WHERE id = :id AND lease_token = :lease_token AND status = 'leased'

-- Back to the queue, keeping its place (available_at is already in the past).
-- name: release
UPDATE jobs
SET status = 'queued', due_at = available_at, lease_token = NULL, worker_id = NULL,
    lease_expires_at = NULL
WHERE id = :id AND lease_token = :lease_token AND status = 'leased'

-- name: next_due_any_pool
SELECT min(due_at) FROM jobs

-- name: next_due_in_pools
SELECT min(due_at) FROM jobs
WHERE pool IN (SELECT value FROM json_each(:pools)) OR (:with_null AND pool IS NULL)

-- catalog -----------------------------------------------------------------------

-- name: latest_playbook
SELECT path, version, name, content, content_hash, registered_at
FROM catalog
WHERE path = :path
ORDER BY version DESC
LIMIT 1

-- name: get_playbook_version
SELECT path, version, name, content, content_hash, registered_at
FROM catalog
WHERE path = :path AND version = :version

-- name: insert_playbook
INSERT INTO catalog (path, version, name, content, content_hash, registered_at)
VALUES (:path, :version, :name, :content, :content_hash, :registered_at)

-- name: list_playbooks
SELECT c.path, c.version, c.name, c.content, c.content_hash, c.registered_at
FROM catalog AS c
WHERE c.version = (SELECT max(version) FROM catalog WHERE path = c.path)
ORDER BY c.path

-- name: playbook_versions
SELECT path, version, name, content, content_hash, registered_at
FROM catalog
WHERE path = :path
ORDER BY version

-- credentials -------------------------------------------------------------------

-- name: put_credential
INSERT INTO credentials (name, type, data, created_at, updated_at)
VALUES (:name, :type, :data, :now, :now)
ON CONFLICT (name) DO UPDATE SET type = excluded.type, data = excluded.data,
    updated_at = excluded.updated_at

-- name: get_credential
SELECT name, type, data, created_at, updated_at FROM credentials WHERE name = :name

-- name: list_credentials
SELECT name, type, data, created_at, updated_at FROM credentials ORDER BY name

-- name: delete_credential
DELETE FROM credentials WHERE name = :name

-- retention ---------------------------------------------------------------------

-- Top-level executions finished before :before with a status in :statuses (a JSON
-- array), and every execution below them; a tree with any execution still running is
-- left whole. Rows are (root id, id).
-- name: prunable_executions
WITH RECURSIVE tree (root, id, status) AS (
    SELECT id, id, status FROM executions
    WHERE parent_id IS NULL AND updated_at < :before
      AND status IN (SELECT value FROM json_each(:statuses))
    UNION ALL
    SELECT tree.root, e.id, e.status FROM executions e JOIN tree ON e.parent_id = tree.id
)
SELECT root, id FROM tree
WHERE root NOT IN (SELECT root FROM tree WHERE status = 'running')
ORDER BY root, id

-- :ids is a JSON array of execution ids.
-- name: prune_events
DELETE FROM events WHERE execution_id IN (SELECT value FROM json_each(:ids))

-- name: prune_jobs
DELETE FROM jobs WHERE execution_id IN (SELECT value FROM json_each(:ids))

-- name: prune_executions
DELETE FROM executions WHERE id IN (SELECT value FROM json_each(:ids))

-- schedules ---------------------------------------------------------------------

-- name: insert_schedule
INSERT INTO schedules
    (id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
     created_at, updated_at, last_slot)
VALUES
    (:id, :playbook_path, :playbook_version, :cron, :timezone, :payload, :catch_up, 0,
     :now, :now, NULL)

-- name: get_schedule
SELECT id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
       created_at, updated_at, last_slot
FROM schedules WHERE id = :id

-- name: list_schedules
SELECT id, playbook_path, playbook_version, cron, timezone, payload, catch_up, paused,
       created_at, updated_at, last_slot
FROM schedules ORDER BY created_at, id

-- Resuming moves the cursor to now: slots that passed while paused are not caught up.
-- name: set_schedule_paused
UPDATE schedules
SET paused = :paused, updated_at = :now,
    last_slot = CASE WHEN :paused THEN last_slot ELSE max(coalesce(last_slot, ''), :now) END
WHERE id = :id

-- name: delete_schedule
DELETE FROM schedules WHERE id = :id

-- name: delete_schedule_slots
DELETE FROM schedule_slots WHERE schedule_id = :id

-- Moves the cursor to :slot if it is behind it (and the schedule is active); the
-- claim that follows in the same transaction then inserts the slot's row.
-- name: advance_schedule
UPDATE schedules SET last_slot = :slot
WHERE id = :id AND NOT paused AND (last_slot IS NULL OR last_slot < :slot)

-- name: insert_schedule_slot
INSERT INTO schedule_slots (schedule_id, slot, claimed_at, claimed_by)
VALUES (:id, :slot, :now, :claimed_by)

-- name: set_slot_execution
UPDATE schedule_slots SET execution_id = :execution_id
WHERE schedule_id = :id AND slot = :slot

-- name: schedule_slots
SELECT schedule_id, slot, claimed_at, claimed_by, execution_id
FROM schedule_slots WHERE schedule_id = :id
ORDER BY slot DESC LIMIT :limit

-- Claimed slots whose execution was never recorded (the claimer stopped in between).
-- name: unstarted_slots
SELECT schedule_id, slot, claimed_at, claimed_by, execution_id
FROM schedule_slots WHERE execution_id IS NULL AND claimed_at < :before
ORDER BY slot

-- hooks -------------------------------------------------------------------------

-- name: put_hook
INSERT INTO hooks
    (name, playbook_path, playbook_version, auth, secret_credential, created_at, updated_at)
VALUES (:name, :playbook_path, :playbook_version, :auth, :secret_credential, :now, :now)
ON CONFLICT (name) DO UPDATE SET playbook_path = excluded.playbook_path,
    playbook_version = excluded.playbook_version, auth = excluded.auth,
    secret_credential = excluded.secret_credential, updated_at = excluded.updated_at

-- name: get_hook
SELECT name, playbook_path, playbook_version, auth, secret_credential, created_at, updated_at
FROM hooks WHERE name = :name

-- name: list_hooks
SELECT name, playbook_path, playbook_version, auth, secret_credential, created_at, updated_at
FROM hooks ORDER BY name

-- name: delete_hook
DELETE FROM hooks WHERE name = :name

-- stats -------------------------------------------------------------------------

-- name: executions_by_status
SELECT status, count(*) FROM executions GROUP BY status

-- Outstanding work, for metrics: counts, the longest wait of a due queued job and the
-- oldest leased job's age (since it became available), in seconds at :now.
-- name: queue_stats
SELECT
    coalesce(sum(status = 'queued'), 0),
    coalesce(sum(status = 'queued' AND available_at <= :now), 0),
    coalesce(sum(status = 'leased'), 0),
    coalesce(sum(status = 'leased' AND lease_expires_at < :now), 0),
    coalesce(:now - min(CASE WHEN status = 'queued' AND available_at <= :now
                             THEN available_at END), 0),
    coalesce(:now - min(CASE WHEN status = 'leased' THEN available_at END), 0)
FROM jobs

-- name: running_jobs
SELECT id, execution_id, step, idx, attempt, worker_id, lease_expires_at - :now
FROM jobs
WHERE status = 'leased'
ORDER BY worker_id, id
LIMIT :limit

-- migrations --------------------------------------------------------------------

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES (:version, :name)
