//! The generated OpenAPI document, and what it lets us check: every secured route refuses a
//! request without a token.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::Value;

#[tokio::test]
async fn the_document_lists_the_api_and_every_secured_route_needs_a_token() {
    let app = TestApp::sqlite().await;
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc.text
    );
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc.body["paths"].as_object().unwrap();
    for expected in [
        "/api/servers",
        "/api/tools/{id}/versions/compare",
        "/api/approvals/tools/{id}/action",
        "/auth/login",
        "/api/activity/stream",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let mut secured = 0;
    let mut failures = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let needs_token = operation
                .get("security")
                .is_some_and(|s| !s.as_array().unwrap().is_empty());
            if !needs_token {
                continue;
            }
            secured += 1;
            let url = path
                .replace("{version}", "1")
                .replace("{kind}", "modules")
                .replace("{id}", "x")
                .replace("{key}", "KEY");
            let request = TestApp::request(method.clone(), &url, None, LOCAL)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = app.send(request).await;
            if response.status != StatusCode::UNAUTHORIZED {
                failures.push(format!("{method} {url}: {}", response.status));
            }
        }
    }
    assert!(
        secured >= 50,
        "only {secured} secured operations documented"
    );
    assert!(
        failures.is_empty(),
        "reachable without a token:\n{}",
        failures.join("\n")
    );
}

/// Every operation of the document, as (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                all.push((path.clone(), method.clone(), operation.clone()));
            }
        }
    }
    all
}

fn id_of(operation: &Value) -> String {
    operation["operationId"].as_str().unwrap_or("?").to_owned()
}

/// The schema a `$ref` names in the document's components (or the schema itself).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => r
            .strip_prefix("#/components/schemas/")
            .map_or(&Value::Null, |name| &doc["components"]["schemas"][name]),
        None => schema,
    }
}

/// `ErrorBody` itself, or a schema that extends it (the remote set-up's errors add the failed
/// step and Cloudflare's messages): an `error` object that requires `code` and `message`.
fn is_error_body(doc: &Value, schema: &Value) -> bool {
    if schema["$ref"] == "#/components/schemas/ErrorBody" {
        return true;
    }
    let outer = resolve(doc, schema);
    let inner = resolve(doc, &outer["properties"]["error"]);
    let required = |field: &str| {
        inner["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|f| f == field))
    };
    outer["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|f| f == "error"))
        && required("code")
        && required("message")
}

/// Public probes that answer every request (no client error to document).
const WITHOUT_CLIENT_ERRORS: [&str; 3] = ["health_live", "health_ready", "auth_status"];

/// What is missing from one operation's description: a typed success, its errors as
/// `ErrorBody`.
fn gaps(doc: &Value, operation: &Value) -> Vec<String> {
    let mut gaps = Vec::new();
    let responses = operation["responses"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // A 204 has no body by definition, a 3xx is a redirect; any other success must say what it
    // returns (a stream names its media type, e.g. text/event-stream).
    let typed_success = responses.iter().any(|(status, response)| {
        status == "204"
            || status.starts_with('3')
            || (status.starts_with('2')
                && status.len() == 3
                && response["content"].as_object().is_some_and(|c| {
                    c.values().all(|m| m.get("schema").is_some()) && !c.is_empty()
                }))
    });
    if !typed_success {
        gaps.push("no 2xx response with a body schema (or a 204/3xx)".to_owned());
    }
    let client_errors: Vec<_> = responses
        .iter()
        .filter(|(status, _)| status.starts_with('4'))
        .collect();
    for (status, response) in &client_errors {
        let error_body = is_error_body(doc, &response["content"]["application/json"]["schema"]);
        if status.len() != 3 || !error_body {
            gaps.push(format!("{status} is not a status with an ErrorBody body"));
        }
    }
    let own_errors = client_errors.iter().any(|(status, _)| *status != "429");
    if !own_errors && !WITHOUT_CLIENT_ERRORS.contains(&id_of(operation).as_str()) {
        gaps.push("no 4xx of its own (only the rate limit's 429)".to_owned());
    }
    if responses.keys().any(|status| status.ends_with("XX")) {
        gaps.push("a status range (2XX/4XX) instead of real statuses".to_owned());
    }
    gaps
}

/// Each operation documents its real success (status and body schema) and its client errors,
/// each with the ErrorBody schema. Lists every incomplete operation, not just the first.
#[tokio::test]
async fn every_operation_documents_its_success_body_and_its_errors() {
    let doc = origin::openapi::document_json();
    let incomplete: Vec<String> = operations(&doc)
        .iter()
        .filter_map(|(path, method, operation)| {
            let gaps = gaps(&doc, operation);
            (!gaps.is_empty()).then(|| {
                format!(
                    "{} {path} ({}): {}",
                    method.to_uppercase(),
                    id_of(operation),
                    gaps.join("; ")
                )
            })
        })
        .collect();
    assert!(
        incomplete.is_empty(),
        "{} operations are incomplete:\n{}",
        incomplete.len(),
        incomplete.join("\n")
    );
}

/// Every POST/PUT/PATCH whose handler reads a JSON body documents it. Which ones read one is
/// asked of the router itself: a body that is not JSON, sent as an admin, is refused by the JSON
/// extractors (`ApiJson`: 415 without the JSON content type; `OptionalJson`: 400) before the
/// handler runs, and ignored by handlers that read no body.
#[tokio::test]
async fn every_operation_that_reads_a_json_body_documents_it() {
    let app = TestApp::sqlite().await;
    let mut token = app.admin().await.token("access_token");
    let doc = origin::openapi::document_json();
    let mut undocumented = Vec::new();
    let mut readers = 0;
    // Sign-out routes last: they end the session the probes use.
    let mut probed = operations(&doc);
    probed.sort_by_key(|(path, _, _)| path.starts_with("/auth/logout"));
    for (path, method, operation) in probed {
        if !["post", "put", "patch"].contains(&method.as_str()) {
            continue;
        }
        let url = path
            .replace("{version}", "1")
            .replace("{kind}", "modules")
            .replace("{id}", "x")
            .replace("{key}", "KEY");
        let method = method.to_uppercase().parse::<Method>().unwrap();
        let mut response = None;
        for _ in 0..2 {
            let request = TestApp::request(method.clone(), &url, Some(&token), LOCAL)
                .body(Body::from("{"))
                .unwrap();
            let answer = app.send(request).await;
            if answer.status == StatusCode::UNAUTHORIZED {
                // An earlier probe (a password change, a sign-out) ended the session.
                token = app.login(ADMIN, PASSWORD).await.token("access_token");
                continue;
            }
            response = Some(answer);
            break;
        }
        let response = response.expect("a signed-in answer");
        let reads_json = [StatusCode::UNSUPPORTED_MEDIA_TYPE, StatusCode::BAD_REQUEST]
            .contains(&response.status);
        if !reads_json {
            continue;
        }
        readers += 1;
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            undocumented.push(format!(
                "{method} {path} ({}): answers {} to a non-JSON body but has no requestBody",
                id_of(&operation),
                response.status
            ));
        }
    }
    assert!(readers >= 20, "only {readers} operations read a JSON body");
    assert!(
        undocumented.is_empty(),
        "{} operations read a JSON body they do not document:\n{}",
        undocumented.len(),
        undocumented.join("\n")
    );
}

/// The document is OpenAPI 3.1 that tools can load: every `$ref` resolves, operation ids are
/// unique, and every `{param}` of a path is declared as a path parameter.
#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let doc = origin::openapi::document_json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut problems = Vec::new();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "only {} $refs", refs.len());
    for reference in refs {
        let target = reference
            .strip_prefix("#/")
            .map(|pointer| doc.pointer(&format!("/{pointer}")));
        if !matches!(target, Some(Some(_))) {
            problems.push(format!("$ref {reference} does not resolve"));
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = id_of(&operation);
        if !ids.insert(id.clone()) {
            problems.push(format!("operationId {id} is used twice"));
        }
        let declared: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                && !declared.contains(&name)
            {
                problems.push(format!(
                    "{method} {path}: path parameter {name} is not declared"
                ));
            }
        }
    }
    // Links (for stateful clients) name operations that exist, by parameters they have.
    let mut links = 0;
    let all = operations(&doc);
    for (_, _, operation) in &all {
        for response in operation["responses"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
        {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                links += 1;
                let target = all
                    .iter()
                    .find(|(_, _, o)| o["operationId"] == link["operationId"]);
                let Some((_, _, target)) = target else {
                    problems.push(format!(
                        "link {name} of {} names no operation",
                        id_of(operation)
                    ));
                    continue;
                };
                for parameter in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flat_map(|p| p.keys())
                {
                    let known = target["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == parameter.as_str());
                    if !known {
                        problems.push(format!(
                            "link {name}: {} has no parameter {parameter}",
                            id_of(target)
                        ));
                    }
                }
            }
        }
    }
    assert!(links >= 20, "only {links} links");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => refs.push(target.clone()),
                    _ => collect_refs(child, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

/// What schemathesis found, kept fixed: each answer below once disagreed with the document.
#[tokio::test]
async fn answers_schemathesis_found_wrong_stay_as_documented() {
    let app = TestApp::sqlite().await;
    let token = app.admin().await.token("access_token");
    // A path segment that is not an i64 was axum's text/plain 400; it is a JSON error now.
    let url = "/api/tools/x/versions/9223372036854775808";
    let not_a_number = app.get(url, Some(&token)).await;
    assert_eq!(not_a_number.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        not_a_number.error_code(),
        "bad_request",
        "{}",
        not_a_number.text
    );
    assert!(
        not_a_number.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // Pages beyond the documented maximum are refused (they were accepted up to u32::MAX).
    let deep = app.get("/api/servers?page=1000001", Some(&token)).await;
    assert_eq!(
        deep.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        deep.text
    );
    let deepest = app.get("/api/servers?page=1000000", Some(&token)).await;
    assert_eq!(deepest.status, StatusCode::OK, "{}", deepest.text);
    // An optional body sent as `null` is no body (the document says nullable).
    let request = TestApp::request(
        Method::POST,
        "/api/approvals/tools/x/revoke",
        Some(&token),
        LOCAL,
    )
    .header("content-type", "application/json")
    .body(Body::from("null"))
    .unwrap();
    let revoke = app.send(request).await;
    // Read as no body: the answer is about the (unknown) tool, not the body.
    assert_eq!(revoke.status, StatusCode::CONFLICT, "{}", revoke.text);
    // Once set-up is done, set-up answers 409 whatever it is sent (it was a 422 for a name the
    // document allows).
    let setup = app
        .post(
            "/auth/setup",
            None,
            serde_json::json!({"username": "9", "password": "x"}),
        )
        .await;
    assert_eq!(setup.status, StatusCode::CONFLICT, "{}", setup.text);
    // An update that changes nothing is refused, `null` included (the schema says so now).
    let me = app.get("/auth/me", Some(&token)).await;
    let url = format!("/api/users/{}", me.body["id"].as_str().unwrap());
    for body in [
        serde_json::json!({}),
        serde_json::json!({"is_active": null}),
    ] {
        let update = app.call(Method::PATCH, &url, Some(&token), body).await;
        assert_eq!(
            update.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            update.text
        );
    }
    // Creating a secret answers with it (it was a bare 201).
    let server = app.create_server(&token, "vault").await;
    // `66195.0` is an integer to JSON Schema, so to the handler too (it was a 422).
    let integral = app
        .call(
            Method::PATCH,
            &format!("/api/servers/{server}"),
            Some(&token),
            serde_json::json!({"default_timeout_ms": 66195.0}),
        )
        .await;
    assert_eq!(integral.status, StatusCode::OK, "{}", integral.text);
    assert_eq!(integral.body["default_timeout_ms"], 66195);
    let created = app
        .post(
            &format!("/api/servers/{server}/secrets"),
            Some(&token),
            serde_json::json!({"key_name": "API_KEY"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["key"], "API_KEY");
    assert_eq!(created.body["has_value"], false);
}

/// serde reads a struct from an array of its fields; the document says every body is an object,
/// so an array is refused before it is read.
#[tokio::test]
async fn a_body_that_is_an_array_is_refused() {
    let app = TestApp::sqlite().await;
    let token = app.admin().await.token("access_token");
    let server = app.create_server(&token, "arrays").await;
    let request = TestApp::request(
        Method::PATCH,
        &format!("/api/servers/{server}"),
        Some(&token),
        LOCAL,
    )
    .header("content-type", "application/json")
    .body(Body::from(" [null, null, null]"))
    .unwrap();
    let answer = app.send(request).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text
    );
    let request = TestApp::request(
        Method::PATCH,
        &format!("/api/servers/{server}"),
        Some(&token),
        LOCAL,
    )
    .header("content-type", "application/vnd.api+json; charset=utf-8")
    .body(Body::from(r#"{"description": "still read"}"#))
    .unwrap();
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}
