//! The Worker bundle the wizard uploads, embedded in the binary.
//!
//! `edge-worker/build.sh` is reproducible (same sources and tool versions give the same bytes),
//! and its output is committed under `edge-worker/dist/` with a CI check that it equals a fresh
//! build. Embedding it means the quick start's single binary deploys the Worker of its own
//! commit with no other tool (building needs worker-build, wasm-bindgen and wasm-opt, ~20
//! minutes of installs), and an origin never uploads a Worker from another version of the
//! contract.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The ES module (wasm-bindgen glue), uploaded as `index.js` (`main_module`).
pub const INDEX_JS: &[u8] = include_bytes!("../../../edge-worker/dist/index.js");
/// The compiled Worker, uploaded as `index_bg.wasm`.
pub const INDEX_BG_WASM: &[u8] = include_bytes!("../../../edge-worker/dist/index_bg.wasm");
/// The Workers compatibility date the bundle is built and tested for (wrangler.toml's; a test
/// keeps the two equal).
pub const COMPATIBILITY_DATE: &str = "2026-04-01";

/// SHA-256 (hex) over both files, `index.js` then `index_bg.wasm`, each prefixed by its length
/// (so moving bytes from one file to the other changes it).
pub fn sha256() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut hasher = Sha256::new();
        for file in [INDEX_JS, INDEX_BG_WASM] {
            hasher.update((file.len() as u64).to_be_bytes());
            hasher.update(file);
        }
        hex::encode(hasher.finalize())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compatibility_date_is_wrangler_tomls() {
        let toml = include_str!("../../../wrangler.toml");
        let line = toml
            .lines()
            .find(|l| l.trim_start().starts_with("compatibility_date"))
            .expect("wrangler.toml has a compatibility_date");
        let value = line.split('"').nth(1).expect("a quoted date");
        assert_eq!(value, COMPATIBILITY_DATE);
    }

    #[test]
    fn the_embedded_bundle_is_a_worker_module_and_its_wasm() {
        // A real wasm module (magic and version 1), and glue that imports it by its name.
        assert_eq!(&INDEX_BG_WASM[..8], b"\0asm\x01\0\0\0");
        let js = std::str::from_utf8(INDEX_JS).expect("index.js is UTF-8");
        assert!(
            js.contains("index_bg.wasm"),
            "index.js does not load index_bg.wasm"
        );
        assert_eq!(sha256().len(), 64);
    }
}
