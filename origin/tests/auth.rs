//! Admin authentication, attacked: every guard has a test that tries to get past it.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use origin::auth::tokens::{AccessClaims, JwtKeys, encode_access};
use origin::crypto::Keyring;
use serde_json::json;

on_both_backends!(
    setup_creates_the_first_admin_once,
    setup_rejects_bad_input_and_changes_nothing,
    concurrent_setups_create_one_admin,
    login_gives_tokens_that_work,
    wrong_credentials_get_one_message,
    failed_logins_are_throttled_per_ip,
    failed_logins_are_throttled_per_account,
    refresh_rotates_and_spends_the_old_token,
    spent_refresh_token_revokes_family,
    logout_revokes_the_access_token_and_the_refresh_family,
    logout_all_revokes_every_earlier_token,
    change_password_revokes_earlier_tokens,
    wrong_current_password_changes_nothing,
    forged_and_wrong_type_tokens_are_rejected,
    revocations_survive_a_restart,
    role_change_takes_effect_at_once,
    roles_gate_user_management,
    admin_manages_users,
    last_admin_cannot_be_removed,
    disabled_account_cannot_sign_in_or_use_tokens,
    simultaneous_wrong_sign_ins_are_counted_before_any_hashing,
    simultaneous_wrong_current_passwords_are_counted_before_any_hashing,
    password_checks_in_flight_are_bounded,
);

async fn setup_creates_the_first_admin_once(app: TestApp) {
    let status = app.get("/auth/status", None).await;
    assert_eq!(
        status.body,
        json!({"setup_required": true, "onboarding_completed": false})
    );
    let setup = app
        .post(
            "/auth/setup",
            None,
            json!({"username": ADMIN, "password": PASSWORD}),
        )
        .await;
    assert_eq!(setup.status, StatusCode::CREATED);
    assert_eq!(setup.body["role"], "admin");
    assert!(setup.body.get("password_hash").is_none());
    assert_eq!(
        app.get("/auth/status", None).await.body["setup_required"],
        false
    );
    let again = app
        .post(
            "/auth/setup",
            None,
            json!({"username": "other", "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "conflict");
    assert_eq!(app.count("users").await, 1);
}

async fn setup_rejects_bad_input_and_changes_nothing(app: TestApp) {
    let cases = [
        (
            json!({"username": "ab", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "9lives", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "x".repeat(51), "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "admin", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "admin", "password": "p".repeat(129)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "admin", "password": PASSWORD, "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!("admin"), StatusCode::UNPROCESSABLE_ENTITY),
        (json!(null), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, expected) in cases {
        let response = app.post("/auth/setup", None, body.clone()).await;
        assert_eq!(response.status, expected, "{body}: {}", response.text);
        response.error_code();
    }
    let malformed = app
        .send(
            TestApp::request(Method::POST, "/auth/setup", None, LOCAL)
                .header("content-type", "application/json")
                .body("{\"username\": ".into())
                .unwrap(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "bad_request");
    let wrong_type = app
        .send(
            TestApp::request(Method::POST, "/auth/setup", None, LOCAL)
                .header("content-type", "text/plain")
                .body(
                    json!({"username": ADMIN, "password": PASSWORD})
                        .to_string()
                        .into(),
                )
                .unwrap(),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.count("users").await, 0);
    assert_eq!(
        app.get("/auth/status", None).await.body["setup_required"],
        true
    );
}

async fn concurrent_setups_create_one_admin(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let attempts = (0..6).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            app.post(
                "/auth/setup",
                None,
                json!({"username": format!("admin{i}"), "password": PASSWORD}),
            )
            .await
            .status
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT)
    );
    assert_eq!(app.count("users").await, 1);
}

async fn login_gives_tokens_that_work(app: TestApp) {
    let login = app.admin().await;
    assert_eq!(login.body["token_type"], "bearer");
    assert_eq!(login.body["expires_in"], 900);
    let me = app
        .get("/auth/me", Some(&login.token("access_token")))
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], ADMIN);
    assert_eq!(me.body["role"], "admin");
    // Usernames are case-insensitive at sign-in.
    assert_eq!(app.login("ADMIN", PASSWORD).await.status, StatusCode::OK);
    // Only a hash of the refresh token is stored.
    let refresh = login.token("refresh_token");
    use sqlx::Row;
    let stored: Vec<String> = sqlx::query("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("token_hash").unwrap())
        .collect();
    assert!(
        stored
            .iter()
            .all(|hash| hash.len() == 64 && !refresh.contains(hash.as_str()))
    );
}

async fn wrong_credentials_get_one_message(app: TestApp) {
    app.admin().await;
    let wrong_password = app.login(ADMIN, "not the password").await;
    let unknown_user = app.login("nobody", PASSWORD).await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_user.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, unknown_user.body);
    let too_long = app.login(ADMIN, &"p".repeat(129)).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let no_auth = app.get("/auth/me", None).await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    assert!(no_auth.headers.contains_key("www-authenticate"));
}

async fn failed_logins_are_throttled_per_ip(app: TestApp) {
    app.admin().await;
    for _ in 0..5 {
        assert_eq!(
            app.login_from(ip(1), ADMIN, "wrong password!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused from that address now, with a Retry-After.
    let blocked = app.login_from(ip(1), ADMIN, PASSWORD).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.error_code(), "too_many_requests");
    let retry: u64 = blocked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address is not affected.
    assert_eq!(
        app.login_from(ip(2), ADMIN, PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn failed_logins_are_throttled_per_account(app: TestApp) {
    app.admin().await;
    for i in 0..10 {
        let response = app.login_from(ip(10 + i), ADMIN, "wrong password!").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = app.login_from(ip(100), ADMIN, PASSWORD).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers.contains_key("retry-after"));
}

async fn refresh_rotates_and_spends_the_old_token(app: TestApp) {
    let login = app.admin().await;
    let old = login.token("refresh_token");
    let rotated = app
        .post("/auth/refresh", None, json!({"refresh_token": old}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_ne!(rotated.token("refresh_token"), old);
    assert_eq!(
        app.get("/auth/me", Some(&rotated.token("access_token")))
            .await
            .status,
        StatusCode::OK
    );
    for bad in ["", "mbr_00", "garbage", &"mbr_".repeat(100)] {
        let response = app
            .post("/auth/refresh", None, json!({"refresh_token": bad}))
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}

async fn spent_refresh_token_revokes_family(app: TestApp) {
    let first = app.admin().await;
    let other_sign_in = app.login(ADMIN, PASSWORD).await;
    let r1 = first.token("refresh_token");
    let r2 = app
        .post("/auth/refresh", None, json!({"refresh_token": r1}))
        .await
        .token("refresh_token");
    let replay = app
        .post("/auth/refresh", None, json!({"refresh_token": r1}))
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(
        replay.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // The thief's replay killed the legitimate holder's newer token too...
    let after = app
        .post("/auth/refresh", None, json!({"refresh_token": r2}))
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // ...but not another sign-in's family.
    let other = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": other_sign_in.token("refresh_token")}),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
}

async fn logout_revokes_the_access_token_and_the_refresh_family(app: TestApp) {
    let login = app.admin().await;
    let access = login.token("access_token");
    let out = app
        .post(
            "/auth/logout",
            Some(&access),
            json!({"refresh_token": login.token("refresh_token")}),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(
        app.get("/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": login.token("refresh_token")}),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    // Logout without a body works too.
    let second = app.login(ADMIN, PASSWORD).await.token("access_token");
    let bare = app
        .send(
            TestApp::request(Method::POST, "/auth/logout", Some(&second), LOCAL)
                .body("".into())
                .unwrap(),
        )
        .await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.text);
    assert_eq!(
        app.get("/auth/me", Some(&second)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_all_revokes_every_earlier_token(app: TestApp) {
    let a = app.admin().await;
    let b = app.login(ADMIN, PASSWORD).await;
    let out = app
        .post(
            "/auth/logout-all",
            Some(&a.token("access_token")),
            json!({}),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK);
    for login in [&a, &b] {
        assert_eq!(
            app.get("/auth/me", Some(&login.token("access_token")))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let refresh = app
            .post(
                "/auth/refresh",
                None,
                json!({"refresh_token": login.token("refresh_token")}),
            )
            .await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    }
    let fresh = app.login(ADMIN, PASSWORD).await;
    assert_eq!(
        app.get("/auth/me", Some(&fresh.token("access_token")))
            .await
            .status,
        StatusCode::OK
    );
}

async fn change_password_revokes_earlier_tokens(app: TestApp) {
    let a = app.admin().await;
    let b = app.login(ADMIN, PASSWORD).await;
    let new_password = "a much better passphrase";
    let changed = app
        .post(
            "/auth/change-password",
            Some(&a.token("access_token")),
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    for login in [&a, &b] {
        assert_eq!(
            app.get("/auth/me", Some(&login.token("access_token")))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let refresh = app
            .post(
                "/auth/refresh",
                None,
                json!({"refresh_token": login.token("refresh_token")}),
            )
            .await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.get("/auth/me", Some(&changed.token("access_token")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.login(ADMIN, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login(ADMIN, new_password).await.status, StatusCode::OK);
}

async fn wrong_current_password_changes_nothing(app: TestApp) {
    let a = app.admin().await;
    let access = a.token("access_token");
    let wrong = app
        .post(
            "/auth/change-password",
            Some(&access),
            json!({"current_password": "not it at all", "new_password": "another good passphrase"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let weak = app
        .post(
            "/auth/change-password",
            Some(&access),
            json!({"current_password": PASSWORD, "new_password": "weak"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get("/auth/me", Some(&access)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.login(ADMIN, PASSWORD).await.status, StatusCode::OK);
}

async fn forged_and_wrong_type_tokens_are_rejected(app: TestApp) {
    let login = app.admin().await;
    let me = app
        .get("/auth/me", Some(&login.token("access_token")))
        .await;
    let id = me.body["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let claims = |typ: &str, role: &str, ep: i64, sub: &str, exp: i64| AccessClaims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        typ: typ.to_owned(),
        aud: "mcpbox-api".to_owned(),
        ep,
        jti: uuid::Uuid::now_v7().to_string(),
        iat: now,
        exp,
    };
    let keys = &app.state.jwt;
    let other_keys = JwtKeys::from_keyring(&Keyring::new([1; 32], None));
    // Sanity: a token forged with the right key and right claims is accepted, so the rejections
    // below are about the one thing each case changes.
    let good = encode_access(keys, &claims("access", "admin", 0, &id, now + 60)).unwrap();
    assert_eq!(
        app.get("/auth/me", Some(&good)).await.status,
        StatusCode::OK
    );
    let header_only = |token: &str| {
        let mut parts = token.splitn(3, '.');
        let (_h, payload) = (parts.next().unwrap(), parts.next().unwrap());
        // {"alg":"none","typ":"JWT"}
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let no_role = {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({"sub": id, "typ": "access", "aud": "mcpbox-api", "ep": 0, "jti": "x", "iat": now, "exp": now + 60})
                .to_string(),
        );
        let token = encode_access(keys, &claims("access", "admin", 0, &id, now + 60)).unwrap();
        let header = token.split('.').next().unwrap().to_owned();
        // Re-sign header.payload with the right key so only the missing role is wrong.
        use hmac::Mac;
        let secret = Keyring::new(KEY, None).derive("admin-jwt-hs256");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{header}.{payload}.{signature}")
    };
    let cases = [
        (
            "wrong key",
            encode_access(&other_keys, &claims("access", "admin", 0, &id, now + 60)).unwrap(),
        ),
        (
            "refresh type",
            encode_access(keys, &claims("refresh", "admin", 0, &id, now + 60)).unwrap(),
        ),
        (
            "no type",
            encode_access(keys, &claims("", "admin", 0, &id, now + 60)).unwrap(),
        ),
        (
            "unknown role",
            encode_access(keys, &claims("access", "superuser", 0, &id, now + 60)).unwrap(),
        ),
        (
            "empty role",
            encode_access(keys, &claims("access", "", 0, &id, now + 60)).unwrap(),
        ),
        (
            "role escalation",
            encode_access(keys, &claims("access", "viewer", 0, &id, now + 60)).unwrap(),
        ),
        (
            "old epoch",
            encode_access(keys, &claims("access", "admin", -1, &id, now + 60)).unwrap(),
        ),
        (
            "unknown user",
            encode_access(keys, &claims("access", "admin", 0, "nobody", now + 60)).unwrap(),
        ),
        (
            "expired",
            encode_access(keys, &claims("access", "admin", 0, &id, now - 60)).unwrap(),
        ),
        (
            "the UI's audience",
            encode_access(
                keys,
                &AccessClaims {
                    aud: "mcpbox-ui".into(),
                    ..claims("access", "admin", 0, &id, now + 60)
                },
            )
            .unwrap(),
        ),
        (
            "no audience",
            encode_access(
                keys,
                &AccessClaims {
                    aud: String::new(),
                    ..claims("access", "admin", 0, &id, now + 60)
                },
            )
            .unwrap(),
        ),
        ("alg none", header_only(&good)),
        ("missing role claim", no_role),
        ("garbage", "not.a.jwt".to_owned()),
        ("refresh token as access", login.token("refresh_token")),
    ];
    for (name, token) in cases {
        let response = app.get("/auth/me", Some(&token)).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            response.text
        );
        assert_eq!(response.error_code(), "unauthorized");
    }
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let response = app
        .get("/auth/me", Some(std::str::from_utf8(&tampered).unwrap()))
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    for header in ["Basic abc", "Bearer", "Bearer   ", "bearer x"] {
        let response = app
            .send(
                TestApp::request(Method::GET, "/auth/me", None, LOCAL)
                    .header("authorization", header)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{header}");
    }
}

async fn revocations_survive_a_restart(app: TestApp) {
    let login = app.admin().await;
    let access = login.token("access_token");
    app.post("/auth/logout", Some(&access), json!({})).await;
    let restarted = app.restarted();
    assert_eq!(
        restarted.get("/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = restarted.login(ADMIN, PASSWORD).await;
    restarted
        .post(
            "/auth/logout-all",
            Some(&again.token("access_token")),
            json!({}),
        )
        .await;
    let restarted_twice = restarted.restarted();
    let refresh = restarted_twice
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": again.token("refresh_token")}),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
}

async fn role_change_takes_effect_at_once(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let second = app.user_with_role(&admin, "second_admin", "admin").await;
    let second_access = second.token("access_token");
    let id = app.get("/auth/me", Some(&second_access)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let demoted = app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text);
    assert_eq!(
        app.get("/api/users", Some(&second_access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let relogin = app
        .login("second_admin", PASSWORD)
        .await
        .token("access_token");
    assert_eq!(
        app.get("/api/users", Some(&relogin)).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn roles_gate_user_management(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    for role in ["viewer", "approver"] {
        let token = app
            .user_with_role(&admin, &format!("a_{role}"), role)
            .await
            .token("access_token");
        assert_eq!(
            app.get("/auth/me", Some(&token)).await.status,
            StatusCode::OK
        );
        let list = app.get("/api/users", Some(&token)).await;
        assert_eq!(list.status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(list.error_code(), "forbidden");
        let create = app
            .post(
                "/api/users",
                Some(&token),
                json!({"username": "sneaky", "password": PASSWORD, "role": "admin"}),
            )
            .await;
        assert_eq!(create.status, StatusCode::FORBIDDEN, "{role}");
    }
    assert_eq!(app.count("users").await, 3);
    assert_eq!(
        app.get("/api/users", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn admin_manages_users(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let created = app
        .post(
            "/api/users",
            Some(&admin),
            json!({"username": "Reviewer", "password": PASSWORD, "role": "approver"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let duplicate = app
        .post(
            "/api/users",
            Some(&admin),
            json!({"username": "reviewer", "password": PASSWORD, "role": "viewer"}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{}", duplicate.text);
    for (body, status) in [
        (
            json!({"username": "x1y", "password": PASSWORD, "role": "root"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "x1y", "password": "short", "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "-x", "password": PASSWORD, "role": "viewer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        assert_eq!(
            app.post("/api/users", Some(&admin), body).await.status,
            status
        );
    }
    for i in 0..3 {
        app.post(
            "/api/users",
            Some(&admin),
            json!({"username": format!("viewer{i}"), "password": PASSWORD, "role": "viewer"}),
        )
        .await;
    }
    let page = app.get("/api/users?page=2&page_size=2", Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body["total"], 5);
    assert_eq!(page.body["pages"], 3);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/api/users?page_size=1000", Some(&admin))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/api/users?page=abc", Some(&admin)).await.status,
        StatusCode::BAD_REQUEST
    );
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/users/{id}"), Some(&admin))
            .await
            .body["username"],
        "Reviewer"
    );
    assert_eq!(
        app.get("/api/users/nope", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
    let empty = app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_role = app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({"role": "god"}),
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn last_admin_cannot_be_removed(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let id = app.get("/auth/me", Some(&admin)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [json!({"is_active": false}), json!({"role": "approver"})] {
        let response = app
            .call(
                Method::PATCH,
                &format!("/api/users/{id}"),
                Some(&admin),
                body,
            )
            .await;
        assert_eq!(response.status, StatusCode::CONFLICT, "{}", response.text);
    }
    // Nothing was applied: the admin's token still works and the role is unchanged.
    let me = app.get("/auth/me", Some(&admin)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["is_active"], true);
}

async fn disabled_account_cannot_sign_in_or_use_tokens(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let viewer = app.user_with_role(&admin, "watcher", "viewer").await;
    let id = app
        .get("/auth/me", Some(&viewer.token("access_token")))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let disabled = app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.body["is_active"], false);
    assert_eq!(
        app.get("/auth/me", Some(&viewer.token("access_token")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": viewer.token("refresh_token")}),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("watcher", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.call(
        Method::PATCH,
        &format!("/api/users/{id}"),
        Some(&admin),
        json!({"is_active": true}),
    )
    .await;
    assert_eq!(app.login("watcher", PASSWORD).await.status, StatusCode::OK);
}

/// Forty wrong passwords for one account from one address, all at once: the throttle counts
/// each attempt before its password is checked, so only the first five are hashed and the rest
/// get 429 without any Argon2 work (counted by the pool, not timed). Before, every attempt
/// passed the check before any failure was recorded: forty 401s and forty hashes of 19 MiB.
async fn simultaneous_wrong_sign_ins_are_counted_before_any_hashing(app: TestApp) {
    app.admin().await;
    let before = app.state.passwords.stats().verified;
    let attempts = (0..40).map(|_| app.login_from(ip(7), ADMIN, "wrong password!"));
    let answers = futures_util::future::join_all(attempts).await;
    let count = |status: StatusCode| answers.iter().filter(|a| a.status == status).count();
    assert_eq!(count(StatusCode::UNAUTHORIZED), 5);
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 35);
    assert!(
        answers
            .iter()
            .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
            .all(|a| a.headers.contains_key("retry-after"))
    );
    assert_eq!(app.state.passwords.stats().verified - before, 5);
    // The address stays locked for the minute, even for the right password (as before).
    assert_eq!(
        app.login_from(ip(7), ADMIN, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(app.state.passwords.stats().verified - before, 5);
    // A right password gives its attempt back: an address that signs in five times is fine.
    for _ in 0..6 {
        assert_eq!(
            app.login_from(ip(8), ADMIN, PASSWORD).await.status,
            StatusCode::OK
        );
    }
}

/// The same attack on the password change of a signed-in account (whose token leaked).
async fn simultaneous_wrong_current_passwords_are_counted_before_any_hashing(app: TestApp) {
    let access = app.admin().await.token("access_token");
    let before = app.state.passwords.stats();
    let attempts = (0..40).map(|_| {
        app.call_from(
            ip(9),
            Method::POST,
            "/auth/change-password",
            Some(&access),
            json!({"current_password": "not the password", "new_password": "a new long passphrase"}),
        )
    });
    let answers = futures_util::future::join_all(attempts).await;
    let count = |status: StatusCode| answers.iter().filter(|a| a.status == status).count();
    assert_eq!(count(StatusCode::UNAUTHORIZED), 5);
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 35);
    let after = app.state.passwords.stats();
    assert_eq!(after.verified - before.verified, 5);
    assert_eq!(after.hashed, before.hashed, "no new password was hashed");
    assert_eq!(app.login(ADMIN, PASSWORD).await.status, StatusCode::OK);
}

/// Sixty wrong sign-ins from sixty addresses for sixty names at once (the throttle cannot help):
/// no more Argon2 runs at once than the pool's slots, the excess is refused with 503, a
/// readable message and `Retry-After` (never queued without bound), and the pool recovers.
async fn password_checks_in_flight_are_bounded(app: TestApp) {
    app.admin().await;
    let before = app.state.passwords.stats();
    let app = &app;
    let attempts = (0..60u8).map(|i| {
        let name = format!("nobody{i}");
        async move { app.login_from(ip(100 + i), &name, "wrong password!").await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut busy = 0;
    for answer in &answers {
        match answer.status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(answer.error_code(), "busy", "{}", answer.text);
                assert!(answer.headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    let after = app.state.passwords.stats();
    assert!(after.peak <= after.slots, "{after:?}");
    assert_eq!(after.running, 0);
    let verified = after.verified - before.verified;
    assert_eq!(verified as usize + busy, 60, "{after:?}");
    assert!(verified as usize >= after.slots, "{after:?}");
    // A refusal for load counts against nobody: the same address and name try again.
    assert_eq!(
        app.login_from(ip(100), ADMIN, PASSWORD).await.status,
        StatusCode::OK
    );
}
