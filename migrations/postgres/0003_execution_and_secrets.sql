-- One row per tool run (calls and test runs), kept after the tool is deleted (tool_id is not a
-- foreign key on purpose). Arguments are stored with secrets redacted; results over 10 KB are
-- replaced by an explicit truncation marker; stdout and errors are capped.

CREATE TABLE execution_logs (
    id          TEXT PRIMARY KEY,
    tool_id     TEXT NOT NULL,
    server_id   TEXT NOT NULL,
    -- The public name at call time ({server}__{tool}).
    tool_name   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    arguments   TEXT NOT NULL,
    result      TEXT,
    error       TEXT,
    error_kind  TEXT,
    stdout      TEXT NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL,
    success     BIGINT NOT NULL,
    is_test     BIGINT NOT NULL,
    executed_by TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX execution_logs_created ON execution_logs (created_at, id);
CREATE INDEX execution_logs_tool ON execution_logs (tool_id, created_at);
CREATE INDEX execution_logs_server ON execution_logs (server_id, created_at);

-- Server secrets: a placeholder (key + description) that an admin may fill. The value is
-- AES-256-GCM encrypted with the AAD `server_secret:{server_id}:{key}` (base64; NULL = no value
-- yet) and never leaves the origin except into the sandbox for a run.
CREATE TABLE server_secrets (
    id              TEXT PRIMARY KEY,
    server_id       TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    encrypted_value TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (server_id, key)
);
