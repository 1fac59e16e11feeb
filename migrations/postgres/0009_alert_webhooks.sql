-- Alert webhooks: where alerts (alerts::Kind) are delivered. Several may exist; each has a
-- flavour that decides the payload: Slack {text}, Discord {content}, or the generic
-- {title, message, severity, timestamp, details, source}.
--
-- The URL is a credential (Slack and Discord URLs carry their token): it is stored only
-- encrypted (crypto::Keyring, AAD "alert_webhook:{id}") and shown only as url_masked
-- (scheme, host and the last four characters).

CREATE TABLE alert_webhooks (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    flavour           TEXT NOT NULL CHECK (flavour IN ('slack', 'discord', 'generic')),
    url_encrypted     TEXT NOT NULL,
    url_masked        TEXT NOT NULL,
    enabled           BIGINT NOT NULL DEFAULT 1,
    -- The outcome of the last delivery attempt (after its retries): 'delivered', 'failed' or
    -- 'rate_limited'; NULL before the first.
    last_status       TEXT,
    last_error        TEXT,
    last_attempt_at   TEXT,
    last_delivered_at TEXT,
    delivered_count   BIGINT NOT NULL DEFAULT 0,
    failed_count      BIGINT NOT NULL DEFAULT 0,
    -- Alerts not sent to this webhook because it was over its rate limit.
    rate_limited_count BIGINT NOT NULL DEFAULT 0,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
