//! Hashing, token generation, PKCE and authenticated encryption.
//!
//! Tokens, codes and secrets are 256-bit random values, so a plain SHA-256 is enough to store
//! them: nothing is gained from a slow hash when the input cannot be guessed.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{Error, Random};

/// Hex SHA-256 of a token, the only form in which tokens, codes and secrets are stored.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: 32 bytes, base64url without padding (43 characters).
pub fn new_token(random: &impl Random) -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is a syntactically valid PKCE verifier (RFC 7636 §4.1: 43–128 characters
/// from the unreserved set) whose S256 challenge is `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && constant_time_eq(pkce_challenge(verifier).as_bytes(), challenge.as_bytes())
}

/// Compare secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// AES-256-GCM with a key derived from the Worker's encryption secret. Every sealed value is
/// bound to a context string (its AAD), so a value cannot be moved to another record or cookie.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    /// Derive this sealer's key as HMAC-SHA256(secret, purpose), so grants and cookies never
    /// share a key even though they share one configured secret.
    pub fn derive(secret: &str, purpose: &str) -> Sealer {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        let key = mac.finalize().into_bytes();
        Sealer {
            cipher: Aes256Gcm::new(&key),
        }
    }

    /// Encrypt `plaintext` bound to `context`: base64url(nonce ‖ ciphertext).
    pub fn seal(
        &self,
        random: &impl Random,
        context: &str,
        plaintext: &[u8],
    ) -> Result<String, Error> {
        let mut nonce = [0u8; 12];
        random.fill(&mut nonce)?;
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Stored("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypt a value sealed for `context`; `None` when it was tampered with, sealed for
    /// another context or under another key, or is not ours at all.
    pub fn open(&self, context: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        // From an array, not `from_slice` (deprecated in newer generic-array 0.14 releases).
        let nonce = Nonce::from(<[u8; 12]>::try_from(nonce).ok()?);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeqRandom;

    #[test]
    fn pkce_accepts_only_the_matching_well_formed_verifier() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = pkce_challenge(verifier);
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(pkce_matches(verifier, &challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            &challenge
        ));
        // The challenge itself, or a short verifier, never passes.
        assert!(!pkce_matches(&challenge, &challenge));
        assert!(!pkce_matches("short", &pkce_challenge("short")));
    }

    #[test]
    fn sealed_values_open_only_in_their_context_and_under_their_key() {
        let random = SeqRandom::default();
        let sealer = Sealer::derive("a secret of at least thirty-two chars", "grant");
        let sealed = sealer
            .seal(&random, "grant:1", b"alice@example.com")
            .unwrap();
        assert_eq!(
            sealer.open("grant:1", &sealed).as_deref(),
            Some(&b"alice@example.com"[..])
        );
        assert_eq!(sealer.open("grant:2", &sealed), None);
        let other = Sealer::derive("a secret of at least thirty-two chars", "cookie");
        assert_eq!(other.open("grant:1", &sealed), None);
        assert_eq!(sealer.open("grant:1", "not base64!"), None);
    }
}
