//! Prometheus metrics, served at `/metrics` on their own listener (`--metrics-listen`), never on
//! the admin/local listener nor the tunnel listener: an exposition page is for a scraper on the
//! operator's network, not for MCP clients or browsers.
//!
//! Two kinds of values:
//! * counted where they happen: tool calls and their duration (`execution::run` and
//!   `execution::log_refusal`, the one place every call goes through), HTTP requests (a layer
//!   in `http::with_layers`, on both other listeners), requests refused by a rate limit
//!   (`ratelimit::guard` and `gateway::tunnel`, where they refuse);
//! * read at scrape time (`refresh`): MCP sessions, approvals pending, the sandbox's idle workers,
//!   breaker and zygote restarts, the database pool (with a timed `acquire`, see
//!   `db::Db::ping_timed` for why), the external sources and their client pool, the alerts'
//!   counters (`alerts::Alerts::counts`, kept where alerts are raised and delivered). A part that
//!   cannot be read (the sandbox down, the database slow) becomes a gauge value or keeps its last
//!   value; the scrape itself never fails for it.
//!
//! Cardinality: label values are server, tool and source names read from the database (a call
//! to a tool that does not exist is refused before anything is counted), route templates (the
//! matched path, never the raw one), status classes and fixed words.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sqlx::Row;

use crate::app::AppState;
use crate::dispatch::CircuitState;

/// How long a scrape waits for the sandbox's health answer before reporting it down.
const SANDBOX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a scrape waits for the database counts before keeping the previous values.
const DATABASE_SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    server: String,
    tool: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    server: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    server: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

type DurationFamily = Family<ToolLabels, Histogram, fn() -> Histogram>;

/// How a tool call ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The tool ran and returned a result.
    Ok,
    /// The tool ran and failed (exception, refused import, memory, crash...).
    Error,
    /// The tool ran past its deadline and was killed.
    Timeout,
    /// Nothing answered: the sandbox or the external source was unreachable.
    Unavailable,
    /// Refused before anything ran (no approved version, tool disabled, server stopped).
    Refused,
    /// The round ended asking the client for input (`execution::rounds`); the call goes on.
    InputRequired,
}

impl CallOutcome {
    fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Refused => "refused",
            CallOutcome::InputRequired => "input_required",
        }
    }
}

/// Which limit refused a request, as the `scope` label of `mcpbox_rate_limited_total` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitScope {
    /// `/api/…`, `/auth/…` per client address (`api_per_address`).
    ApiAddress,
    /// API bearer tokens per account (`api_per_account`).
    ApiAccount,
    /// Local `/mcp` per client address (`mcp_per_address`).
    McpAddress,
    /// The tunnel's `/mcp` per signed-in remote user (`mcp_rate_limit_rpm`).
    TunnelUser,
}

impl RateLimitScope {
    const ALL: [RateLimitScope; 4] = [
        RateLimitScope::ApiAddress,
        RateLimitScope::ApiAccount,
        RateLimitScope::McpAddress,
        RateLimitScope::TunnelUser,
    ];

    fn label(self) -> &'static str {
        match self {
            RateLimitScope::ApiAddress => "api_address",
            RateLimitScope::ApiAccount => "api_account",
            RateLimitScope::McpAddress => "mcp_address",
            RateLimitScope::TunnelUser => "tunnel_user",
        }
    }
}

/// The HTTP request counter, shared by the layers of both listeners (cloning shares it).
#[derive(Clone, Default)]
pub struct HttpRequests(Family<HttpLabels, Counter>);

impl HttpRequests {
    fn record(&self, route: &str, status: u16) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.0
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }
}

/// The middleware `http::with_layers` installs with `Router::layer`, which runs after routing:
/// the matched route template is known, so the label is bounded by the routes that exist.
pub async fn count_http(
    State(requests): State<HttpRequests>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    // No matched path: the fallback (404 pages, unknown paths). One label for all of them.
    let route = route.as_deref().unwrap_or("unmatched");
    requests.record(route, response.status().as_u16());
    response
}

/// Every metric of the process, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    tool_calls: Family<CallLabels, Counter>,
    tool_call_duration: DurationFamily,
    pub http_requests: HttpRequests,
    mcp_sessions: Gauge,
    mcp_watchers: Gauge,
    approvals_pending: Family<KindLabel, Gauge>,
    sandbox_up: Gauge,
    sandbox_idle_workers: Gauge,
    sandbox_breaker: Family<StateLabel, Gauge>,
    sandbox_zygote_restarts: Counter,
    db_connections: Family<StateLabel, Gauge>,
    db_max_connections: Gauge,
    db_acquire: Gauge<f64, AtomicU64>,
    external_source_up: Family<SourceLabels, Gauge>,
    external_pool_clients: Gauge,
    alerts_raised: Family<KindLabel, Counter>,
    alerts_dropped: Counter,
    alert_deliveries: Family<OutcomeLabel, Counter>,
    rate_limited: Family<ScopeLabel, Counter>,
}

fn duration_histogram() -> Histogram {
    // 5 ms to about 41 s: sandbox runs take milliseconds, the longest tool timeout is seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let tool_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "mcpbox_tool_calls",
            "Tool calls by MCP clients, by server, tool and outcome (ok, error, timeout, \
             unavailable, refused); test runs are not counted",
            tool_calls.clone(),
        );
        let tool_call_duration: DurationFamily = Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "mcpbox_tool_call_duration",
            "Wall-clock time of tool calls that were dispatched, by server and tool",
            Unit::Seconds,
            tool_call_duration.clone(),
        );
        let http_requests = HttpRequests::default();
        registry.register(
            "mcpbox_http_requests",
            "HTTP requests on the admin/local and tunnel listeners, by route template and \
             status class",
            http_requests.0.clone(),
        );
        let mcp_sessions = Gauge::default();
        registry.register(
            "mcpbox_mcp_sessions_open",
            "MCP sessions open on both listeners",
            mcp_sessions.clone(),
        );
        let mcp_watchers = Gauge::default();
        registry.register(
            "mcpbox_mcp_list_changed_watchers",
            "Tasks sending tools/list_changed notifications to open MCP sessions",
            mcp_watchers.clone(),
        );
        let approvals_pending = Family::<KindLabel, Gauge>::default();
        registry.register(
            "mcpbox_approvals_pending",
            "Requests waiting for a person: tool versions, module and network requests",
            approvals_pending.clone(),
        );
        let sandbox_up = Gauge::default();
        registry.register(
            "mcpbox_sandbox_up",
            "1 if the sandbox answered its health check at scrape time, 0 if not",
            sandbox_up.clone(),
        );
        let sandbox_idle_workers = Gauge::default();
        registry.register(
            "mcpbox_sandbox_idle_workers",
            "Idle sandbox workers ready to run a tool (0 when the sandbox does not answer)",
            sandbox_idle_workers.clone(),
        );
        let sandbox_breaker = Family::<StateLabel, Gauge>::default();
        registry.register(
            "mcpbox_sandbox_breaker_state",
            "The sandbox circuit breaker: 1 for its current state (closed, open, half_open)",
            sandbox_breaker.clone(),
        );
        let sandbox_zygote_restarts = Counter::default();
        registry.register(
            "mcpbox_sandbox_zygote_restarts",
            "Times the sandbox supervisor restarted a dead zygote, as its last health answer \
             says (starts again from 0 when the supervisor restarts)",
            sandbox_zygote_restarts.clone(),
        );
        let db_connections = Family::<StateLabel, Gauge>::default();
        registry.register(
            "mcpbox_db_pool_connections",
            "Database pool connections, by state (in_use, idle)",
            db_connections.clone(),
        );
        let db_max_connections = Gauge::default();
        registry.register(
            "mcpbox_db_pool_max_connections",
            "The database pool's configured bound on connections",
            db_max_connections.clone(),
        );
        let db_acquire = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "mcpbox_db_pool_acquire",
            "How long the last probe (a scrape or a readiness check) waited for a database \
             pool connection; a lower bound when it gave up",
            Unit::Seconds,
            db_acquire.clone(),
        );
        let external_source_up = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "mcpbox_external_source_up",
            "1 if the approved external MCP source answered its last contact, 0 if it failed",
            external_source_up.clone(),
        );
        let external_pool_clients = Gauge::default();
        registry.register(
            "mcpbox_external_pool_clients",
            "Open MCP clients to external sources kept for reuse (one per source at most)",
            external_pool_clients.clone(),
        );
        let alerts_raised = Family::<KindLabel, Counter>::default();
        registry.register(
            "mcpbox_alerts_raised",
            "Alerts queued for delivery to the webhooks, by kind (duplicates within the dedup \
             window are not counted)",
            alerts_raised.clone(),
        );
        let alerts_dropped = Counter::default();
        registry.register(
            "mcpbox_alerts_dropped",
            "Alerts dropped because the delivery queue or the dedup table was full",
            alerts_dropped.clone(),
        );
        let alert_deliveries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "mcpbox_alert_deliveries",
            "Alert deliveries to one webhook after their retries, by outcome (delivered, \
             failed, rate_limited)",
            alert_deliveries.clone(),
        );
        let rate_limited = Family::<ScopeLabel, Counter>::default();
        registry.register(
            "mcpbox_rate_limited",
            "Requests refused with 429 by a rate limit, by the limit that refused them \
             (api_address, api_account, mcp_address, tunnel_user); a request refused by two \
             limits counts in both",
            rate_limited.clone(),
        );
        // Every scope from the start, at 0: a counter that appears only at its first refusal
        // hides that first increase from `rate()` and `increase()`.
        for scope in RateLimitScope::ALL {
            let _ = rate_limited.get_or_create(&ScopeLabel {
                scope: scope.label(),
            });
        }
        Metrics {
            registry,
            tool_calls,
            tool_call_duration,
            http_requests,
            mcp_sessions,
            mcp_watchers,
            approvals_pending,
            sandbox_up,
            sandbox_idle_workers,
            sandbox_breaker,
            sandbox_zygote_restarts,
            db_connections,
            db_max_connections,
            db_acquire,
            external_source_up,
            external_pool_clients,
            alerts_raised,
            alerts_dropped,
            alert_deliveries,
            rate_limited,
        }
    }
}

impl Metrics {
    /// One tool call. `duration` is `None` for a call refused before anything ran.
    pub fn tool_call(
        &self,
        server: &str,
        tool: &str,
        outcome: CallOutcome,
        duration: Option<Duration>,
    ) {
        self.tool_calls
            .get_or_create(&CallLabels {
                server: server.to_owned(),
                tool: tool.to_owned(),
                outcome: outcome.label(),
            })
            .inc();
        if let Some(duration) = duration {
            self.tool_call_duration
                .get_or_create(&ToolLabels {
                    server: server.to_owned(),
                    tool: tool.to_owned(),
                })
                .observe(duration.as_secs_f64());
        }
    }

    /// A request refused by a rate limit.
    pub fn rate_limited(&self, scope: RateLimitScope) {
        self.rate_limited
            .get_or_create(&ScopeLabel {
                scope: scope.label(),
            })
            .inc();
    }

    /// How long a probe waited for a database connection (scrapes and readiness checks).
    pub fn db_acquired(&self, waited: Duration) {
        self.db_acquire.set(waited.as_secs_f64());
    }

    /// Reads the values kept elsewhere (sessions, sandbox, database) into the gauges.
    async fn refresh(&self, state: &AppState) {
        self.mcp_sessions
            .set(i64::try_from(state.mcp_sessions.open()).unwrap_or(i64::MAX));
        self.mcp_watchers
            .set(i64::try_from(state.mcp_sessions.watchers()).unwrap_or(i64::MAX));

        // The breaker is read before the health check, which records its own outcome on it.
        let circuit = state.sandbox.circuit();
        for (name, value) in [
            ("closed", CircuitState::Closed),
            ("open", CircuitState::Open),
            ("half_open", CircuitState::HalfOpen),
        ] {
            self.sandbox_breaker
                .get_or_create(&StateLabel { state: name })
                .set(i64::from(circuit == value));
        }
        match tokio::time::timeout(SANDBOX_SCRAPE_TIMEOUT, state.sandbox.health()).await {
            Ok(Ok(health)) => {
                self.sandbox_up.set(1);
                self.sandbox_idle_workers
                    .set(i64::from(health.idle_workers));
                // A counter kept by the supervisor: mirrored, not counted here.
                store(&self.sandbox_zygote_restarts, health.zygote_restarts);
            }
            Ok(Err(_)) | Err(_) => {
                self.sandbox_up.set(0);
                self.sandbox_idle_workers.set(0);
            }
        }

        self.external_pool_clients
            .set(i64::try_from(state.external.clients()).unwrap_or(i64::MAX));
        let counts = state.alerts.counts();
        for (kind, count) in counts.raised {
            let counter = self.alerts_raised.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
            store(&counter, count);
        }
        store(&self.alerts_dropped, counts.dropped);
        for (outcome, count) in counts.deliveries {
            store(
                &self
                    .alert_deliveries
                    .get_or_create(&OutcomeLabel { outcome }),
                count,
            );
        }

        // Read before this scrape takes its own connection, which would count as in use.
        let pool = state.db.pool_figures();
        self.db_connections
            .get_or_create(&StateLabel { state: "idle" })
            .set(i64::from(pool.idle));
        self.db_connections
            .get_or_create(&StateLabel { state: "in_use" })
            .set(i64::from(pool.in_use));
        self.db_max_connections.set(i64::from(pool.max_connections));

        // The connection the counts below need, its wait timed: the pool's acquire-wait probe.
        let connection =
            match tokio::time::timeout(DATABASE_SCRAPE_TIMEOUT, state.db.acquire_timed()).await {
                Ok(Ok((connection, waited))) => {
                    self.db_acquired(waited);
                    connection
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "metrics: no database connection");
                    return;
                }
                Err(_) => {
                    self.db_acquired(DATABASE_SCRAPE_TIMEOUT);
                    tracing::warn!("metrics: no database connection within the scrape timeout");
                    return;
                }
            };
        match tokio::time::timeout(DATABASE_SCRAPE_TIMEOUT, self.read_database(connection)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "metrics: could not read the database"),
            Err(_) => tracing::warn!("metrics: the database counts took too long"),
        }
    }

    async fn read_database(
        &self,
        mut connection: sqlx::pool::PoolConnection<sqlx::Any>,
    ) -> crate::error::Result<()> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM tool_versions WHERE status = 'pending_review') AS tools, \
             (SELECT COUNT(*) FROM access_requests WHERE kind = 'module' AND status = 'pending') AS modules, \
             (SELECT COUNT(*) FROM access_requests WHERE kind = 'network' AND status = 'pending') AS network",
        )
        .fetch_one(&mut *connection)
        .await?;
        for (kind, column) in [
            ("tool_version", "tools"),
            ("module", "modules"),
            ("network", "network"),
        ] {
            self.approvals_pending
                .get_or_create(&KindLabel { kind })
                .set(row.try_get::<i64, _>(column)?);
        }
        // Approved sources only: a source pending approval has never been contacted.
        let sources = sqlx::query(
            "SELECT s.name AS server, e.name AS source, e.status FROM external_sources e \
             JOIN servers s ON s.id = e.server_id WHERE e.status <> 'pending_approval'",
        )
        .fetch_all(&mut *connection)
        .await?;
        // Deleted sources drop out of the exposition instead of keeping a stale value.
        self.external_source_up.clear();
        for row in sources {
            let status: String = row.try_get("status")?;
            self.external_source_up
                .get_or_create(&SourceLabels {
                    server: row.try_get("server")?,
                    source: row.try_get("source")?,
                })
                .set(i64::from(status == "active"));
        }
        Ok(())
    }

    /// The exposition in the Prometheus text format (0.0.4), which `promtool check metrics`
    /// and every Prometheus version read.
    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Sets a counter to a count kept elsewhere (the supervisor's, the alerts'), which only the
/// owner of that count increments.
fn store(counter: &Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
}

/// The metrics listener's whole application: `GET /metrics` and nothing else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> Response {
    state.metrics.refresh(&state).await;
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(_) => {
            tracing::error!("metrics: could not encode the exposition");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
