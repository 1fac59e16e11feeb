//! The admin UI, in process, on both backends: sign-in and set-up forms, session cookies and
//! their rotation, CSRF refusals (each one an attack that must change nothing), what a viewer
//! can see and do, escaping of stored data, the review-and-approve flow through the forms, and
//! the page hygiene every page must keep (CSP, no inline script or style).
//!
//! A real browser drives the UI in `tests/tests/ui_browser.rs`.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use common::{LOCAL, PASSWORD, TestApp, external_mcpbox, on_both_backends};
use origin::access::{self, Kind, NewRequest};
use origin::activity::Audit;
use serde_json::json;

on_both_backends!(
    the_review_page_shows_annotations_and_output_schema,
    the_review_page_shows_what_a_resource_or_prompt_declares,
    first_run_set_up_signs_in_and_every_page_renders_cleanly,
    forms_without_the_right_csrf_token_are_refused_and_change_nothing,
    a_viewer_sees_no_actions_and_is_refused_them,
    stored_markup_is_shown_as_text,
    an_expired_access_cookie_is_rotated_and_a_replayed_refresh_signs_out,
    sign_out_everywhere_ends_every_session,
    failed_sign_ins_are_throttled_with_a_readable_message,
    module_requests_are_decided_in_bulk,
    the_activity_log_pages_back_in_time,
    the_global_module_allowlist_decides_what_every_server_may_import,
    external_sources_are_added_discovered_and_imported_from_the_server_page,
    pages_show_times_badges_and_controls_as_a_person_reads_them,
    trojan_source_is_refused_and_shown_as_markers_on_the_review_page,
    short_secret_values_are_refused_and_warned_about,
    simultaneous_wrong_sign_ins_through_the_form_are_counted_before_any_hashing,
    ui_cookies_and_api_tokens_are_not_interchangeable,
    the_live_view_ends_when_its_session_does,
    the_settings_page_changes_the_rate_limits,
    the_remote_page_shows_a_failed_step_with_what_to_do,
    export_and_import_through_the_page,
);

/// A browser in miniature: a cookie jar, and the CSRF token of the last page.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: Vec<(String, String)>,
    csrf: String,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn csrf_of(html: &str) -> Option<String> {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    Some(html[start..start + 64].to_owned())
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        if !value.is_empty() {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> Page {
        let mut builder =
            TestApp::request(method, path, None, LOCAL).header(header::HOST, "mcpbox.test");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            builder = builder.header(header::COOKIE, jar.join("; "));
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form)
            }
            None => Body::empty(),
        };
        let response = self.app.send(builder.body(body).unwrap()).await;
        for value in response.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
                assert!(
                    text.contains(attribute),
                    "cookie without {attribute}: {text}"
                );
            }
            let (pair, _) = text.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.set(name, value);
        }
        if let Some(token) = csrf_of(&response.text) {
            self.csrf = token;
        }
        Page {
            status: response.status,
            headers: response.headers,
            html: response.text,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    /// A request carrying this browser's cookies, not sent.
    fn request(&self, method: Method, path: &str) -> axum::http::request::Builder {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        TestApp::request(method, path, None, LOCAL)
            .header(header::HOST, "mcpbox.test")
            .header(header::COOKIE, jar.join("; "))
    }

    /// Opens a streamed page (the live activity view) and returns its body as it arrives.
    async fn open_stream(&self, path: &str) -> axum::body::BodyDataStream {
        let request = self.request(Method::GET, path).body(Body::empty()).unwrap();
        let response = tower::ServiceExt::oneshot(self.app.router.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().into_data_stream()
    }

    /// Posts a form with this browser's CSRF token.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all = vec![("_csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, Some(body)).await
    }

    /// Follows a redirect (the flash cookie travels with it).
    async fn follow(&mut self, page: Page) -> Page {
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
        let to = page.location().to_owned();
        self.get(&to).await
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.html);
        self.post(
            "/ui/login",
            &[("username", username), ("password", password)],
        )
        .await
    }
}

/// The admin signed in through the set-up form.
async fn set_up(app: &TestApp) -> Browser<'_> {
    let mut browser = Browser::new(app);
    let start = browser.get("/ui").await;
    assert_eq!(start.location(), "/ui/login");
    let login = browser.get("/ui/login").await;
    assert_eq!(
        login.location(),
        "/ui/setup",
        "no account yet: set-up first"
    );
    let form = browser.get("/ui/setup").await;
    assert!(form.html.contains("Create the administrator"));
    let done = browser
        .post(
            "/ui/setup",
            &[
                ("username", "admin"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.location(), "/ui", "{}", done.html);
    assert!(browser.cookie("mcpbox_at").is_some());
    assert!(browser.cookie("mcpbox_rt").is_some());
    let dashboard = browser.follow(done).await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.html);
    browser
}

/// The text a person sees: the page without its tags (attribute values, such as a `<time>`'s
/// `datetime`, are not text) and without the inert `<template>` and `<script>` contents.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let skip_to = ["<template", "<script"]
            .iter()
            .zip(["</template>", "</script>"])
            .find(|(start, _)| rest.starts_with(**start))
            .map(|(_, end)| end);
        let end = match skip_to {
            Some(close) => rest.find(close).map(|i| i + close.len()),
            None => rest.find('>').map(|i| i + 1),
        };
        rest = &rest[end.unwrap_or(rest.len())..];
        out.push(' ');
    }
    out.push_str(rest);
    out
}

/// The first RFC 3339 timestamp (`2026-12-01T17:08`) in `text`, if any.
fn raw_timestamp(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd";
    (0..bytes.len().saturating_sub(shape.len() - 1))
        .find(|&i| {
            shape.iter().enumerate().all(|(j, want)| match want {
                b'd' => bytes[i + j].is_ascii_digit(),
                other => bytes[i + j] == *other,
            })
        })
        .map(|i| text[i..].chars().take(27).collect())
}

fn assert_clean_page(path: &str, page: &Page) {
    assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{path}"
    );
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{path}: {csp}"
    );
    let html = page.html.to_ascii_lowercase();
    // Every script is a file of ours; no inline handlers or styles (the CSP would block them).
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(
            tag.contains("src=\"/ui/static/"),
            "{path}: inline script {tag}"
        );
    }
    for forbidden in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        " style=",
        "javascript:",
        "<style",
    ] {
        assert!(!html.contains(forbidden), "{path}: {forbidden}");
    }
    // Times are shown relative inside <time>, never as raw stored timestamps.
    let text = visible_text(&page.html);
    assert!(
        raw_timestamp(&text).is_none(),
        "{path}: raw timestamp {:?} in the text",
        raw_timestamp(&text)
    );
    assert!(html.contains("<main"), "{path}: no main landmark");
    assert!(html.contains("lang=\"en\""), "{path}");
    // The <title> is a short line of text (a block pasted into it once put a whole form there).
    let title = html
        .split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or_default();
    assert!(
        !title.is_empty() && !title.contains('<') && title.len() < 120,
        "{path}: title {title:?}"
    );
    // Every id is unique on the page (labels and scripts find elements by id).
    let mut ids = std::collections::HashSet::new();
    for (i, _) in html.match_indices(" id=\"") {
        let id = html[i + 5..].split('"').next().unwrap_or_default();
        assert!(ids.insert(id.to_owned()), "{path}: id {id:?} twice");
    }
    // Every form field has a label (by id) or an aria-label.
    for (i, _) in html.match_indices("<input") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        if tag.contains("type=\"hidden\"") {
            continue;
        }
        let labelled = tag.contains("aria-label=")
            || tag
                .split("id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .is_some_and(|id| html.contains(&format!("for=\"{id}\"")));
        assert!(labelled, "{path}: unlabelled {tag}");
    }
}

async fn first_run_set_up_signs_in_and_every_page_renders_cleanly(app: TestApp) {
    let mut browser = set_up(&app).await;
    let created = browser
        .post(
            "/ui/servers",
            &[("name", "weather"), ("description", "forecasts")],
        )
        .await;
    assert!(
        created.location().starts_with("/ui/servers/"),
        "{}",
        created.html
    );
    let server_page = created.location().to_owned();
    let shown = browser.follow(created).await;
    assert!(
        shown.html.contains("Server weather created."),
        "the flash shows once"
    );
    assert_eq!(app.count("servers").await, 1);
    let again = browser.get(&server_page).await;
    assert!(
        !again.html.contains("Server weather created."),
        "…and only once"
    );
    for path in [
        "/ui",
        "/ui?period=7d",
        "/ui/servers",
        server_page.as_str(),
        &format!("{server_page}/delete"),
        "/ui/approvals",
        "/ui/activity",
        "/ui/activity?level=warning&action=server.create",
        "/ui/settings",
        "/ui/users",
        "/ui/account",
        "/ui/remote",
        "/ui/remote/tunnel",
    ] {
        let page = browser.get(path).await;
        assert_clean_page(path, &page);
    }
    // Signed out: the login page (public) is clean too, and the set-up page is closed.
    let out = browser.post("/ui/logout", &[]).await;
    assert_eq!(out.location(), "/ui/login");
    assert!(
        browser.cookie("mcpbox_at").is_none(),
        "sign-out clears the cookies"
    );
    let login = browser.get("/ui/login").await;
    assert_clean_page("/ui/login", &login);
    assert!(login.html.contains("Signed out."));
    assert_eq!(browser.get("/ui/setup").await.location(), "/ui/login");
    assert_eq!(browser.get("/ui").await.location(), "/ui/login");
    // Unknown things are HTML error pages, not JSON or 500s.
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;
    let missing = browser.get("/ui/servers/no-such-server").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.html.contains("Not found"));
    let bad_version = browser.get("/ui/approvals/tools/x/not-a-number").await;
    assert!(bad_version.status.is_client_error());
}

async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing(app: TestApp) {
    let mut browser = set_up(&app).await;
    let good = browser.csrf.clone();
    // No token, a wrong token, a token in the wrong field.
    for fields in [
        vec![("name", "evil")],
        vec![("_csrf", "0".repeat(64).leak() as &str), ("name", "evil")],
        vec![("csrf", good.as_str()), ("name", "evil")],
    ] {
        let refused = browser.post_raw("/ui/servers", &fields).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    }
    // The right token, but posted from another site's page.
    let body = format!("_csrf={good}&name=evil");
    let cross_site = TestApp::request(Method::POST, "/ui/servers", None, LOCAL)
        .header(header::HOST, "mcpbox.test")
        .header(header::ORIGIN, "https://evil.example")
        .header(
            header::COOKIE,
            format!(
                "mcpbox_at={}; mcpbox_rt={}",
                browser.cookie("mcpbox_at").unwrap(),
                browser.cookie("mcpbox_rt").unwrap()
            ),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app.send(cross_site).await.status, StatusCode::FORBIDDEN);
    // Another account's valid token does not work for this one.
    let admin_token = app.login("admin", PASSWORD).await.token("access_token");
    app.user_with_role(&admin_token, "olivia", "admin").await;
    let mut other = Browser::new(&app);
    other.sign_in("olivia", PASSWORD).await;
    other.get("/ui/servers").await;
    assert_ne!(other.csrf, good);
    let stolen = browser
        .post_raw("/ui/servers", &[("_csrf", &other.csrf), ("name", "evil")])
        .await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    // The sign-in form needs its double-submit cookie.
    let mut fresh = Browser::new(&app);
    let no_cookie = fresh
        .post_raw(
            "/ui/login",
            &[
                ("_csrf", &"a".repeat(64)),
                ("username", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    assert!(fresh.cookie("mcpbox_at").is_none());
    // A JSON body is not a form.
    let json_post = TestApp::request(Method::POST, "/ui/servers", None, LOCAL)
        .header(
            header::COOKIE,
            format!("mcpbox_at={}", browser.cookie("mcpbox_at").unwrap()),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"name": "evil"}).to_string()))
        .unwrap();
    assert!(app.send(json_post).await.status.is_client_error());
    assert_eq!(
        app.count("servers").await,
        0,
        "no refused form changed anything"
    );
    // The UI's cookies do not authenticate the JSON API.
    let api = TestApp::request(Method::GET, "/api/servers", None, LOCAL)
        .header(
            header::COOKIE,
            format!("mcpbox_at={}", browser.cookie("mcpbox_at").unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(api).await.status, StatusCode::UNAUTHORIZED);
}

async fn a_viewer_sees_no_actions_and_is_refused_them(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "weather").await;
    app.user_with_role(&admin, "victor", "viewer").await;
    let mut viewer = Browser::new(&app);
    let signed_in = viewer.sign_in("victor", PASSWORD).await;
    assert_eq!(signed_in.location(), "/ui");
    let servers = viewer.get("/ui/servers").await;
    assert_eq!(servers.status, StatusCode::OK);
    assert!(servers.html.contains("weather"));
    assert!(
        !servers.html.contains("New server"),
        "no create form for a viewer"
    );
    let detail = viewer.get(&format!("/ui/servers/{server}")).await;
    for hidden in ["Stop server", "Start server", "Delete server", "Save value"] {
        assert!(!detail.html.contains(hidden), "{hidden} shown to a viewer");
    }
    assert!(
        !viewer.get("/ui").await.html.contains("/ui/users\""),
        "no Users link"
    );
    let settings = viewer.get("/ui/settings").await;
    assert!(settings.html.contains("<fieldset disabled"));
    assert!(!settings.html.contains("Save policy"));
    // …and refused by the server when posted anyway.
    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/ui/servers".into(), vec![("name", "sneaky")]),
        (format!("/ui/servers/{server}/start"), vec![]),
        (
            format!("/ui/servers/{server}/delete"),
            vec![("confirm_name", "weather")],
        ),
        (
            format!("/ui/servers/{server}/secrets"),
            vec![("key", "API_KEY"), ("value", "long-enough-value")],
        ),
        ("/ui/settings/preset".into(), vec![("preset", "permissive")]),
        (
            "/ui/users".into(),
            vec![
                ("username", "mallory"),
                ("password", PASSWORD),
                ("role", "admin"),
            ],
        ),
        (
            "/ui/approvals/bulk".into(),
            vec![("action", "approve"), ("item", "module:x")],
        ),
    ];
    for (path, fields) in attempts {
        let refused = viewer.post(&path, &fields).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER, "{path}");
        let shown = viewer.follow(refused).await;
        assert!(
            shown.html.contains("may do this") || shown.status == StatusCode::FORBIDDEN,
            "{path}: {}",
            shown.html
        );
    }
    assert_eq!(viewer.get("/ui/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("servers").await, 1);
    assert_eq!(app.count("server_secrets").await, 0);
    assert_eq!(app.count("users").await, 2);
    let policy = app.get("/api/settings/security-policy", Some(&admin)).await;
    assert_eq!(policy.body["tool_approval_mode"], "require_approval");
    let listed = app
        .get(&format!("/api/servers/{server}"), Some(&admin))
        .await;
    assert_eq!(listed.body["status"], "stopped");
}

async fn stored_markup_is_shown_as_text(app: TestApp) {
    let mut browser = set_up(&app).await;
    let attack = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let created = browser
        .post(
            "/ui/servers",
            &[("name", "weather"), ("description", attack)],
        )
        .await;
    let page = browser.follow(created).await;
    assert!(!page.html.contains("<script>alert"), "{}", page.html);
    assert!(!page.html.contains("<img src=x"));
    assert!(
        page.html.contains("&#60;script&#62;alert(1)&#60;"),
        "{}",
        page.html
    );
    let servers = browser.get("/ui/servers").await;
    assert!(!servers.html.contains("<script>alert"));
    // The activity log shows the event text escaped too.
    let activity = browser.get("/ui/activity").await;
    assert!(!activity.html.contains("<script>alert"));
}

async fn an_expired_access_cookie_is_rotated_and_a_replayed_refresh_signs_out(app: TestApp) {
    let mut browser = set_up(&app).await;
    let old_refresh = browser.cookie("mcpbox_rt").unwrap().to_owned();
    // The access cookie is gone (expired or garbage): the refresh cookie renews both.
    browser.set("mcpbox_at", "not-a-jwt");
    let page = browser.get("/ui/servers").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let new_refresh = browser.cookie("mcpbox_rt").unwrap().to_owned();
    assert_ne!(new_refresh, old_refresh, "the refresh token rotated");
    assert_ne!(browser.cookie("mcpbox_at").unwrap(), "not-a-jwt");
    // Someone replays the spent refresh token: they get nothing, and the whole sign-in ends.
    let mut thief = Browser::new(&app);
    thief.set("mcpbox_rt", &old_refresh);
    assert_eq!(thief.get("/ui").await.location(), "/ui/login");
    browser.set("mcpbox_at", "");
    assert_eq!(
        browser.get("/ui").await.location(),
        "/ui/login",
        "the replay revoked the family"
    );
}

async fn sign_out_everywhere_ends_every_session(app: TestApp) {
    let mut first = set_up(&app).await;
    let mut second = Browser::new(&app);
    second.sign_in("admin", PASSWORD).await;
    let old_csrf = {
        second.get("/ui/account").await;
        second.csrf.clone()
    };
    let out = first.post("/ui/logout-all", &[]).await;
    assert_eq!(out.location(), "/ui/login");
    assert_eq!(second.get("/ui").await.location(), "/ui/login");
    // Signed in again, the old page's token is no longer valid.
    let mut third = Browser::new(&app);
    third.sign_in("admin", PASSWORD).await;
    third.get("/ui/servers").await;
    assert_ne!(third.csrf, old_csrf);
    let stale = third
        .post_raw("/ui/servers", &[("_csrf", &old_csrf), ("name", "late")])
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    // The password change form: wrong current password is refused, a good one works.
    let wrong = third
        .post(
            "/ui/account",
            &[
                ("current_password", "not the password"),
                ("new_password", "another good password"),
                ("confirm", "another good password"),
            ],
        )
        .await;
    assert!(
        third
            .follow(wrong)
            .await
            .html
            .contains("the current password is wrong")
    );
    let changed = third
        .post(
            "/ui/account",
            &[
                ("current_password", PASSWORD),
                ("new_password", "another good password"),
                ("confirm", "another good password"),
            ],
        )
        .await;
    assert!(
        third
            .follow(changed)
            .await
            .html
            .contains("Password changed")
    );
    assert_eq!(
        third.get("/ui/servers").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        app.login("admin", "another good password").await.status,
        StatusCode::OK
    );
}

async fn failed_sign_ins_are_throttled_with_a_readable_message(app: TestApp) {
    set_up(&app).await;
    let mut browser = Browser::new(&app);
    let mut last = None;
    for _ in 0..12 {
        browser.get("/ui/login").await;
        last = Some(
            browser
                .post(
                    "/ui/login",
                    &[("username", "admin"), ("password", "wrong password!")],
                )
                .await,
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{}", last.html);
    assert!(last.html.contains("try again in"), "{}", last.html);
    assert!(
        last.html.contains("value=\"admin\""),
        "the username is kept in the form"
    );
    assert!(browser.cookie("mcpbox_at").is_none());
}

async fn module_requests_are_decided_in_bulk(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "data").await;
    let tool = app
        .create_tool(
            &admin,
            &server,
            "report",
            "def main() -> str:\n    return 'x'\n",
        )
        .await;
    for module in ["csv", "difflib"] {
        let request = NewRequest {
            kind: Kind::Module,
            tool_id: &tool,
            target: module,
            port: None,
            justification: "parsing",
        };
        let llm = Audit {
            actor: "llm".into(),
            request_id: None,
        };
        access::request(&app.state, &llm, request).await.unwrap();
    }
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;
    let queue = browser.get("/ui/approvals").await;
    assert!(queue.html.contains("<code>csv</code>") && queue.html.contains("<code>difflib</code>"));
    let ids: Vec<String> = queue
        .html
        .match_indices("value=\"module:")
        .map(|(i, _)| queue.html[i + 14..].split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    // Rejecting without a reason is refused for each item; nothing changes.
    let items: Vec<String> = ids.iter().map(|id| format!("module:{id}")).collect();
    let mut fields = vec![("action", "reject")];
    fields.extend(items.iter().map(|i| ("item", i.as_str())));
    let refused = browser.post("/ui/approvals/bulk", &fields).await;
    assert!(browser.follow(refused).await.html.contains("2 refused"));
    let mut fields = vec![("action", "approve")];
    fields.extend(items.iter().map(|i| ("item", i.as_str())));
    let approved = browser.post("/ui/approvals/bulk", &fields).await;
    assert!(
        browser
            .follow(approved)
            .await
            .html
            .contains("2 item(s) approved")
    );
    let modules = app
        .get(&format!("/api/servers/{server}"), Some(&admin))
        .await;
    assert!(modules.status.is_success());
    let page = browser.get(&format!("/ui/servers/{server}")).await;
    assert!(page.html.contains("<code>csv</code>"));
    // The review page shows the code; approving there makes it the running version.
    let review = browser.get(&format!("/ui/approvals/tools/{tool}/1")).await;
    assert!(
        review.html.contains("No approved version to compare with"),
        "{}",
        review.html
    );
    assert!(review.html.contains("<span class=\"k\">def</span>"));
    // A draft is not offered for approval, and approving it anyway is refused: an admin first
    // submits it for review.
    assert!(!review.html.contains("id=\"approve\""), "{}", review.html);
    assert!(
        review
            .html
            .contains("a draft that was not submitted for review")
    );
    let refused = browser
        .post(&format!("/ui/approvals/tools/{tool}/1/approve"), &[])
        .await;
    let refused = browser.follow(refused).await;
    assert!(
        refused
            .html
            .contains("it is a draft (it must be pending review)"),
        "{}",
        refused.html
    );
    let submitted = browser
        .post(&format!("/ui/approvals/tools/{tool}/1/submit"), &[])
        .await;
    let review = browser.follow(submitted).await;
    assert!(
        review.html.contains("Version 1 submitted for review."),
        "{}",
        review.html
    );
    assert!(review.html.contains("id=\"approve\""));
    let decided = browser
        .post(&format!("/ui/approvals/tools/{tool}/1/approve"), &[])
        .await;
    assert!(
        browser
            .follow(decided)
            .await
            .html
            .contains("Version 1 approved.")
    );
    let tool_page = browser.get(&format!("/ui/tools/{tool}")).await;
    assert!(
        tool_page.html.contains("Version 1 is approved"),
        "{}",
        tool_page.html
    );
    // Admin actions on the tool and its server.
    let disabled = browser
        .post(
            &format!("/ui/tools/{tool}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert!(browser.follow(disabled).await.html.contains("Disabled."));
    let enabled = browser
        .post(&format!("/ui/tools/{tool}/enabled"), &[("enabled", "true")])
        .await;
    assert!(browser.follow(enabled).await.html.contains("Enabled."));
    let edited = browser
        .post(
            &format!("/ui/servers/{server}/edit"),
            &[("description", "reports"), ("default_timeout_ms", "5000")],
        )
        .await;
    assert!(
        browser
            .follow(edited)
            .await
            .html
            .contains("default timeout 5000 ms")
    );
    let bad_timeout = browser
        .post(
            &format!("/ui/servers/{server}/edit"),
            &[("description", "x"), ("default_timeout_ms", "soon")],
        )
        .await;
    assert!(
        browser
            .follow(bad_timeout)
            .await
            .html
            .contains("whole number")
    );
    let wrong_name = browser
        .post(
            &format!("/ui/tools/{tool}/delete"),
            &[("confirm_name", "reprot")],
        )
        .await;
    assert!(browser.follow(wrong_name).await.html.contains("exactly"));
    assert_eq!(
        app.count("tools").await,
        1,
        "a mistyped name deletes nothing"
    );
    let deleted = browser
        .post(
            &format!("/ui/tools/{tool}/delete"),
            &[("confirm_name", "report")],
        )
        .await;
    assert_eq!(deleted.location(), format!("/ui/servers/{server}"));
    assert_eq!(app.count("tools").await, 0);
}

async fn the_activity_log_pages_back_in_time(app: TestApp) {
    let mut browser = set_up(&app).await;
    let audit = Audit {
        actor: "admin".into(),
        request_id: None,
    };
    for i in 0..120 {
        let level = if i % 2 == 0 { "info" } else { "warning" };
        let event = origin::activity::NewEvent::info("test.event", format!("event number {i:03}"));
        let event = if level == "warning" {
            origin::activity::NewEvent::warning("test.event", format!("event number {i:03}"))
        } else {
            event
        };
        origin::activity::record(&app.state.db.pool, &audit, event)
            .await
            .unwrap();
    }
    let first = browser.get("/ui/activity?action=test.event").await;
    assert!(first.html.contains("event number 119"));
    assert!(!first.html.contains("event number 069"), "50 a page");
    let older = first
        .html
        .split("href=\"")
        .find(|part| part.contains("before="))
        .map(|part| part.split('"').next().unwrap().replace("&amp;", "&"))
        .expect("an Older link");
    let second = browser.get(&older).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.html.contains("event number 069") && second.html.contains("event number 020"));
    assert!(!second.html.contains("event number 070"), "no overlap");
    assert!(!second.html.contains("event number 019"));
    let warnings = browser
        .get("/ui/activity?action=test.event&level=warning")
        .await;
    assert!(warnings.html.contains("event number 119"));
    assert!(!warnings.html.contains("event number 118"));
    // A made-up cursor is just a position, never an error.
    let odd = browser.get("/ui/activity?before=%27%3B--~x").await;
    assert_eq!(odd.status, StatusCode::OK);
}

async fn the_global_module_allowlist_decides_what_every_server_may_import(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "data").await;
    let uses_csv = "import csv\ndef main() -> list:\n    return list(csv.reader(['a,b']))\n";
    let refused = app
        .post(
            &format!("/api/servers/{server}/tools"),
            Some(&admin),
            json!({"name": "rows", "python_code": uses_csv}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;
    browser.get("/ui/settings").await;
    // Never-importable modules are refused whole: nothing of the change is applied.
    let bad = browser
        .post("/ui/settings/modules", &[("add", "csv os")])
        .await;
    assert!(
        browser
            .follow(bad)
            .await
            .html
            .contains("can never be allowed")
    );
    let listed = app.get("/api/settings/modules", Some(&admin)).await;
    assert_eq!(listed.body["is_custom_config"], false);
    assert!(
        !listed.body["allowed_modules"]
            .as_array()
            .unwrap()
            .contains(&json!("csv"))
    );
    let added = browser
        .post("/ui/settings/modules", &[("add", "csv")])
        .await;
    let page = browser.follow(added).await;
    assert!(
        page.html.contains("Module allowlist saved.") && page.html.contains("<code>csv</code>")
    );
    let created = app
        .post(
            &format!("/api/servers/{server}/tools"),
            Some(&admin),
            json!({"name": "rows", "python_code": uses_csv}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    // Removing json makes code that imports it invalid; the REST twin resets.
    let removed = browser
        .post("/ui/settings/modules", &[("remove", "json")])
        .await;
    assert!(
        !browser
            .follow(removed)
            .await
            .html
            .contains("<code>json</code>")
    );
    let listed = app.get("/api/settings/modules", Some(&admin)).await;
    assert_eq!(listed.body["is_custom_config"], true);
    assert!(
        !listed.body["allowed_modules"]
            .as_array()
            .unwrap()
            .contains(&json!("json"))
    );
    let reset = app
        .call(
            Method::PATCH,
            "/api/settings/modules",
            Some(&admin),
            json!({"reset_to_defaults": true}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    assert_eq!(reset.body["is_custom_config"], false);
    assert_eq!(reset.body["allowed_modules"], reset.body["default_modules"]);
    let unknown_field = app
        .call(
            Method::PATCH,
            "/api/settings/modules",
            Some(&admin),
            json!({"add": ["csv"]}),
        )
        .await;
    assert_eq!(
        unknown_field.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown_field.text
    );
}

async fn external_sources_are_added_discovered_and_imported_from_the_server_page(app: TestApp) {
    let url = external_mcpbox().await;
    let mut browser = set_up(&app).await;
    let created = browser.post("/ui/servers", &[("name", "peer")]).await;
    let server_page = created.location().to_owned();
    browser.follow(created).await;
    let server = server_page.trim_start_matches("/ui/servers/").to_owned();
    // A bad URL is refused with the reason; nothing is added.
    let bad = browser
        .post(
            &format!("{server_page}/sources"),
            &[
                ("name", "files"),
                ("url", "file:///etc/passwd"),
                ("auth_type", "none"),
            ],
        )
        .await;
    assert!(browser.follow(bad).await.html.contains("http"));
    let added = browser
        .post(
            &format!("{server_page}/sources"),
            &[("name", "other"), ("url", &url), ("auth_type", "none")],
        )
        .await;
    let source_page = added.location().to_owned();
    assert!(source_page.starts_with("/ui/sources/"), "{}", added.html);
    let shown = browser.follow(added).await;
    assert!(shown.html.contains("Source other added"), "{}", shown.html);
    let found = browser.post(&format!("{source_page}/discover"), &[]).await;
    let page = browser.follow(found).await;
    assert!(page.html.contains("tool(s) found."), "{}", page.html);
    assert!(page.html.contains("mcpbox_list_servers"));
    let clean = browser.get(&source_page).await;
    assert_clean_page(&source_page, &clean);
    let clean = browser.get(&server_page).await;
    assert_clean_page(&server_page, &clean);
    let healthy = browser.post(&format!("{source_page}/health"), &[]).await;
    assert!(
        browser
            .follow(healthy)
            .await
            .html
            .contains("The source answers.")
    );
    let imported = browser
        .post(
            &format!("{source_page}/import"),
            &[("tool", "mcpbox_list_servers")],
        )
        .await;
    assert!(
        browser
            .follow(imported)
            .await
            .html
            .contains("1 tool(s) imported as drafts")
    );
    // The import is a draft tool of the server, listed with the server's tools.
    assert_eq!(app.count("tools").await, 1);
    let server_view = browser.get(&server_page).await;
    assert!(server_view.html.contains("<a href=\"/ui/sources/"));
    // A source an LLM added waits for approval; the page offers it to an admin.
    let llm = Audit {
        actor: "llm".into(),
        request_id: None,
    };
    let pending = origin::external::add_recorded(
        &app.state,
        origin::external::NewSource {
            server_id: &server,
            name: "later",
            url: &url,
            auth: origin::external::Auth::None,
            transport_type: None,
            approved_by: None,
        },
        &llm,
    )
    .await
    .unwrap();
    let pending_page = format!("/ui/sources/{}", pending.id);
    let queue = browser.get("/ui/approvals").await;
    assert!(
        queue
            .html
            .contains(&format!("<a href=\"{pending_page}\">later</a>")),
        "{}",
        queue.html
    );
    let waiting = browser.get(&pending_page).await;
    assert!(waiting.html.contains("Approve this source"));
    let refused = browser.post(&format!("{pending_page}/discover"), &[]).await;
    assert!(browser.follow(refused).await.html.contains("approval"));
    let approved = browser.post(&format!("{pending_page}/approve"), &[]).await;
    assert!(
        browser
            .follow(approved)
            .await
            .html
            .contains("Source approved")
    );
    // Deleting needs the typed name.
    let kept = browser
        .post(
            &format!("{pending_page}/delete"),
            &[("confirm_name", "late")],
        )
        .await;
    assert!(browser.follow(kept).await.html.contains("exactly"));
    let gone = browser
        .post(
            &format!("{pending_page}/delete"),
            &[("confirm_name", "later")],
        )
        .await;
    assert_eq!(gone.location(), server_page);
}

/// The sign-in form shares `auth::sign_in`: twenty wrong passwords posted at once from one
/// address are counted before any is checked, so five are hashed and fifteen get 429.
async fn simultaneous_wrong_sign_ins_through_the_form_are_counted_before_any_hashing(app: TestApp) {
    set_up(&app).await;
    let mut browser = Browser::new(&app);
    browser.get("/ui/login").await;
    let before = app.state.passwords.stats().verified;
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("_csrf", browser.csrf.as_str()),
            ("username", "admin"),
            ("password", "wrong password!"),
        ])
        .finish();
    let posts = (0..20).map(|_| {
        let request = browser
            .request(Method::POST, "/ui/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.clone()))
            .unwrap();
        app.send(request)
    });
    let pages = futures_util::future::join_all(posts).await;
    let count = |status: StatusCode| pages.iter().filter(|p| p.status == status).count();
    assert_eq!(count(StatusCode::UNAUTHORIZED), 5);
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 15);
    assert_eq!(app.state.passwords.stats().verified - before, 5);
}

/// The UI's cookies hold tokens for the UI's audience only: a leaked cookie is refused as an
/// API bearer token and on `/auth/refresh` (without spending it), and API tokens placed in the
/// cookies are no UI session.
async fn ui_cookies_and_api_tokens_are_not_interchangeable(app: TestApp) {
    let mut browser = set_up(&app).await;
    let ui_access = browser.cookie("mcpbox_at").unwrap().to_owned();
    let ui_refresh = browser.cookie("mcpbox_rt").unwrap().to_owned();
    for path in ["/auth/me", "/api/servers", "/api/activity/logs"] {
        let response = app.get(path, Some(&ui_access)).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let refreshed = app
        .post("/auth/refresh", None, json!({"refresh_token": ui_refresh}))
        .await;
    assert_eq!(
        refreshed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refreshed.text
    );
    // …and the refusal did not spend it: the browser's session still renews through it.
    browser.set("mcpbox_at", "");
    assert_eq!(browser.get("/ui/servers").await.status, StatusCode::OK);

    let api = app.login("admin", PASSWORD).await;
    let api_access = api.token("access_token");
    let api_refresh = api.token("refresh_token");
    let mut forged = Browser::new(&app);
    forged.set("mcpbox_at", &api_access);
    assert_eq!(forged.get("/ui").await.location(), "/ui/login");
    let mut forged = Browser::new(&app);
    forged.set("mcpbox_rt", &api_refresh);
    assert_eq!(forged.get("/ui").await.location(), "/ui/login");
    // Both API tokens still work where they belong.
    assert_eq!(
        app.get("/auth/me", Some(&api_access)).await.status,
        StatusCode::OK
    );
    let rotated = app
        .post("/auth/refresh", None, json!({"refresh_token": api_refresh}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
}

/// Reads a live stream until it ends or `wait` passes: whether it ended, and what it sent.
async fn drain(body: &mut axum::body::BodyDataStream, wait: std::time::Duration) -> (bool, String) {
    use futures_util::StreamExt;
    let mut seen = String::new();
    let ended = tokio::time::timeout(wait, async {
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .is_ok();
    (ended, seen)
}

/// `/ui/activity/stream` after its session ended (signed out; separately, the account disabled):
/// the next change is not delivered and the stream ends, while a live session's stream gets it.
async fn the_live_view_ends_when_its_session_does(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    app.user_with_role(&admin, "victor", "viewer").await;
    let mut watcher = Browser::new(&app);
    watcher.sign_in("admin", PASSWORD).await;
    let mut control = watcher.open_stream("/ui/activity/stream").await;

    let mut leaving = Browser::new(&app);
    leaving.sign_in("victor", PASSWORD).await;
    let mut signed_out = leaving.open_stream("/ui/activity/stream").await;
    leaving.get("/ui/account").await;
    assert_eq!(
        leaving.post("/ui/logout", &[]).await.location(),
        "/ui/login"
    );
    app.create_server(&admin, "after_logout").await;
    let (ended, seen) = drain(&mut signed_out, std::time::Duration::from_secs(5)).await;
    assert!(ended, "the stream outlived the sign-out");
    assert!(!seen.contains("after_logout"), "{seen}");

    let mut disabled = Browser::new(&app);
    disabled.sign_in("victor", PASSWORD).await;
    let mut stream = disabled.open_stream("/ui/activity/stream").await;
    let id = app.get("/api/users", Some(&admin)).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "victor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.create_server(&admin, "after_disable").await;
    let (ended, seen) = drain(&mut stream, std::time::Duration::from_secs(5)).await;
    assert!(ended, "the stream outlived the account");
    assert!(!seen.contains("after_disable"), "{seen}");

    // The admin's stream is alive and got both changes (they were published).
    let (ended, seen) = drain(&mut control, std::time::Duration::from_millis(500)).await;
    assert!(!ended);
    assert!(
        seen.contains("after_logout") && seen.contains("after_disable"),
        "{seen}"
    );
}

/// Bidirectional controls as "Trojan Source" (CVE-2021-42574) uses them: a browser shows
/// `# Check if admin` as a comment after the string, while Python reads it inside the string,
/// so the condition is always true.
const TROJAN: &str = "def main(access_level: str = 'user') -> bool:\n    if access_level != \"user\u{202e} \u{2066}# Check if admin\u{2069} \u{2066}\":\n        return True\n    return False\n";

async fn trojan_source_is_refused_and_shown_as_markers_on_the_review_page(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "auth").await;
    let tool = app
        .create_tool(
            &admin,
            &server,
            "check",
            "def main(access_level: str = 'user') -> bool:\n    return access_level == 'admin'\n",
        )
        .await;
    app.approve_tool(&admin, &tool).await;
    // The static check refuses it, naming the line.
    let refused = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&admin),
            json!({"python_code": TROJAN}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 2") && message.contains("U+202E RIGHT-TO-LEFT OVERRIDE"),
        "{message}"
    );
    // A version stored before the check refused them (written into the database as it would
    // have been): the review page must still not let the browser apply them.
    let draft = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&admin),
            json!({"python_code": "def main(access_level: str = 'user') -> bool:\n    return False\n"}),
        )
        .await;
    assert_eq!(draft.status, StatusCode::OK, "{}", draft.text);
    sqlx::query(
        "UPDATE tool_versions SET python_code = $1, description = $2 WHERE tool_id = $3 AND version = 2",
    )
    .bind(TROJAN)
    .bind("Checks access\u{202e}nimda")
    .bind(&tool)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;
    for path in [
        format!("/ui/approvals/tools/{tool}/2"),
        format!("/ui/tools/{tool}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        for hidden in ['\u{202e}', '\u{2066}', '\u{2069}'] {
            assert!(
                !page.html.contains(hidden),
                "{path}: {hidden:?} raw in the page"
            );
        }
        assert!(
            page.html
                .contains("<span class=\"hidden-char\" title=\"U+202E RIGHT-TO-LEFT OVERRIDE"),
            "{path}: {}",
            page.html
        );
        assert!(page.html.contains("&lt;U+2069&gt;"), "{path}");
    }
    let review = browser.get(&format!("/ui/approvals/tools/{tool}/2")).await;
    // Twice in the code, twice in the diff; and once in the description.
    assert_eq!(
        review.html.matches("&lt;U+2066&gt;").count(),
        4,
        "{}",
        review.html
    );
    assert_eq!(review.html.matches("&lt;U+202E&gt;").count(), 3);
}

async fn short_secret_values_are_refused_and_warned_about(app: TestApp) {
    let mut browser = set_up(&app).await;
    let admin = app.login("admin", PASSWORD).await.token("access_token");
    let server = app.create_server(&admin, "weather").await;
    let path = format!("/ui/servers/{server}");
    let form = browser.get(&path).await;
    assert!(form.html.contains("minlength=\"8\""), "{}", form.html);
    let refused = browser
        .post(
            &format!("{path}/secrets"),
            &[("key", "API_KEY"), ("value", "short")],
        )
        .await;
    let page = browser.follow(refused).await;
    assert!(page.html.contains("at least 8 bytes"), "{}", page.html);
    assert!(
        !page.html.contains("<code>API_KEY</code>"),
        "nothing stored"
    );
    let saved = browser
        .post(
            &format!("{path}/secrets"),
            &[("key", "API_KEY"), ("value", "long-enough-value")],
        )
        .await;
    let page = browser.follow(saved).await;
    assert!(page.html.contains("<code>API_KEY</code>"), "{}", page.html);
    assert!(!page.html.contains("too short to redact"));
    // A value set before the minimum existed (stored as the origin stores one).
    let stored = app
        .state
        .keys
        .encrypt_to_string("abc", &format!("server_secret:{server}:API_KEY"));
    sqlx::query("UPDATE server_secrets SET encrypted_value = $1")
        .bind(stored)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let page = browser.get(&path).await;
    assert!(
        page.html.contains("too short to redact reliably"),
        "{}",
        page.html
    );
    // Viewers are not told which values are short.
    app.user_with_role(&admin, "watcher", "viewer").await;
    let mut viewer = Browser::new(&app);
    viewer.sign_in("watcher", PASSWORD).await;
    let page = viewer.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("too short to redact"));
}

async fn pages_show_times_badges_and_controls_as_a_person_reads_them(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "weather").await;
    let tool = app
        .create_tool(
            &admin,
            &server,
            "forecast",
            "def main(city: str) -> str:\n    return city\n",
        )
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;

    // One version: nothing to roll back to or compare with, so no such controls.
    let single = browser.get(&format!("/ui/tools/{tool}")).await;
    assert_clean_page("tool page", &single);
    assert!(
        single
            .html
            .contains("<span class=\"badge wait\">draft</span>")
    );
    for absent in ["Roll back", "rollback-version", "Diff from"] {
        assert!(!single.html.contains(absent), "one version: {absent} shown");
    }

    // Waiting for review: the badge says so in words wherever the version's status is shown.
    let llm = Audit {
        actor: "llm".into(),
        request_id: None,
    };
    origin::approvals::request_publish(&app.state, &tool, None, Some("first"), &llm)
        .await
        .unwrap();
    let review = browser.get(&format!("/ui/approvals/tools/{tool}/1")).await;
    assert_clean_page("review page", &review);
    assert!(
        review
            .html
            .contains("<span class=\"badge wait\">waiting for review</span>"),
        "{}",
        review.html
    );
    assert!(
        review
            .html
            .contains("<span class=\"badge wait\">stopped</span>")
    );
    // Single-key shortcuts are off until turned on (the toggle is shown by the script), and
    // their hint is built from the page's own data-key elements: no diff here, so no `d`.
    assert!(review.html.contains("id=\"shortcuts\" hidden"));
    assert!(!review.html.contains("<kbd>"));
    assert!(review.html.contains("data-key=\"a\"") && review.html.contains("data-key=\"r\""));
    assert!(!review.html.contains("data-key=\"d\""));

    // Every page that shows a time shows it relative, with the stored time as `datetime`.
    let server_page = format!("/ui/servers/{server}");
    for path in [
        "/ui/activity",
        server_page.as_str(),
        &format!("/ui/tools/{tool}"),
        &format!("/ui/approvals/tools/{tool}/1"),
        "/ui/approvals",
        "/ui/users",
    ] {
        let page = browser.get(path).await;
        assert_clean_page(path, &page);
        let text = visible_text(&page.html);
        for raw in ["pending_review", "pending_approval"] {
            assert!(!text.contains(raw), "{path}: {raw} shown");
        }
        assert!(page.html.contains("<time datetime=\""), "{path}: no <time>");
        assert!(
            text.contains("just now") || text.contains("minute"),
            "{path}"
        );
    }
    let activity = browser.get("/ui/activity").await;
    assert!(
        activity
            .html
            .contains("<span class=\"badge plain\">info</span>")
    );

    // Approved, then a second version: now there is something to roll back to and compare.
    let decided = browser
        .post(&format!("/ui/approvals/tools/{tool}/1/approve"), &[])
        .await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER);
    let updated = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&admin),
            json!({"python_code": "def main(city: str) -> str:\n    return city.upper()\n"}),
        )
        .await;
    assert!(updated.status.is_success(), "{}", updated.text);
    let two = browser.get(&format!("/ui/tools/{tool}")).await;
    assert_clean_page("tool page, two versions", &two);
    assert!(
        two.html
            .contains("<span class=\"badge ok\">approved</span>")
    );
    assert!(
        two.html
            .contains("<select id=\"rollback-version\" name=\"version\"><option value=\"1\">1</option></select>"),
        "{}",
        two.html
    );
    assert!(two.html.contains("Diff from"));
    let review = browser.get(&format!("/ui/approvals/tools/{tool}/2")).await;
    assert!(
        review
            .html
            .contains("<span class=\"badge wait\">draft</span>")
    );
    assert!(
        review.html.contains("data-key=\"d\""),
        "a diff, so a `d` key"
    );
}

/// A webhook receiver on 127.0.0.1 that answers 200 and counts: its base URL and the count.
async fn counting_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_webhooks_are_managed_and_tested_from_the_settings_page() {
    use std::sync::atomic::Ordering;
    let app = TestApp::sqlite().await;
    let (base, hits) = counting_receiver().await;
    let mut browser = set_up(&app).await;
    let settings = browser.get("/ui/settings").await;
    assert!(settings.html.contains("/ui/settings/alerts"));
    let page = browser.get("/ui/settings/alerts").await;
    assert_clean_page("/ui/settings/alerts", &page);
    // A refused URL says why and stores nothing.
    let refused = browser
        .post(
            "/ui/settings/alerts/webhooks",
            &[
                ("name", "ops"),
                ("flavour", "slack"),
                ("url", "http://hooks.example.com/x"),
            ],
        )
        .await;
    assert!(browser.follow(refused).await.html.contains("use https://"));
    let secret = format!("{base}/hook?key=VERYSECRET1234");
    let added = browser
        .post(
            "/ui/settings/alerts/webhooks",
            &[("name", "ops"), ("flavour", "generic"), ("url", &secret)],
        )
        .await;
    let page = browser.follow(added).await;
    assert!(page.html.contains("Webhook ops added."), "{}", page.html);
    assert!(!page.html.contains("VERYSECRET"), "the URL is shown masked");
    assert!(page.html.contains("…1234"));
    assert_clean_page("/ui/settings/alerts", &page);
    let id = origin::alerts::webhooks::list(&app.state.db).await.unwrap()[0]
        .id
        .clone();
    // Without the CSRF token: refused, nothing sent or changed.
    let forged = browser
        .post_raw(&format!("/ui/settings/alerts/webhooks/{id}/test"), &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = browser
        .post_raw(
            &format!("/ui/settings/alerts/webhooks/{id}/delete"),
            &[("_csrf", "0".repeat(64).as_str()), ("confirm_name", "ops")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(app.count("alert_webhooks").await, 1);

    let tested = browser
        .post(&format!("/ui/settings/alerts/webhooks/{id}/test"), &[])
        .await;
    let page = browser.follow(tested).await;
    assert!(
        page.html.contains("Test alert delivered to ops."),
        "{}",
        page.html
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_clean_page("/ui/settings/alerts", &page);
    let disabled = browser
        .post(
            &format!("/ui/settings/alerts/webhooks/{id}"),
            &[("action", "disable")],
        )
        .await;
    assert!(browser.follow(disabled).await.html.contains(">disabled<"));
    let bad = browser
        .post(
            "/ui/settings/alerts",
            &[
                ("approval_wait_minutes", "0"),
                ("sign_in_failures", "20"),
                ("sign_in_window_minutes", "5"),
                ("dedup_window_minutes", "15"),
                ("per_webhook_per_minute", "10"),
            ],
        )
        .await;
    assert!(
        browser
            .follow(bad)
            .await
            .html
            .contains("approval_wait_minutes must be between")
    );
    let saved = browser
        .post(
            "/ui/settings/alerts",
            &[
                ("approval_wait_minutes", "30"),
                ("sign_in_failures", "20"),
                ("sign_in_window_minutes", "5"),
                ("dedup_window_minutes", "15"),
                ("per_webhook_per_minute", "10"),
            ],
        )
        .await;
    assert!(
        browser
            .follow(saved)
            .await
            .html
            .contains("Alert settings saved.")
    );
    assert_eq!(app.state.alerts.settings().approval_wait_minutes, 30);
    let kept = browser
        .post(
            &format!("/ui/settings/alerts/webhooks/{id}/delete"),
            &[("confirm_name", "op")],
        )
        .await;
    assert!(browser.follow(kept).await.html.contains("type the webhook"));
    let deleted = browser
        .post(
            &format!("/ui/settings/alerts/webhooks/{id}/delete"),
            &[("confirm_name", "ops")],
        )
        .await;
    assert!(
        browser
            .follow(deleted)
            .await
            .html
            .contains("Webhook deleted.")
    );
    assert_eq!(app.count("alert_webhooks").await, 0);

    // A viewer neither sees the page nor changes anything through it.
    let admin = app.login("admin", PASSWORD).await.token("access_token");
    app.user_with_role(&admin, "victor", "viewer").await;
    let mut viewer = Browser::new(&app);
    viewer.sign_in("victor", PASSWORD).await;
    assert_eq!(
        viewer.get("/ui/settings/alerts").await.status,
        StatusCode::FORBIDDEN
    );
    assert!(
        !viewer
            .get("/ui/settings")
            .await
            .html
            .contains("/ui/settings/alerts")
    );
    let refused = viewer
        .post(
            "/ui/settings/alerts/webhooks",
            &[("name", "sneaky"), ("flavour", "generic"), ("url", &secret)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count("alert_webhooks").await, 0);
}

/// The rate limits on the Settings page: saved through the form and in force on `/mcp` at
/// once; a bad number is refused with its reason and changes nothing.
async fn the_settings_page_changes_the_rate_limits(app: TestApp) {
    let mut browser = set_up(&app).await;
    let page = browser.get("/ui/settings").await;
    assert!(
        page.html.contains("id=\"mcp_per_address_burst\"") && page.html.contains("value=\"300\""),
        "{}",
        page.html
    );
    let mut fields = [
        ("api_per_address_per_minute", "600"),
        ("api_per_address_burst", "200"),
        ("api_per_account_per_minute", "600"),
        ("api_per_account_burst", "200"),
        ("mcp_per_address_per_minute", "60"),
        ("mcp_per_address_burst", "2"),
    ];
    let saved = browser.post("/ui/settings/rate-limits", &fields).await;
    let page = browser.follow(saved).await;
    assert!(page.html.contains("Rate limits saved."), "{}", page.html);
    let ping = || {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}});
        TestApp::request(Method::POST, "/mcp", None, LOCAL)
            .header(header::HOST, "127.0.0.1")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let statuses = [
        app.send(ping()).await.status,
        app.send(ping()).await.status,
        app.send(ping()).await.status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    fields[5] = ("mcp_per_address_burst", "0");
    let refused = browser.post("/ui/settings/rate-limits", &fields).await;
    let page = browser.follow(refused).await;
    assert!(
        page.html
            .contains("mcp_per_address.burst must be between 1"),
        "{}",
        page.html
    );
    let stored = origin::ratelimit::limits::stored(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored.mcp_per_address.burst, 2);
}

/// The Remote wizard through its forms, with the API unreachable: the step fails, the page
/// names the step, the reason and what to do, and every element the browser test relies on is
/// there. Viewers never see it.
async fn the_remote_page_shows_a_failed_step_with_what_to_do(app: TestApp) {
    let app = app.with_cloudflare(origin::cloudflare::Config {
        // Nothing listens on the discard port: "Cloudflare could not be reached".
        api_url: "http://127.0.0.1:9/client/v4".into(),
        ..origin::cloudflare::Config::default()
    });
    let mut browser = set_up(&app).await;
    let page = browser.get("/ui/remote").await;
    assert_clean_page("/ui/remote", &page);
    for step in [
        "token",
        "tunnel",
        "vpc_service",
        "worker",
        "access",
        "connect",
    ] {
        assert!(
            page.html
                .contains(&format!("<section class=\"card\" id=\"step-{step}\"")),
            "{step}"
        );
        assert!(page.html.contains(&format!("id=\"form-{step}\"")), "{step}");
    }
    assert_eq!(page.html.matches(">not started</span>").count(), 6);
    for element in [
        "name=\"api_token\"",
        "name=\"public_url\"",
        "name=\"allowed_emails\"",
        "id=\"form-teardown\"",
        "name=\"confirm\"",
    ] {
        assert!(page.html.contains(element), "{element}");
    }
    let failed = browser
        .post("/ui/remote/token", &[("api_token", "abc123")])
        .await;
    assert_eq!(failed.location(), "/ui/remote#step-token");
    let shown = browser.follow(failed).await;
    assert!(
        shown
            .html
            .contains("Step 1 (API token) failed: Cloudflare could not be reached"),
        "{}",
        shown.html
    );
    assert!(shown.html.contains("class=\"flash error step-error\""));
    assert!(
        shown
            .html
            .contains("What to do: Check that this host reaches the Cloudflare API")
    );
    assert!(shown.html.contains("step-status\">failed</span>"));
    // A later step before the first is done: refused with the reason.
    let early = browser
        .post("/ui/remote/worker", &[("public_url", "")])
        .await;
    let early = browser.follow(early).await;
    assert!(
        early
            .html
            .contains("step 3 (Workers VPC service) must be done first"),
        "{}",
        early.html
    );
    // Teardown needs the box ticked.
    let unticked = browser.post("/ui/remote/teardown", &[]).await;
    let unticked = browser.follow(unticked).await;
    assert!(unticked.html.contains("tick the box to confirm"));
    // Edge settings: a bad origin is refused with the rule, a good one is kept with the reason
    // it is not in KV yet.
    let bad = browser
        .post(
            "/ui/settings/edge",
            &[
                ("cors_origins", "http://plain.example.com"),
                ("redirect_uris", ""),
            ],
        )
        .await;
    let bad = browser.follow(bad).await;
    assert!(bad.html.contains("must use https"), "{}", bad.html);
    let good = browser
        .post(
            "/ui/settings/edge",
            &[
                ("cors_origins", "https://app.example.com"),
                ("redirect_uris", ""),
            ],
        )
        .await;
    let good = browser.follow(good).await;
    assert!(good.html.contains("id=\"edge-sync\""));
    assert!(good.html.contains("not written to KV yet"), "{}", good.html);
    assert!(good.html.contains(">https://app.example.com</textarea>"));
    // Viewers: no link, no page.
    let admin_token = app.login("admin", PASSWORD).await.token("access_token");
    app.user_with_role(&admin_token, "viewer", "viewer").await;
    let mut viewer = Browser::new(&app);
    viewer.sign_in("viewer", PASSWORD).await;
    let dashboard = viewer.get("/ui").await;
    assert!(!dashboard.html.contains("href=\"/ui/remote\""));
    assert_eq!(viewer.get("/ui/remote").await.status, StatusCode::FORBIDDEN);
    assert!(!viewer.get("/ui/settings").await.html.contains("form-edge"));
}

/// A multipart body: `(name, file name, content)` parts, in order.
fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match file {
            Some(file) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/json\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

async fn export_and_import_through_the_page(app: TestApp) {
    let app = app.with_sandbox().await;
    let mut browser = set_up(&app).await;
    let token = app.login("admin", PASSWORD).await.token("access_token");
    let server = app.create_server(&token, "weather").await;
    app.create_tool(
        &token,
        &server,
        "forecast",
        "def main() -> int:\n    return 1\n",
    )
    .await;

    let page = browser.get("/ui/transfer").await;
    assert_clean_page("/ui/transfer", &page);
    assert!(
        page.html.contains("href=\"/ui/transfer/export\""),
        "{}",
        page.html
    );
    assert!(page.html.contains("enctype=\"multipart/form-data\""));
    let download = browser.get("/ui/transfer/export").await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.html);
    assert!(
        download.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let file = download.html.clone();
    assert!(file.contains("\"signature\""), "{file}");

    let boundary = "mcpboxtestboundary";
    let send = |parts: Vec<(&'static str, Option<&'static str>, Vec<u8>)>| {
        let parts: Vec<(&str, Option<&str>, &[u8])> = parts
            .iter()
            .map(|(n, f, c)| (*n, *f, c.as_slice()))
            .collect();
        browser
            .request(Method::POST, "/ui/transfer/import")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(multipart(boundary, &parts)))
            .unwrap()
    };
    let csrf = browser.csrf.clone().into_bytes();
    // Wrong token, no token, the token after the file: 403, nothing imported.
    for parts in [
        vec![
            ("_csrf", None, vec![b'0'; 64]),
            ("file", Some("e.json"), file.clone().into_bytes()),
        ],
        vec![("file", Some("e.json"), file.clone().into_bytes())],
        vec![
            ("file", Some("e.json"), file.clone().into_bytes()),
            ("_csrf", None, csrf.clone()),
        ],
    ] {
        let refused = app.send(send(parts)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    }
    assert_eq!(app.count("servers").await, 1);
    // A tampered file: back to the page with the reason.
    let tampered = file.replace("return 1", "return 2");
    let refused = app
        .send(send(vec![
            ("_csrf", None, csrf.clone()),
            ("file", Some("e.json"), tampered.into_bytes()),
        ]))
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.text);
    let flash = refused.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(flash.contains("signature+does+not+match"), "{flash}");
    assert_eq!(app.count("servers").await, 1);
    // The file as downloaded: imported under the suffix, the report on the page.
    let imported = app
        .send(send(vec![
            ("_csrf", None, csrf.clone()),
            ("file", Some("e.json"), file.into_bytes()),
            ("source_key", None, Vec::new()),
        ]))
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert!(
        imported.text.contains("Import finished"),
        "{}",
        imported.text
    );
    assert!(
        imported.text.contains("weather_imported"),
        "{}",
        imported.text
    );
    assert_eq!(app.count("servers").await, 2);
    // Only admins see and use the page.
    let viewer_token = app.user_with_role(&token, "vera", "viewer").await;
    drop(viewer_token);
    let mut viewer = Browser::new(&app);
    viewer.sign_in("vera", PASSWORD).await;
    assert_eq!(
        viewer.get("/ui/transfer").await.status,
        StatusCode::FORBIDDEN
    );
    assert!(!viewer.get("/ui").await.html.contains("/ui/transfer"));
}

/// What a version declares besides its code is bound by the approval, so the reviewer sees
/// it: the annotations and output schema on the review and tool pages, and a change of them
/// in the diff against the approved version.
async fn the_review_page_shows_annotations_and_output_schema(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "files").await;
    let code = "def main(path: str) -> list[str]:\n    return [path]\n";
    let made = app
        .post(
            &format!("/api/servers/{server}/tools"),
            Some(&admin),
            json!({"name": "list", "python_code": code,
                   "annotations": {"readOnlyHint": true}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let tool = made.body["id"].as_str().unwrap().to_owned();
    app.approve_tool(&admin, &tool).await;
    let changed = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&admin),
            json!({"annotations": {"readOnlyHint": false, "destructiveHint": true}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;
    let first = browser.get(&format!("/ui/approvals/tools/{tool}/1")).await;
    assert_clean_page("review page", &first);
    let text = visible_text(&first.html);
    assert!(text.contains("annotations: readOnlyHint: true"), "{text}");
    assert!(text.contains("output schema:"), "{text}");
    assert!(
        ["&quot;array&quot;", "&#34;array&#34;", "\"array\""]
            .iter()
            .any(|spelling| text.contains(spelling)),
        "{text}"
    );
    let second = browser.get(&format!("/ui/approvals/tools/{tool}/2")).await;
    assert_clean_page("review page", &second);
    let text = visible_text(&second.html);
    assert!(
        text.contains("annotations: readOnlyHint: false, destructiveHint: true"),
        "{text}"
    );
    // The diff against approved version 1 shows the change the code diff does not.
    assert!(
        text.contains("-annotations: readOnlyHint: true")
            && text.contains("+annotations: readOnlyHint: false, destructiveHint: true"),
        "{text}"
    );
    let page = browser.get(&format!("/ui/tools/{tool}")).await;
    assert_clean_page("tool page", &page);
    assert!(
        visible_text(&page.html).contains("annotations: readOnlyHint: true"),
        "the tool page shows the approved version's"
    );
}

/// A resource's declared URI and blob, and a prompt's attachments, are on the review page in
/// words (where a tool's annotations are): a reviewer sees where it is served and what it
/// holds without reading base64.
async fn the_review_page_shows_what_a_resource_or_prompt_declares(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "pics").await;
    let made = app
        .post(
            &format!("/api/servers/{server}/resources"),
            Some(&admin),
            json!({"name": "logo", "content": {
                "uri": "test://static-binary", "mime_type": "image/png", "blob": "AAECAw=="}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let resource = made.body["id"].as_str().unwrap().to_owned();
    let made = app
        .post(
            &format!("/api/servers/{server}/prompts"),
            Some(&admin),
            json!({"name": "describe", "content": {
                "template": "Describe the image above.",
                "attachments": [{"type": "image", "mime_type": "image/png", "data": "AAECAw=="}]}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let prompt = made.body["id"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", PASSWORD).await;
    let page = browser
        .get(&format!("/ui/approvals/tools/{resource}/1"))
        .await;
    assert_clean_page("review page", &page);
    let text = visible_text(&page.html);
    assert!(
        text.contains("served at: test://static-binary on /servers/pics/mcp"),
        "{text}"
    );
    assert!(text.contains("a blob, image/png, 4 bytes"), "{text}");
    let page = browser
        .get(&format!("/ui/approvals/tools/{prompt}/1"))
        .await;
    assert_clean_page("review page", &page);
    let text = visible_text(&page.html);
    assert!(
        text.contains("messages before the text: 1. image, image/png, 4 bytes"),
        "{text}"
    );
}
