-- What starts executions besides a person: cron schedules and webhooks.

-- A schedule fires its playbook at each slot of its cron expression, read in its time
-- zone. last_slot is the cursor: the latest slot fired or passed over (ISO-8601 UTC);
-- a slot is claimed only past it, in the transaction that moves it.
CREATE TABLE schedules (
    id               TEXT    NOT NULL PRIMARY KEY,
    playbook_path    TEXT    NOT NULL,
    playbook_version INTEGER,           -- NULL: the latest version when the slot fires
    cron             TEXT    NOT NULL,
    timezone         TEXT    NOT NULL,
    payload          TEXT    NOT NULL,  -- JSON object
    catch_up         TEXT    NOT NULL CHECK (catch_up IN ('none', 'last', 'all')),
    paused           INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    last_slot        TEXT
);

-- One row per fired slot: the primary key is what makes a slot fire once, however
-- many schedulers race for it.
CREATE TABLE schedule_slots (
    schedule_id  TEXT NOT NULL,
    slot         TEXT NOT NULL,  -- ISO-8601 UTC
    claimed_at   TEXT NOT NULL,
    claimed_by   TEXT NOT NULL,
    execution_id TEXT,           -- set once the execution is started
    PRIMARY KEY (schedule_id, slot)
) WITHOUT ROWID;

-- A webhook starts its playbook with the request body as payload. The secret it
-- checks requests with is a stored credential (encrypted), named here.
CREATE TABLE hooks (
    name              TEXT NOT NULL PRIMARY KEY,
    playbook_path     TEXT NOT NULL,
    playbook_version  INTEGER,
    auth              TEXT NOT NULL CHECK (auth IN ('hmac', 'token')),
    secret_credential TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
