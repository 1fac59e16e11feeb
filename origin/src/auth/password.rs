//! Credentials: validated usernames and passwords, Argon2id hashing off the async runtime.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

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
    let params = Params::new(19 * 1024, 2, 1, None).expect("static Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub async fn hash(password: &NewPassword) -> Result<String> {
    let password = password.0.clone();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|err| Error::Internal(err.into()))?
}

fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| Error::Internal(anyhow::anyhow!("argon2: {err}")))
}

/// Verifies against `stored`, or against a dummy hash when the account does not exist, so the
/// response time does not tell whether a username exists.
pub async fn verify(password: &str, stored: Option<String>) -> Result<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
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
    })
    .await
    .map_err(|err| Error::Internal(err.into()))?
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
        let hashed = hash(&NewPassword::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        assert!(hashed.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery", Some(hashed.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("correct horse batterY", Some(hashed)).await.unwrap());
        assert!(!verify("anything", None).await.unwrap());
    }
}
