//! Domain benchmark: seeds 2 000 tools on one server and 1 000 000 execution-log rows (straight
//! into the database: seeding is not what is measured), then prints how long listing and paging
//! take through the domain functions the API calls.
//!
//! Run: `cargo bench -p mcpbox-origin --bench domain` (SQLite in a temporary directory; set
//! `MCPBOX_BENCH_DATABASE_URL=postgres://…` to a throw-away database for PostgreSQL).

use std::time::{Duration, Instant};

use origin::db::Db;
use origin::execution::{self, LogFilter};

const TOOLS: i64 = 2_000;
const LOG_ROWS: i64 = 1_000_000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = std::env::var("MCPBOX_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| origin::config::sqlite_url(&dir.path().join("bench.db")));
    let db = Db::connect(&url).await.expect("database");
    println!("backend: {}", db.backend.name());
    let seeded = Instant::now();
    let server = seed(&db).await;
    println!(
        "seeded {TOOLS} tools and {LOG_ROWS} log rows in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let page = time(20, || async {
        origin::tools::list(&db, &server, 100, 0)
            .await
            .expect("list")
    })
    .await;
    println!("tools: first page of 100 of {TOOLS}: median {}", ms(page));
    let all = time(10, || async {
        for page in 0..(TOOLS / 100) {
            origin::tools::list(&db, &server, 100, page * 100)
                .await
                .expect("list");
        }
    })
    .await;
    println!("tools: all {TOOLS} in pages of 100: median {}", ms(all));

    let filter = LogFilter::default();
    let first = time(10, || async {
        execution::logs_after(&db, &filter, None, 50)
            .await
            .expect("logs")
    })
    .await;
    println!(
        "logs: first page of 50 of {LOG_ROWS} (cursor): median {}",
        ms(first)
    );
    // Walk to the middle, then time pages there.
    let mut cursor = None;
    for _ in 0..100 {
        cursor = execution::logs_after(&db, &filter, cursor.as_ref(), 5_000)
            .await
            .expect("walk")
            .1;
    }
    let deep = time(10, || async {
        execution::logs_after(&db, &filter, cursor.as_ref(), 50)
            .await
            .expect("logs")
    })
    .await;
    println!(
        "logs: a page of 50 at row 500 000 (cursor): median {}",
        ms(deep)
    );
    let offset_first = time(5, || async {
        execution::logs(&db, &filter, 50, 0).await.expect("logs")
    })
    .await;
    println!(
        "logs: first page of 50 by page number, with the total count: median {}",
        ms(offset_first)
    );
    let offset_deep = time(3, || async {
        execution::logs(&db, &filter, 50, 500_000)
            .await
            .expect("logs")
    })
    .await;
    println!(
        "logs: a page of 50 at row 500 000 by page number (OFFSET), with the total: median {}",
        ms(offset_deep)
    );
    let tool_filter = LogFilter {
        tool_id: Some("tool-7".into()),
        ..LogFilter::default()
    };
    let filtered = time(10, || async {
        execution::logs_after(&db, &tool_filter, None, 50)
            .await
            .expect("logs")
    })
    .await;
    println!(
        "logs: first page of 50 for one tool (cursor): median {}",
        ms(filtered)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn time<F, Fut, T>(runs: usize, mut f: F) -> Duration
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
async fn seed(db: &Db) -> String {
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
