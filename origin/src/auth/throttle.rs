//! Failed-login throttling, per client IP and per account.
//!
//! Counting failures (not attempts) means a person who types the password right is never slowed
//! down, while guessing is capped at a few tries a minute from one address and a few more per
//! account from anywhere. State is in memory: it resets on restart and is per replica, which is
//! acceptable for a bound on guessing speed (it is not an audit record).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_failures: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Account(String),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug)]
pub struct LoginThrottle {
    per_ip: Limit,
    per_account: Limit,
    /// Failure windows by key. A std mutex: held for a map operation only, never across `.await`.
    windows: Mutex<HashMap<Key, Window>>,
}

/// Past this many tracked keys, expired windows are swept on the next failure, so a flood of
/// distinct addresses cannot grow the map without bound.
const SWEEP_THRESHOLD: usize = 10_000;

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(
            Limit {
                max_failures: 5,
                window: Duration::from_secs(60),
            },
            Limit {
                max_failures: 10,
                window: Duration::from_secs(600),
            },
        )
    }
}

impl LoginThrottle {
    pub fn new(per_ip: Limit, per_account: Limit) -> LoginThrottle {
        LoginThrottle {
            per_ip,
            per_account,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when either the address or the account is locked out for `wait` longer.
    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> Result<(), Duration> {
        let windows = self.lock();
        let waits = [
            blocked_for(windows.get(&Key::Ip(ip)), self.per_ip, now),
            blocked_for(
                windows.get(&Key::Account(account.to_owned())),
                self.per_account,
                now,
            ),
        ];
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr, account: &str, now: Instant) {
        let mut windows = self.lock();
        if windows.len() > SWEEP_THRESHOLD {
            let longest = self.per_ip.window.max(self.per_account.window);
            windows.retain(|_, window| now.duration_since(window.started) < longest);
        }
        for (key, limit) in [
            (Key::Ip(ip), self.per_ip),
            (Key::Account(account.to_owned()), self.per_account),
        ] {
            let window = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(window.started) >= limit.window {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures += 1;
        }
    }

    /// A successful sign-in clears the account's count (not the address's: one right password
    /// must not reset the budget of an address that is guessing other accounts).
    pub fn record_success(&self, account: &str) {
        self.lock().remove(&Key::Account(account.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn blocked_for(window: Option<&Window>, limit: Limit, now: Instant) -> Option<Duration> {
    let window = window?;
    let elapsed = now.duration_since(window.started);
    (window.failures >= limit.max_failures && elapsed < limit.window)
        .then(|| limit.window - elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            Limit {
                max_failures: 3,
                window: Duration::from_secs(60),
            },
            Limit {
                max_failures: 5,
                window: Duration::from_secs(300),
            },
        )
    }

    const IP_A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const IP_B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_address_is_locked_after_its_failures_until_the_window_ends() {
        let throttle = throttle();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check(IP_A, "alice", t0).is_ok());
            throttle.record_failure(IP_A, "alice", t0);
        }
        let wait = throttle
            .check(IP_A, "bob", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(throttle.check(IP_B, "bob", t0).is_ok());
        assert!(
            throttle
                .check(IP_A, "bob", t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn an_account_is_locked_across_addresses() {
        let throttle = throttle();
        let t0 = Instant::now();
        for i in 0..5u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i));
            throttle.record_failure(ip, "alice", t0);
        }
        assert!(throttle.check(IP_B, "alice", t0).is_err());
        assert!(throttle.check(IP_B, "bob", t0).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let throttle = throttle();
        let t0 = Instant::now();
        for _ in 0..3 {
            throttle.record_failure(IP_A, "alice", t0);
        }
        throttle.record_success("alice");
        assert!(throttle.check(IP_B, "alice", t0).is_ok());
        assert!(throttle.check(IP_A, "alice", t0).is_err());
    }
}
