//! `mcpbox backup` and `mcpbox restore`: a consistent copy of the whole database while the origin
//! serves, and putting one back.
//!
//! One file format for both backends: the backup is a SQLite database file holding a
//! `mcpbox_backup` table (format version, source backend, schema migration version). Why SQLite
//! and not `pg_dump`: the same tool reads and checks every backup (header, integrity, version)
//! before anything is touched, no client binary of the server's exact major version is needed,
//! and a truncated or foreign file is detected by SQLite's own page checks.
//! - From SQLite, the file is `VACUUM INTO` of the live database: SQLite runs it inside one read
//!   transaction, so writers carry on (WAL) and the copy is a valid database as of one moment.
//! - From PostgreSQL, every table is read inside one `REPEATABLE READ READ ONLY` transaction (one
//!   snapshot for all of them) and each row is stored as `row_to_json` text in
//!   `mcpbox_backup_rows`, tables in foreign-key order. Restore loads them back with
//!   `json_populate_recordset` in one transaction, after the target's migrations ran.
//!
//! A backup restores into the backend it was made from (cross-backend restore is not
//! supported and is refused with a clear message). Secrets stay as they are at rest: encrypted
//! with the encryption key, which is NOT in the backup and must be kept with it.
//!
//! Files are written to a temporary name next to the destination (mode 0600: they hold
//! encrypted secrets and password hashes) and renamed into place, so a failed run leaves nothing
//! half-written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::TryStreamExt;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

use crate::db::{Backend, Db};
use crate::{Error, Result};

/// Written into every backup; a restore refuses any other value.
pub const FORMAT: &str = "mcpbox-backup";
pub const FORMAT_VERSION: i64 = 1;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Rows per insert when copying PostgreSQL rows into or out of a backup.
const BATCH: usize = 500;
/// The tables whose counts describe "what is in this database" to a person.
const SUMMARY_TABLES: [&str; 5] = [
    "users",
    "servers",
    "tools",
    "server_secrets",
    "execution_logs",
];

/// What a backup or restore did, for the command's output.
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: Backend,
    pub schema_version: i64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Rows per table in [`SUMMARY_TABLES`] order.
    pub counts: Vec<(&'static str, i64)>,
}

impl Report {
    pub fn summary(&self) -> String {
        describe_counts(&self.counts)
    }
}

fn describe_counts(counts: &[(&str, i64)]) -> String {
    counts
        .iter()
        .map(|(table, n)| format!("{n} {table}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a consistent backup of `db` to `to`. Refuses an existing `to` unless `force`.
pub async fn create(db: &Db, to: &Path, force: bool) -> Result<Report> {
    let started = Instant::now();
    if to.exists() && !force {
        return Err(Error::Conflict(format!(
            "{} exists already; pass --force to replace it",
            to.display()
        )));
    }
    let temp = TempFile::new_beside(to)?;
    match db.backend {
        Backend::Sqlite => {
            // `VACUUM INTO` needs an empty or missing file; ours is empty and already 0600.
            sqlx::query("VACUUM INTO $1")
                .bind(temp.path.to_string_lossy().into_owned())
                .execute(&db.pool)
                .await
                .context("VACUUM INTO failed")?;
            let file = open_file_pool(&temp.path, "rw").await?;
            // A self-contained file: no -wal beside it.
            file.execute("PRAGMA journal_mode = DELETE").await?;
            write_meta(&file, db.backend, db.applied_schema_version().await?).await?;
            file.close().await;
        }
        Backend::Postgres => {
            let file = open_file_pool(&temp.path, "rw").await?;
            // The file is synced once at the end (below); a crash before that leaves only the temp.
            file.execute("PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF")
                .await?;
            file.execute(
                "CREATE TABLE mcpbox_backup_tables (position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, row_count INTEGER NOT NULL); \
                 CREATE TABLE mcpbox_backup_rows (seq INTEGER PRIMARY KEY, table_name TEXT NOT NULL, data TEXT NOT NULL);",
            )
            .await?;
            let version = copy_postgres_out(db, &file).await?;
            write_meta(&file, db.backend, version).await?;
            file.close().await;
        }
    }
    let counts = count_in_file(&temp.path, db.backend).await?;
    let bytes = temp.finish(to)?;
    Ok(Report {
        backend: db.backend,
        schema_version: read_meta(&open_file_pool(to, "ro").await?)
            .await?
            .schema_version,
        bytes,
        elapsed: started.elapsed(),
        counts,
    })
}

/// One snapshot of every table, streamed into the backup file in foreign-key order.
async fn copy_postgres_out(db: &Db, file: &AnyPool) -> Result<i64> {
    let mut tx = db.pool.begin().await?;
    // Must be the transaction's first statement: every read below sees the same snapshot.
    tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let version: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
        .fetch_one(&mut *tx)
        .await?;
    let tables = postgres_tables_in_order(&mut tx).await?;
    for (position, table) in tables.iter().enumerate() {
        let sql = format!("SELECT row_to_json(t)::text FROM {} t", quote(table));
        let mut rows = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *tx);
        let mut batch = Vec::with_capacity(BATCH);
        let mut count: i64 = 0;
        while let Some(row) = rows.try_next().await? {
            batch.push(row);
            if batch.len() == BATCH {
                count += insert_rows(file, table, &mut batch).await?;
            }
        }
        drop(rows);
        count += insert_rows(file, table, &mut batch).await?;
        sqlx::query(
            "INSERT INTO mcpbox_backup_tables (position, name, row_count) VALUES ($1, $2, $3)",
        )
        .bind(position as i64)
        .bind(table.clone())
        .bind(count)
        .execute(file)
        .await?;
    }
    tx.rollback().await?;
    Ok(version)
}

async fn insert_rows(file: &AnyPool, table: &str, batch: &mut Vec<String>) -> Result<i64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let placeholders: Vec<String> = (0..batch.len())
        .map(|i| format!("($1, ${})", i + 2))
        .collect();
    let sql = format!(
        "INSERT INTO mcpbox_backup_rows (table_name, data) VALUES {}",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(table.to_owned());
    for row in batch.drain(..) {
        query = query.bind(row);
    }
    let done = query.execute(file).await?;
    Ok(done.rows_affected() as i64)
}

/// The application's tables in the current schema, parents before the tables that reference
/// them (so a restore can insert in this order with every foreign key checked).
async fn postgres_tables_in_order(conn: &mut sqlx::AnyConnection) -> Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename <> '_sqlx_migrations' ORDER BY tablename",
    )
    .fetch_all(&mut *conn)
    .await?;
    let edges: Vec<(String, String)> = sqlx::query(
        "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (child, parent) in &edges {
        // A table referencing itself would need row order inside the table; none does today.
        if child != parent {
            parents
                .entry(child.as_str())
                .or_default()
                .insert(parent.as_str());
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(names.len());
    let mut left: Vec<&str> = names.iter().map(String::as_str).collect();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|t| {
                parents
                    .get(t)
                    .is_none_or(|ps| ps.iter().all(|p| ordered.iter().any(|o| o == p)))
            })
            .collect();
        if ready.is_empty() {
            return Err(Error::Internal(anyhow::anyhow!(
                "foreign keys form a cycle among {left:?}"
            )));
        }
        left.retain(|t| !ready.contains(t));
        ordered.extend(ready.into_iter().map(str::to_owned));
    }
    Ok(ordered)
}

/// Puts the backup at `from` into the database at `url` (the backend the backup was made
/// from). Checks the file before touching anything; refuses a database holding data unless
/// `force`. SQLite: the origin must not be serving that database (checked through the sandbox
/// socket beside it). PostgreSQL: one transaction, so serving replicas see before or after.
pub async fn restore(url: &str, from: &Path, force: bool) -> Result<Report> {
    let started = Instant::now();
    let backend = Backend::from_url(url).map_err(|e| Error::Validation(e.to_string()))?;
    let meta = check_file(from).await?;
    if meta.backend != backend {
        return Err(Error::Validation(format!(
            "{} is a backup of a {} database; it restores only into {} (cross-backend restore is not supported)",
            from.display(),
            meta.backend.name(),
            meta.backend.name()
        )));
    }
    let ours = Db::schema_version(backend);
    if meta.schema_version > ours {
        return Err(Error::Validation(format!(
            "{} was made by a newer MCPbox (schema version {}, this one knows up to {ours}); restore it with that version",
            from.display(),
            meta.schema_version
        )));
    }
    let bytes = std::fs::metadata(from).map(|m| m.len()).unwrap_or(0);
    let counts = match backend {
        Backend::Sqlite => restore_sqlite(url, from, force).await?,
        Backend::Postgres => {
            if meta.schema_version != ours {
                return Err(Error::Validation(format!(
                    "{} has schema version {}, this MCPbox has {ours}: a PostgreSQL backup restores only with the version that made it",
                    from.display(),
                    meta.schema_version
                )));
            }
            restore_postgres(url, from, force).await?
        }
    };
    Ok(Report {
        backend,
        schema_version: meta.schema_version,
        bytes,
        elapsed: started.elapsed(),
        counts,
    })
}

async fn restore_sqlite(url: &str, from: &Path, force: bool) -> Result<Vec<(&'static str, i64)>> {
    let target = sqlite_path(url)?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A serving origin keeps its SQLite connections open; replacing the file under it would
    // lose its writes. The origin's own sandbox supervisor listens beside the database.
    if std::os::unix::net::UnixStream::connect(dir.join("sandbox.sock")).is_ok() {
        return Err(Error::Conflict(format!(
            "an MCPbox origin is serving from {} (its sandbox socket answers); stop it before restoring",
            dir.display()
        )));
    }
    if target.exists() {
        let existing = match Db::connect(url).await {
            Ok(existing) => existing,
            // Restoring over a database that no longer opens (damaged) is what a backup is for.
            Err(err) if force => {
                tracing::warn!(error = %format!("{err:#}"), "the existing database does not open; replacing it");
                return replace_sqlite_file(url, &target, from).await;
            }
            Err(err) => {
                return Err(Error::Conflict(format!(
                    "the existing database {} does not open ({err:#}); pass --force to replace it with the backup",
                    target.display()
                )));
            }
        };
        let counts = count_db(&existing.pool).await?;
        if holds_data(&counts) && !force {
            existing.pool.close().await;
            return Err(refuse_replace(&target.display().to_string(), &counts));
        }
        // Empty the WAL into the file so nothing of the old database lingers beside it.
        existing
            .pool
            .execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
        existing.pool.close().await;
    }
    replace_sqlite_file(url, &target, from).await
}

/// Copies the backup beside `target`, strips its header and renames it over `target`.
async fn replace_sqlite_file(
    url: &str,
    target: &Path,
    from: &Path,
) -> Result<Vec<(&'static str, i64)>> {
    let temp = TempFile::new_beside(target)?;
    {
        let mut source = File::open(from).context("could not open the backup")?;
        let mut dest = OpenOptions::new()
            .write(true)
            .open(&temp.path)
            .context("could not open the temporary file")?;
        std::io::copy(&mut source, &mut dest).context("could not copy the backup")?;
    }
    let file = open_file_pool(&temp.path, "rw").await?;
    file.execute("DROP TABLE mcpbox_backup").await?;
    file.close().await;
    temp.finish(target)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = target.to_owned().into_os_string();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    // Opening runs the migrations a backup from an older version lacks.
    let restored = Db::connect(url).await?;
    let counts = count_db(&restored.pool).await?;
    restored.pool.close().await;
    Ok(counts)
}

async fn restore_postgres(url: &str, from: &Path, force: bool) -> Result<Vec<(&'static str, i64)>> {
    let db = Db::connect(url).await?;
    let counts = count_db(&db.pool).await?;
    if holds_data(&counts) && !force {
        return Err(refuse_replace(&crate::db::redact_url(url), &counts));
    }
    let file = open_file_pool(from, "ro").await?;
    let tables: Vec<(String, i64)> =
        sqlx::query("SELECT name, row_count FROM mcpbox_backup_tables ORDER BY position")
            .fetch_all(&file)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
    let mut tx = db.pool.begin().await?;
    let present = postgres_tables_in_order(&mut tx).await?;
    if let Some((missing, _)) = tables.iter().find(|(t, _)| !present.contains(t)) {
        return Err(Error::Validation(format!(
            "the backup has a table {missing:?} this database does not"
        )));
    }
    if !present.is_empty() {
        let all: Vec<String> = present.iter().map(|t| quote(t)).collect();
        tx.execute(format!("TRUNCATE {}", all.join(", ")).as_str())
            .await?;
    }
    for (table, expected) in &tables {
        let sql = format!(
            "INSERT INTO {t} SELECT * FROM json_populate_recordset(NULL::{t}, $1::json)",
            t = quote(table)
        );
        let mut after: i64 = 0;
        let mut loaded: i64 = 0;
        loop {
            let rows = sqlx::query(
                "SELECT seq, data FROM mcpbox_backup_rows WHERE table_name = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(table.clone())
            .bind(after)
            .bind(BATCH as i64)
            .fetch_all(&file)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0)?;
            let mut array = String::from("[");
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    array.push(',');
                }
                array.push_str(&row.try_get::<String, _>(1)?);
            }
            array.push(']');
            loaded += sqlx::query(&sql)
                .bind(array)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
        }
        if loaded != *expected {
            return Err(Error::Validation(format!(
                "the backup is damaged: table {table} has {loaded} rows, its header says {expected}; nothing was changed"
            )));
        }
    }
    tx.commit().await?;
    file.close().await;
    let counts = count_db(&db.pool).await?;
    db.pool.close().await;
    Ok(counts)
}

fn refuse_replace(target: &str, counts: &[(&'static str, i64)]) -> Error {
    Error::Conflict(format!(
        "the database at {target} already holds data ({}); pass --force to replace ALL of it with the backup",
        describe_counts(counts)
    ))
}

fn holds_data(counts: &[(&str, i64)]) -> bool {
    counts.iter().any(|(_, n)| *n > 0)
}

async fn count_db(pool: &AnyPool) -> Result<Vec<(&'static str, i64)>> {
    let mut counts = Vec::with_capacity(SUMMARY_TABLES.len());
    for table in SUMMARY_TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await?;
        counts.push((table, n));
    }
    Ok(counts)
}

async fn count_in_file(path: &Path, backend: Backend) -> Result<Vec<(&'static str, i64)>> {
    let file = open_file_pool(path, "ro").await?;
    let counts = match backend {
        Backend::Sqlite => count_db(&file).await?,
        Backend::Postgres => {
            let mut counts = Vec::with_capacity(SUMMARY_TABLES.len());
            for table in SUMMARY_TABLES {
                let n: Option<i64> = sqlx::query_scalar(
                    "SELECT row_count FROM mcpbox_backup_tables WHERE name = $1",
                )
                .bind(table)
                .fetch_optional(&file)
                .await?;
                counts.push((table, n.unwrap_or(0)));
            }
            counts
        }
    };
    file.close().await;
    Ok(counts)
}

/// What a backup says about itself.
#[derive(Debug, Clone)]
pub struct Meta {
    pub backend: Backend,
    pub schema_version: i64,
    pub created_at: String,
}

/// Checks that `path` is a whole, undamaged MCPbox backup of a known format version and
/// returns its header. Reads only.
pub async fn check_file(path: &Path) -> Result<Meta> {
    let not_ours = |why: &str| {
        Error::Validation(format!(
            "{} is not a usable MCPbox backup: {why}; nothing was changed",
            path.display()
        ))
    };
    let mut magic = [0u8; 16];
    File::open(path)
        .map_err(|e| Error::Validation(format!("cannot read {}: {e}", path.display())))?
        .read_exact(&mut magic)
        .map_err(|_| not_ours("it is too short"))?;
    if &magic != SQLITE_MAGIC {
        return Err(not_ours("it is not an SQLite file"));
    }
    let file = open_file_pool(path, "ro")
        .await
        .map_err(|_| not_ours("SQLite cannot open it"))?;
    let checked: Result<Meta> = async {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&file)
            .await
            .map_err(|_| not_ours("it is damaged or truncated"))?;
        if rows != ["ok"] {
            return Err(not_ours("it is damaged or truncated"));
        }
        read_meta(&file)
            .await
            .map_err(|_| not_ours("it has no MCPbox backup header"))
    }
    .await;
    file.close().await;
    checked
}

async fn write_meta(file: &AnyPool, backend: Backend, schema_version: i64) -> Result<()> {
    file.execute("CREATE TABLE mcpbox_backup (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .await?;
    let entries = [
        ("format", FORMAT.to_owned()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("backend", backend.name().to_owned()),
        ("schema_version", schema_version.to_string()),
        ("created_at", crate::db::now()),
        ("mcpbox_version", env!("CARGO_PKG_VERSION").to_owned()),
    ];
    for (key, value) in entries {
        sqlx::query("INSERT INTO mcpbox_backup (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(file)
            .await?;
    }
    Ok(())
}

async fn read_meta(file: &AnyPool) -> Result<Meta> {
    let rows: BTreeMap<String, String> = sqlx::query("SELECT key, value FROM mcpbox_backup")
        .fetch_all(file)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let get = |key: &str| {
        rows.get(key)
            .cloned()
            .ok_or_else(|| Error::Validation(format!("the backup header lacks {key}")))
    };
    if get("format")? != FORMAT {
        return Err(Error::Validation("not an MCPbox backup".into()));
    }
    let version: i64 = get("format_version")?.parse().unwrap_or(-1);
    if version != FORMAT_VERSION {
        return Err(Error::Validation(format!(
            "backup format version {version} is not supported (this MCPbox reads {FORMAT_VERSION})"
        )));
    }
    let backend = match get("backend")?.as_str() {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => return Err(Error::Validation(format!("unknown backend {other:?}"))),
    };
    Ok(Meta {
        backend,
        schema_version: get("schema_version")?
            .parse()
            .map_err(|_| Error::Validation("bad schema version in the backup header".into()))?,
        created_at: get("created_at")?,
    })
}

/// A single-connection pool on a backup file (`mode` `ro` or `rw`), without the live
/// database's WAL settings.
async fn open_file_pool(path: &Path, mode: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode={mode}", path.display());
    let options = AnyConnectOptions::from_str(&url).context("bad backup path")?;
    Ok(AnyPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("could not open {}", path.display()))?)
}

/// The file behind a `sqlite:` URL.
fn sqlite_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") {
        return Err(Error::Validation(
            "restore needs a SQLite database file, not an in-memory one".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A 0600 file beside its destination, removed unless [`TempFile::finish`] renames it there.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl TempFile {
    fn new_beside(dest: &Path) -> Result<TempFile> {
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Validation(format!("{} is not a file name", dest.display())))?;
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let path = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            uuid::Uuid::now_v7().simple()
        ));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(TempFile { path, done: false })
    }

    /// Syncs, sets 0600 and renames over `dest`; returns the size.
    fn finish(mut self, dest: &Path) -> Result<u64> {
        let file = File::open(&self.path)?;
        file.sync_all()?;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))?;
        let bytes = file.metadata()?.len();
        std::fs::rename(&self.path, dest)
            .with_context(|| format!("could not move the new file to {}", dest.display()))?;
        self.done = true;
        if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The rename itself is durable only once the directory is synced.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(bytes)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
