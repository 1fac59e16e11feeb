//! The scrape-time half of `/metrics` on both backends: the database counts and sources, and a
//! sandbox that does not answer, which is a gauge value and never a failed scrape. (The counted
//! half, on the real binary, is in tests/tests/metrics.rs.)

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestApp, on_both_backends};
use tower::ServiceExt;

async fn scrape(app: &TestApp) -> String {
    let response = origin::metrics::router(app.state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn has(text: &str, sample: &str) -> bool {
    text.lines().any(|line| line == sample)
}

async fn add_source(app: &TestApp, server: &str, name: &str, status: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    sqlx::query(
        "INSERT INTO external_sources (id, server_id, name, url, auth_type, status, created_by, \
         created_at, updated_at) VALUES ($1, $2, $3, 'http://127.0.0.1:9/mcp', 'none', $4, 'admin', $5, $5)",
    )
    .bind(format!("source-{name}"))
    .bind(server)
    .bind(name)
    .bind(status)
    .bind(now)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

async fn scrape_reads_the_database_and_survives_a_dead_sandbox(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "sources").await;
    // Two module requests waiting, one network request already decided (tool versions pending
    // review are checked on the real binary, where code can be validated).
    for (id, kind, target, status) in [
        ("r1", "module", "numpy", "pending"),
        ("r2", "module", "pandas", "pending"),
        ("r3", "network", "example.com", "approved"),
    ] {
        let now = chrono::Utc::now().to_rfc3339();
        sqlx::query(
            "INSERT INTO access_requests (id, kind, server_id, target, requested_by, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'admin', $5, $6, $6)",
        )
        .bind(id)
        .bind(kind)
        .bind(&server)
        .bind(target)
        .bind(status)
        .bind(now)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
    add_source(&app, &server, "up", "active").await;
    add_source(&app, &server, "down", "error").await;
    add_source(&app, &server, "unreviewed", "pending_approval").await;

    let text = scrape(&app).await;
    // The test app's sandbox is never available.
    assert!(has(&text, "mcpbox_sandbox_up 0"), "{text}");
    assert!(has(&text, "mcpbox_sandbox_idle_workers 0"), "{text}");
    assert!(
        has(&text, r#"mcpbox_approvals_pending{kind="tool_version"} 0"#),
        "{text}"
    );
    assert!(
        has(&text, r#"mcpbox_approvals_pending{kind="module"} 2"#),
        "{text}"
    );
    assert!(
        has(&text, r#"mcpbox_approvals_pending{kind="network"} 0"#),
        "{text}"
    );
    assert!(
        has(
            &text,
            r#"mcpbox_external_source_up{server="sources",source="up"} 1"#
        ),
        "{text}"
    );
    assert!(
        has(
            &text,
            r#"mcpbox_external_source_up{server="sources",source="down"} 0"#
        ),
        "{text}"
    );
    assert!(!text.contains("unreviewed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"mcpbox_db_pool_connections{state="idle"} "#)),
        "{text}"
    );

    // The pool's bound (per backend), the last acquire's wait, no external client open yet.
    let max = match app.state.db.backend {
        origin::db::Backend::Sqlite => 8,
        origin::db::Backend::Postgres => 16,
    };
    assert!(
        has(&text, &format!("mcpbox_db_pool_max_connections {max}")),
        "{text}"
    );
    let waited: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mcpbox_db_pool_acquire_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..2.0).contains(&waited), "{text}");
    assert!(has(&text, "mcpbox_external_pool_clients 0"), "{text}");
    // A dead sandbox keeps the zygote counter where it was (never seen: 0).
    assert!(
        has(&text, "mcpbox_sandbox_zygote_restarts_total 0"),
        "{text}"
    );

    // Alerts raised where they happen are counted by kind; a duplicate is not.
    for _ in 0..2 {
        app.state.alerts.raise(
            origin::alerts::Kind::ExternalSourceDown,
            "source-down",
            "down",
            serde_json::Value::Null,
        );
    }
    let text = scrape(&app).await;
    assert!(
        has(
            &text,
            r#"mcpbox_alerts_raised_total{kind="external_source_down"} 1"#
        ),
        "{text}"
    );
    assert!(
        has(
            &text,
            r#"mcpbox_alerts_raised_total{kind="breaker_opened"} 0"#
        ),
        "{text}"
    );
    assert!(has(&text, "mcpbox_alerts_dropped_total 0"), "{text}");

    // A deleted source leaves the exposition.
    sqlx::query("DELETE FROM external_sources WHERE name = 'down'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let text = scrape(&app).await;
    assert!(!text.contains(r#"source="down""#), "{text}");
}

on_both_backends!(scrape_reads_the_database_and_survives_a_dead_sandbox);
