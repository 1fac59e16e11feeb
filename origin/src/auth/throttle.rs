//! Failed-login throttling, per client IP and per account.
//!
//! Each attempt is counted *before* the password is checked (`reserve`: the check and the count
//! are one step), so attempts sent at the same moment cannot all pass the check before any of
//! them is counted. An attempt whose password was right gives its count back (`succeeded`), so a
//! person who types the password right is never slowed down, while guessing is capped at a few
//! tries a minute from one address and a few more per account from anywhere.
//!
//! Two stores of the one rule: `SignInThrottle` (sign-in and password change) keeps its windows
//! in the database (`login_throttle`, migration 0012), so the limits hold across replicas and a
//! restart; each check-and-count is one transaction of conditional upserts, the row locks
//! serialising concurrent attempts on a key. `LoginThrottle` keeps them in memory, for the
//! tunnel's wrong-service-token counter (per replica: it only slows a flood that the token
//! itself already refuses).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::db::Db;

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

/// One attempt, already counted as a failure against its address and account. Settle it with
/// `succeeded` (right password), `released` (nothing verified) or `failed` (wrong password);
/// an attempt that is simply dropped (an error, a cancelled request) stays counted: failing
/// closed.
#[derive(Debug)]
#[must_use = "an attempt stays counted as a failure unless it is settled"]
pub struct Attempt {
    ip: IpAddr,
    account: String,
    /// The windows it was counted in: giving it back touches only these, not a later window.
    ip_window: Instant,
    account_window: Instant,
}

/// Past this many tracked keys, expired windows are swept on the next attempt, so a flood of
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

    /// Counts an attempt from `ip` on `account`, or `Err(wait)` when either is locked out for
    /// `wait` longer (then nothing is counted). Check and count happen under one lock.
    pub fn reserve(&self, ip: IpAddr, account: &str, now: Instant) -> Result<Attempt, Duration> {
        let mut windows = self.lock();
        if windows.len() > SWEEP_THRESHOLD {
            let longest = self.per_ip.window.max(self.per_account.window);
            windows.retain(|_, window| now.duration_since(window.started) < longest);
        }
        let ip_key = Key::Ip(ip);
        let account_key = Key::Account(account.to_owned());
        let waits = [
            blocked_for(windows.get(&ip_key), self.per_ip, now),
            blocked_for(windows.get(&account_key), self.per_account, now),
        ];
        if let Some(wait) = waits.into_iter().flatten().max() {
            return Err(wait);
        }
        let mut count = |key: Key, limit: Limit| {
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
            window.failures = window.failures.saturating_add(1);
            window.started
        };
        let ip_window = count(ip_key, self.per_ip);
        let account_window = count(account_key, self.per_account);
        Ok(Attempt {
            ip,
            account: account.to_owned(),
            ip_window,
            account_window,
        })
    }

    /// The password was wrong: the attempt stays counted.
    pub fn failed(&self, attempt: Attempt) {
        let _ = attempt;
    }

    /// The password was right: the address gets its attempt back, and the account's count is
    /// cleared (not the address's: one right password must not reset the budget of an address
    /// that is guessing other accounts).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut windows = self.lock();
        give_back(&mut windows, Key::Ip(attempt.ip), attempt.ip_window);
        windows.remove(&Key::Account(attempt.account));
    }

    /// Not a failure, and not a sign-in either: nothing was verified (the server was too busy to
    /// check the password, so a refusal for load locks nobody out), or the password was right
    /// for a disabled account. Both counts are given back.
    pub fn released(&self, attempt: Attempt) {
        let mut windows = self.lock();
        give_back(&mut windows, Key::Ip(attempt.ip), attempt.ip_window);
        give_back(
            &mut windows,
            Key::Account(attempt.account),
            attempt.account_window,
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sign-in throttle of `AppState`: the same limits as `LoginThrottle`, in the database.
#[derive(Debug, Clone)]
pub struct SignInThrottle {
    db: Db,
    per_ip: Limit,
    per_account: Limit,
}

/// A sign-in attempt counted in the database; settle it like an `Attempt`.
#[derive(Debug)]
#[must_use = "an attempt stays counted as a failure unless it is settled"]
pub struct StoredAttempt {
    ip_key: String,
    account_key: String,
    ip_window: i64,
    account_window: i64,
}

impl SignInThrottle {
    /// The default limits (those of `LoginThrottle::default`) over `db`.
    pub fn new(db: Db) -> SignInThrottle {
        let defaults = LoginThrottle::default();
        SignInThrottle {
            db,
            per_ip: defaults.per_ip,
            per_account: defaults.per_account,
        }
    }

    pub fn with_limits(db: Db, per_ip: Limit, per_account: Limit) -> SignInThrottle {
        SignInThrottle {
            db,
            per_ip,
            per_account,
        }
    }

    /// Counts an attempt from `ip` on `account`, or `Ok(Err(wait))` when either is locked out
    /// for `wait` longer (then nothing is counted: the transaction is rolled back).
    pub async fn reserve(
        &self,
        ip: IpAddr,
        account: &str,
    ) -> crate::error::Result<Result<StoredAttempt, Duration>> {
        let now = now_us();
        let ip_key = format!("ip:{ip}");
        let account_key = format!("account:{account}");
        let mut tx = self.db.pool.begin().await?;
        let mut windows = [0i64; 2];
        let mut wait: Option<Duration> = None;
        // Always the address first, then the account: concurrent attempts lock in one order.
        for (slot, (key, limit)) in [(&ip_key, self.per_ip), (&account_key, self.per_account)]
            .into_iter()
            .enumerate()
        {
            let window_us = i64::try_from(limit.window.as_micros()).unwrap_or(i64::MAX);
            let row = sqlx::query(
                "INSERT INTO login_throttle (key, window_start_us, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN login_throttle.window_start_us <= $3 THEN 1 \
                                   ELSE login_throttle.failures + 1 END, \
                   window_start_us = CASE WHEN login_throttle.window_start_us <= $3 THEN $2 \
                                          ELSE login_throttle.window_start_us END \
                 RETURNING window_start_us, failures",
            )
            .bind(key)
            .bind(now)
            .bind(now.saturating_sub(window_us))
            .fetch_one(&mut *tx)
            .await?;
            let started: i64 = row.try_get("window_start_us")?;
            let failures: i64 = row.try_get("failures")?;
            windows[slot] = started;
            if failures > i64::from(limit.max_failures) {
                let left = started.saturating_add(window_us).saturating_sub(now).max(1);
                let left = Duration::from_micros(u64::try_from(left).unwrap_or(1));
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        if let Some(wait) = wait {
            tx.rollback().await?;
            return Ok(Err(wait));
        }
        tx.commit().await?;
        Ok(Ok(StoredAttempt {
            ip_key,
            account_key,
            ip_window: windows[0],
            account_window: windows[1],
        }))
    }

    /// The password was wrong: the attempt stays counted.
    pub async fn failed(&self, attempt: StoredAttempt) {
        let _ = attempt;
    }

    /// The password was right: the address gets its attempt back and the account's count is
    /// cleared (see `LoginThrottle::succeeded`).
    pub async fn succeeded(&self, attempt: StoredAttempt) {
        self.give_back(&attempt.ip_key, attempt.ip_window).await;
        let cleared = sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(&attempt.account_key)
            .execute(&self.db.pool)
            .await;
        if let Err(err) = cleared {
            tracing::warn!(error = %err, "could not clear an account's sign-in failures");
        }
    }

    /// Nothing was verified, or the account is disabled: both counts are given back.
    pub async fn released(&self, attempt: StoredAttempt) {
        self.give_back(&attempt.ip_key, attempt.ip_window).await;
        self.give_back(&attempt.account_key, attempt.account_window)
            .await;
    }

    /// One failure back, in the window it was counted in only. A failure to give back leaves
    /// the attempt counted (failing closed).
    async fn give_back(&self, key: &str, window: i64) {
        let given = sqlx::query(
            "UPDATE login_throttle SET failures = failures - 1 \
             WHERE key = $1 AND window_start_us = $2 AND failures > 0",
        )
        .bind(key)
        .bind(window)
        .execute(&self.db.pool)
        .await;
        if let Err(err) = given {
            tracing::warn!(error = %err, "could not give a sign-in attempt back");
        }
    }

    /// Deletes windows that ended (the periodic jobs); returns how many.
    pub async fn prune(&self) -> crate::error::Result<u64> {
        let longest = self.per_ip.window.max(self.per_account.window);
        let cutoff =
            now_us().saturating_sub(i64::try_from(longest.as_micros()).unwrap_or(i64::MAX));
        let deleted = sqlx::query("DELETE FROM login_throttle WHERE window_start_us <= $1")
            .bind(cutoff)
            .execute(&self.db.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// Wall-clock microseconds since the Unix epoch: replicas compare windows by the clock (NTP),
/// since they share no `Instant`.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn give_back(windows: &mut HashMap<Key, Window>, key: Key, counted_in: Instant) {
    if let Some(window) = windows.get_mut(&key)
        && window.started == counted_in
    {
        window.failures = window.failures.saturating_sub(1);
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

    /// A failed attempt at `t`.
    fn fail(throttle: &LoginThrottle, ip: IpAddr, account: &str, t: Instant) {
        let attempt = throttle.reserve(ip, account, t).expect("not locked yet");
        throttle.failed(attempt);
    }

    #[test]
    fn an_address_is_locked_after_its_failures_until_the_window_ends() {
        let throttle = throttle();
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&throttle, IP_A, "alice", t0);
        }
        let wait = throttle
            .reserve(IP_A, "bob", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(throttle.reserve(IP_B, "bob", t0).is_ok());
        assert!(
            throttle
                .reserve(IP_A, "bob", t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn an_account_is_locked_across_addresses() {
        let throttle = throttle();
        let t0 = Instant::now();
        for i in 0..5u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i));
            fail(&throttle, ip, "alice", t0);
        }
        assert!(throttle.reserve(IP_B, "alice", t0).is_err());
        assert!(throttle.reserve(IP_B, "bob", t0).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let throttle = throttle();
        let t0 = Instant::now();
        for _ in 0..2 {
            fail(&throttle, IP_A, "alice", t0);
        }
        let right = throttle.reserve(IP_A, "alice", t0).unwrap();
        // Three attempts are outstanding or failed: the address is at its limit until the
        // right password gives one back.
        assert!(throttle.reserve(IP_A, "carol", t0).is_err());
        throttle.succeeded(right);
        assert!(throttle.reserve(IP_B, "alice", t0).is_ok());
        let last = throttle.reserve(IP_A, "carol", t0).unwrap();
        throttle.failed(last);
        assert!(throttle.reserve(IP_A, "alice", t0).is_err());
    }

    #[test]
    fn attempts_in_flight_count_before_they_are_settled() {
        let throttle = throttle();
        let t0 = Instant::now();
        // Three attempts reserved at once (none settled yet): the fourth is refused.
        let pending: Vec<Attempt> = (0..3)
            .map(|_| throttle.reserve(IP_A, "alice", t0).unwrap())
            .collect();
        assert!(throttle.reserve(IP_A, "alice", t0).is_err());
        // Released (nothing was verified): the address and the account get them back.
        for attempt in pending {
            throttle.released(attempt);
        }
        assert!(throttle.reserve(IP_A, "alice", t0).is_ok());
    }

    #[test]
    fn a_give_back_does_not_touch_a_later_window() {
        let throttle = throttle();
        let t0 = Instant::now();
        let old = throttle.reserve(IP_A, "alice", t0).unwrap();
        let later = t0 + Duration::from_secs(61);
        for _ in 0..3 {
            fail(&throttle, IP_A, "bob", later);
        }
        throttle.released(old);
        assert!(throttle.reserve(IP_A, "bob", later).is_err());
    }
}
