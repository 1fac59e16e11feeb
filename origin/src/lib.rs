//! The MCPbox origin service (`mcpbox`).
//!
//! Module map:
//! - `config`: the clap command line (every flag also an `MCPBOX_*` variable).
//! - `app`: shared state (`AppState`), the router, `serve` and graceful shutdown.
//! - `http`: layers every response goes through (security headers, JSON errors, limits, ids).
//! - `listener`: serving a listener with a header-read timeout and a connection cap.
//! - `error`: `Error`, the one error type, and the `ApiJson`/`ApiQuery` extractors.
//! - `db`: the sqlx Any pool over SQLite or PostgreSQL, migrations, ids and timestamps.
//! - `backup`: `mcpbox backup` / `mcpbox restore`, one checked file format for both backends.
//! - `crypto`: AES-256-GCM values bound to their owner, key loading and rotation.
//! - `dispatch`: the one path to the sandbox supervisor (pool, timeouts, circuit breaker).
//! - `auth`: set-up, sign-in, tokens, throttling, the `AuthUser` extractor and roles.
//! - `users`: accounts and `/api/users`.
//! - `names`: server and tool names (`{server}__{tool}` cannot collide).
//! - `control`: who may flip what decides what runs (an admin's stop beats an LLM's start).
//! - `servers`, `tools` (versions, `runnable`: the call-time check), `approvals` (bound to
//!   versions, `Reviewer`), `secrets` (encrypted, write-only), `execution` (`run`: the one way
//!   code reaches the sandbox, and the execution log), `access` (module and network requests:
//!   what a server's tools may import and reach), `activity` (audit log, `Audit`, live stream),
//!   `external` (external MCP sources: discovery, import as passthrough tools, `forward`).
//! - `cloudflare`: remote set-up through Cloudflare (API client, the six-step wizard, the
//!   embedded Worker bundle, the edge KV document, the remote email allowlist).
//! - `gateway`: `/mcp` (rmcp Streamable HTTP, hand-written handler over the domain functions).
//! - `alerts`: webhooks (Slack, Discord, generic) raised from where events happen, delivered
//!   off the request path.
//! - `dashboard`: `/api/dashboard` figures. `openapi`: the generated `/api/openapi.json`.
//! - `telemetry`: OpenTelemetry traces over OTLP/HTTP (off by default), W3C propagation.
//! - `ratelimit`: request rate limits (one limiter for both listeners, limits in the settings).
//! - `settings`, `pagination`, `health`: small shared pieces.
//! - `transfer`: signed export and import (`/api/export`, `/api/import`).
//! - `mcp_keys`: local MCP client keys (issued, hashed, revocable; the `/mcp` check's cache).
//! - `prompts`: prompts and resources an LLM authors and a person approves (kinds of `tools`
//!   rows; served by `gateway::catalog`).
//! - `cli`: `mcpbox admin …`.

pub mod access;
pub mod activity;
pub mod alerts;
pub mod app;
pub mod approvals;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod cloudflare;
pub mod config;
pub mod control;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod dispatch;
pub mod error;
pub mod execution;
pub mod external;
pub mod gateway;
pub mod health;
pub mod http;
pub mod integer;
pub mod listener;
pub mod mcp_keys;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod packages;
pub mod pagination;
pub mod prompts;
pub mod ratelimit;
pub mod secrets;
pub mod servers;
pub mod settings;
pub mod telemetry;
pub mod tools;
pub mod transfer;
pub mod ui;
pub mod users;

pub use error::{Error, Result};
