//! What the benchmarks share: the seeded data set of the domain benchmark (2 000 tools on one
//! server, 1 000 000 execution-log rows) and a median timer.
#![allow(dead_code)] // each bench uses its own part

use std::time::{Duration, Instant};

use origin::db::Db;

pub const TOOLS: i64 = 2_000;
pub const LOG_ROWS: i64 = 1_000_000;

/// The benchmark's database: SQLite in a temporary directory (kept alive by the returned
/// guard), or `MCPBOX_BENCH_DATABASE_URL` (a throw-away PostgreSQL database).
pub async fn open_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = std::env::var("MCPBOX_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| origin::config::sqlite_url(&dir.path().join("bench.db")));
    let db = Db::connect(&url).await.expect("database");
    println!("backend: {}", db.backend.name());
    (dir, db)
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub async fn time<F, Fut, T>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    f().await; // warm-up
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Seeds with set-based SQL (one statement per table) rather than a million round trips.
pub async fn seed(db: &Db) -> String {
    let now = origin::db::now();
    let server = "bench-server".to_owned();
    sqlx::query("INSERT INTO servers (id, name, description, status, default_timeout_ms, created_by, created_at, updated_at) VALUES ($1, 'bench', '', 'running', 30000, 'bench', $2, $2)")
        .bind(&server)
        .bind(&now)
        .execute(&db.pool)
        .await
        .expect("server");
    let series = |n: i64| match db.backend {
        origin::db::Backend::Sqlite => format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s"
        ),
        origin::db::Backend::Postgres => format!("SELECT i FROM generate_series(1, {n}) AS s(i)"),
    };
    sqlx::query(&format!(
        "INSERT INTO tools (id, server_id, name, enabled, timeout_ms, current_version, created_by, created_at, updated_at) \
         SELECT 'tool-' || i, $1, 'tool_' || i, 1, NULL, 1, 'bench', $2, $2 FROM ({}) AS t",
        series(TOOLS)
    ))
    .bind(&server)
    .bind(&now)
    .execute(&db.pool)
    .await
    .expect("tools");
    // Timestamps spread over ~11 days, one row a second, all distinct.
    sqlx::query(&format!(
        "INSERT INTO execution_logs (id, tool_id, server_id, tool_name, version, arguments, result, error, error_kind, stdout, \
         duration_ms, success, is_test, executed_by, created_at) \
         SELECT 'log-' || i, 'tool-' || (i % {TOOLS}), $1, 'bench__tool', 1, '{{}}', '1', NULL, NULL, '', 3, 1, 0, 'bench', \
         '2026-01-01T00:00:00.000000Z-' || substr('0000000' || i, -7, 7) FROM ({}) AS t",
        series(LOG_ROWS)
    ))
    .bind(&server)
    .execute(&db.pool)
    .await
    .expect("logs");
    server
}
