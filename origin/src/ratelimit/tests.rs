use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const RULE: Rule = Rule {
    per_minute: 60,
    burst: 3,
};

fn one(limiter: &Limiter<u32>, key: u32, rule: Rule, at: Instant) -> Verdict {
    limiter.check(&[(key, "test", rule)], at)
}

fn allowed(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Allowed(_))
}

#[test]
fn a_burst_passes_then_the_rate_with_the_wait_and_what_is_left() {
    let limiter = Limiter::new(100);
    let start = Instant::now();
    let left: Vec<u32> = (0..3)
        .map(|_| match one(&limiter, 1, RULE, start) {
            Verdict::Allowed(standings) => standings[0].remaining,
            refused => panic!("{refused:?}"),
        })
        .collect();
    assert_eq!(left, [2, 1, 0]);
    let Verdict::Refused {
        retry_after,
        standings,
    } = one(&limiter, 1, RULE, start)
    else {
        panic!("the fourth request passed");
    };
    assert_eq!(retry_after, Duration::from_secs(1));
    assert_eq!(standings[0].remaining, 0);
    assert_eq!(standings[0].reset, Duration::from_secs(3));
    // A refusal is not charged: one interval later exactly one more passes.
    let later = start + Duration::from_secs(1);
    assert!(allowed(&one(&limiter, 1, RULE, later)));
    assert!(!allowed(&one(&limiter, 1, RULE, later)));
    // Another key has its own bucket.
    assert!(allowed(&one(&limiter, 2, RULE, start)));
}

#[test]
fn several_buckets_are_charged_together_or_not_at_all() {
    let limiter = Limiter::new(100);
    let now = Instant::now();
    let tight = Rule {
        per_minute: 60,
        burst: 1,
    };
    let both = [(1, "address", RULE), (2, "account", tight)];
    assert!(allowed(&limiter.check(&both, now)));
    // The account is empty: refused, and the address is not charged for it.
    let Verdict::Refused { standings, .. } = limiter.check(&both, now) else {
        panic!("passed with an empty account bucket");
    };
    assert_eq!(
        standings[0].remaining, 2,
        "address untouched: {standings:?}"
    );
    assert_eq!(standings[1].remaining, 0);
    assert!(allowed(&one(&limiter, 1, RULE, now)));
    assert!(allowed(&one(&limiter, 1, RULE, now)));
    assert!(!allowed(&one(&limiter, 1, RULE, now)));
}

#[test]
fn a_changed_rule_applies_to_the_next_request() {
    let limiter = Limiter::new(100);
    let now = Instant::now();
    let wide = Rule {
        per_minute: 6000,
        burst: 100,
    };
    for _ in 0..5 {
        assert!(allowed(&one(&limiter, 1, wide, now)));
    }
    // Five were spent at 6000/min: 50 ms ahead. At 60/min with a burst of 3 (2 s of
    // tolerance), two more fit (1.05 s, 2.05 s ahead), the third does not.
    assert!(allowed(&one(&limiter, 1, RULE, now)));
    assert!(allowed(&one(&limiter, 1, RULE, now)));
    assert!(!allowed(&one(&limiter, 1, RULE, now)));
}

/// A flood of distinct clients (one request each) never grows the table past its cap, and a
/// client that is being throttled is not forgotten for them (its bucket is the emptiest).
#[test]
fn the_table_stays_within_its_cap_and_keeps_the_throttled() {
    let cap = 1_000;
    let limiter = Limiter::new(cap);
    let now = Instant::now();
    for _ in 0..3 {
        assert!(allowed(&one(&limiter, 0, RULE, now)));
    }
    assert!(!allowed(&one(&limiter, 0, RULE, now)));
    let mut largest = 0;
    for key in 1..=200_000u32 {
        let at = now + Duration::from_micros(u64::from(key));
        assert!(allowed(&one(&limiter, key, RULE, at)));
        largest = largest.max(limiter.len());
    }
    assert!(largest <= cap, "{largest} buckets for a cap of {cap}");
    assert!(
        !allowed(&one(&limiter, 0, RULE, now + Duration::from_millis(200))),
        "the throttled client got a fresh bucket"
    );
}

#[test]
fn full_buckets_are_forgotten_before_any_other() {
    let limiter = Limiter::new(100);
    let now = Instant::now();
    for key in 0..100 {
        assert!(allowed(&one(&limiter, key, RULE, now)));
    }
    assert_eq!(limiter.len(), 100);
    // One interval later every bucket is full again: a new client sweeps them all (nothing is
    // lost by forgetting a full bucket).
    let later = now + Duration::from_secs(1);
    assert!(allowed(&one(&limiter, 1_000, RULE, later)));
    assert_eq!(limiter.len(), 1);
}

/// The same table in real use: synthetic IPv4 and IPv6 clients through `client_key`.
#[test]
fn distinct_addresses_are_bounded_and_ipv6_counts_per_64() {
    let limiter = Limiter::new(500);
    let now = Instant::now();
    for n in 0..20_000u32 {
        let v4 = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        let v6 = IpAddr::V6(Ipv6Addr::from((u128::from(n) << 64) | 1));
        for ip in [v4, v6] {
            let verdict = limiter.check(&[(client_key(ip), "test", RULE)], now);
            assert!(allowed(&verdict));
        }
    }
    assert!(limiter.len() <= 500, "{}", limiter.len());
    // Every host of one /64 shares a bucket.
    let limiter = Limiter::new(100);
    let host = |n: u128| IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | n));
    for n in 0..3 {
        assert!(allowed(
            &limiter.check(&[(client_key(host(n)), "test", RULE)], now)
        ));
    }
    assert!(!allowed(
        &limiter.check(&[(client_key(host(99)), "test", RULE)], now)
    ));
    // An IPv4-mapped address is its IPv4 address.
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
}

#[test]
fn the_headers_follow_the_draft_and_name_the_tightest_bucket() {
    let limiter = Limiter::new(100);
    let now = Instant::now();
    let account = Rule {
        per_minute: 600,
        burst: 200,
    };
    let Verdict::Allowed(standings) = limiter.check(
        &[(1, "api-address", RULE), (2, "api-account", account)],
        now,
    ) else {
        panic!("refused");
    };
    let mut headers = HeaderMap::new();
    write_headers(&mut headers, &standings);
    let get = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(
        get("ratelimit-policy"),
        "\"api-address\";q=3;w=3, \"api-account\";q=200;w=20"
    );
    assert_eq!(
        get("ratelimit"),
        "\"api-address\";r=2;t=1, \"api-account\";r=199;t=1"
    );
    assert_eq!(get("x-ratelimit-limit"), "3");
    assert_eq!(get("x-ratelimit-remaining"), "2");
    let reset: u64 = get("x-ratelimit-reset").parse().unwrap();
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((unix..=unix + 2).contains(&reset), "{reset} vs {unix}");
}

#[test]
fn waits_round_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
}
