//! The body schemas of `/api/openapi.json` for the remote set-up, external sources, alerts,
//! access requests, settings, rate limits and export/import: every operation of these modules
//! has its request and response schemas, and real answers of the router validate against them
//! (JSON Schema 2020-12, `$ref`s resolved into the document's components).

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

/// These modules' operations, and whether each takes a JSON body.
const OPERATIONS: [(&str, &str, bool); 50] = [
    ("get", "/api/cloudflare/status", false),
    ("post", "/api/cloudflare/token", true),
    ("get", "/api/cloudflare/tunnel", false),
    ("post", "/api/cloudflare/tunnel", true),
    ("post", "/api/cloudflare/tunnel/token", false),
    ("post", "/api/cloudflare/vpc-service", true),
    ("post", "/api/cloudflare/worker", true),
    ("post", "/api/cloudflare/access", true),
    ("get", "/api/cloudflare/connect", false),
    ("post", "/api/cloudflare/teardown", true),
    ("get", "/api/cloudflare/allowlist", false),
    ("put", "/api/cloudflare/allowlist", true),
    ("get", "/api/settings/edge", false),
    ("put", "/api/settings/edge", true),
    ("post", "/api/settings/edge/sync", false),
    ("get", "/api/external-sources/servers/{id}/sources", false),
    ("post", "/api/external-sources/servers/{id}/sources", true),
    ("get", "/api/external-sources/sources/{sid}", false),
    ("put", "/api/external-sources/sources/{sid}", true),
    ("delete", "/api/external-sources/sources/{sid}", false),
    ("post", "/api/external-sources/sources/{sid}/approve", false),
    (
        "post",
        "/api/external-sources/sources/{sid}/discover",
        false,
    ),
    (
        "get",
        "/api/external-sources/sources/{sid}/cached-tools",
        false,
    ),
    ("post", "/api/external-sources/sources/{sid}/import", true),
    ("post", "/api/external-sources/sources/{sid}/health", false),
    (
        "post",
        "/api/external-sources/sources/{sid}/oauth/sign-out",
        false,
    ),
    ("get", "/api/alerts/webhooks", false),
    ("post", "/api/alerts/webhooks", true),
    ("get", "/api/alerts/webhooks/{id}", false),
    ("patch", "/api/alerts/webhooks/{id}", true),
    ("delete", "/api/alerts/webhooks/{id}", false),
    ("post", "/api/alerts/webhooks/{id}/test", false),
    ("get", "/api/settings/alerts", false),
    ("patch", "/api/settings/alerts", true),
    ("get", "/api/approvals/{kind}", false),
    ("post", "/api/approvals/{kind}/bulk-action", true),
    ("post", "/api/approvals/{kind}/{id}/action", true),
    ("post", "/api/approvals/{kind}/{id}/revoke", false),
    ("delete", "/api/approvals/{kind}/{id}", false),
    ("get", "/api/servers/{id}/allowed-hosts", false),
    ("post", "/api/servers/{id}/allowed-hosts", true),
    ("get", "/api/settings/security-policy", false),
    ("patch", "/api/settings/security-policy", true),
    ("patch", "/api/settings/security-profile", true),
    ("get", "/api/settings/modules", false),
    ("patch", "/api/settings/modules", true),
    ("get", "/api/settings/rate-limits", false),
    ("patch", "/api/settings/rate-limits", true),
    ("get", "/api/export", false),
    ("post", "/api/import", true),
];

/// A schema of the document (a `$ref` or inline) with the document's components beside it, so
/// `#/components/schemas/…` resolves.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|err| panic!("not a valid schema ({err}): {schema}"))
}

fn errors(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    validator(doc, schema)
        .iter_errors(instance)
        .map(|err| format!("{err} at {}", err.instance_path()))
        .collect()
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

/// The JSON schema of `method path`'s answer with `status`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema = &operation(doc, method, path)["responses"][status.to_string()]["content"]["application/json"]
        ["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON body for {status}"
    );
    schema
}

fn request_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema =
        &operation(doc, method, path)["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON request body"
    );
    schema
}

/// A real answer: its status is documented, and its body is valid under the documented schema.
fn check_answer(doc: &Value, method: &str, path: &str, answer: &Response) {
    let schema = response_schema(doc, method, path, answer.status.as_u16());
    let found = errors(doc, schema, &answer.body);
    assert!(
        found.is_empty(),
        "{method} {path} {}: {}\n{}",
        answer.status,
        found.join("\n"),
        answer.text
    );
}

async fn document(app: &TestApp) -> Value {
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text);
    doc.body
}

#[tokio::test]
async fn every_operation_has_its_request_and_response_schemas() {
    let app = TestApp::sqlite().await;
    let doc = document(&app).await;
    let mut missing = Vec::new();
    for (method, path, takes_body) in OPERATIONS {
        let operation = operation(&doc, method, path);
        if takes_body
            && !operation["requestBody"]["content"]["application/json"]["schema"].is_object()
        {
            missing.push(format!("{method} {path}: no request body schema"));
        }
        let responses = operation["responses"].as_object().unwrap();
        for required in ["401", "429"] {
            if !responses.contains_key(required) {
                missing.push(format!("{method} {path}: no {required}"));
            }
        }
        for (status, response) in responses {
            let Ok(code) = status.parse::<u16>() else {
                missing.push(format!("{method} {path}: a status range {status}"));
                continue;
            };
            let has_schema = response["content"]["application/json"]["schema"].is_object();
            if code != 204 && !has_schema {
                missing.push(format!("{method} {path} {status}: no body schema"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The request schemas describe what the handlers accept: a real body passes, a field the
/// handler refuses (`deny_unknown_fields`) does not, and neither does a value out of range.
#[tokio::test]
async fn request_schemas_accept_and_refuse_what_the_handlers_do() {
    let app = TestApp::sqlite().await;
    let doc = document(&app).await;
    let token = app.admin().await.token("access_token");
    let webhook = request_schema(&doc, "post", "/api/alerts/webhooks");
    let body = json!({"name": "ops", "flavour": "slack", "url": "https://hooks.example.com/x"});
    assert_eq!(errors(&doc, webhook, &body), Vec::<String>::new());
    for bad in [
        json!({"name": "ops", "flavour": "teams", "url": "https://x.example.com"}),
        json!({"name": "ops", "flavour": "slack", "url": "https://x.example.com", "extra": 1}),
        json!({"flavour": "slack", "url": "https://x.example.com"}),
    ] {
        assert!(!errors(&doc, webhook, &bad).is_empty(), "{bad} passed");
        let refused = app
            .post("/api/alerts/webhooks", Some(&token), bad.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.text
        );
        check_answer(&doc, "post", "/api/alerts/webhooks", &refused);
    }
    let limits = request_schema(&doc, "patch", "/api/settings/rate-limits");
    assert!(errors(&doc, limits, &json!({"api_per_address": {"burst": 50}})).is_empty());
    assert!(!errors(&doc, limits, &json!({"api_per_address": {"burst": 0}})).is_empty());
    let step = request_schema(&doc, "post", "/api/cloudflare/token");
    assert!(errors(&doc, step, &json!({"api_token": "t", "port": 8080})).is_empty());
    assert!(!errors(&doc, step, &json!({"api_token": 5})).is_empty());
    // What the handlers were changed to do so that the schema can say it exactly.
    let unknown = app
        .post(
            "/api/approvals/modules/bulk-action",
            Some(&token),
            json!({"request_ids": ["x"], "action": "maybe"}),
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.text
    );
    let bulk = request_schema(&doc, "post", "/api/approvals/{kind}/bulk-action");
    assert!(
        !errors(
            &doc,
            bulk,
            &json!({"request_ids": ["x"], "action": "maybe"})
        )
        .is_empty()
    );
    for body in ["", "null"] {
        let request = TestApp::request(Method::POST, "/api/cloudflare/token", Some(&token), LOCAL)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let answer = app.send(request).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            answer.text
        );
        assert_eq!(
            answer.body["error"]["step"], "token",
            "{body:?}: {}",
            answer.text
        );
    }
    assert!(errors(&doc, step, &Value::Null).is_empty());
    let teardown = request_schema(&doc, "post", "/api/cloudflare/teardown");
    assert!(errors(&doc, teardown, &json!({"confirm": true})).is_empty());
    for refused in [json!({}), json!({"confirm": false}), Value::Null] {
        assert!(!errors(&doc, teardown, &refused).is_empty(), "{refused}");
    }
    let import = request_schema(&doc, "post", "/api/import");
    assert!(
        errors(
            &doc,
            import,
            &json!({"file": {"version": "1.2"}, "source_key": "k"})
        )
        .is_empty()
    );
    assert!(!errors(&doc, import, &json!({"version": "2.0"})).is_empty());
}

#[tokio::test]
async fn real_answers_validate_against_their_schemas() {
    let app = TestApp::sqlite().await;
    let doc = document(&app).await;
    let admin = app.admin().await.token("access_token");
    let token = Some(admin.as_str());

    for (path, url) in [
        ("/api/settings/alerts", "/api/settings/alerts"),
        ("/api/alerts/webhooks", "/api/alerts/webhooks"),
        (
            "/api/settings/security-policy",
            "/api/settings/security-policy",
        ),
        ("/api/settings/modules", "/api/settings/modules"),
        ("/api/settings/rate-limits", "/api/settings/rate-limits"),
        ("/api/cloudflare/status", "/api/cloudflare/status"),
        ("/api/cloudflare/allowlist", "/api/cloudflare/allowlist"),
        ("/api/settings/edge", "/api/settings/edge"),
        ("/api/approvals/{kind}", "/api/approvals/modules"),
        ("/api/approvals/{kind}", "/api/approvals/network?status=all"),
    ] {
        let answer = app.get(url, token).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.text);
        check_answer(&doc, "get", path, &answer);
    }

    // Errors: the remote set-up's own shape, and the plain one.
    let connect = app.get("/api/cloudflare/connect", token).await;
    assert_eq!(connect.status, StatusCode::CONFLICT, "{}", connect.text);
    check_answer(&doc, "get", "/api/cloudflare/connect", &connect);
    let teardown = app.post("/api/cloudflare/teardown", token, json!({})).await;
    assert_eq!(
        teardown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        teardown.text
    );
    check_answer(&doc, "post", "/api/cloudflare/teardown", &teardown);
    let nobody = app.get("/api/alerts/webhooks/nope", token).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.text);
    check_answer(&doc, "get", "/api/alerts/webhooks/{id}", &nobody);
    let anonymous = app.get("/api/settings/alerts", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    check_answer(&doc, "get", "/api/settings/alerts", &anonymous);

    let created = app
        .post(
            "/api/alerts/webhooks",
            token,
            json!({"name": "ops", "flavour": "generic", "url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    check_answer(&doc, "post", "/api/alerts/webhooks", &created);
    let id = created.body["id"].as_str().unwrap();
    let tested = app
        .post(&format!("/api/alerts/webhooks/{id}/test"), token, json!({}))
        .await;
    check_answer(&doc, "post", "/api/alerts/webhooks/{id}/test", &tested);

    let changed = app
        .call(
            Method::PATCH,
            "/api/settings/security-policy",
            token,
            json!({"log_retention_days": 7}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    check_answer(&doc, "patch", "/api/settings/security-policy", &changed);
    let out_of_range = app
        .call(
            Method::PATCH,
            "/api/settings/alerts",
            token,
            json!({"sign_in_failures": 1}),
        )
        .await;
    assert_eq!(out_of_range.status, StatusCode::UNPROCESSABLE_ENTITY);
    check_answer(&doc, "patch", "/api/settings/alerts", &out_of_range);

    let server = app.create_server(&admin, "bodies").await;
    let host = app
        .post(
            &format!("/api/servers/{server}/allowed-hosts"),
            token,
            json!({"host": "api.example.com", "port": 443}),
        )
        .await;
    assert_eq!(host.status, StatusCode::CREATED, "{}", host.text);
    check_answer(&doc, "post", "/api/servers/{id}/allowed-hosts", &host);
    let hosts = app
        .get(&format!("/api/servers/{server}/allowed-hosts"), token)
        .await;
    check_answer(&doc, "get", "/api/servers/{id}/allowed-hosts", &hosts);
    let queue = app.get("/api/approvals/network?status=all", token).await;
    assert_eq!(queue.body["total"], 1, "{}", queue.text);
    check_answer(&doc, "get", "/api/approvals/{kind}", &queue);
    let sources = app
        .get(
            &format!("/api/external-sources/servers/{server}/sources"),
            token,
        )
        .await;
    assert_eq!(sources.status, StatusCode::OK, "{}", sources.text);
    check_answer(
        &doc,
        "get",
        "/api/external-sources/servers/{id}/sources",
        &sources,
    );

    let export = app.get("/api/export", token).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text);
    check_answer(&doc, "get", "/api/export", &export);
    assert!(
        errors(
            &doc,
            request_schema(&doc, "post", "/api/import"),
            &export.body
        )
        .is_empty(),
        "the export is not a valid import body"
    );
    let request = TestApp::request(Method::POST, "/api/import", token, LOCAL)
        .header("content-type", "application/json")
        .body(Body::from(export.text.clone()))
        .unwrap();
    let imported = app.send(request).await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(
        imported.body["clashes"][0]["name"], "bodies",
        "{}",
        imported.text
    );
    check_answer(&doc, "post", "/api/import", &imported);
}
