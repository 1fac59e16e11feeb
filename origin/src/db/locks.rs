//! Background jobs run once across replicas: one replica holds the jobs' lease, a PostgreSQL
//! session-level advisory lock (`pg_try_advisory_lock`) on a connection of its own, and only the
//! holder runs the periodic jobs (log retention, token pruning, the approvals-waiting alert).
//! When the holder dies its connection closes, PostgreSQL releases the lock, and another
//! replica takes it at its next try (within `RETRY`).
//!
//! The window: a holder whose connection broke learns it at its next check (within `RETRY`),
//! while another replica may already hold the lock; the jobs are idempotent (deletes by age, an
//! alert deduplicated by its kind), so a rare overlap repeats a delete, never loses data.
//! SQLite is one process: it always holds the lease.
//!
//! Migrations need nothing here: sqlx's migrator takes its own advisory lock on PostgreSQL
//! (`pg_advisory_lock` on an id derived from the database name) around the whole run, so
//! replicas that start together apply each migration once (tests/tests/replicas.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection as _;

use super::{Backend, Db};

/// Advisory lock ids. A lock is the pair (id, `hashtext(current_schema())`) of PostgreSQL's
/// two-key lock space: apart from sqlx's migration lock (one 64-bit key), and per schema, so two
/// installations in one database do not share a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LockId {
    /// The periodic jobs: retention, token pruning, the approvals alert (`mcp` and 1).
    Jobs = 0x6d63_7001,
}

/// How often a replica without the lease tries to take it, and the holder checks it still holds.
pub const RETRY: Duration = Duration::from_secs(5);

/// Whether this replica holds a lock now. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Lease {
    held: Arc<AtomicBool>,
}

impl Lease {
    /// True while this replica runs the jobs (always on SQLite).
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// A lease that is held until `contend` makes it wait for the lock (SQLite, and processes
    /// that do not serve: the CLI, in-process tests).
    pub fn always() -> Lease {
        Lease {
            held: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Makes `lease` contend for `lock` with the other replicas (`serve`, on PostgreSQL): it is not
/// held until the lock is taken, and a task keeps taking and checking it. Nothing on SQLite,
/// where the lease stays held.
pub fn contend(db: &Db, lock: LockId, lease: &Lease) -> Option<tokio::task::JoinHandle<()>> {
    if db.backend != Backend::Postgres {
        return None;
    }
    lease.held.store(false, Ordering::Relaxed);
    Some(tokio::spawn(keep(db.clone(), lock, lease.clone())))
}

async fn keep(db: Db, lock: LockId, lease: Lease) {
    let mut check = tokio::time::interval(RETRY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        check.tick().await;
        // A connection of its own, outside the pool: the lock lives as long as it does.
        let mut connection = match db.pool.acquire().await {
            Ok(pooled) => pooled.detach(),
            Err(err) => {
                tracing::warn!(error = %err, ?lock, "could not connect to take the jobs' lock");
                continue;
            }
        };
        loop {
            let outcome = if lease.held() {
                sqlx::query("SELECT 1")
                    .execute(&mut connection)
                    .await
                    .map(|_| true)
            } else {
                sqlx::query_scalar::<_, bool>(
                    "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                )
                .bind(lock as i32)
                .fetch_one(&mut connection)
                .await
            };
            match outcome {
                Ok(true) if !lease.held() => {
                    lease.held.store(true, Ordering::Relaxed);
                    tracing::info!(?lock, "this replica runs the background jobs");
                }
                Ok(_) => {}
                Err(err) => {
                    if lease.held.swap(false, Ordering::Relaxed) {
                        tracing::warn!(error = %err, ?lock, "lost the jobs' lock; another replica may take it");
                    }
                    break;
                }
            }
            check.tick().await;
        }
        let _ = connection.close().await;
    }
}
