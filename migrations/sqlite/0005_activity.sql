-- The activity log: every state change, with who made it and the request it came in on.
-- Approval changes are written in the same transaction as their audit row.

CREATE TABLE activity_logs (
    id         TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    -- A username, `auto_approve` (the policy), or `anonymous` (sign-in attempts).
    actor      TEXT NOT NULL,
    -- Dotted verb, e.g. `tool.approve`, `server.create`, `auth.login_failed`.
    action     TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),
    server_id  TEXT,
    tool_id    TEXT,
    request_id TEXT,
    message    TEXT NOT NULL,
    -- JSON object with specifics (never secret values).
    details    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_logs_created ON activity_logs (created_at, id);
CREATE INDEX activity_logs_server ON activity_logs (server_id, created_at);
CREATE INDEX activity_logs_action ON activity_logs (action, created_at);
