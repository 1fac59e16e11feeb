//! LAN hosts in network requests: the target grammar, what can never be asked for, the REST,
//! MCP and UI fronts, and what a run's `allowed_hosts` then carries.

mod common;

use axum::http::StatusCode;
use common::*;
use origin::access::{self, Kind, NewRequest};
use origin::activity::Audit;
use origin::gateway::{Caller, management};
use serde_json::{Value, json};

on_both_backends!(
    lan_targets_are_checked_and_stored_as_lan,
    lan_requests_over_mcp_and_approval,
);

fn llm() -> Audit {
    Audit {
        actor: "llm".into(),
        request_id: None,
    }
}

#[test]
fn the_target_grammar() {
    let ok = |target: &str, port: Option<i64>, lan: Option<bool>| {
        access::network_target(target, port, lan).unwrap_or_else(|err| panic!("{target}: {err}"))
    };
    let t = ok("192.168.1.20:8123", None, None);
    assert_eq!(
        (t.host.as_str(), t.port, t.lan),
        ("192.168.1.20", Some(8123), true)
    );
    let t = ok("NAS.lan.", Some(5000), Some(true));
    assert_eq!(
        (t.host.as_str(), t.port, t.lan),
        ("nas.lan", Some(5000), true)
    );
    let t = ok("[FD00::5]:1883", None, None);
    assert_eq!(
        (t.host.as_str(), t.port, t.lan),
        ("fd00::5", Some(1883), true)
    );
    let t = ok("api.example.com", None, None);
    assert_eq!(
        (t.host.as_str(), t.port, t.lan),
        ("api.example.com", None, false)
    );
    let t = ok("api.example.com:8443", Some(8443), None);
    assert_eq!((t.port, t.lan), (Some(8443), false));
    let t = ok("2606:4700::1111", None, None);
    assert!(!t.lan);
    for (target, port, lan, why) in [
        ("nas.lan", None, Some(true), "needs a port"),
        ("192.168.1.20", None, None, "needs a port"),
        ("192.168.1.20:8123", None, Some(false), "private address"),
        (
            "192.168.1.20:8123",
            Some(80),
            None,
            "the port field says 80",
        ),
        ("127.0.0.1:8000", None, Some(true), "can never be allowed"),
        ("127.0.0.1", None, None, "can never be allowed"),
        ("[::1]:80", None, None, "can never be allowed"),
        ("169.254.169.254:80", None, None, "can never be allowed"),
        ("[fd00:ec2::254]:80", None, None, "can never be allowed"),
        ("100.100.100.200:80", None, None, "can never be allowed"),
        ("[::ffff:127.0.0.1]:80", None, None, "can never be allowed"),
        ("0.0.0.0:80", None, Some(true), "can never be allowed"),
        (
            "localhost:8000",
            None,
            Some(true),
            "can never be a LAN host",
        ),
        (
            "metadata.google.internal:80",
            None,
            Some(true),
            "can never be a LAN host",
        ),
        ("8.8.8.8:53", None, Some(true), "public address"),
        ("fd00::5:1883", None, None, "needs a port"),
        ("nas.lan:0", None, Some(true), "port must be"),
        ("nas.lan:99999", None, Some(true), "port must be"),
        ("[fd00::5", None, None, "needs its ']'"),
        ("http://nas.lan/", None, None, "invalid"),
    ] {
        let err = access::network_target(target, port, lan)
            .map(|t| format!("accepted {t:?}"))
            .unwrap_or_else(|err| err.to_string());
        assert!(err.contains(why), "{target}: {err}");
    }
}

struct Setup {
    app: TestApp,
    admin: String,
    server: String,
    tool: String,
}

impl Setup {
    async fn new(app: TestApp) -> Setup {
        let app = app.with_sandbox().await;
        let admin = app.admin().await.token("access_token");
        let server = app.create_server(&admin, "home").await;
        let code = "def main() -> str:\n    return 'plain'\n";
        let tool = app.create_tool(&admin, &server, "lights", code).await;
        Setup {
            app,
            admin,
            server,
            tool,
        }
    }

    async fn hosts(&self) -> Value {
        self.app
            .get(
                &format!("/api/servers/{}/allowed-hosts", self.server),
                Some(&self.admin),
            )
            .await
            .body["allowed_hosts"]
            .clone()
    }
}

async fn lan_targets_are_checked_and_stored_as_lan(app: TestApp) {
    let s = Setup::new(app).await;
    let base = format!("/api/servers/{}/allowed-hosts", s.server);
    let added = s
        .app
        .post(&base, Some(&s.admin), json!({"host": "192.168.1.20:8123"}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body["scope"], "lan");
    assert_eq!(added.body["target"], "192.168.1.20");
    assert_eq!(added.body["port"], 8123);
    let named = s
        .app
        .post(
            &base,
            Some(&s.admin),
            json!({"host": "nas.lan", "port": 5000.0, "lan": true}),
        )
        .await;
    assert_eq!(named.status, StatusCode::CREATED, "{}", named.text);
    let public = s
        .app
        .post(
            &base,
            Some(&s.admin),
            json!({"host": "nas.lan", "port": 80}),
        )
        .await;
    assert_eq!(public.body["scope"], "public");
    for bad in [
        json!({"host": "nas.lan", "lan": true}),
        json!({"host": "127.0.0.1:8000"}),
        json!({"host": "169.254.169.254", "port": 80, "lan": true}),
        json!({"host": "localhost:8000", "lan": true}),
        json!({"host": "192.168.1.20:8123", "port": 80}),
        json!({"host": "10.0.0.1:22", "lan": "yes"}),
    ] {
        let refused = s.app.post(&base, Some(&s.admin), bad.clone()).await;
        assert!(refused.status.is_client_error(), "{bad}: {}", refused.text);
    }
    // What a run carries: public entries as before, LAN entries marked (and the same host's
    // public approval stays public-only, on its own port).
    assert_eq!(
        s.hosts().await,
        json!(["lan:192.168.1.20:8123", "lan:nas.lan:5000", "nas.lan:80"])
    );
    // A tool's request for something already allowed is a conflict; the LAN one for another
    // port is new.
    let llm = llm();
    let request = |target: &'static str, lan: Option<bool>| {
        access::request_scoped(
            &s.app.state,
            &llm,
            NewRequest {
                kind: Kind::Network,
                tool_id: &s.tool,
                target,
                port: None,
                justification: "the lights",
            },
            lan,
        )
    };
    assert!(matches!(
        request("192.168.1.20:8123", None).await,
        Err(origin::Error::Conflict(_))
    ));
    let other_port = request("192.168.1.20:8124", None).await.unwrap();
    assert_eq!(other_port.scope, "lan");
    assert_eq!(other_port.status, "pending");
    // Under allow_all_public the public part becomes `*`, and approved LAN hosts still go along.
    let policy = s
        .app
        .call(
            axum::http::Method::PATCH,
            "/api/settings/security-policy",
            Some(&s.admin),
            json!({"network_access_policy": "allow_all_public"}),
        )
        .await;
    assert!(policy.status.is_success(), "{}", policy.text);
    assert_eq!(
        s.hosts().await,
        json!(["*", "lan:192.168.1.20:8123", "lan:nas.lan:5000"])
    );
}

async fn lan_requests_over_mcp_and_approval(app: TestApp) {
    let s = Setup::new(app).await;
    let call = |arguments: Value| {
        let state = s.app.state.clone();
        async move {
            let Value::Object(args) = arguments else {
                panic!("arguments must be an object")
            };
            let audit = Audit {
                actor: "mcp:local".into(),
                request_id: None,
            };
            management::call(
                &state,
                &Caller::Local,
                &audit,
                "mcpbox_request_network_access",
                &args,
            )
            .await
            .map(|answer| answer.expect("a management tool"))
        }
    };
    let asked = call(
        json!({"tool_id": s.tool, "host": "nas.lan:1883", "lan": true,
                             "justification": "MQTT broker for the lights"}),
    )
    .await
    .unwrap();
    assert_eq!(asked["scope"], "lan", "{asked}");
    assert_eq!(asked["target"], "nas.lan", "{asked}");
    assert_eq!(asked["port"], 1883, "{asked}");
    let refused = call(
        json!({"tool_id": s.tool, "host": "127.0.0.1:1883", "lan": true,
                               "justification": "x"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(refused, origin::Error::Validation(_)), "{refused}");
    assert!(
        refused.to_string().contains("can never be allowed"),
        "{refused}"
    );
    let wrong_type = call(
        json!({"tool_id": s.tool, "host": "nas.lan:1883", "lan": "yes",
                                  "justification": "x"}),
    )
    .await
    .unwrap_err();
    assert!(
        wrong_type.to_string().contains("must be true or false"),
        "{wrong_type}"
    );
    // The tool's description tells an LLM how to ask.
    let listed = s.app.mcp("tools/list", json!({})).await;
    let tool = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcpbox_request_network_access")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        tool["inputSchema"]["properties"]["lan"]["type"], "boolean",
        "{tool}"
    );
    // The approval page says which kind of host a person is approving.
    let page = approvals_page(&s.app).await;
    let row = page
        .lines()
        .find(|line| line.contains("nas.lan:1883"))
        .unwrap_or_else(|| panic!("no row for nas.lan:1883 in {page}"));
    assert!(row.contains("LAN host"), "{row}");
    // Approved, the run's hosts carry it as a LAN entry.
    let approved = s
        .app
        .post(
            &format!(
                "/api/approvals/network/{}/action",
                asked["id"].as_str().unwrap()
            ),
            Some(&s.admin),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(s.hosts().await, json!(["lan:nas.lan:1883"]));
}

/// The admin's `/ui/approvals` page, signed in through the login form.
async fn approvals_page(app: &TestApp) -> String {
    use axum::body::Body;
    use axum::http::{Method, header};
    fn cookies(response: &Response, jar: &mut Vec<String>) {
        for value in response.headers.get_all(header::SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            jar.retain(|c| !c.starts_with(&format!("{name}=")));
            jar.push(pair);
        }
    }
    let mut jar = Vec::new();
    let send = |method: Method, path: &str, jar: &[String], form: Option<String>| {
        let mut builder = TestApp::request(method, path, None, LOCAL)
            .header(header::HOST, "mcpbox.test")
            .header(header::COOKIE, jar.join("; "));
        if form.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        app.send(builder.body(Body::from(form.unwrap_or_default())).unwrap())
    };
    let login = send(Method::GET, "/ui/login", &jar, None).await;
    cookies(&login, &mut jar);
    let marker = "name=\"_csrf\" value=\"";
    let start = login.text.find(marker).expect("a CSRF token") + marker.len();
    let csrf = login.text[start..start + 64].to_owned();
    let form = format!(
        "_csrf={csrf}&username={ADMIN}&password={}",
        PASSWORD.replace(' ', "+")
    );
    let signed_in = send(Method::POST, "/ui/login", &jar, Some(form)).await;
    cookies(&signed_in, &mut jar);
    let page = send(Method::GET, "/ui/approvals", &jar, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    page.text
}
