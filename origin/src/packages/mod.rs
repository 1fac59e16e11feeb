//! PyPI packages for tools (issue #14). A module request may name a PyPI distribution with an
//! optional version specifier (`pyyaml`, `feedparser==6.0.11`). When it is made, the
//! distribution is *resolved* (`resolve`): pip picks exact versions of it and its dependencies
//! and their wheels' sha256 hashes, with each wheel's summary, licence and links; PyPI's JSON
//! simple API adds the release date, and OSV (`osv`) lists known vulnerabilities of each exact version. The reviewer sees
//! that resolution and approves exactly it: approving re-resolves and refuses when anything
//! changed. Approving queues the install (`install`): one at a time, pip with `--require-hashes
//! --no-deps --only-binary=:all:` (no sdist, so no package code runs at install) into a staging
//! directory renamed into place, so a failure leaves nothing half-installed.
//!
//! Installed trees live in `<data>/packages/<name>-<version>/`, owned by the origin's user,
//! readable by the sandbox's unprivileged user. A call gets only its server's approved packages
//! (`grants`): their directories go on the worker's import path and the requested
//! distributions' import names join the allowed modules; the sandbox's proxy rules and the
//! never-importable list still apply. Revoking ends the grant on the next call. `recheck`
//! asks OSV again (daily, and on demand) and raises `alerts::Kind::PackageVulnerable` for a
//! package that gained a vulnerability.

mod api;
mod install;
pub mod osv;
pub mod resolve;

pub(crate) use api::openapi;
pub use api::router;
pub use install::enqueue;
pub use install::{
    Installed, approved_import_names, grants, installed, recheck, start, sync_local,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::Db;
use crate::error::{Error, Result};

/// The sandbox workers' unprivileged uid and gid (sandbox `isolation::UNPRIVILEGED_ID`).
const SANDBOX_ID: u32 = 65534;

/// Where packages come from and go.
#[derive(Debug, Clone)]
pub struct Config {
    /// `<data>/packages`.
    pub dir: PathBuf,
    /// The Python whose pip resolves and installs: the sandbox's interpreter version.
    pub python: PathBuf,
    /// PyPI's base URL: pip's index and the JSON simple API (`<url>/simple`).
    pub pypi_url: String,
    /// OSV's base URL (`<url>/v1/querybatch`, `<url>/v1/vulns/<id>`).
    pub osv_url: String,
}

impl Config {
    pub fn new(data_dir: &Path, python: PathBuf, pypi_url: &str, osv_url: &str) -> Config {
        Config {
            dir: data_dir.join("packages"),
            python,
            pypi_url: pypi_url.trim_end_matches('/').to_owned(),
            osv_url: osv_url.trim_end_matches('/').to_owned(),
        }
    }
}

/// The packages part of the application state: its configuration (set by `serve`, or by a test)
/// and the install queue.
#[derive(Default)]
pub struct Packages {
    config: RwLock<Option<Config>>,
    queue: OnceLock<install::Queue>,
    stdlib: OnceLock<Arc<Vec<String>>>,
    /// Wakes the local sync (`install::sync_local`): a call's grant found a package another
    /// replica installed missing here.
    sync: tokio::sync::Notify,
}

impl Packages {
    pub fn configure(&self, config: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Some(config);
    }

    pub fn config(&self) -> Result<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                Error::Unavailable("PyPI packages are not configured on this origin".into())
            })
    }
}

/// Creates `<data>/packages` (mode 0755) and, when running as root, lets the sandbox's user
/// traverse the data directory to reach it (group nogroup, mode 0710: the others get nothing,
/// and the files in it stay private to their owner).
pub fn prepare_dir(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir.join("packages");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(data_dir, None, Some(SANDBOX_ID))?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o710))?;
    }
    Ok(())
}

/// A parsed request target: a PyPI name with an optional version specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Normalised (PEP 503): lower case, runs of `-_.` as one `-`.
    pub name: String,
    /// `==6.0.11`, `>=1,<2`, or empty.
    pub specifier: String,
}

impl Spec {
    /// What pip is given: never an option, URL, path, extra or marker.
    pub fn requirement(&self) -> String {
        format!("{}{}", self.name, self.specifier)
    }
}

/// Parses `name[specifier]`. Refuses everything pip would read as more than a plain
/// requirement on the index.
pub fn parse_spec(text: &str) -> Result<Spec> {
    let text = text.trim();
    let split = text.find(['=', '<', '>', '~', '!']).unwrap_or(text.len());
    let (name, specifier) = text.split_at(split);
    let name_ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let specifier_ok = specifier.len() <= 100
        && specifier.split(',').all(|clause| {
            let version = clause.trim_start_matches(['=', '<', '>', '~', '!']);
            let operator = &clause[..clause.len() - version.len()];
            (specifier.is_empty() && clause.is_empty())
                || (["==", ">=", "<=", "~=", "!=", "<", ">", "==="].contains(&operator)
                    && !version.is_empty()
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '+' | '!')))
        });
    if !name_ok || !specifier_ok {
        return Err(Error::Validation(format!(
            "{text:?} is not a PyPI distribution name with an optional version \
             (like \"pyyaml\" or \"feedparser==6.0.11\")"
        )));
    }
    Ok(Spec {
        name: normalise(name),
        specifier: specifier.to_owned(),
    })
}

/// PEP 503 normalisation.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Whether a module request's target names a PyPI distribution rather than a module of the
/// standard library: it has a version specifier, or its top-level name is not one of the
/// sandbox Python's `sys.stdlib_module_names`. Without packages configured (or a Python to ask)
/// every target is a module, as before packages existed.
pub fn is_distribution(packages: &Packages, target: &str) -> bool {
    if packages.config().is_err() {
        return false;
    }
    if target.contains(['=', '<', '>', '~', '!']) {
        return true;
    }
    let stdlib = packages.stdlib.get_or_init(|| {
        let names = packages
            .config()
            .ok()
            .and_then(|config| {
                std::process::Command::new(&config.python)
                    .args([
                        "-I",
                        "-c",
                        "import sys, json; print(json.dumps(sorted(sys.stdlib_module_names)))",
                    ])
                    .output()
                    .ok()
            })
            .and_then(|out| serde_json::from_slice::<Vec<String>>(&out.stdout).ok());
        Arc::new(names.unwrap_or_default())
    });
    if stdlib.is_empty() {
        return false;
    }
    let top = target.split('.').next().unwrap_or(target);
    !stdlib.iter().any(|m| m == top)
}

/// One distribution of a resolution, as the reviewer sees it and the installer pins it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Resolved {
    pub name: String,
    pub version: String,
    /// The wheel pip chose, and its sha256 (what `--require-hashes` enforces).
    pub url: String,
    pub sha256: String,
    /// The distribution the request named (not a dependency).
    pub requested: bool,
    pub summary: Option<String>,
    pub license: Option<String>,
    /// When this version's wheel was uploaded (PyPI).
    pub released: Option<String>,
    /// Homepage, source, documentation… (PyPI `project_urls`).
    pub links: Vec<Link>,
    /// Known vulnerabilities of this exact version (OSV).
    pub vulnerabilities: Vec<osv::Vulnerability>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// The stored resolution of a module request, if it names a distribution.
pub async fn resolution_of(db: &Db, request_id: &str) -> Result<Option<Vec<Resolved>>> {
    let row = sqlx::query("SELECT resolved FROM package_resolutions WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let text: String = row.try_get("resolved")?;
            Ok(Some(serde_json::from_str(&text).map_err(|err| {
                Error::Internal(anyhow::anyhow!("a stored resolution is unreadable: {err}"))
            })?))
        }
    }
}

/// Stores (or replaces) a request's resolution.
pub async fn store_resolution(
    db: &Db,
    request_id: &str,
    spec: &str,
    resolved: &[Resolved],
) -> Result<()> {
    let text = serde_json::to_string(resolved)
        .map_err(|err| Error::Internal(anyhow::anyhow!("resolution: {err}")))?;
    let now = crate::db::now();
    sqlx::query(
        "INSERT INTO package_resolutions (request_id, spec, resolved, resolved_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (request_id) DO UPDATE SET resolved = $3, resolved_at = $4",
    )
    .bind(request_id)
    .bind(spec)
    .bind(&text)
    .bind(&now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The pinned identity of a resolution: what approval is bound to.
pub fn pins(resolved: &[Resolved]) -> Vec<(String, String, String)> {
    let mut pins: Vec<_> = resolved
        .iter()
        .map(|r| (r.name.clone(), r.version.clone(), r.sha256.clone()))
        .collect();
    pins.sort();
    pins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_plain_requirements_only() {
        assert_eq!(
            parse_spec("PyYAML").unwrap(),
            Spec {
                name: "pyyaml".into(),
                specifier: String::new()
            }
        );
        assert_eq!(
            parse_spec("feedparser==6.0.11").unwrap().requirement(),
            "feedparser==6.0.11"
        );
        assert_eq!(
            parse_spec("a_b.c>=1,<2").unwrap().requirement(),
            "a-b-c>=1,<2"
        );
        for bad in [
            "",
            "-r requirements.txt",
            "--index-url=http://evil",
            "pkg @ https://evil/x.whl",
            "pkg[extra]",
            "pkg; python_version>'3'",
            "../x",
            "pkg==",
            "pkg=1",
            "pkg==1 ; x",
            "pkg==1,",
            "pkg ==1",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad:?}");
        }
    }
}
