-- What starts executions besides a person: cron schedules and webhooks.

-- A schedule fires its playbook at each slot of its cron expression, read in its time
-- zone. last_slot is the cursor: the latest slot fired or passed over; a slot is
-- claimed only past it, in the transaction that moves it.
CREATE TABLE schedules (
    id               text        NOT NULL PRIMARY KEY,
    playbook_path    text        NOT NULL,
    playbook_version integer,               -- NULL: the latest version when it fires
    cron             text        NOT NULL,
    timezone         text        NOT NULL,
    payload          text        NOT NULL,  -- JSON object (key order kept)
    catch_up         text        NOT NULL CHECK (catch_up IN ('none', 'last', 'all')),
    paused           boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_slot        timestamptz
);

-- One row per fired slot: the primary key is what makes a slot fire once, however
-- many schedulers race for it.
CREATE TABLE schedule_slots (
    schedule_id  text        NOT NULL,
    slot         timestamptz NOT NULL,
    claimed_at   timestamptz NOT NULL,
    claimed_by   text        NOT NULL,
    execution_id text,
    PRIMARY KEY (schedule_id, slot)
);

-- A webhook starts its playbook with the request body as payload. The secret it
-- checks requests with is a stored credential (encrypted), named here.
CREATE TABLE hooks (
    name              text        NOT NULL PRIMARY KEY,
    playbook_path     text        NOT NULL,
    playbook_version  integer,
    auth              text        NOT NULL CHECK (auth IN ('hmac', 'token')),
    secret_credential text        NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
