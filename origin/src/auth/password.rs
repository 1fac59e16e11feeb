//! Credentials: validated usernames and passwords, Argon2id hashing off the async runtime in a
//! bounded pool (`Passwords`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 50;
pub const PASSWORD_MIN: usize = 12;
/// Also bounds the work an unauthenticated caller can make Argon2 do.
pub const PASSWORD_MAX: usize = 128;

/// A username that passed validation: ASCII letter first, then letters, digits or `_`
/// (ASCII only, so no two names look alike), 3–50 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Username> {
        let length = text.chars().count();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&length) {
            return Err(Error::Validation(format!(
                "the username must be {USERNAME_MIN} to {USERNAME_MAX} characters long"
            )));
        }
        let mut chars = text.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Validation(
                "the username must start with a letter and contain only letters, digits and _"
                    .to_owned(),
            ));
        }
        Ok(Username(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that must be unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A new password that passed the policy. `Debug` hides it.
#[derive(Clone)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

impl NewPassword {
    pub fn parse(text: &str) -> Result<NewPassword> {
        let length = text.chars().count();
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
            return Err(Error::Validation(format!(
                "the password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long"
            )));
        }
        if text.trim().is_empty() {
            return Err(Error::Validation(
                "the password cannot be only spaces".to_owned(),
            ));
        }
        Ok(NewPassword(text.to_owned()))
    }
}

/// A presented password is only length-checked (old passwords may predate today's policy).
pub fn check_presented(password: &str) -> Result<()> {
    if password.is_empty() || password.chars().count() > PASSWORD_MAX {
        return Err(Error::Validation(format!(
            "the password must be 1 to {PASSWORD_MAX} characters long"
        )));
    }
    Ok(())
}

/// OWASP's Argon2id recommendation (19 MiB, 2 passes, 1 lane): tens of milliseconds on our
/// 2-core target, where the reference's 64 MiB × 3 × 4 took long enough to make login a DoS lever.
fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_MEMORY_KIB, 2, 1, None).expect("static Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The memory one hash or verification takes while it runs.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;

/// The one way to hash or verify a password: a bounded pool in front of the blocking threads.
///
/// Each Argon2 run takes `ARGON2_MEMORY_KIB` and a core for tens of milliseconds, and anyone can
/// start one (sign-in needs no account). So at most `slots` run at once (twice the cores, at
/// most 16: ≤ 304 MiB), at most `max_waiting` more wait, each at most `max_wait`; anything beyond
/// is refused at once with `Error::Busy` (503 with `Retry-After`) instead of queueing without
/// bound. A run's slot is held by the blocking job itself, so a request that is cancelled while
/// its hash runs does not free the slot before the hash is done.
pub struct Passwords {
    slots: Arc<Semaphore>,
    size: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
    stats: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    verified: AtomicU64,
    hashed: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// What the pool has done so far (tests read it to see that a guard stopped work before it ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Verifications that ran (with a real or the dummy hash).
    pub verified: u64,
    /// New hashes computed.
    pub hashed: u64,
    /// Runs in progress now.
    pub running: usize,
    /// The most runs ever in progress at once.
    pub peak: usize,
    /// The bound on `running`.
    pub slots: usize,
}

impl Default for Passwords {
    /// Sized from the machine: twice the cores (2 to 16 slots), four waiters per slot, 2 s wait.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let slots = (2 * cores).clamp(2, 16);
        Passwords::new(slots, 4 * slots, Duration::from_secs(2))
    }
}

impl Passwords {
    pub fn new(slots: usize, max_waiting: usize, max_wait: Duration) -> Passwords {
        let slots = slots.max(1);
        Passwords {
            slots: Arc::new(Semaphore::new(slots)),
            size: slots,
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            verified: self.stats.verified.load(Ordering::SeqCst),
            hashed: self.stats.hashed.load(Ordering::SeqCst),
            running: self.stats.running.load(Ordering::SeqCst),
            peak: self.stats.peak.load(Ordering::SeqCst),
            slots: self.size,
        }
    }

    /// Hashes a new password (Argon2id, random salt) in the pool.
    pub async fn hash(&self, password: &NewPassword) -> Result<String> {
        let password = password.0.clone();
        let stats = self.stats.clone();
        self.run(move || {
            stats.hashed.fetch_add(1, Ordering::SeqCst);
            hash_blocking(&password)
        })
        .await
    }

    /// Verifies against `stored`, or against a dummy hash when the account does not exist, so
    /// the response time does not tell whether a username exists.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool> {
        let password = password.to_owned();
        let stats = self.stats.clone();
        self.run(move || {
            stats.verified.fetch_add(1, Ordering::SeqCst);
            verify_blocking(&password, stored)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.wait_for_slot().await?,
        };
        let stats = self.stats.clone();
        tokio::task::spawn_blocking(move || {
            // Held until the job ends, even if the request that started it is gone.
            let _permit = permit;
            let now = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak.fetch_max(now, Ordering::SeqCst);
            let result = job();
            stats.running.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|err| Error::Internal(err.into()))?
    }

    /// A place in the short queue (tokio's semaphore is fair: first come, first served), or a
    /// refusal when the queue is full or the wait too long.
    async fn wait_for_slot(&self) -> Result<OwnedSemaphorePermit> {
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _place = Place(&self.waiting);
        if queued >= self.max_waiting {
            return Err(busy());
        }
        match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }
}

/// Leaves the queue when the wait ends, however it ends.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn busy() -> Error {
    Error::Busy {
        message: "the server is busy checking other passwords; try again in a moment",
        retry_after_secs: 1,
    }
}

fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| Error::Internal(anyhow::anyhow!("argon2: {err}")))
}

fn verify_blocking(password: &str, stored: Option<String>) -> Result<bool> {
    let exists = stored.is_some();
    let stored = match stored {
        Some(stored) => stored,
        None => dummy_hash()?.to_owned(),
    };
    let parsed = PasswordHash::new(&stored)
        .map_err(|err| Error::Internal(anyhow::anyhow!("stored password hash: {err}")))?;
    let matches = argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(exists && matches)
}

fn dummy_hash() -> Result<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_blocking("not a real password, only for timing")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        for good in ["abc", "Admin_2", &"a".repeat(50)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "1abc",
            "_abc",
            "ab-c",
            "ab c",
            "ädmin",
            &"a".repeat(51),
            "",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Username::parse("Admin").unwrap().key(), "admin");
    }

    #[test]
    fn passwords_follow_the_policy() {
        assert!(NewPassword::parse("correct horse").is_ok());
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse(&" ".repeat(20)).is_err());
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
        assert!(format!("{:?}", NewPassword::parse("correct horse").unwrap()).contains("***"));
    }

    #[tokio::test]
    async fn hash_verifies_only_the_right_password() {
        let pool = Passwords::default();
        let hashed = pool
            .hash(&NewPassword::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        assert!(hashed.starts_with("$argon2id$"));
        assert!(
            pool.verify("correct horse battery", Some(hashed.clone()))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify("correct horse batterY", Some(hashed))
                .await
                .unwrap()
        );
        assert!(!pool.verify("anything", None).await.unwrap());
        let stats = pool.stats();
        assert_eq!((stats.hashed, stats.verified, stats.running), (1, 3, 0));
    }

    /// A flood of verifications while every slot is taken: three wait (the queue), the rest
    /// are refused at once with a readable 503 and never run; the waiters run once slots free,
    /// never more than the slots at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_bounds_runs_and_refuses_beyond_its_queue() {
        let pool = Arc::new(Passwords::new(2, 3, Duration::from_secs(30)));
        let held = pool.slots.clone().acquire_many_owned(2).await.unwrap();
        let runs: Vec<_> = (0..7)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.verify("guess", None).await })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while runs.iter().filter(|run| run.is_finished()).count() < 4
            || pool.waiting.load(Ordering::SeqCst) < 3
        {
            assert!(std::time::Instant::now() < deadline, "{:?}", pool.stats());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            pool.stats().verified,
            0,
            "nothing ran while the slots were taken"
        );
        drop(held);
        let mut refused = 0;
        for run in runs {
            match run.await.unwrap() {
                Ok(matched) => assert!(!matched),
                Err(err @ Error::Busy { .. }) => {
                    assert!(err.to_string().contains("try again"), "{err}");
                    refused += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        let stats = pool.stats();
        assert_eq!((refused, stats.verified), (4, 3), "{stats:?}");
        assert!(stats.peak <= 2, "{stats:?}");
        assert_eq!(stats.running, 0);
    }

    #[tokio::test]
    async fn a_wait_longer_than_the_limit_is_refused() {
        let pool = Passwords::new(1, 10, Duration::from_millis(50));
        let _held = pool.slots.clone().acquire_owned().await.unwrap();
        let refused = pool.verify("guess", None).await.unwrap_err();
        assert!(matches!(refused, Error::Busy { .. }), "{refused:?}");
        assert_eq!(pool.stats().verified, 0);
    }
}
