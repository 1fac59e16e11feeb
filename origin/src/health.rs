//! Liveness and readiness.
//!
//! `GET /health` answers as long as the process serves HTTP; `GET /health/ready` also checks the
//! database (and, once the sandbox exists, the sandbox), with 503 when something is down.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
}

#[derive(Serialize)]
struct Live {
    status: &'static str,
    version: &'static str,
}

async fn live() -> Json<Live> {
    Json(Live {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize)]
struct Ready {
    status: &'static str,
    version: &'static str,
    database: Check,
}

#[derive(Serialize)]
struct Check {
    ok: bool,
    backend: &'static str,
    error: Option<String>,
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let database = match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => Check {
            ok: true,
            backend: state.db.backend.name(),
            error: None,
        },
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            Check {
                ok: false,
                backend: state.db.backend.name(),
                error: Some("unreachable".into()),
            }
        }
        Err(_) => Check {
            ok: false,
            backend: state.db.backend.name(),
            error: Some("timed out".into()),
        },
    };
    let ok = database.ok;
    let body = Ready {
        status: if ok { "ready" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        database,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
