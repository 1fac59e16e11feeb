//! Test harness: the real router, in process, over a fresh database per test: a temporary SQLite
//! file, or a new schema in the PostgreSQL named by `MCPBOX_TEST_POSTGRES_URL` (default: the
//! local server at 127.0.0.1:5432). There is no silent skip: if PostgreSQL is unreachable, the
//! PostgreSQL half of every test fails and says why.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use origin::app::{AppState, router};
use origin::crypto::Keyring;
use origin::db::Db;
use origin::dispatch::{Sandbox, SandboxSource};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use tower::ServiceExt;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery";
pub const KEY: [u8; 32] = [42; 32];

/// Runs each named `async fn(TestApp)` once on SQLite and once on PostgreSQL.
#[allow(unused_macros)] // not every test file runs on both backends
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::common::TestApp::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::common::TestApp::postgres().await).await
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    /// Keeps the SQLite file alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    pub fn token(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.text))
            .to_owned()
    }

    /// Every error we send has this shape; check it wherever a test expects an error.
    pub fn error_code(&self) -> &str {
        let message = self.body["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "error without a message: {}",
            self.text
        );
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error: {}", self.text))
    }
}

pub fn postgres_base_url() -> String {
    std::env::var("MCPBOX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Replaces the database name in a postgres URL and appends query parameters.
pub fn with_database(url: &str, database: &str, extra_query: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    let query: Vec<&str> = [query, extra_query]
        .into_iter()
        .filter(|q| !q.is_empty())
        .collect();
    if query.is_empty() {
        format!("{prefix}/{database}")
    } else {
        format!("{prefix}/{database}?{}", query.join("&"))
    }
}

/// A URL to a fresh, empty schema in the shared test database (created on first use).
pub async fn fresh_postgres_url() -> String {
    sqlx::any::install_default_drivers();
    let base = postgres_base_url();
    let mut admin = sqlx::AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "PostgreSQL is needed for this test and is not reachable at {base}: {err}. \
             Run the README's test command (it starts one), or set MCPBOX_TEST_POSTGRES_URL"
            )
        });
    // Concurrent test processes race to create it; losing the race is fine.
    let _ = admin.execute("CREATE DATABASE mcpbox_test").await;
    let test_db = with_database(&base, "mcpbox_test", "");
    let mut conn = sqlx::AnyConnection::connect(&test_db)
        .await
        .expect("connect to mcpbox_test");
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .expect("create schema");
    with_database(
        &base,
        "mcpbox_test",
        &format!("options=-c%20search_path%3D{schema}"),
    )
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = origin::config::sqlite_url(&dir.path().join("test.db"));
        TestApp::with_db(Db::connect(&url).await.unwrap(), Some(dir))
    }

    pub async fn postgres() -> TestApp {
        let url = fresh_postgres_url().await;
        TestApp::with_db(Db::connect(&url).await.unwrap(), None)
    }

    /// An app over an existing database (e.g. one a test restored a backup into).
    pub fn over(db: Db) -> TestApp {
        TestApp::with_db(db, None)
    }

    fn with_db(db: Db, dir: Option<tempfile::TempDir>) -> TestApp {
        TestApp::assemble(db, no_sandbox(), dir)
    }

    fn assemble(db: Db, sandbox: Sandbox, dir: Option<tempfile::TempDir>) -> TestApp {
        let state = AppState::new(db, Keyring::new(KEY, None), sandbox);
        TestApp {
            router: router(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// The same app with a real sandbox supervisor (the workspace's `mcpbox-sandbox` binary).
    pub async fn with_sandbox(self) -> TestApp {
        let sandbox_dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let binary = exe
            .parent()
            .and_then(|p| p.parent())
            .unwrap()
            .join("mcpbox-sandbox");
        assert!(
            binary.exists(),
            "{} is not built: run `cargo build --workspace --bins` first",
            binary.display()
        );
        let source = SandboxSource::Spawn {
            binary,
            data_dir: sandbox_dir.path().to_owned(),
        };
        let sandbox = Sandbox::open(source).await.unwrap();
        // The supervisor's socket directory must outlive it; tests are short-lived processes.
        std::mem::forget(sandbox_dir);
        TestApp::assemble(self.state.db.clone(), sandbox, self._dir)
    }

    /// The same app with a real sandbox supervisor started over `data_dir` (whose `packages`
    /// directory its workers may read), for the package tests.
    #[allow(dead_code)] // only the package tests
    pub async fn with_sandbox_at(self, data_dir: &std::path::Path) -> TestApp {
        let exe = std::env::current_exe().unwrap();
        let binary = exe
            .parent()
            .and_then(|p| p.parent())
            .unwrap()
            .join("mcpbox-sandbox");
        let source = SandboxSource::Spawn {
            binary,
            data_dir: data_dir.to_owned(),
        };
        let sandbox = Sandbox::open(source).await.unwrap();
        TestApp::assemble(self.state.db.clone(), sandbox, self._dir)
    }

    /// The same app with the Cloudflare wizard pointed at `config` (a stand-in API).
    pub fn with_cloudflare(self, config: origin::cloudflare::Config) -> TestApp {
        let state = AppState::with_cloudflare(
            self.state.db.clone(),
            Keyring::new(KEY, None),
            no_sandbox(),
            config,
        );
        TestApp {
            router: router(state.clone()),
            state,
            _dir: self._dir,
        }
    }

    /// The same database behind a new process-like state (fresh in-memory throttles), as after a
    /// restart.
    pub fn restarted(&self) -> TestApp {
        TestApp::assemble(self.state.db.clone(), no_sandbox(), None)
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn request(
        method: Method,
        path: &str,
        token: Option<&str>,
        ip: IpAddr,
    ) -> axum::http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .extension(ConnectInfo(SocketAddr::new(ip, 40000)));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(
            Self::request(Method::GET, path, token, LOCAL)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Response {
        self.call_from(LOCAL, method, path, token, body).await
    }

    pub async fn call_from(
        &self,
        ip: IpAddr,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Response {
        let request = Self::request(method, path, token, ip)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.call(Method::POST, path, token, body).await
    }

    pub async fn login_from(&self, ip: IpAddr, username: &str, password: &str) -> Response {
        self.call_from(
            ip,
            Method::POST,
            "/auth/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.login_from(LOCAL, username, password).await
    }

    /// First-run set-up plus a sign-in: returns the admin's token pair response.
    pub async fn admin(&self) -> Response {
        let setup = self
            .post(
                "/auth/setup",
                None,
                json!({"username": ADMIN, "password": PASSWORD}),
            )
            .await;
        assert_eq!(setup.status, StatusCode::CREATED, "{}", setup.text);
        let login = self.login(ADMIN, PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        login
    }

    /// Creates an account with `role` through the admin API and signs it in.
    pub async fn user_with_role(&self, admin_token: &str, username: &str, role: &str) -> Response {
        let created = self
            .post(
                "/api/users",
                Some(admin_token),
                json!({"username": username, "password": PASSWORD, "role": role}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let login = self.login(username, PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        login
    }

    /// Creates a server through the API; returns its id.
    pub async fn create_server(&self, token: &str, name: &str) -> String {
        let created = self
            .post(
                "/api/servers",
                Some(token),
                json!({"name": name, "description": "test"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        created.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a tool (a draft version 1) through the API; returns its id.
    pub async fn create_tool(&self, token: &str, server: &str, name: &str, code: &str) -> String {
        let path = format!("/api/servers/{server}/tools");
        let created = self
            .post(
                &path,
                Some(token),
                json!({"name": name, "description": "d", "python_code": code}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        created.body["id"].as_str().unwrap().to_owned()
    }

    /// Submits a tool's newest version for review (an admin's `submit_for_review`) and approves
    /// exactly that version: only a version pending review can be approved.
    pub async fn approve_tool(&self, token: &str, tool: &str) {
        let path = format!("/api/approvals/tools/{tool}/action");
        let submitted = self
            .post(&path, Some(token), json!({"action": "submit_for_review"}))
            .await;
        assert_eq!(submitted.status, StatusCode::OK, "{}", submitted.text);
        let version = submitted.body["version"].as_i64().unwrap();
        if submitted.body["status"] == "approved" {
            return; // the policy approves tools automatically
        }
        let approved = self
            .post(
                &path,
                Some(token),
                json!({"action": "approve", "version": version}),
            )
            .await;
        assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    }

    /// `POST /api/tools/test-code`.
    pub async fn test_run(&self, token: &str, tool: &str, arguments: Value) -> Response {
        self.post(
            "/api/tools/test-code",
            Some(token),
            json!({"tool_id": tool, "arguments": arguments}),
        )
        .await
    }

    /// One 2026-07-28 (stateless) JSON-RPC request to the local `/mcp`, as a local MCP client
    /// sends it: the JSON-RPC answer.
    pub async fn mcp(&self, method: &str, params: Value) -> Value {
        self.mcp_raw(method, params).await.1
    }

    /// One 2026-07-28 stateless JSON-RPC request to the local `/mcp` (no session): the raw
    /// answer body (JSON, or the `data:` line of an SSE stream) and its JSON-RPC message.
    pub async fn mcp_raw(&self, method: &str, mut params: Value) -> (String, Value) {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let mut request = Self::request(Method::POST, "/mcp", None, LOCAL)
            .header("host", "127.0.0.1")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = params["name"].as_str() {
            request = request.header("mcp-name", name);
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer = self
            .send(request.body(Body::from(body.to_string())).unwrap())
            .await;
        assert!(
            answer.status.is_success(),
            "{method}: {} {}",
            answer.status,
            answer.text
        );
        let message = serde_json::from_str::<Value>(&answer.text)
            .ok()
            .or_else(|| {
                answer
                    .text
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                    .find(|message| message["id"] == 1)
            })
            .unwrap_or_else(|| panic!("{method}: no answer in {}", answer.text));
        (answer.text, message)
    }

    pub async fn count(&self, table: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }
}

fn no_sandbox() -> Sandbox {
    Sandbox::unavailable("no sandbox in this test")
}

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

/// Serves a fresh MCPbox on 127.0.0.1: its `/mcp` URL.
pub async fn external_mcpbox() -> String {
    let external = TestApp::sqlite().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = external.router.clone();
    tokio::spawn(async move {
        let _keep = external;
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{address}/mcp")
}
