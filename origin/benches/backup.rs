//! Backup benchmark: the domain benchmark's data set (2 000 tools, 1 000 000 execution-log
//! rows), then one `mcpbox backup` of it: time and file size, and (SQLite, or PostgreSQL when
//! `MCPBOX_BENCH_RESTORE_URL` names a second, empty throw-away database) one restore.
//!
//! Run: `cargo bench -p mcpbox-origin --bench backup` (SQLite in a temporary directory; set
//! `MCPBOX_BENCH_DATABASE_URL=postgres://…` to a throw-away database for PostgreSQL).
//!
//! Measured 2026-12-01 on the shared 2-core dev machine (release): SQLite backup 1.42 s, 295.8 MB,
//! restore 1.07 s; PostgreSQL (local) backup 9.01 s, 316.5 MB, restore 36.77 s.

mod common;

use std::time::Instant;

use common::{LOG_ROWS, TOOLS, seed};
use origin::db::Backend;

#[tokio::main]
async fn main() {
    let (dir, db) = common::open_db().await;
    let seeded = Instant::now();
    seed(&db).await;
    println!(
        "seeded {TOOLS} tools and {LOG_ROWS} log rows in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let file = dir.path().join("bench.backup");
    let made = origin::backup::create(&db, &file, false)
        .await
        .expect("backup");
    println!(
        "backup: {:.2} s, {:.1} MB ({})",
        made.elapsed.as_secs_f64(),
        made.bytes as f64 / 1e6,
        made.summary()
    );
    let target = match db.backend {
        Backend::Sqlite => Some(origin::config::sqlite_url(&dir.path().join("restored.db"))),
        Backend::Postgres => std::env::var("MCPBOX_BENCH_RESTORE_URL").ok(),
    };
    if let Some(target) = target {
        let restored = origin::backup::restore(&target, &file, false)
            .await
            .expect("restore");
        println!(
            "restore: {:.2} s ({})",
            restored.elapsed.as_secs_f64(),
            restored.summary()
        );
    }
}
