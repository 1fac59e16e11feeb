//! Rate-limiter overhead: the limiter's check alone (one bucket, two buckets, a table at its cap
//! with a new client each time), the bearer-token account lookup, the headers, and the whole
//! guard through the router (an unknown `/api/…` path, which is limited, against an unknown
//! path outside it, which is not: both are the same 404 otherwise). Prints ns per request.
//!
//! Run: `cargo bench -p mcpbox-origin --bench ratelimit`.
//!
//! Measured (2-core machine shared with other builds, load average 8, so the per-call means are
//! inflated): the guard through the router 1.4 µs (median difference, three runs); `check`
//! 0.5–1 µs for one or two buckets and at the table's cap; the bearer-token JWT check 6–18 µs,
//! paid only by requests with a token (whose handler verifies it again against the database).

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use origin::activity::Audit;
use origin::app::AppState;
use origin::auth::tokens::{AccessClaims, JwtKeys, account_of, encode_access};
use origin::crypto::Keyring;
use origin::dispatch::Sandbox;
use origin::ratelimit::guard::Key;
use origin::ratelimit::limits::{LimitsPatch, RulePatch, TABLE_CAP, set_recorded};
use origin::ratelimit::{Limiter, Rule, Verdict, write_headers};
use tower::ServiceExt;

const RUNS: u32 = 200_000;
const RULE: Rule = Rule {
    per_minute: 1_000_000,
    burst: 100_000,
};

fn per_call(label: &str, runs: u32, mut f: impl FnMut(u32)) {
    for n in 0..runs / 10 {
        f(n);
    }
    let started = Instant::now();
    for n in 0..runs {
        f(n);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(runs);
    println!("{label}: {ns:.0} ns");
}

#[tokio::main]
async fn main() {
    let address = Key::Api(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let account = Key::Account("0190c0de-0000-7000-8000-000000000001".into());
    let limiter = Limiter::new(TABLE_CAP);
    let now = Instant::now();
    per_call("check, one bucket", RUNS, |n| {
        let at = now + Duration::from_micros(u64::from(n) * 100);
        black_box(limiter.check(&[(address.clone(), "api-address", RULE)], at));
    });
    per_call("check, address + account", RUNS, |n| {
        let at = now + Duration::from_micros(u64::from(n) * 100);
        black_box(limiter.check(
            &[
                (address.clone(), "api-address", RULE),
                (account.clone(), "api-account", RULE),
            ],
            at,
        ));
    });
    // A table at its cap of active clients, a new one each request: the evicting path.
    let full = Limiter::new(TABLE_CAP);
    for n in 0..TABLE_CAP as u32 {
        full.check(
            &[(Key::Api(IpAddr::V4(n.into())), "api-address", RULE)],
            now,
        );
    }
    per_call(
        "check, table at its cap, a new client each time",
        RUNS,
        |n| {
            let ip = IpAddr::V4((0x0a00_0000 + n).into());
            black_box(full.check(&[(Key::Api(ip), "api-address", RULE)], now));
        },
    );
    assert!(full.len() <= TABLE_CAP);

    let keys = JwtKeys::from_keyring(&Keyring::new([7; 32], None));
    let issued = chrono::Utc::now().timestamp();
    let token = encode_access(
        &keys,
        &AccessClaims {
            sub: "0190c0de-0000-7000-8000-000000000001".into(),
            role: "admin".into(),
            typ: "access".into(),
            aud: "mcpbox-api".into(),
            ep: 0,
            jti: "bench".into(),
            iat: issued,
            exp: issued + 900,
        },
    )
    .expect("token");
    assert!(account_of(&keys, &token).is_some());
    per_call("account of a bearer token (JWT check)", RUNS / 10, |_| {
        black_box(account_of(&keys, &token));
    });
    let Verdict::Allowed(standings) = limiter.check(
        &[
            (address.clone(), "api-address", RULE),
            (account.clone(), "api-account", RULE),
        ],
        now + Duration::from_secs(3600),
    ) else {
        panic!("refused");
    };
    per_call("headers, two policies", RUNS, |_| {
        let mut headers = HeaderMap::new();
        write_headers(&mut headers, &standings);
        black_box(headers);
    });

    let (_dir, db) = common::open_db().await;
    let state = AppState::new(
        db,
        Keyring::new([7; 32], None),
        Sandbox::unavailable("no sandbox in the rate-limit benchmark"),
    );
    // The default of 600 a minute would refuse most of these (a cheaper path): raise it.
    let most = Some(RulePatch {
        per_minute: Some(1_000_000),
        burst: Some(100_000),
    });
    let patch = LimitsPatch {
        api_per_address: most,
        api_per_account: most,
        mcp_per_address: most,
    };
    let audit = Audit {
        actor: "bench".into(),
        request_id: None,
    };
    set_recorded(&state, &patch, &audit).await.expect("limits");
    let router = origin::app::router(state);
    let request = |path: &str| {
        Request::get(path)
            .extension(ConnectInfo(SocketAddr::from(([192, 0, 2, 9], 40000))))
            .body(Body::empty())
            .expect("request")
    };
    const ROUTER_RUNS: usize = 20_000;
    let mut timings = Vec::new();
    for path in ["/not-here", "/api/not-here"] {
        let mut samples = Vec::with_capacity(ROUTER_RUNS);
        for _ in 0..ROUTER_RUNS {
            let started = Instant::now();
            let answer = router.clone().oneshot(request(path)).await.expect("answer");
            samples.push(started.elapsed());
            assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        }
        samples.sort_unstable();
        let median = samples[samples.len() / 2];
        println!("router, {path} (404): median {} ns", median.as_nanos());
        timings.push(median);
    }
    println!(
        "guard through the router (median difference): {} ns",
        timings[1].as_nanos() as i128 - timings[0].as_nanos() as i128
    );
}
