-- State that must hold across several origin replicas sharing this database (DESIGN.md
-- "Several origins"): the sign-in throttle's failure windows and the shared rate-limit buckets.
--
-- Both tables are counters, not records: their times are microseconds since the Unix epoch
-- (BIGINT), not the display timestamps of the other tables, because every check does arithmetic
-- on them inside one SQL statement (the statement is the lock: concurrent replicas cannot both
-- pass a check before either is counted).

-- Sign-in failures per key ('ip:{address}' or 'account:{name}') within the window that started
-- at window_start_us (auth::throttle).
CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    window_start_us BIGINT NOT NULL,
    failures        BIGINT NOT NULL
);

-- GCRA buckets shared by the replicas (ratelimit::shared): tat_us is the theoretical arrival
-- time, the moment the bucket is full again. A row in the past is a full bucket and may go.
CREATE TABLE rate_buckets (
    key    TEXT PRIMARY KEY,
    tat_us BIGINT NOT NULL
);
CREATE INDEX rate_buckets_tat ON rate_buckets (tat_us);
