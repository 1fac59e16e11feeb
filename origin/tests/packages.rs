//! PyPI packages end to end: a module request naming a distribution is resolved by real pip
//! against the real index, shown with OSV's vulnerabilities (a stand-in that answers in OSV's
//! documented shape), installed on approval, imported by the approved server's tools through
//! the real sandbox, and nothing else's; revoking ends it; the re-check flags a version that
//! gained a vulnerability and raises the alert.
//!
//! Needs network access to PyPI while it runs.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use origin::access::{self, Kind, NewRequest};
use origin::activity::Audit;
use serde_json::{Value, json};

on_both_backends!(packages_resolve_install_and_import_only_where_approved);

/// Vulnerable `(name, version)` pairs the stand-in reports; changeable while it runs.
type Vulnerable = Arc<Mutex<BTreeSet<(String, String)>>>;

/// OSV's `POST /v1/querybatch` (ids and `modified` only) and `GET /v1/vulns/{id}`, as documented
/// at https://google.github.io/osv.dev/api/.
async fn osv_stand_in(vulnerable: Vulnerable) -> String {
    let batch = {
        let vulnerable = vulnerable.clone();
        move |Json(body): Json<Value>| async move {
            let set = vulnerable.lock().unwrap().clone();
            let results: Vec<Value> = body["queries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| {
                    assert_eq!(q["package"]["ecosystem"], "PyPI");
                    let key = (
                        q["package"]["name"].as_str().unwrap().to_owned(),
                        q["version"].as_str().unwrap().to_owned(),
                    );
                    if set.contains(&key) {
                        json!({"vulns": [{"id": format!("GHSA-test-{}-{}", key.0, key.1), "modified": "2026-01-01T00:00:00Z"}]})
                    } else {
                        json!({})
                    }
                })
                .collect();
            Json(json!({"results": results}))
        }
    };
    let detail = |axum::extract::Path(id): axum::extract::Path<String>| async move {
        Json(json!({
            "id": id,
            "summary": "Arbitrary code execution in the test package",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "database_specific": {"severity": "HIGH"}
        }))
    };
    let app = Router::new()
        .route("/v1/querybatch", post(batch))
        .route("/v1/vulns/{id}", get(detail));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn llm() -> Audit {
    Audit {
        actor: "llm".into(),
        request_id: None,
    }
}

async fn request(app: &TestApp, tool: &str, target: &str) -> origin::Result<access::AccessRequest> {
    access::request(
        &app.state,
        &llm(),
        NewRequest {
            kind: Kind::Module,
            tool_id: tool,
            target,
            port: None,
            justification: "parse the feed's YAML front matter",
        },
    )
    .await
}

async fn set_code(app: &TestApp, admin: &str, tool: &str, code: &str) -> Response {
    app.call(
        Method::PATCH,
        &format!("/api/tools/{tool}"),
        Some(admin),
        json!({"python_code": code}),
    )
    .await
}

async fn run(app: &TestApp, admin: &str, tool: &str) -> Response {
    app.post(
        "/api/tools/test-code",
        Some(admin),
        json!({"tool_id": tool, "arguments": {}}),
    )
    .await
}

/// Waits until every package row is installed or failed.
async fn installs_settle(app: &TestApp, admin: &str) -> Value {
    let started = Instant::now();
    loop {
        let list = app.get("/api/packages", Some(admin)).await;
        let packages = list.body["packages"].as_array().unwrap().clone();
        if !packages.is_empty()
            && packages
                .iter()
                .all(|p| p["status"] == "installed" || p["status"] == "failed")
        {
            return list.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "installs did not finish: {}",
            list.text
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn entries(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn packages_resolve_install_and_import_only_where_approved(app: TestApp) {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    origin::packages::prepare_dir(data.path()).unwrap();
    let app = app.with_sandbox_at(data.path()).await;
    let vulnerable: Vulnerable = Arc::default();
    vulnerable
        .lock()
        .unwrap()
        .insert(("pyyaml".into(), "6.0.3".into()));
    let osv = osv_stand_in(vulnerable.clone()).await;
    app.state.packages.configure(origin::packages::Config::new(
        data.path(),
        python(),
        "https://pypi.org",
        &osv,
    ));
    let packages_dir = data.path().join("packages");
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "feeds").await;
    let tool = app
        .create_tool(
            &admin,
            &server,
            "front_matter",
            "def main() -> str:\n    return 'x'\n",
        )
        .await;
    let other_server = app.create_server(&admin, "other").await;
    let other_tool = app
        .create_tool(
            &admin,
            &other_server,
            "other",
            "def main() -> str:\n    return 'x'\n",
        )
        .await;

    // Nothing that cannot be installed becomes a request, and nothing is left behind.
    for target in ["mcpbox-no-such-distribution-3f9a", "six==999.0.0"] {
        let err = request(&app, &tool, target).await.unwrap_err();
        assert!(
            err.to_string().contains("cannot be installed"),
            "{target}: {err}"
        );
    }
    assert_eq!(app.count("access_requests").await, 0);
    assert_eq!(app.count("packages").await, 0);

    // The reviewer sees exact versions, hashes, metadata and vulnerabilities.
    let yaml = request(&app, &tool, "PyYAML==6.0.3").await.unwrap();
    assert_eq!(
        (yaml.status.as_str(), yaml.target.as_str()),
        ("pending", "pyyaml==6.0.3")
    );
    let six = request(&app, &tool, "six==1.17.0").await.unwrap();
    let shown = app
        .get(&format!("/api/packages/requests/{}", yaml.id), Some(&admin))
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    let dist = &shown.body["distributions"][0];
    assert_eq!(
        (dist["name"].as_str(), dist["version"].as_str()),
        (Some("pyyaml"), Some("6.0.3"))
    );
    assert_eq!(dist["sha256"].as_str().unwrap().len(), 64);
    assert!(
        dist["summary"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("yaml")
    );
    assert!(dist["released"].as_str().unwrap().starts_with("20"));
    assert!(!dist["links"].as_array().unwrap().is_empty());
    assert_eq!(dist["vulnerabilities"][0]["id"], "GHSA-test-pyyaml-6.0.3");
    assert_eq!(dist["vulnerabilities"][0]["severity"], "HIGH");

    // Before approval the tool cannot import it.
    let uses_both = "import yaml\nimport six\n\ndef main() -> dict:\n    return {'doc': yaml.safe_load('a: [1, 2]'), 'six': six.ensure_str(b'ok')}\n";
    assert_eq!(
        set_code(&app, &admin, &tool, uses_both).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // An approval is bound to what was shown: a changed resolution is refused and re-resolved.
    let db = &app.state.db.pool;
    let stored: String =
        sqlx::query_scalar("SELECT resolved FROM package_resolutions WHERE request_id = $1")
            .bind(&six.id)
            .fetch_one(db)
            .await
            .unwrap();
    let real_hash = serde_json::from_str::<Value>(&stored).unwrap()[0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("UPDATE package_resolutions SET resolved = $1 WHERE request_id = $2")
        .bind(stored.replace(&real_hash, &"0".repeat(64)))
        .bind(&six.id)
        .execute(db)
        .await
        .unwrap();
    let approve = |id: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.post(
                &format!("/api/approvals/modules/{id}/action"),
                Some(&admin),
                json!({"action": "approve"}),
            )
            .await
        }
    };
    let refused = approve(six.id.clone()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("changed"), "{}", refused.text);
    assert_eq!(
        app.count("packages").await,
        0,
        "nothing installs on a refused approval"
    );

    // Approving installs, pinned; both kinds of package import under seccomp and Landlock.
    for id in [yaml.id.clone(), six.id.clone()] {
        let approved = approve(id).await;
        assert_eq!(approved.body["status"], "approved", "{}", approved.text);
    }
    let list = installs_settle(&app, &admin).await;
    let by_name = |name: &str| {
        list["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    let (yaml_row, six_row) = (by_name("pyyaml"), by_name("six"));
    assert_eq!(yaml_row["status"], "installed", "{yaml_row}");
    assert_eq!(yaml_row["import_names"], json!(["yaml"]));
    assert_eq!(six_row["import_names"], json!(["six"]));
    assert_eq!(
        yaml_row["vulnerabilities"][0]["id"],
        "GHSA-test-pyyaml-6.0.3"
    );
    assert!(six_row["vulnerabilities"].as_array().unwrap().is_empty());
    println!(
        "install: pyyaml {} ms {} bytes, six {} ms {} bytes",
        yaml_row["install_ms"],
        yaml_row["size_bytes"],
        six_row["install_ms"],
        six_row["size_bytes"]
    );
    assert_eq!(
        entries(&packages_dir),
        BTreeSet::from(["pyyaml-6.0.3".to_owned(), "six-1.17.0".to_owned()]),
        "no staging left behind"
    );
    assert_eq!(
        set_code(&app, &admin, &tool, uses_both).await.status,
        StatusCode::OK
    );
    app.approve_tool(&admin, &tool).await;
    let ran = run(&app, &admin, &tool).await;
    assert_eq!(
        ran.body["result"],
        json!({"doc": {"a": [1, 2]}, "six": "ok"}),
        "{}",
        ran.text
    );

    // Another server cannot import it.
    let other = set_code(&app, &admin, &other_tool, uses_both).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text
    );

    // Revoking makes it unimportable on the next call.
    let revoked = app
        .post(
            &format!("/api/approvals/modules/{}/revoke", yaml.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(revoked.body["status"], "pending", "{}", revoked.text);
    let ran = run(&app, &admin, &tool).await;
    assert_ne!(ran.body["ok"], true, "{}", ran.text);
    assert!(ran.text.contains("yaml"), "{}", ran.text);

    // A failed install says why and leaves nothing behind.
    let bogus = origin::packages::Resolved {
        name: "six".into(),
        version: "1.16.0".into(),
        url: String::new(),
        sha256: "0".repeat(64),
        requested: true,
        summary: None,
        license: None,
        released: None,
        links: Vec::new(),
        vulnerabilities: Vec::new(),
    };
    origin::packages::enqueue(&app.state, &[bogus])
        .await
        .unwrap();
    let list = installs_settle(&app, &admin).await;
    let failed = list["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["version"] == "1.16.0")
        .cloned()
        .unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("hash"),
        "{failed}"
    );
    assert_eq!(
        entries(&packages_dir).len(),
        2,
        "{:?}",
        entries(&packages_dir)
    );

    // six 1.17.0 gains a vulnerability: the re-check flags it and raises the alert.
    let raised_before = vulnerable_alerts(&app);
    vulnerable
        .lock()
        .unwrap()
        .insert(("six".into(), "1.17.0".into()));
    let rechecked = app
        .post("/api/packages/recheck", Some(&admin), json!({}))
        .await;
    assert_eq!(rechecked.status, StatusCode::OK, "{}", rechecked.text);
    let six_row = rechecked.body["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "six" && p["version"] == "1.17.0")
        .cloned()
        .unwrap();
    assert_eq!(
        six_row["vulnerabilities"][0]["severity"], "HIGH",
        "{six_row}"
    );
    assert_eq!(vulnerable_alerts(&app), raised_before + 1);

    // Another replica (its own data dir, the same database): what the first installed is not
    // granted there until its sync installed it there too, from the same pinned wheel.
    let replica = tempfile::tempdir().unwrap();
    std::fs::set_permissions(replica.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    origin::packages::prepare_dir(replica.path()).unwrap();
    app.state.packages.configure(origin::packages::Config::new(
        replica.path(),
        python(),
        "https://pypi.org",
        &osv,
    ));
    let installed: Vec<String> = sqlx::query_scalar(
        "SELECT name || '-' || version FROM packages WHERE status = 'installed' ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert!(!installed.is_empty());
    let replica_dir = replica.path().join("packages");
    let granted_before = origin::packages::grants(&app.state, &server).await.unwrap();
    assert!(granted_before.is_empty(), "{granted_before:?}");
    assert!(entries(&replica_dir).is_empty());
    origin::packages::sync_local(&app.state).await.unwrap();
    assert_eq!(
        entries(&replica_dir),
        installed.iter().cloned().collect::<BTreeSet<_>>()
    );
    let granted = origin::packages::grants(&app.state, &server).await.unwrap();
    assert!(
        !granted.is_empty()
            && granted
                .iter()
                .all(|g| g.path.starts_with(&*replica_dir.to_string_lossy())),
        "{granted:?}"
    );
}

fn vulnerable_alerts(app: &TestApp) -> u64 {
    app.state
        .alerts
        .counts()
        .raised
        .iter()
        .find(|(kind, _)| *kind == origin::alerts::Kind::PackageVulnerable)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// Resolutions in flight are bounded (`resolve::MAX_RESOLVING` pip processes): with that many
/// hanging on an index that never answers, one more waits its bounded turn and gets a 503.
#[tokio::test]
async fn resolutions_in_flight_are_bounded() {
    use origin::packages::resolve::{MAX_RESOLVING, resolve};
    let index = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = index.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = index.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = origin::packages::Config::new(
        dir.path(),
        python(),
        &format!("http://127.0.0.1:{port}"),
        "http://127.0.0.1:9",
    );
    let spec = origin::packages::parse_spec("six").unwrap();
    let hanging: Vec<_> = (0..MAX_RESOLVING)
        .map(|_| {
            let (config, spec) = (config.clone(), spec.clone());
            tokio::spawn(async move { resolve(&config, &spec).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let one_more = resolve(&config, &spec).await;
    assert!(
        matches!(one_more, Err(origin::Error::Busy { .. })),
        "{one_more:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(9));
    for task in &hanging {
        assert!(
            !task.is_finished(),
            "the held resolutions are still waiting on the index"
        );
        task.abort();
    }
}

/// The interpreter itself (the test command exports it as PYO3_PYTHON), not a version manager's
/// `python3` shim: pyenv's shim rehashes on every run, and two tests running pip through it at
/// once can make it fail ("cannot rehash: … isn't writable").
fn python() -> std::path::PathBuf {
    std::env::var_os("PYO3_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "python3".into())
}
