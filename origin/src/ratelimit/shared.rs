//! The same GCRA bucket as `Limiter::check`, kept in the database (`rate_buckets`, migration
//! 0012), for limits that must hold across replicas: the tunnel's per-user MCP limit on
//! PostgreSQL. One key per check; the check and the charge are one conditional upsert (the row
//! lock serialises concurrent requests on a key, on any replica), so the cost is one round trip
//! and a commit per request (figures in the README, "Running several origins"). A refusal costs
//! a second read, for `Retry-After`.

use std::time::Duration;

use super::{Rule, Verdict, standing};
use crate::auth::throttle::now_us;
use crate::db::Db;
use crate::error::Result;

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Takes one token from the bucket `key` under `rule`, or refuses without charging.
pub async fn check(db: &Db, key: &str, policy: &'static str, rule: Rule) -> Result<Verdict> {
    let now = now_us();
    let interval = micros(rule.interval());
    let tolerance = micros(rule.tolerance());
    // New bucket: full, so its next full time is one interval from now. Existing: charged only
    // while it has a token left (its full time at most `tolerance` ahead of now).
    let charged: Option<i64> = sqlx::query_scalar(
        "INSERT INTO rate_buckets (key, tat_us) VALUES ($1, $2 + $3) \
         ON CONFLICT (key) DO UPDATE SET tat_us = \
           (CASE WHEN rate_buckets.tat_us > $2 THEN rate_buckets.tat_us ELSE $2 END) + $3 \
         WHERE rate_buckets.tat_us <= $2 + $4 \
         RETURNING tat_us",
    )
    .bind(key)
    .bind(now)
    .bind(interval)
    .bind(tolerance)
    .fetch_optional(&db.pool)
    .await?;
    let ahead = |tat: i64| Duration::from_micros(u64::try_from(tat - now).unwrap_or(0));
    Ok(match charged {
        Some(tat) => Verdict::Allowed(vec![standing(policy, rule, ahead(tat))]),
        None => {
            let tat: Option<i64> =
                sqlx::query_scalar("SELECT tat_us FROM rate_buckets WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&db.pool)
                    .await?;
            let ahead = ahead(tat.unwrap_or(now));
            Verdict::Refused {
                retry_after: ahead
                    .saturating_sub(rule.tolerance())
                    .max(Duration::from_millis(1)),
                standings: vec![standing(policy, rule, ahead)],
            }
        }
    })
}

/// Deletes full buckets (their time has passed: they carry nothing); the periodic jobs.
pub async fn prune(db: &Db) -> Result<u64> {
    let deleted = sqlx::query("DELETE FROM rate_buckets WHERE tat_us < $1")
        .bind(now_us())
        .execute(&db.pool)
        .await?;
    Ok(deleted.rows_affected())
}
