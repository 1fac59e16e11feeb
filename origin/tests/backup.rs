//! `origin::backup`: a backup of a populated database restores into a fresh one with accounts,
//! tool versions, approvals and secrets intact (secrets still decrypt with the same key); bad
//! files and occupied destinations are refused with nothing changed. On both backends.

mod common;

use std::path::Path;

use axum::http::{Method, StatusCode};
use common::{ADMIN, KEY, PASSWORD, TestApp, on_both_backends};
use origin::Error;
use origin::app::AppState;
use origin::crypto::Keyring;
use origin::db::{Backend, Db};
use origin::dispatch::Sandbox;
use serde_json::{Value, json};

/// A fresh, empty database URL of the same backend as `app`, and the temp dir that holds it.
async fn fresh_target(app: &TestApp) -> (String, Option<tempfile::TempDir>) {
    match app.state.db.backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = origin::config::sqlite_url(&dir.path().join("mcpbox.db"));
            (url, Some(dir))
        }
        Backend::Postgres => (common::fresh_postgres_url().await, None),
    }
}

struct Populated {
    server: String,
    approved: String,
    revised: String,
}

/// An admin, a server with a secret, one approved tool and one tool with two versions.
async fn populate(app: &TestApp) -> Populated {
    let token = app.admin().await.token("access_token");
    let server = app.create_server(&token, "weather").await;
    let approved = app
        .create_tool(&token, &server, "forecast", "def main():\n    return 1\n")
        .await;
    app.approve_tool(&token, &approved).await;
    let revised = app
        .create_tool(&token, &server, "history", "def main():\n    return 2\n")
        .await;
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{revised}"),
            Some(&token),
            json!({"python_code": "def main():\n    return 3\n"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    origin::secrets::create_placeholder(&app.state.db, &server, "API_KEY", "the key")
        .await
        .unwrap();
    origin::secrets::set_value(&app.state, &server, "API_KEY", "s3cret-value")
        .await
        .unwrap();
    Populated {
        server,
        approved,
        revised,
    }
}

/// What a person sees of the populated data through the API.
async fn observe(app: &TestApp, data: &Populated) -> Vec<Value> {
    let token = app.login(ADMIN, PASSWORD).await.token("access_token");
    let mut seen = Vec::new();
    for tool in [&data.approved, &data.revised] {
        for path in [
            format!("/api/tools/{tool}"),
            format!("/api/tools/{tool}/versions"),
        ] {
            let response = app.get(&path, Some(&token)).await;
            assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
            seen.push(response.body);
        }
    }
    let secrets = app
        .get(
            &format!("/api/servers/{}/secrets", data.server),
            Some(&token),
        )
        .await;
    assert_eq!(secrets.status, StatusCode::OK, "{}", secrets.text);
    seen.push(secrets.body);
    seen
}

fn with_key(db: Db) -> AppState {
    AppState::new(
        db,
        Keyring::new(KEY, None),
        Sandbox::unavailable("not needed"),
    )
}

async fn round_trip_keeps_data_versions_approvals_and_secrets(app: TestApp) {
    let app = app.with_sandbox().await;
    let data = populate(&app).await;
    let before = observe(&app, &data).await;
    assert_eq!(before[0]["latest"]["status"], "approved", "{}", before[0]);
    assert_eq!(before[2]["current_version"], 2, "{}", before[2]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcpbox.backup");

    let made = origin::backup::create(&app.state.db, &file, false)
        .await
        .unwrap();
    assert_eq!(made.backend, app.state.db.backend);
    assert!(made.bytes > 0);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the backup holds password hashes");
    // Only the backup itself is left in the directory: no temp file, no -wal beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["mcpbox.backup"]);

    // Changes after the backup are not in it.
    origin::secrets::set_value(&app.state, &data.server, "API_KEY", "changed later")
        .await
        .unwrap();

    let (url, _target_dir) = fresh_target(&app).await;
    let restored = origin::backup::restore(&url, &file, false).await.unwrap();
    assert_eq!(
        restored.counts,
        made.counts,
        "{} vs {}",
        restored.summary(),
        made.summary()
    );
    let db = Db::connect(&url).await.unwrap();
    let values = origin::secrets::values(&with_key(db.clone()), &data.server)
        .await
        .unwrap();
    assert_eq!(values["API_KEY"], "s3cret-value");
    let after = observe(&TestApp::over(db.clone()), &data).await;
    assert_eq!(before, after);
    // With another key the restored secret does not open: the key is not in the backup.
    let stranger = AppState::new(db, Keyring::new([7; 32], None), Sandbox::unavailable("x"));
    assert!(
        origin::secrets::values(&stranger, &data.server)
            .await
            .is_err()
    );
}

async fn backup_refuses_to_overwrite_a_file_unless_forced(app: TestApp) {
    let app = app.with_sandbox().await;
    populate(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("existing");
    std::fs::write(&file, b"keep me").unwrap();
    let refused = origin::backup::create(&app.state.db, &file, false).await;
    assert!(
        matches!(refused, Err(Error::Conflict(ref m)) if m.contains("--force")),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );

    origin::backup::create(&app.state.db, &file, true)
        .await
        .unwrap();
    assert!(origin::backup::check_file(&file).await.is_ok());
}

async fn restore_refuses_a_database_with_data_unless_forced(app: TestApp) {
    let app = app.with_sandbox().await;
    let data = populate(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b");
    origin::backup::create(&app.state.db, &file, false)
        .await
        .unwrap();

    // The target holds other data: an account and a server made after the backup.
    let (url, _target_dir) = fresh_target(&app).await;
    let other = TestApp::over(Db::connect(&url).await.unwrap());
    let token = other.admin().await.token("access_token");
    let other_server = other.create_server(&token, "other").await;
    other.state.db.pool.close().await;

    let refused = origin::backup::restore(&url, &file, false).await;
    let Err(Error::Conflict(message)) = refused else {
        panic!("not refused: {refused:?}")
    };
    assert!(
        message.contains("1 users, 1 servers"),
        "says what would be replaced: {message}"
    );
    assert!(message.contains("--force"), "{message}");
    let other = TestApp::over(Db::connect(&url).await.unwrap());
    assert!(
        origin::servers::get(&other.state.db, &other_server)
            .await
            .is_ok()
    );
    other.state.db.pool.close().await;

    origin::backup::restore(&url, &file, true).await.unwrap();
    let db = Db::connect(&url).await.unwrap();
    assert!(
        origin::servers::get(&db, &other_server).await.is_err(),
        "replaced"
    );
    assert!(origin::servers::get(&db, &data.server).await.is_ok());
}

/// The target after a refused restore: still exactly the one server it had.
async fn assert_untouched(url: &str, server: &str) {
    let db = Db::connect(url).await.unwrap();
    assert!(origin::servers::get(&db, server).await.is_ok());
    let servers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM servers")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(servers, 1);
    db.pool.close().await;
}

async fn restore_refuses_garbage_truncated_and_foreign_files(app: TestApp) {
    let app = app.with_sandbox().await;
    populate(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    origin::backup::create(&app.state.db, &good, false)
        .await
        .unwrap();

    let (url, _target_dir) = fresh_target(&app).await;
    let target = TestApp::over(Db::connect(&url).await.unwrap());
    let token = target.admin().await.token("access_token");
    let server = target.create_server(&token, "kept").await;
    target.state.db.pool.close().await;

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"this is not a backup at all, just some text").unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    // A valid SQLite file that is not a backup.
    let plain = dir.path().join("plain.db");
    let plain_db = Db::connect(&origin::config::sqlite_url(&plain))
        .await
        .unwrap();
    plain_db.pool.close().await;
    // A backup claiming the other backend.
    let foreign = dir.path().join("foreign");
    std::fs::copy(&good, &foreign).unwrap();
    let other = match app.state.db.backend {
        Backend::Sqlite => "postgres",
        Backend::Postgres => "sqlite",
    };
    edit_header(&foreign, "backend", other).await;
    let newer = dir.path().join("newer");
    std::fs::copy(&good, &newer).unwrap();
    edit_header(&newer, "schema_version", "99999").await;

    for (file, expected) in [
        (&garbage, "not an SQLite file"),
        (&truncated, "damaged or truncated"),
        (&empty, "too short"),
        (&plain, "no MCPbox backup header"),
        (&foreign, "cross-backend"),
        (&newer, "newer MCPbox"),
    ] {
        // Even with --force: the file is checked before anything else.
        let refused = origin::backup::restore(&url, file, true).await;
        match refused {
            Err(Error::Validation(message)) => {
                assert!(message.contains(expected), "{}: {message}", file.display())
            }
            other => panic!("{} not refused: {other:?}", file.display()),
        }
        assert_untouched(&url, &server).await;
    }
}

async fn edit_header(file: &Path, key: &str, value: &str) {
    let db = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rw", file.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE mcpbox_backup SET value = $1 WHERE key = $2")
        .bind(value)
        .bind(key)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
}

on_both_backends!(
    round_trip_keeps_data_versions_approvals_and_secrets,
    backup_refuses_to_overwrite_a_file_unless_forced,
    restore_refuses_a_database_with_data_unless_forced,
    restore_refuses_garbage_truncated_and_foreign_files,
);

/// SQLite only (a PostgreSQL database cannot be damaged from here): restoring over a database
/// file that no longer opens needs --force, and then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_replaces_a_damaged_sqlite_database_only_when_forced() {
    let app = TestApp::sqlite().await.with_sandbox().await;
    let data = populate(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b");
    origin::backup::create(&app.state.db, &file, false)
        .await
        .unwrap();
    let target = dir.path().join("mcpbox.db");
    std::fs::write(&target, vec![0x5a; 8192]).unwrap();
    let url = origin::config::sqlite_url(&target);

    let refused = origin::backup::restore(&url, &file, false).await;
    assert!(
        matches!(refused, Err(Error::Conflict(ref m)) if m.contains("does not open")),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), vec![0x5a; 8192]);

    origin::backup::restore(&url, &file, true).await.unwrap();
    let db = Db::connect(&url).await.unwrap();
    assert!(origin::servers::get(&db, &data.server).await.is_ok());
}
