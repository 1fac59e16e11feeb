-- PyPI packages (issue #14). A module request whose target names a PyPI distribution
-- ("pyyaml", "feedparser==6.0.11") is resolved when it is made: the exact versions and wheel
-- sha256 hashes of it and its dependencies, with summary, licence, release date, links and
-- OSV vulnerabilities (JSON, packages::Resolved). The reviewer approves exactly that: approving
-- re-resolves and refuses when anything changed.

CREATE TABLE package_resolutions (
    request_id  TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    resolved    TEXT NOT NULL,
    resolved_at TEXT NOT NULL
);

-- One row per distribution version ever queued for install, shared by every request that
-- resolves to it; installed into <data>/packages/<name>-<version>/.
CREATE TABLE packages (
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'installing', 'installed', 'failed')),
    progress        TEXT NOT NULL DEFAULT '',
    error           TEXT,
    -- JSON list of the top-level import names.
    import_names    TEXT NOT NULL DEFAULT '[]',
    size_bytes      BIGINT NOT NULL DEFAULT 0,
    install_ms      BIGINT NOT NULL DEFAULT 0,
    -- JSON list of packages::osv::Vulnerability, as of checked_at.
    vulnerabilities TEXT NOT NULL DEFAULT '[]',
    checked_at      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
