//! Export/import benchmark: 1 000 Python tools on 10 servers (each with a module and a network
//! request and a secret), one signed export of them (time, size), then one import of that file
//! (time; every tool validated by the real sandbox, then one transaction per server). The
//! import goes into the same database, so every server clashes and gets the `_imported` suffix.
//!
//! Run: `cargo build --release -p mcpbox-sandbox && cargo bench -p mcpbox-origin --bench transfer`
//! (SQLite in a temporary directory; `MCPBOX_BENCH_DATABASE_URL=postgres://…` for a throw-away
//! PostgreSQL database; `MCPBOX_BENCH_SANDBOX` names the `mcpbox-sandbox` binary if it is not
//! beside the bench's target directory).
//!
//! Measured 2026-12-01 on the shared 2-core dev machine (busy: load ~10), SQLite, dev profile
//! (origin and sandbox unoptimised): export 502 ms, 1.02 MB; import 17.85 s (17.8 ms per tool,
//! almost all of it the sandbox's validation of each tool's code).

mod common;

use std::time::Instant;

use origin::activity::Audit;
use origin::app::AppState;
use origin::crypto::Keyring;
use origin::dispatch::{Sandbox, SandboxSource};

const SERVERS: usize = 10;
const TOOLS_PER_SERVER: usize = 100;

#[tokio::main]
async fn main() {
    let (dir, db) = common::open_db().await;
    let binary = std::env::var_os("MCPBOX_BENCH_SANDBOX")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("exe");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("target dir")
                .join("mcpbox-sandbox")
        });
    assert!(
        binary.exists(),
        "{} is missing: cargo build --release -p mcpbox-sandbox",
        binary.display()
    );
    std::fs::create_dir_all(dir.path().join("sandbox")).expect("sandbox dir");
    let sandbox = Sandbox::open(SandboxSource::Spawn {
        binary,
        data_dir: dir.path().join("sandbox"),
    })
    .await
    .expect("sandbox");
    let state = AppState::new(db, Keyring::new([9; 32], None), sandbox);
    seed(&state).await;
    let audit = Audit {
        actor: "bench".into(),
        request_id: None,
    };

    let started = Instant::now();
    let export = origin::transfer::export(&state).await.expect("export");
    let bytes = serde_json::to_vec_pretty(&export.file).expect("json");
    let exported = started.elapsed();
    println!(
        "export: {} tools in {:.1} ms, {:.2} MB",
        export.tools(),
        exported.as_secs_f64() * 1000.0,
        bytes.len() as f64 / 1e6
    );

    let started = Instant::now();
    let file = origin::transfer::parse(&bytes).expect("parse");
    let report = origin::transfer::import_file(&state, &audit, file, None)
        .await
        .expect("import");
    let imported = started.elapsed();
    assert!(report.success, "{:?}", report.errors);
    assert_eq!(report.tools_created, SERVERS * TOOLS_PER_SERVER);
    println!(
        "import: {} tools on {} servers in {:.2} s ({:.1} ms per tool)",
        report.tools_created,
        report.servers_created,
        imported.as_secs_f64(),
        imported.as_secs_f64() * 1000.0 / report.tools_created as f64
    );
}

/// The tools as rows (version 1, approved), each with its own code, one module and one network
/// request, and a secret per server: one transaction.
async fn seed(state: &AppState) {
    let now = origin::db::now();
    let mut tx = state.db.pool.begin().await.expect("begin");
    for s in 0..SERVERS {
        let server = format!("server-{s}");
        sqlx::query("INSERT INTO servers (id, name, description, status, default_timeout_ms, created_by, created_at, updated_at) VALUES ($1, $2, 'bench', 'stopped', 30000, 'bench', $3, $3)")
            .bind(&server)
            .bind(format!("bench_{s}"))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .expect("server");
        sqlx::query("INSERT INTO server_secrets (id, server_id, key, description, encrypted_value, created_at, updated_at) VALUES ($1, $2, 'API_KEY', 'bench', NULL, $3, $3)")
            .bind(format!("secret-{s}"))
            .bind(&server)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .expect("secret");
        for t in 0..TOOLS_PER_SERVER {
            let tool = format!("tool-{s}-{t}");
            let code = format!(
                "import csv\n\nasync def main(city: str, days: int = {t}) -> dict:\n    \"\"\"Tool {t} of server {s}.\"\"\"\n    return {{'city': city, 'days': days, 'n': {t}}}\n"
            );
            sqlx::query("INSERT INTO tools (id, server_id, name, kind, enabled, timeout_ms, current_version, created_by, created_at, updated_at) VALUES ($1, $2, $3, 'python', 1, NULL, 1, 'bench', $4, $4)")
                .bind(&tool)
                .bind(&server)
                .bind(format!("tool_{t}"))
                .bind(&now)
                .execute(&mut *tx)
                .await
                .expect("tool");
            sqlx::query("INSERT INTO tool_versions (id, tool_id, version, description, python_code, code_hash, input_schema, change_source, change_summary, created_by, created_at, status) VALUES ($1, $2, 1, '', $3, $4, '{\"type\":\"object\"}', 'admin', '', 'bench', $5, 'approved')")
                .bind(format!("v-{s}-{t}"))
                .bind(&tool)
                .bind(&code)
                .bind(origin::tools::code_hash(&code))
                .bind(&now)
                .execute(&mut *tx)
                .await
                .expect("version");
            for (kind, target, port) in [
                ("module", "csv", None),
                ("network", "api.example.com", Some(443)),
            ] {
                sqlx::query("INSERT INTO access_requests (id, kind, server_id, tool_id, target, port, justification, requested_by, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'bench', 'llm', 'approved', $7, $7)")
                    .bind(format!("r-{kind}-{s}-{t}"))
                    .bind(kind)
                    .bind(&server)
                    .bind(&tool)
                    .bind(target)
                    .bind(port)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .expect("request");
            }
        }
    }
    tx.commit().await.expect("commit");
}
