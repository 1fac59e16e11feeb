//! `/api/dashboard?period=1h|6h|24h|7d`: counts, calls and errors over time, the busiest tools,
//! recent errors, and what waits for review.
//!
//! Time buckets come straight from the stored timestamps (fixed-width RFC 3339 text): the first
//! 15 characters are a 10-minute bucket (`2026-11-22T03:5`), the first 13 an hour.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{self, Db};
use crate::error::{ApiQuery, Error, Result};
use crate::openapi::{E400, E401, E422};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/dashboard", get(dashboard))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Query {
    /// 1h, 6h, 24h (default) or 7d.
    #[param(pattern = "^(1h|6h|24h|7d)$")]
    period: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = dashboard::Dashboard)]
pub struct Dashboard {
    pub period: String,
    pub stats: Stats,
    /// Calls and errors per time bucket, oldest first (buckets without calls are left out).
    pub series: Vec<Bucket>,
    pub top_tools: Vec<ToolCount>,
    pub recent_errors: Vec<RecentError>,
    pub pending: Pending,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = dashboard::Stats)]
pub struct Stats {
    pub total_servers: i64,
    pub running_servers: i64,
    pub total_tools: i64,
    pub enabled_tools: i64,
    pub calls: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub avg_duration_ms: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = dashboard::Bucket)]
pub struct Bucket {
    pub bucket: String,
    pub calls: i64,
    pub errors: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = dashboard::ToolCount)]
pub struct ToolCount {
    pub tool_name: String,
    pub calls: i64,
    pub errors: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = dashboard::RecentError)]
pub struct RecentError {
    pub log_id: String,
    pub tool_name: String,
    pub error: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = dashboard::Pending)]
pub struct Pending {
    pub tools: i64,
    pub modules: i64,
    pub network: i64,
}

#[utoipa::path(get, path = "/api/dashboard", tag = "dashboard", operation_id = "dashboard_dashboard", params(Query), responses((status = 200, body = Dashboard), E400, E401, E422), security(("bearer" = [])))]
async fn dashboard(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<Query>,
) -> Result<Json<Dashboard>> {
    auth.require(Role::Viewer)?;
    let period = query.period.unwrap_or_else(|| "24h".into());
    Ok(Json(build(&state.db, &period).await?))
}

async fn count(db: &Db, sql: &str, bind: Option<&str>) -> Result<i64> {
    let mut query = sqlx::query(sql);
    if let Some(value) = bind {
        query = query.bind(value);
    }
    Ok(query.fetch_one(&db.pool).await?.try_get("n")?)
}

pub async fn build(db: &Db, period: &str) -> Result<Dashboard> {
    let (hours, bucket_chars) = match period {
        "1h" => (1, 15),
        "6h" => (6, 15),
        "24h" => (24, 13),
        "7d" => (24 * 7, 13),
        other => {
            return Err(Error::Validation(format!(
                "unknown period {other:?} (use 1h, 6h, 24h or 7d)"
            )));
        }
    };
    let since = db::timestamp(chrono::Utc::now() - chrono::Duration::hours(hours));
    let calls_row = sqlx::query(
        "SELECT COUNT(*) AS calls, COALESCE(SUM(CASE WHEN success = 0 THEN 1 ELSE 0 END), 0) AS errors, \
         COALESCE(AVG(CAST(duration_ms AS DOUBLE PRECISION)), 0.0) AS avg_ms FROM execution_logs WHERE created_at >= $1",
    )
    .bind(&since)
    .fetch_one(&db.pool)
    .await?;
    let calls: i64 = calls_row.try_get("calls")?;
    let errors: i64 = calls_row.try_get("errors")?;
    let stats = Stats {
        total_servers: count(db, "SELECT COUNT(*) AS n FROM servers", None).await?,
        running_servers: count(
            db,
            "SELECT COUNT(*) AS n FROM servers WHERE status = 'running'",
            None,
        )
        .await?,
        // Prompts and resources are `tools` rows too (`prompts`), but not tools.
        total_tools: count(
            db,
            "SELECT COUNT(*) AS n FROM tools WHERE kind IN ('python', 'passthrough')",
            None,
        )
        .await?,
        enabled_tools: count(
            db,
            "SELECT COUNT(*) AS n FROM tools WHERE enabled = 1 AND kind IN ('python', 'passthrough')",
            None,
        )
        .await?,
        calls,
        errors,
        error_rate: if calls == 0 {
            0.0
        } else {
            errors as f64 / calls as f64
        },
        avg_duration_ms: calls_row.try_get("avg_ms")?,
    };
    let series = sqlx::query(&format!(
        "SELECT substr(created_at, 1, {bucket_chars}) AS bucket, COUNT(*) AS calls, \
         SUM(CASE WHEN success = 0 THEN 1 ELSE 0 END) AS errors FROM execution_logs WHERE created_at >= $1 \
         GROUP BY substr(created_at, 1, {bucket_chars}) ORDER BY bucket"
    ))
    .bind(&since)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|row| Ok(Bucket { bucket: row.try_get("bucket")?, calls: row.try_get("calls")?, errors: row.try_get("errors")? }))
    .collect::<Result<_>>()?;
    let top_tools = sqlx::query(
        "SELECT tool_name, COUNT(*) AS calls, SUM(CASE WHEN success = 0 THEN 1 ELSE 0 END) AS errors FROM execution_logs \
         WHERE created_at >= $1 GROUP BY tool_name ORDER BY calls DESC, tool_name LIMIT 5",
    )
    .bind(&since)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|row| Ok(ToolCount { tool_name: row.try_get("tool_name")?, calls: row.try_get("calls")?, errors: row.try_get("errors")? }))
    .collect::<Result<_>>()?;
    let recent_errors = sqlx::query(
        "SELECT id, tool_name, error, created_at FROM execution_logs WHERE success = 0 AND created_at >= $1 \
         ORDER BY created_at DESC, id DESC LIMIT 10",
    )
    .bind(&since)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|row| {
        Ok(RecentError {
            log_id: row.try_get("id")?,
            tool_name: row.try_get("tool_name")?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .collect::<Result<_>>()?;
    let pending = Pending {
        tools: count(
            db,
            "SELECT COUNT(*) AS n FROM tool_versions WHERE status = 'pending_review'",
            None,
        )
        .await?,
        modules: count(
            db,
            "SELECT COUNT(*) AS n FROM access_requests WHERE kind = $1 AND status = 'pending'",
            Some("module"),
        )
        .await?,
        network: count(
            db,
            "SELECT COUNT(*) AS n FROM access_requests WHERE kind = $1 AND status = 'pending'",
            Some("network"),
        )
        .await?,
    };
    Ok(Dashboard {
        period: period.to_owned(),
        stats,
        series,
        top_tools,
        recent_errors,
        pending,
    })
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(dashboard))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
