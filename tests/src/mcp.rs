//! A minimal Streamable HTTP MCP client for tests and benchmarks: byte-level control over
//! headers and bodies (the official SDKs, used elsewhere, hide exactly what guard tests need).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";
pub const NEW: &str = "2026-07-28";

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn api(url: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut request = client().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// A JSON-RPC message out of a response body that is either JSON or an SSE stream.
pub fn message_with_id(body: &str, id: &Value) -> Option<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return Some(value);
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|message| &message["id"] == id)
}

/// Meta every 2026-07-28 request carries instead of a session.
pub fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": NEW,
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

pub struct Mcp {
    pub url: String,
    /// `None`: 2026-07-28 stateless requests.
    pub session: Option<String>,
    pub next_id: u64,
    /// One client per `Mcp`, so requests reuse a keep-alive connection.
    pub http: reqwest::Client,
    /// Sent with every request (e.g. the Worker's identity headers).
    pub headers: Vec<(&'static str, String)>,
}

impl Mcp {
    pub fn request(&self, method: &str, params: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        match &self.session {
            Some(session) => {
                request = request
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", "2025-11-25");
            }
            None => {
                request = request
                    .header("mcp-protocol-version", NEW)
                    .header("mcp-method", method);
                if let Some(name) = params["name"].as_str() {
                    request = request.header("mcp-name", name);
                }
                // The management tools' `x-mcp-header: Server-Id`, mirrored as a 2026-07-28
                // client does from the listed schema.
                if method == "tools/call"
                    && let Some(server_id) = params["arguments"]["server_id"].as_str()
                {
                    request = request.header("mcp-param-server-id", server_id);
                }
            }
        }
        request
    }

    pub async fn call(&mut self, method: &str, mut params: Value) -> Value {
        if self.session.is_none() {
            params["_meta"] = stateless_meta();
        }
        self.next_id += 1;
        let id = json!(self.next_id);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .request(method, &params)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(status < 500, "{method}: {status} {text}");
        message_with_id(&text, &id).unwrap_or_else(|| panic!("{method}: no answer in {text}"))
    }

    /// A 2025-11-25 session: `initialize`, then `notifications/initialized`.
    pub async fn session(url: &str) -> Mcp {
        Mcp::session_with(url, Vec::new()).await
    }

    /// The same, sending `headers` with every request (e.g. the Worker's on the tunnel).
    pub async fn session_with(url: &str, headers: Vec<(&'static str, String)>) -> Mcp {
        let http = client();
        let mut request = http
            .post(url)
            .header("accept", "application/json, text/event-stream");
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        let init = message_with_id(&text, &json!(0)).unwrap();
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true);
        let mcp = Mcp {
            url: url.to_owned(),
            session: Some(session),
            next_id: 0,
            http,
            headers,
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let status = mcp
            .request("", &Value::Null)
            .json(&initialized)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
        mcp
    }
}

/// Everything a long-lived SSE response has sent so far, read in the background.
#[derive(Clone, Default)]
pub struct Stream(Arc<Mutex<String>>);

impl Stream {
    pub fn follow(mut response: reqwest::Response) -> Stream {
        let stream = Stream::default();
        let sink = stream.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(chunk)) = response.chunk().await {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk));
            }
        });
        stream
    }

    pub async fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.0.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never arrived; got {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn count(&self, needle: &str) -> usize {
        self.0.lock().unwrap().matches(needle).count()
    }
}

pub async fn admin_token(url: &str) -> String {
    api(
        &format!("{url}/auth/setup"),
        json!({"username": "admin", "password": PASSWORD}),
        None,
    )
    .await;
    let (_, login) = api(
        &format!("{url}/auth/login"),
        json!({"username": "admin", "password": PASSWORD}),
        None,
    )
    .await;
    login["access_token"].as_str().unwrap().to_owned()
}

/// Raises every rate limit of the MCPbox at `url` to its maximum, for benchmarks that send
/// thousands of requests a second from one address (the limiter still runs on each).
pub async fn raise_rate_limits(url: &str, token: &str) {
    let most = json!({"per_minute": 1_000_000, "burst": 100_000});
    let response = client()
        .patch(format!("{url}/api/settings/rate-limits"))
        .bearer_auth(token)
        .json(&json!({"api_per_address": most, "api_per_account": most, "mcp_per_address": most}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "raising the rate limits");
}

impl Mcp {
    /// A 2026-07-28 client: no session, every request self-describing.
    pub fn stateless(url: &str) -> Mcp {
        Mcp {
            url: url.to_owned(),
            session: None,
            next_id: 0,
            http: client(),
            headers: Vec::new(),
        }
    }
}

/// `GET url` with an admin token, as JSON.
pub async fn get_json(url: &str, token: &str) -> Value {
    client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A new server with one draft tool, made over the REST API: `(server id, tool id)`.
pub async fn draft_tool(
    url: &str,
    token: &str,
    server: &str,
    tool: &str,
    code: &str,
) -> (String, String) {
    let (status, created) = api(
        &format!("{url}/api/servers"),
        json!({"name": server}),
        Some(token),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let server_id = created["id"].as_str().unwrap().to_owned();
    let (status, created) = api(
        &format!("{url}/api/servers/{server_id}/tools"),
        json!({"name": tool, "python_code": code}),
        Some(token),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (server_id, created["id"].as_str().unwrap().to_owned())
}

/// An admin submits the tool's newest version for review and approves it.
pub async fn submit_and_approve(url: &str, token: &str, tool_id: &str) {
    let action = format!("{url}/api/approvals/tools/{tool_id}/action");
    let (status, body) = api(&action, json!({"action": "submit_for_review"}), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].clone();
    let (status, body) = api(
        &action,
        json!({"action": "approve", "version": version}),
        Some(token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// What a person does next: approve the tool's newest version, then start its server.
pub async fn approve_and_start(url: &str, token: &str, server_id: &str, tool_id: &str) {
    submit_and_approve(url, token, tool_id).await;
    let start = format!("{url}/api/sandbox/servers/{server_id}/start");
    let (status, body) = api(&start, json!({}), Some(token)).await;
    assert_eq!(status, 200, "{body}");
}

/// The text of a `tools/call` answer that must be a tool error (`isError: true`).
pub fn tool_error(answer: &Value) -> String {
    assert_eq!(
        answer["result"]["isError"], true,
        "not a tool error: {answer}"
    );
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a tool error without text: {answer}"))
        .to_owned()
}

/// Where `scripts/test` installs the official MCP Python SDK (`mcp==2.3.0`).
pub fn python_sdk() -> (String, std::path::PathBuf) {
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let path = match std::env::var_os("MCPBOX_TEST_MCP_SDK") {
        Some(path) => path.into(),
        None => {
            let cache = std::env::var_os("MCPBOX_CACHE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    std::path::Path::new(&std::env::var("HOME").unwrap()).join(".cache/mcpbox")
                });
            cache.join("py-mcp")
        }
    };
    let importable = std::process::Command::new(&python)
        .args(["-c", "import mcp.client.client"])
        .env("PYTHONPATH", &path)
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        importable,
        "the official MCP Python SDK is not importable from {} with {python}: run scripts/test, \
         which installs mcp==2.3.0 there (or set MCPBOX_TEST_MCP_SDK)",
        path.display()
    );
    (python, path)
}
