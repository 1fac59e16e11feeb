-- Remote set-up (issue #12): the Cloudflare wizard's state, what it created, and the remote
-- email allowlist.
--
-- The wizard is a state machine persisted here, so a restart in the middle continues where it
-- stopped and running a step again changes nothing.

-- One row per step that has run at least once (token, tunnel, vpc_service, worker, access,
-- connect); a missing row is "pending".
CREATE TABLE cloudflare_steps (
    step       TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    -- JSON array of the progress lines of the last run.
    progress   TEXT NOT NULL DEFAULT '[]',
    -- JSON {message, cloudflare: [{code, message}], hint} of the last failure; NULL unless failed.
    error      TEXT,
    updated_at TEXT NOT NULL
);

-- Every Cloudflare resource this install created, one per kind (tunnel, vpc_service,
-- kv_namespace, worker, access_app, access_policy). The row is written BEFORE the create call
-- with state 'creating' (the write-ahead intent) and completed with the id after it: a crash in
-- between leaves the intent, and the next run adopts the resource of that name instead of
-- calling a same-name resource without an intent a clash. Teardown deletes only what is here.
CREATE TABLE cloudflare_resources (
    kind        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('creating', 'created')),
    -- Cloudflare's id; NULL while 'creating'.
    resource_id TEXT,
    -- The worker: a keyed digest of the bundle and bindings last uploaded (no second upload
    -- when unchanged). NULL for other kinds.
    digest      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- The wizard's values: account, team domain, Worker URL, and the secrets (the API token, the
-- Worker's service token and encryption key, Access's client secret, the tunnel's connector
-- token), those encrypted (AES-GCM bound to `cloudflare:{key}`, see crypto.rs).
CREATE TABLE cloudflare_values (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    encrypted  BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

-- Who may use MCPbox remotely: lower-case addresses and `@domain` entries. Pushed to the Access
-- policy and checked again by the tunnel listener; no rows means the wizard never set it.
CREATE TABLE remote_allowed_emails (
    entry      TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
