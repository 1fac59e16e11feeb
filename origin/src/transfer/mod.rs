//! Export and import: every server with its Python tools, module and network requests and
//! secret names (never values) as one signed JSON file in the reference's v1.2 shape
//! (`format`), and the import of such a file, ours or the reference's (`import`).
//!
//! Our files are signed with a key derived from the keyring for this purpose only (the previous
//! key's still verifies during a rotation); a reference export verifies with that system's
//! encryption-key string, given as the source key. Unsigned or tampered files are refused
//! before anything is written, and nothing a file says about approval is believed.

pub(crate) mod api;
mod export;
pub mod format;
mod import;

pub(crate) use api::openapi;

pub use api::router;
pub use export::{Export, export};
pub use import::{Clash, Report, ServerReport, check, import, parse};

/// The purpose `Keyring::derive` is given for export signatures.
pub const SIGNING_PURPOSE: &str = "export-signature";

/// Largest import file (the API's body and the UI's upload).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Most servers one file may hold.
pub const MAX_SERVERS: usize = 200;
/// Most tools one file may hold, over all its servers.
pub const MAX_TOOLS: usize = 2_000;
/// Most module and network requests, allowed hosts and secrets one file may hold.
pub const MAX_REQUESTS: usize = 20_000;

/// Checks and imports a parsed file: `check`, then `import`. The import runs in its own task,
/// so a client that gives up (or the request timeout) cannot stop it between two servers.
pub async fn import_file(
    state: &crate::app::AppState,
    audit: &crate::activity::Audit,
    file: format::ExportFile,
    source_key: Option<&str>,
) -> crate::Result<Report> {
    check(state, &file, source_key.filter(|k| !k.is_empty()))?;
    let (state, audit) = (state.clone(), audit.clone());
    tokio::spawn(async move { import(&state, &audit, &file).await })
        .await
        .map_err(|e| crate::Error::Internal(e.into()))?
}
