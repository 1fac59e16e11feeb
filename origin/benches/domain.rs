//! Domain benchmark: seeds 2 000 tools on one server and 1 000 000 execution-log rows (straight
//! into the database: seeding is not what is measured), then prints how long listing and paging
//! take through the domain functions the API calls.
//!
//! Run: `cargo bench -p mcpbox-origin --bench domain` (SQLite in a temporary directory; set
//! `MCPBOX_BENCH_DATABASE_URL=postgres://…` to a throw-away database for PostgreSQL).

mod common;

use std::time::Instant;

use common::{LOG_ROWS, TOOLS, ms, seed, time};
use origin::execution::{self, LogFilter};

#[tokio::main]
async fn main() {
    let (_dir, db) = common::open_db().await;
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
