-- Servers, tools and their immutable versions, with approval bound to a version.
--
-- A tool's code lives only in tool_versions; every change writes a new row. Approval state is
-- per version: what runs is always the newest version whose status is 'approved' (see
-- tools::runnable), and the stored code_hash is checked again at call time.

CREATE TABLE servers (
    id                 TEXT PRIMARY KEY,
    -- ^[a-z][a-z0-9]*(_[a-z0-9]+)*$, at most 30 characters (see servers::ServerName).
    name               TEXT NOT NULL UNIQUE,
    description        TEXT NOT NULL DEFAULT '',
    -- 'stopped' or 'running'; only tools of running servers are callable.
    status             TEXT NOT NULL DEFAULT 'stopped' CHECK (status IN ('stopped', 'running')),
    default_timeout_ms BIGINT NOT NULL DEFAULT 30000,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE tools (
    id              TEXT PRIMARY KEY,
    server_id       TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    enabled         BIGINT NOT NULL DEFAULT 1,
    -- NULL: the server's default.
    timeout_ms      BIGINT,
    -- The newest version number (not necessarily the one that runs).
    current_version BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (server_id, name)
);
CREATE INDEX tools_server ON tools (server_id);

CREATE TABLE tool_versions (
    id               TEXT PRIMARY KEY,
    tool_id          TEXT NOT NULL REFERENCES tools(id) ON DELETE CASCADE,
    version          BIGINT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    python_code      TEXT NOT NULL,
    -- SHA-256 of python_code; re-checked before the version runs.
    code_hash        TEXT NOT NULL,
    -- JSON Schema derived by the sandbox from main's signature.
    input_schema     TEXT NOT NULL,
    -- 'llm', 'admin', 'rollback' or 'import'.
    change_source    TEXT NOT NULL CHECK (change_source IN ('llm', 'admin', 'rollback', 'import')),
    change_summary   TEXT NOT NULL DEFAULT '',
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    -- 'draft' -> 'pending_review' -> 'approved' | 'rejected'; 'approved' -> 'revoked'.
    status           TEXT NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'pending_review', 'approved', 'rejected', 'revoked')),
    publish_notes    TEXT,
    requested_at     TEXT,
    reviewed_by      TEXT,
    reviewed_at      TEXT,
    rejection_reason TEXT,
    -- JSON arrays: the modules and hosts in force when this version was approved (audit).
    approved_modules TEXT,
    approved_hosts   TEXT,
    UNIQUE (tool_id, version)
);
CREATE INDEX tool_versions_status ON tool_versions (status);
