-- Module and network access requests: one queue, two kinds, same actions and audit fields.
-- A tool (the LLM) asks for a module or a host; an approver approves or rejects it; an
-- approved request can be revoked. Admins may add approved rows directly (tool_id NULL,
-- requested_by = the admin). What a server's tools may import and reach is derived from the
-- approved rows at call time (see access::allowed_modules / allowed_hosts).

CREATE TABLE access_requests (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('module', 'network')),
    server_id        TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    tool_id          TEXT REFERENCES tools(id) ON DELETE CASCADE,
    -- A module name, or a host (lower-case, no trailing dot).
    target           TEXT NOT NULL,
    -- Network only; NULL = any port.
    port             INTEGER,
    justification    TEXT NOT NULL DEFAULT '',
    requested_by     TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reviewed_by      TEXT,
    reviewed_at      TEXT,
    rejection_reason TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX access_requests_server ON access_requests (server_id, kind, status);
-- One pending request per (kind, server, tool, target, port): the database decides.
CREATE UNIQUE INDEX access_requests_one_pending
    ON access_requests (kind, server_id, COALESCE(tool_id, ''), target, COALESCE(port, 0))
    WHERE status = 'pending';
