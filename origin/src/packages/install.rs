//! Installs, one at a time, in a background task fed by a bounded queue; the OSV re-check; the
//! grants a call gets. Each installed distribution version has one row in `packages` (shared by
//! every request that resolved to it) whose `status` and `progress` the UI and REST show.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contract::sandbox::PackageGrant;
use serde::Serialize;
use sqlx::Row;
use tokio::sync::mpsc;

use super::{Config, Resolved, osv};
use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::error::Result;

/// Installs waiting, at most; approving more says so instead of holding them.
const QUEUE: usize = 32;
const PIP_TIMEOUT: Duration = Duration::from_secs(300);
/// How often installed packages are checked against OSV again.
const RECHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

pub(super) struct Queue(mpsc::Sender<Resolved>);

/// An installed (or installing, or failed) distribution version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// `queued`, `installing`, `installed` or `failed`.
    pub status: String,
    pub progress: String,
    /// Why the install failed.
    pub error: Option<String>,
    pub import_names: Vec<String>,
    pub size_bytes: i64,
    pub install_ms: i64,
    pub vulnerabilities: Vec<osv::Vulnerability>,
    /// When OSV was last asked about this version.
    pub checked_at: Option<String>,
}

const COLUMNS: &str = "name, version, sha256, status, progress, error, import_names, size_bytes, install_ms, vulnerabilities, checked_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Installed> {
    let json = |column: &str| -> Result<String> { Ok(row.try_get(column)?) };
    Ok(Installed {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        sha256: row.try_get("sha256")?,
        status: row.try_get("status")?,
        progress: row.try_get("progress")?,
        error: row.try_get("error")?,
        import_names: serde_json::from_str(&json("import_names")?).unwrap_or_default(),
        size_bytes: row.try_get("size_bytes")?,
        install_ms: row.try_get("install_ms")?,
        vulnerabilities: serde_json::from_str(&json("vulnerabilities")?).unwrap_or_default(),
        checked_at: row.try_get("checked_at")?,
    })
}

/// Every package row, by name.
pub async fn installed(state: &AppState) -> Result<Vec<Installed>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM packages ORDER BY name, version"
    ))
    .fetch_all(&state.db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

async fn one(state: &AppState, name: &str, version: &str) -> Result<Option<Installed>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM packages WHERE name = $1 AND version = $2"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(&state.db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Starts the installer, the daily OSV re-check (on the replica holding the jobs' lease) and
/// the local sync (`serve`).
pub fn start(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let _ = queue(state);
    let checker = state.clone();
    let syncer = state.clone();
    vec![
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECHECK_EVERY).await;
                if !checker.jobs.held() {
                    continue;
                }
                if let Err(err) = recheck(&checker).await {
                    tracing::warn!(error = %err, "the package vulnerability re-check failed");
                }
            }
        }),
        tokio::spawn(async move {
            loop {
                if let Err(err) = sync_local(&syncer).await {
                    tracing::warn!(error = %err, "could not sync the installed packages");
                }
                let _ = tokio::time::timeout(SYNC_EVERY, syncer.packages.sync.notified()).await;
            }
        }),
    ]
}

/// How often a replica looks for packages another replica installed.
const SYNC_EVERY: Duration = Duration::from_secs(30);

/// Several replicas share one database but each has its own data dir: a package whose row says
/// `installed` (by whichever replica ran the install) but whose directory is missing here is
/// installed here too, from the same pinned wheel and hash, with the same checks. Runs in one
/// task only (started by `start`), so it never races itself; the installer sets `installed`
/// only after its directory is in place, so the two never write the same directory. A failure
/// here is logged and retried; the shared row keeps what the first install recorded.
pub async fn sync_local(state: &AppState) -> Result<()> {
    let Ok(config) = state.packages.config() else {
        return Ok(());
    };
    for package in installed(state).await? {
        if package.status != "installed"
            || install_dir(&config, &package.name, &package.version).exists()
        {
            continue;
        }
        let item = Resolved {
            name: package.name.clone(),
            version: package.version.clone(),
            url: String::new(),
            sha256: package.sha256.clone(),
            requested: false,
            summary: None,
            license: None,
            released: None,
            links: Vec::new(),
            vulnerabilities: Vec::new(),
        };
        match install_tree(&config, &item).await {
            Ok(_) => tracing::info!(package = %item.name, version = %item.version,
                "installed a package another replica installed"),
            Err(reason) => tracing::warn!(package = %item.name, version = %item.version,
                %reason, "could not install a package another replica installed"),
        }
    }
    Ok(())
}

fn queue(state: &AppState) -> &mpsc::Sender<Resolved> {
    &state
        .packages
        .queue
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(installer(state.clone(), rx));
            Queue(tx)
        })
        .0
}

/// Queues the install of every distribution of an approved resolution not yet installed.
pub async fn enqueue(state: &AppState, resolved: &[Resolved]) -> Result<()> {
    state.packages.config()?;
    for item in resolved {
        if let Some(existing) = one(state, &item.name, &item.version).await?
            && existing.status != "failed"
        {
            continue;
        }
        let now = crate::db::now();
        let vulnerabilities = serde_json::to_string(&item.vulnerabilities).unwrap_or_default();
        sqlx::query(
            "INSERT INTO packages (name, version, sha256, status, progress, error, vulnerabilities, checked_at, created_at, updated_at) \
             VALUES ($1, $2, $3, 'queued', 'waiting to install', NULL, $4, $5, $5, $5) \
             ON CONFLICT (name, version) DO UPDATE SET sha256 = $3, status = 'queued', progress = 'waiting to install', error = NULL, updated_at = $5",
        )
        .bind(&item.name)
        .bind(&item.version)
        .bind(&item.sha256)
        .bind(&vulnerabilities)
        .bind(&now)
        .execute(&state.db.pool)
        .await?;
        if queue(state).try_send(item.clone()).is_err() {
            set_failed(
                state,
                item,
                "the install queue is full; approve again later",
            )
            .await?;
        }
    }
    Ok(())
}

async fn set_status(state: &AppState, item: &Resolved, status: &str, progress: &str) -> Result<()> {
    sqlx::query("UPDATE packages SET status = $1, progress = $2, updated_at = $3 WHERE name = $4 AND version = $5")
        .bind(status)
        .bind(progress)
        .bind(crate::db::now())
        .bind(&item.name)
        .bind(&item.version)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

async fn set_failed(state: &AppState, item: &Resolved, reason: &str) -> Result<()> {
    sqlx::query("UPDATE packages SET status = 'failed', progress = '', error = $1, updated_at = $2 WHERE name = $3 AND version = $4")
        .bind(reason)
        .bind(crate::db::now())
        .bind(&item.name)
        .bind(&item.version)
        .execute(&state.db.pool)
        .await?;
    let event = NewEvent::warning(
        "package.install_failed",
        format!("installing {} {} failed: {reason}", item.name, item.version),
    )
    .details(serde_json::json!({"name": item.name, "version": item.version, "reason": reason}));
    activity::record_now(state, &system(), event).await
}

fn system() -> Audit {
    Audit {
        actor: "package_installer".into(),
        request_id: None,
    }
}

/// The one installer: installs are serialised, so two never race for a directory.
async fn installer(state: AppState, mut rx: mpsc::Receiver<Resolved>) {
    while let Some(item) = rx.recv().await {
        if let Err(err) = install_one(&state, &item).await {
            tracing::warn!(error = %err, package = %item.name, "could not record an install");
        }
    }
}

async fn install_one(state: &AppState, item: &Resolved) -> Result<()> {
    let config = state.packages.config()?;
    set_status(
        state,
        item,
        "installing",
        "downloading and installing the pinned wheel",
    )
    .await?;
    let started = Instant::now();
    match install_tree(&config, item).await {
        Err(reason) => set_failed(state, item, &reason).await,
        Ok((names, size)) => {
            sqlx::query("UPDATE packages SET status = 'installed', progress = 'installed', error = NULL, import_names = $1, size_bytes = $2, install_ms = $3, updated_at = $4 WHERE name = $5 AND version = $6")
                .bind(serde_json::to_string(&names).unwrap_or_default())
                .bind(size as i64)
                .bind(started.elapsed().as_millis() as i64)
                .bind(crate::db::now())
                .bind(&item.name)
                .bind(&item.version)
                .execute(&state.db.pool)
                .await?;
            let event = NewEvent::info(
                "package.installed",
                format!("installed {} {}", item.name, item.version),
            )
            .details(serde_json::json!({"name": item.name, "version": item.version, "size_bytes": size, "import_names": names}));
            activity::record_now(state, &system(), event).await
        }
    }
}

/// pip into a fresh staging directory, then `finish` renames the tree into place; the staging
/// directory is gone afterwards whatever happened. Returns the import names and the size.
async fn install_tree(
    config: &Config,
    item: &Resolved,
) -> std::result::Result<(Vec<String>, u64), String> {
    let staging = config.dir.join(format!(".staging-{}", crate::db::new_id()));
    let outcome = match pip_install(config, item, &staging).await {
        Ok(tree) => finish(config, item, &tree).map_err(|err| err.to_string()),
        Err(reason) => Err(reason),
    };
    let _ = std::fs::remove_dir_all(&staging);
    outcome
}

/// pip, pinned to the approved version and hash, into `<staging>/tree`.
async fn pip_install(
    config: &Config,
    item: &Resolved,
    staging: &Path,
) -> std::result::Result<PathBuf, String> {
    std::fs::create_dir_all(staging).map_err(|err| format!("staging directory: {err}"))?;
    let requirements = staging.join("requirements.txt");
    std::fs::write(
        &requirements,
        format!(
            "{}=={} --hash=sha256:{}\n",
            item.name, item.version, item.sha256
        ),
    )
    .map_err(|err| format!("requirements file: {err}"))?;
    let tree = staging.join("tree");
    let mut command = tokio::process::Command::new(&config.python);
    command
        .args(["-m", "pip", "install", "--no-deps", "--require-hashes"])
        // Bytecode now: workers cannot write `__pycache__` (Landlock), so without it every call
        // would compile the package's modules again. Compiling runs no package code.
        .args(["--only-binary=:all:", "--compile", "--quiet", "--isolated"])
        .args(["--disable-pip-version-check", "--no-input"])
        .arg("--index-url")
        .arg(format!("{}/simple", config.pypi_url))
        .arg("--target")
        .arg(&tree)
        .arg("-r")
        .arg(&requirements)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", staging)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PIP_TIMEOUT, command.output())
        .await
        .map_err(|_| "pip took too long".to_owned())?
        .map_err(|err| format!("pip could not run: {err}"))?;
    if !output.status.success() {
        return Err(super::resolve::pip_reason(&output.stderr));
    }
    Ok(tree)
}

/// Import names, permissions, the rename into place. Returns the import names and the size.
fn finish(config: &Config, item: &Resolved, tree: &Path) -> std::io::Result<(Vec<String>, u64)> {
    let _ = std::fs::remove_dir_all(tree.join("bin")); // console scripts: nothing runs them
    let names = import_names(tree)?;
    let size = open_to_sandbox(tree)?;
    let dir = install_dir(config, &item.name, &item.version);
    if !dir.exists() {
        std::fs::rename(tree, &dir)?;
    }
    Ok((names, size))
}

pub(super) fn install_dir(config: &Config, name: &str, version: &str) -> PathBuf {
    config.dir.join(format!("{name}-{version}"))
}

/// The distribution's top-level modules: `top_level.txt` when the wheel has one, otherwise
/// the top-level packages and modules of the tree. Private (`_x`) names stay out: the sandbox
/// refuses them anyway.
fn import_names(tree: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(tree)? {
        let path = entry?.path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file.ends_with(".dist-info") {
            if let Ok(text) = std::fs::read_to_string(path.join("top_level.txt")) {
                names.extend(text.lines().map(|l| l.trim().to_owned()));
            }
            continue;
        }
        let stem = if path.is_dir() {
            path.join("__init__.py").exists().then_some(file)
        } else {
            file.strip_suffix(".py")
                .or_else(|| file.split_once(".cpython-").map(|(s, _)| s))
                .or_else(|| file.strip_suffix(".so"))
        };
        names.extend(stem.map(str::to_owned));
    }
    names.retain(|n| {
        !n.is_empty()
            && !n.starts_with('_')
            && !n.contains('/')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    names.sort();
    names.dedup();
    Ok(names)
}

/// Directories 0755, files 0644: the sandbox's user reads, only the owner writes.
fn open_to_sandbox(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        std::fs::remove_file(path)?; // a wheel has no business linking out of its tree
        return Ok(0);
    }
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        let mut size = 0;
        for entry in std::fs::read_dir(path)? {
            size += open_to_sandbox(&entry?.path())?;
        }
        Ok(size)
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
        Ok(meta.len())
    }
}

/// What a call of `server_id` may import: for each approved module request naming a
/// distribution, the installed distributions of its resolution (paths), with the requested
/// ones' import names. A distribution not (yet) installed grants nothing.
pub async fn grants(state: &AppState, server_id: &str) -> Result<Vec<PackageGrant>> {
    let Ok(config) = state.packages.config() else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT r.resolved FROM package_resolutions r JOIN access_requests a ON a.id = r.request_id \
         WHERE a.server_id = $1 AND a.kind = 'module' AND a.status = 'approved'",
    )
    .bind(server_id)
    .fetch_all(&state.db.pool)
    .await?;
    let mut grants: Vec<PackageGrant> = Vec::new();
    for row in rows {
        let text: String = row.try_get("resolved")?;
        let resolved: Vec<Resolved> = serde_json::from_str(&text).unwrap_or_default();
        for item in resolved {
            let Some(installed) = one(state, &item.name, &item.version).await? else {
                continue;
            };
            if installed.status != "installed" || installed.sha256 != item.sha256 {
                continue;
            }
            let dir = install_dir(&config, &item.name, &item.version);
            if !dir.exists() {
                // Installed by another replica and not yet here: the sync installs it; until
                // then this call gets nothing of it.
                state.packages.sync.notify_one();
                continue;
            }
            let path = dir.to_string_lossy().into_owned();
            let modules = if item.requested {
                installed.import_names.clone()
            } else {
                Vec::new()
            };
            match grants.iter_mut().find(|g| g.path == path) {
                Some(grant) => grant.modules.extend(modules),
                None => grants.push(PackageGrant { path, modules }),
            }
        }
    }
    for grant in &mut grants {
        grant.modules.sort();
        grant.modules.dedup();
    }
    Ok(grants)
}

/// The import names a server's approved, installed package requests grant (what
/// `access::allowed_modules` adds; `grants` gives the same names with their directories).
pub async fn approved_import_names(db: &crate::db::Db, server_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT r.resolved FROM package_resolutions r JOIN access_requests a ON a.id = r.request_id \
         WHERE a.server_id = $1 AND a.kind = 'module' AND a.status = 'approved'",
    )
    .bind(server_id)
    .fetch_all(&db.pool)
    .await?;
    let mut names = Vec::new();
    for row in rows {
        let text: String = row.try_get("resolved")?;
        let resolved: Vec<Resolved> = serde_json::from_str(&text).unwrap_or_default();
        for item in resolved.iter().filter(|r| r.requested) {
            let installed = sqlx::query(
                "SELECT import_names FROM packages WHERE name = $1 AND version = $2 AND sha256 = $3 AND status = 'installed'",
            )
            .bind(&item.name)
            .bind(&item.version)
            .bind(&item.sha256)
            .fetch_optional(&db.pool)
            .await?;
            if let Some(row) = installed {
                let text: String = row.try_get("import_names")?;
                names.extend(serde_json::from_str::<Vec<String>>(&text).unwrap_or_default());
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Asks OSV about every installed version again; records what it says and raises
/// `PackageVulnerable` for each package that gained a vulnerability. Returns the rows.
pub async fn recheck(state: &AppState) -> Result<Vec<Installed>> {
    let config = state.packages.config()?;
    let rows = installed(state).await?;
    let versions: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let client = osv::http_client()?;
    let answers = osv::query(&client, &config.osv_url, &versions).await?;
    let now = crate::db::now();
    for (row, found) in rows.iter().zip(answers) {
        let new: Vec<&osv::Vulnerability> = found
            .iter()
            .filter(|v| !row.vulnerabilities.iter().any(|old| old.id == v.id))
            .collect();
        sqlx::query("UPDATE packages SET vulnerabilities = $1, checked_at = $2 WHERE name = $3 AND version = $4")
            .bind(serde_json::to_string(&found).unwrap_or_default())
            .bind(&now)
            .bind(&row.name)
            .bind(&row.version)
            .execute(&state.db.pool)
            .await?;
        if !new.is_empty() {
            let ids: Vec<&str> = new.iter().map(|v| v.id.as_str()).collect();
            state.alerts.raise(
                crate::alerts::Kind::PackageVulnerable,
                format!("{}=={}", row.name, row.version),
                format!(
                    "{} {} has {} new known vulnerabilit{}: {}",
                    row.name,
                    row.version,
                    new.len(),
                    if new.len() == 1 { "y" } else { "ies" },
                    ids.join(", ")
                ),
                serde_json::json!({"name": row.name, "version": row.version, "vulnerabilities": new}),
            );
            let event = NewEvent::warning(
                "package.vulnerable",
                format!(
                    "{} {} has new known vulnerabilities: {}",
                    row.name,
                    row.version,
                    ids.join(", ")
                ),
            )
            .details(serde_json::json!({"name": row.name, "version": row.version, "ids": ids}));
            activity::record_now(state, &system(), event).await?;
        }
    }
    installed(state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_come_from_top_level_or_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path();
        std::fs::create_dir_all(tree.join("yaml")).unwrap();
        std::fs::write(tree.join("yaml/__init__.py"), "").unwrap();
        std::fs::create_dir_all(tree.join("_yaml")).unwrap();
        std::fs::write(tree.join("_yaml/__init__.py"), "").unwrap();
        std::fs::write(tree.join("six.py"), "").unwrap();
        std::fs::write(tree.join("fast.cpython-311-x86_64-linux-gnu.so"), "").unwrap();
        std::fs::create_dir_all(tree.join("data")).unwrap();
        std::fs::create_dir_all(tree.join("x-1.0.dist-info")).unwrap();
        std::fs::write(
            tree.join("x-1.0.dist-info/top_level.txt"),
            "named\n_private\n",
        )
        .unwrap();
        assert_eq!(
            import_names(tree).unwrap(),
            ["fast", "named", "six", "yaml"]
        );
    }
}
