//! Encryption of values at rest: AES-256-GCM, a random 96-bit nonce per value, and associated data
//! (AAD) that binds each value to its owner so a ciphertext copied to another row does not decrypt.
//!
//! AAD formats (one per kind of owner): `server_secret:{server_id}:{key}`, `setting:{key}`,
//! `service_token`, `cloudflare_api_token`, … — the caller passes the exact string.
//!
//! Stored form: `0x01 ‖ key fingerprint (4 bytes) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, base64 in
//! text columns. The fingerprint names the key that encrypted the value, which is what makes key
//! rotation possible: start with the new key in `MCPBOX_ENCRYPTION_KEY` and the old one in
//! `MCPBOX_PREVIOUS_ENCRYPTION_KEY`; values written under either key decrypt, new values use the
//! new key. Re-encrypting old rows then lets the previous key be dropped (README, "Rotating the
//! encryption key").

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

const FORMAT_VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + FINGERPRINT_LEN + NONCE_LEN;
pub const KEY_FILE_NAME: &str = "encryption.key";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the encrypted value is malformed")]
    Malformed,
    #[error("the value was encrypted with a key that is not configured")]
    UnknownKey,
    #[error("the value does not decrypt: wrong key, wrong owner, or tampered")]
    Rejected,
}

/// One AES-256 key and its fingerprint. `Debug` never shows key material.
struct Key {
    cipher: Aes256Gcm,
    raw: [u8; 32],
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl Key {
    fn new(raw: [u8; 32]) -> Key {
        let digest = Sha256::digest(raw);
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Key {
            cipher: Aes256Gcm::new(&raw.into()),
            raw,
            fingerprint,
        }
    }
}

/// The current key plus, during a rotation, the previous one.
pub struct Keyring {
    current: Key,
    previous: Option<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &hex::encode(self.current.fingerprint))
            .field("has_previous", &self.previous.is_some())
            .finish()
    }
}

/// Where the current key came from, so start-up can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

impl Keyring {
    pub fn new(current: [u8; 32], previous: Option<[u8; 32]>) -> Keyring {
        Keyring {
            current: Key::new(current),
            previous: previous.map(Key::new),
        }
    }

    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            // Only fails for plaintexts near 64 GiB, far beyond any body limit of ours.
            .expect("AES-GCM encryption of a bounded value cannot fail");
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.current.fingerprint);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, blob: &[u8], aad: &str) -> Result<Vec<u8>, CryptoError> {
        if blob.len() < HEADER_LEN + 16 || blob[0] != FORMAT_VERSION {
            return Err(CryptoError::Malformed);
        }
        let fingerprint = &blob[1..1 + FINGERPRINT_LEN];
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.fingerprint == fingerprint)
            .ok_or(CryptoError::UnknownKey)?;
        let nonce = Nonce::from_slice(&blob[1 + FINGERPRINT_LEN..HEADER_LEN]);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Rejected)
    }

    /// `encrypt` for text columns.
    pub fn encrypt_to_string(&self, plaintext: &str, aad: &str) -> String {
        BASE64.encode(self.encrypt(plaintext.as_bytes(), aad))
    }

    pub fn decrypt_str(&self, stored: &str, aad: &str) -> Result<String, CryptoError> {
        let blob = BASE64.decode(stored).map_err(|_| CryptoError::Malformed)?;
        String::from_utf8(self.decrypt(&blob, aad)?).map_err(|_| CryptoError::Malformed)
    }

    /// Whether a stored value was written under an older key (for re-encryption after rotation).
    pub fn needs_reencryption(&self, blob: &[u8]) -> bool {
        blob.get(1..1 + FINGERPRINT_LEN) != Some(&self.current.fingerprint[..])
    }

    /// `needs_reencryption` for text columns; a value that is not even base64 is not under the
    /// current key either.
    pub fn needs_reencryption_str(&self, stored: &str) -> bool {
        BASE64
            .decode(stored)
            .map_or(true, |blob| self.needs_reencryption(&blob))
    }

    /// A subkey for another purpose (e.g. JWT signing), so one configured secret serves all and
    /// no two purposes share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.current.raw)
            .expect("HMAC accepts keys of any length");
        mac.update(b"mcpbox/derive/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `derive` under the previous key, during a rotation: what was signed before it still
    /// verifies (export files).
    pub fn derive_previous(&self, purpose: &str) -> Option<[u8; 32]> {
        let previous = self.previous.as_ref()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&previous.raw)
            .expect("HMAC accepts keys of any length");
        mac.update(b"mcpbox/derive/");
        mac.update(purpose.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// Loads the keyring: the key from the environment when given, else from `data_dir`, else a
    /// newly generated one written there with mode 0600.
    pub fn load(
        data_dir: &Path,
        env_key: Option<&str>,
        env_previous: Option<&str>,
    ) -> anyhow::Result<(Keyring, KeySource)> {
        let previous = env_previous
            .map(|hex| parse_key(hex).context("MCPBOX_PREVIOUS_ENCRYPTION_KEY is invalid"))
            .transpose()?;
        if let Some(hex) = env_key {
            let key = parse_key(hex).context("MCPBOX_ENCRYPTION_KEY is invalid")?;
            return Ok((Keyring::new(key, previous), KeySource::Environment));
        }
        let path = data_dir.join(KEY_FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mode = fs::metadata(&path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{:o}", mode & 0o777),
                        "the encryption key file is readable by other users; run chmod 600 on it"
                    );
                }
                let key = parse_key(text.trim())
                    .with_context(|| format!("the key file {} is invalid", path.display()))?;
                Ok((Keyring::new(key, previous), KeySource::File(path)))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("could not create the key file {}", path.display()))?;
                file.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
                file.sync_all()?;
                Ok((Keyring::new(key, previous), KeySource::Generated(path)))
            }
            Err(err) => {
                Err(err).with_context(|| format!("could not read the key file {}", path.display()))
            }
        }
    }
}

/// A key is 64 hex characters (32 bytes).
pub fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim())
        .map_err(|_| anyhow::anyhow!("expected 64 hexadecimal characters (32 bytes)"))?;
    let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        bail!(
            "expected 64 hexadecimal characters (32 bytes), got {} bytes",
            bytes.len()
        );
    };
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new([7u8; 32], None)
    }

    #[test]
    fn round_trip() {
        let ring = keyring();
        let blob = ring.encrypt(b"hunter2", "server_secret:s1:API_KEY");
        assert_eq!(
            ring.decrypt(&blob, "server_secret:s1:API_KEY").unwrap(),
            b"hunter2"
        );
        let text = ring.encrypt_to_string("hunter2", "setting:x");
        assert_eq!(ring.decrypt_str(&text, "setting:x").unwrap(), "hunter2");
    }

    #[test]
    fn same_plaintext_gets_a_fresh_nonce_each_time() {
        let ring = keyring();
        assert_ne!(ring.encrypt(b"v", "a"), ring.encrypt(b"v", "a"));
    }

    #[test]
    fn wrong_aad_fails() {
        let ring = keyring();
        let blob = ring.encrypt(b"hunter2", "server_secret:s1:API_KEY");
        assert_eq!(
            ring.decrypt(&blob, "server_secret:s2:API_KEY"),
            Err(CryptoError::Rejected)
        );
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let ring = keyring();
        let blob = ring.encrypt(b"hunter2", "a");
        for index in [HEADER_LEN, blob.len() - 1, HEADER_LEN - 1] {
            let mut tampered = blob.clone();
            tampered[index] ^= 0x01;
            assert_eq!(
                ring.decrypt(&tampered, "a"),
                Err(CryptoError::Rejected),
                "byte {index}"
            );
        }
    }

    #[test]
    fn truncated_or_foreign_blobs_are_malformed() {
        let ring = keyring();
        assert_eq!(ring.decrypt(b"short", "a"), Err(CryptoError::Malformed));
        let mut blob = ring.encrypt(b"x", "a");
        blob[0] = 9;
        assert_eq!(ring.decrypt(&blob, "a"), Err(CryptoError::Malformed));
        assert_eq!(
            ring.decrypt_str("not base64!", "a"),
            Err(CryptoError::Malformed)
        );
    }

    #[test]
    fn wrong_key_is_reported_as_unknown() {
        let blob = keyring().encrypt(b"x", "a");
        let other = Keyring::new([8u8; 32], None);
        assert_eq!(other.decrypt(&blob, "a"), Err(CryptoError::UnknownKey));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_writes_with_the_new_key() {
        let old = keyring();
        let old_blob = old.encrypt(b"before", "a");
        let rotated = Keyring::new([9u8; 32], Some([7u8; 32]));
        assert_eq!(rotated.decrypt(&old_blob, "a").unwrap(), b"before");
        assert!(rotated.needs_reencryption(&old_blob));
        let new_blob = rotated.encrypt(b"after", "a");
        assert!(!rotated.needs_reencryption(&new_blob));
        assert_eq!(old.decrypt(&new_blob, "a"), Err(CryptoError::UnknownKey));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_key() {
        let ring = keyring();
        assert_ne!(ring.derive("jwt"), ring.derive("csrf"));
        assert_ne!(
            ring.derive("jwt"),
            Keyring::new([8u8; 32], None).derive("jwt")
        );
        assert_eq!(ring.derive("jwt"), keyring().derive("jwt"));
    }

    #[test]
    fn key_file_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, source) = Keyring::load(dir.path(), None, None).unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        assert_eq!(source, KeySource::Generated(path.clone()));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, source) = Keyring::load(dir.path(), None, None).unwrap();
        assert_eq!(source, KeySource::File(path));
        assert_eq!(ring.derive("x"), again.derive("x"));
    }

    #[test]
    fn environment_key_wins_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "ab".repeat(32);
        let (_, source) = Keyring::load(dir.path(), Some(&hex), None).unwrap();
        assert_eq!(source, KeySource::Environment);
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
        for bad in ["", "zz", &"ab".repeat(31), &"ab".repeat(33)] {
            let err = Keyring::load(dir.path(), Some(bad), None).unwrap_err();
            assert!(
                format!("{err:#}").contains("MCPBOX_ENCRYPTION_KEY is invalid"),
                "{bad}"
            );
        }
    }
}
