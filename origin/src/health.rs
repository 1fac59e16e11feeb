//! Liveness and readiness.
//!
//! `GET /health` answers as long as the process serves HTTP. `GET /health/ready` also checks the
//! database and the sandbox (its isolation layers and circuit breaker), with 503 when either is
//! down, and shows the pools (database connections and the wait for one, external clients). `GET /api/health/circuits` shows the breaker to signed-in users; admins can reset it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::dispatch::CircuitState;
use crate::error::Result;
use crate::openapi::{Admin, E401};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
        .route("/api/health/circuits", get(circuits))
        .route("/api/health/circuits/reset", post(reset_circuits))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::Live)]
struct Live {
    status: &'static str,
    version: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "health", operation_id = "health_live", responses((status = 200, body = Live)))]
async fn live() -> Json<Live> {
    Json(Live {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::Ready)]
struct Ready {
    status: &'static str,
    version: &'static str,
    database: DatabaseCheck,
    sandbox: SandboxCheck,
    mcp: McpFigures,
    external: ExternalFigures,
}

/// The pool of clients to external MCP sources (never a reason to be unready).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::ExternalFigures)]
struct ExternalFigures {
    pooled_clients: usize,
    pooled_clients_max: usize,
}

/// The bounded resources MCP clients hold (never a reason to be unready).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::McpFigures)]
struct McpFigures {
    /// Open 2025-11-25 sessions on both listeners, and the limit of each listener.
    sessions_open: usize,
    sessions_max_per_listener: usize,
    session_idle_timeout_s: u64,
    /// Sessions' list_changed tasks still alive; falls back as sessions close.
    list_changed_watchers: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::DatabaseCheck)]
struct DatabaseCheck {
    ok: bool,
    backend: &'static str,
    pool: PoolCheck,
    error: Option<String>,
}

/// The same figures as `mcpbox_db_pool_*` in `/metrics`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::PoolCheck)]
struct PoolCheck {
    #[serde(flatten)]
    figures: crate::db::PoolFigures,
    /// How long this check waited for a connection (`None` when it got none).
    acquire_wait_s: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::SandboxCheck)]
struct SandboxCheck {
    ok: bool,
    circuit: CircuitState,
    /// Which isolation layers are active; `missing_layers` lists those this host cannot apply.
    layers: Option<contract::sandbox::Layers>,
    missing_layers: Vec<&'static str>,
    idle_workers: Option<u32>,
    /// Zygote restarts since the supervisor started (a rising count is a crash loop).
    zygote_restarts: Option<u64>,
    error: Option<String>,
}

#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "health_ready", responses((status = 200, description = "Ready: the database and the sandbox answer", body = Ready), (status = 503, description = "Not ready: the same report, saying what fails", body = Ready)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let backend = state.db.backend.name();
    // Read before the check takes its connection, which would count as in use.
    let figures = state.db.pool_figures();
    let check = |acquire_wait_s, error: Option<&str>| DatabaseCheck {
        ok: error.is_none(),
        backend,
        pool: PoolCheck {
            figures,
            acquire_wait_s,
        },
        error: error.map(str::to_owned),
    };
    let timeout = Duration::from_secs(2);
    let database = match tokio::time::timeout(timeout, state.db.ping_timed()).await {
        Ok(Ok(waited)) => {
            state.metrics.db_acquired(waited);
            check(Some(waited.as_secs_f64()), None)
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            check(None, Some("unreachable"))
        }
        Err(_) => check(None, Some("timed out")),
    };
    let sandbox = match state.sandbox.health().await {
        Ok(health) => SandboxCheck {
            ok: true,
            circuit: state.sandbox.circuit(),
            missing_layers: health.layers.missing(),
            layers: Some(health.layers),
            idle_workers: Some(health.idle_workers),
            zygote_restarts: Some(health.zygote_restarts),
            error: None,
        },
        Err(err) => SandboxCheck {
            ok: false,
            circuit: state.sandbox.circuit(),
            layers: None,
            missing_layers: Vec::new(),
            idle_workers: None,
            zygote_restarts: None,
            error: Some(err.to_string()),
        },
    };
    let ok = database.ok && sandbox.ok;
    let body = Ready {
        status: if ok { "ready" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        database,
        sandbox,
        mcp: McpFigures {
            sessions_open: state.mcp_sessions.open(),
            sessions_max_per_listener: state.mcp_sessions.limits().max_sessions,
            session_idle_timeout_s: state.mcp_sessions.limits().idle_timeout.as_secs(),
            list_changed_watchers: state.mcp_sessions.watchers(),
        },
        external: ExternalFigures {
            pooled_clients: state.external.clients(),
            pooled_clients_max: crate::external::POOL_MAX,
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = health::Circuits)]
struct Circuits {
    sandbox: CircuitState,
}

#[utoipa::path(get, path = "/api/health/circuits", tag = "health", operation_id = "health_circuits", responses((status = 200, body = Circuits), E401), security(("bearer" = [])))]
async fn circuits(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Circuits>> {
    auth.require(Role::Viewer)?;
    Ok(Json(Circuits {
        sandbox: state.sandbox.circuit(),
    }))
}

#[utoipa::path(post, path = "/api/health/circuits/reset", tag = "health", operation_id = "health_reset_circuits", responses((status = 200, body = Circuits), Admin), security(("bearer" = [])))]
async fn reset_circuits(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Circuits>> {
    auth.require(Role::Admin)?;
    state.sandbox.reset_circuit();
    tracing::info!(by = %auth.user().username, "sandbox circuit breaker reset");
    Ok(Json(Circuits {
        sandbox: state.sandbox.circuit(),
    }))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(live, ready, circuits, reset_circuits))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
