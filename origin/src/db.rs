//! Storage: one sqlx `AnyPool` over SQLite (the zero-set-up default) or PostgreSQL.
//!
//! Queries are written once in the SQL both understand (`$1` placeholders, `ON CONFLICT`,
//! `RETURNING`) and run through the Any driver, so there is one implementation per query, not
//! one per backend. The two migration folders keep the same shape; their header comment lists the
//! column-type conventions that make this work.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub mod events;
pub mod locks;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!(
                "unsupported database URL (expected sqlite:PATH or postgres://…): {}",
                redact_url(url)
            )
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The database handle held by the application state. Cloning is cheap (the pool is shared).
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// Connects and runs the migrations of the URL's backend.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyConnectOptions::from_str(url)
            .with_context(|| format!("invalid database URL {}", redact_url(url)))?;
        let pool_options = match backend {
            // SQLite serialises writers; a few connections are plenty and WAL lets readers
            // proceed during a write.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("could not connect to the database at {}", redact_url(url)))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .context("could not apply the database migrations")?;
        Ok(Db { pool, backend })
    }

    /// The newest migration this binary applies to `backend`: the schema version a backup records
    /// and a restore checks.
    pub fn schema_version(backend: Backend) -> i64 {
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The newest migration applied to this database.
    pub async fn applied_schema_version(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.ping_timed().await.map(|_| ())
    }

    /// `ping`, returning how long taking a connection from the pool waited.
    ///
    /// Why a probe: sqlx's pool does not report how long requests wait for a connection, and
    /// queries take theirs inside sqlx (`&pool` as executor) all over the crate, so there is no
    /// one place to time them without wrapping every query. The wait a request arriving now
    /// would see is the figure that matters (a pool exhausted by slow queries shows at once), and
    /// the readiness check and each scrape take a connection anyway: timing that `acquire` costs
    /// nothing extra and is the true wait at that moment.
    pub async fn ping_timed(&self) -> Result<Duration, sqlx::Error> {
        let (mut connection, waited) = self.acquire_timed().await?;
        sqlx::query("SELECT 1").execute(&mut *connection).await?;
        Ok(waited)
    }

    /// A pooled connection and how long the pool took to hand it over.
    pub async fn acquire_timed(
        &self,
    ) -> Result<(sqlx::pool::PoolConnection<sqlx::Any>, Duration), sqlx::Error> {
        let started = std::time::Instant::now();
        let connection = self.pool.acquire().await?;
        Ok((connection, started.elapsed()))
    }

    /// The pool's connections now and its configured bound.
    pub fn pool_figures(&self) -> PoolFigures {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        PoolFigures {
            max_connections: self.pool.options().get_max_connections(),
            in_use: size.saturating_sub(idle),
            idle,
        }
    }
}

/// What `Db::pool_figures` reports (`/metrics` and `/health/ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PoolFigures {
    pub max_connections: u32,
    pub in_use: u32,
    pub idle: u32,
}

/// The current time in the stored timestamp format (see the migrations' header).
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A new UUIDv7 id (time-ordered, so inserts stay append-mostly in indexes).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..scheme_end], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://bob:hunter2@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let err = Backend::from_url("mysql://root:pw@x/db").unwrap_err();
        assert!(err.to_string().contains("unsupported database URL"));
        assert!(!err.to_string().contains("pw"));
    }

    #[test]
    fn timestamps_are_fixed_width_and_sort_as_text() {
        let a = timestamp(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let b = timestamp(chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap());
        assert_eq!(a, "2023-11-14T22:13:20.000000Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }
}
