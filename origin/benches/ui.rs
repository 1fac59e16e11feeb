//! UI benchmark: every admin page rendered in process (router + domain + templates, no network)
//! on the domain benchmark's data set (2 000 tools on one server, 1 000 000 execution-log rows)
//! plus a version for every tool, a pending version 2 of one tool to review, and 100 000
//! activity rows. Prints the median server time of each page. The goal is well under 50 ms.
//!
//! Run: `cargo bench -p mcpbox-origin --bench ui` (SQLite in a temporary directory; set
//! `MCPBOX_BENCH_DATABASE_URL=postgres://…` to a throw-away database for PostgreSQL).

mod common;

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{LOG_ROWS, TOOLS, ms, seed, time};
use origin::app::AppState;
use origin::auth::password::{NewPassword, Username};
use origin::crypto::Keyring;
use origin::db::Db;
use origin::dispatch::Sandbox;
use tower::ServiceExt;

const ACTIVITY_ROWS: i64 = 100_000;

#[tokio::main]
async fn main() {
    let (_dir, db) = common::open_db().await;
    let seeded = Instant::now();
    let server = seed(&db).await;
    seed_versions_and_activity(&db).await;
    println!(
        "seeded {TOOLS} tools with versions, {LOG_ROWS} log rows, {ACTIVITY_ROWS} activity rows in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let state = AppState::new(
        db.clone(),
        Keyring::new([7; 32], None),
        // The dashboard asks the sandbox for its health; an absent one answers at once.
        Sandbox::unavailable("no sandbox in the UI benchmark"),
    );
    let admin = origin::users::create_first_admin(
        &db,
        &state.passwords,
        &Username::parse("admin").expect("name"),
        &NewPassword::parse("correct horse battery").expect("password"),
    )
    .await
    .expect("admin");
    let mut conn = db.pool.acquire().await.expect("connection");
    let pair = origin::auth::tokens::issue_pair(
        &mut conn,
        &state.jwt,
        &admin,
        None,
        origin::auth::tokens::Audience::Ui,
    )
    .await
    .expect("tokens");
    drop(conn);
    let cookie = format!("mcpbox_at={}", pair.access_token);
    let router = origin::app::router(state);
    let pages = [
        "/ui".to_owned(),
        "/ui?period=7d".to_owned(),
        "/ui/servers".to_owned(),
        format!("/ui/servers/{server}"),
        "/ui/tools/tool-7".to_owned(),
        "/ui/tools/tool-7?status=error&page=3".to_owned(),
        "/ui/approvals".to_owned(),
        "/ui/approvals/tools/tool-7/2".to_owned(),
        "/ui/activity".to_owned(),
        "/ui/activity?level=warning".to_owned(),
        // Halfway down the log: keyset paging costs the same there.
        "/ui/activity?before=2026-01-01T00:00:00.000000Z-0050000~act-50000".to_owned(),
        "/ui/activity?level=warning&before=2026-01-01T00:00:00.000000Z-0050000~act-50000"
            .to_owned(),
        "/ui/settings".to_owned(),
        "/ui/users".to_owned(),
    ];
    for path in pages {
        let get = || {
            let router = router.clone();
            let cookie = cookie.clone();
            let path = path.clone();
            async move {
                let request = Request::get(&path)
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .expect("request");
                let response = router.oneshot(request).await.expect("response");
                assert_eq!(response.status(), StatusCode::OK, "{path}");
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("body")
                    .len()
            }
        };
        let bytes = get().await;
        let median = time(20, get).await;
        println!("{path:<42} median {:>9}  ({bytes} bytes)", ms(median));
    }
}

async fn seed_versions_and_activity(db: &Db) {
    let code = "async def main(city: str, days: int = 1) -> dict:\n    \"\"\"A forecast.\"\"\"\n    total = 0\n    for day in range(days):\n        total += day\n    return {'city': city, 'days': days, 'total': total}\n";
    let schema = r#"{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer","default":1}},"required":["city"],"additionalProperties":false}"#;
    sqlx::query(
        "INSERT INTO tool_versions (id, tool_id, version, description, python_code, code_hash, input_schema, \
         change_source, change_summary, created_by, created_at, status) \
         SELECT 'v1-' || id, id, 1, 'A forecast.', $1, 'hash', $2, 'llm', 'first', 'bench', created_at, 'approved' FROM tools",
    )
    .bind(code)
    .bind(schema)
    .execute(&db.pool)
    .await
    .expect("versions");
    sqlx::query(
        "INSERT INTO tool_versions (id, tool_id, version, description, python_code, code_hash, input_schema, \
         change_source, change_summary, created_by, created_at, status, requested_at) \
         VALUES ('v2-tool-7', 'tool-7', 2, 'A forecast.', $1, 'hash2', $2, 'llm', 'more days', 'bench', '2026-01-02T00:00:00Z', \
         'pending_review', '2026-01-02T00:00:00Z')",
    )
    .bind(code.replace("total += day", "total += day * 2"))
    .bind(schema)
    .execute(&db.pool)
    .await
    .expect("version 2");
    sqlx::query("UPDATE tools SET current_version = 2 WHERE id = 'tool-7'")
        .execute(&db.pool)
        .await
        .expect("current");
    let series = match db.backend {
        origin::db::Backend::Sqlite => format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ACTIVITY_ROWS}) SELECT i FROM s"
        ),
        origin::db::Backend::Postgres => {
            format!("SELECT i FROM generate_series(1, {ACTIVITY_ROWS}) AS s(i)")
        }
    };
    sqlx::query(&format!(
        "INSERT INTO activity_logs (id, created_at, actor, action, level, server_id, tool_id, request_id, message, details) \
         SELECT 'act-' || i, '2026-01-01T00:00:00.000000Z-' || substr('0000000' || i, -7, 7), 'bench', 'tool.update', \
         CASE WHEN i % 10 = 0 THEN 'warning' ELSE 'info' END, NULL, NULL, NULL, 'tool changed', '{{}}' FROM ({series}) AS t"
    ))
    .execute(&db.pool)
    .await
    .expect("activity");
}
