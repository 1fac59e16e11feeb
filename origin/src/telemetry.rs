//! Tracing over OpenTelemetry: the `tracing` spans of the request path exported over OTLP/HTTP
//! (protobuf), off unless an OTLP endpoint is configured.
//!
//! What is traced: the HTTP request (`http::with_layers`), the MCP `tools/call` (`gateway`), the
//! run (`execution::run`), the sandbox call (`dispatch::Sandbox::execute`) and the call to an
//! external source (`external::forward`). Only spans of this crate (target `origin`) at info
//! level are exported, whatever `MCPBOX_LOG` says, so the log filter never changes a trace.
//!
//! Propagation in: W3C `traceparent`/`tracestate` from HTTP headers (the request span's
//! parent) and from an MCP request's `params._meta` (SEP-414, the MCP span's parent). Out: into
//! the `_meta` of the `tools/call` sent to an external MCP source.
//!
//! Export never slows a call: spans go into the SDK's bounded queue (2 048 spans by default,
//! `OTEL_BSP_MAX_QUEUE_SIZE`; beyond it they are dropped) and one background thread sends them
//! in batches, each request bounded by `EXPORT_TIMEOUT`.

use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// One OTLP export request may take this long before it is abandoned (the OTel default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last batch to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where traces go, from the command line (`config::ServeArgs`) with the OTel variable names.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TracingArgs {
    /// OTLP/HTTP base URL of a trace collector, e.g. `http://127.0.0.1:4318`; traces are sent to
    /// `URL/v1/traces` (http/protobuf). Tracing is off unless this or
    /// `--otlp-traces-endpoint` is set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// The full URL traces are sent to, used as it is; wins over `--otlp-endpoint`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub otlp_traces_endpoint: Option<String>,

    /// `service.name` of the exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "mcpbox")]
    pub otel_service_name: String,
}

impl TracingArgs {
    /// Where traces go, for the log: no user information or query (they may hold credentials).
    pub fn describe(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.traces_url()?).ok()?;
        Some(
            format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or("?"),
                url.port()
                    .map(|port| format!(":{port}"))
                    .unwrap_or_default()
            ) + url.path(),
        )
    }

    /// The URL spans are posted to, or `None`: tracing off.
    pub fn traces_url(&self) -> Option<String> {
        let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        nonempty(&self.otlp_traces_endpoint).or_else(|| {
            nonempty(&self.otlp_endpoint)
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
    }
}

/// A layer of the process's subscriber (`main` stacks the log's and this one).
pub type BoxedLayer =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static>;

/// The exporter behind the tracing layer; flushed by `shutdown`.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// The `tracing` layer that exports spans, and the provider to flush at exit; `None` when no
/// endpoint is configured. Also installs the W3C propagator (only then: without it incoming
/// `traceparent`s are ignored, so tracing off costs nothing per request).
pub fn start(args: &TracingArgs) -> anyhow::Result<Option<(BoxedLayer, Telemetry)>> {
    use tracing_subscriber::Layer as _;
    let Some(url) = args.traces_url() else {
        return Ok(None);
    };
    // reqwest's blocking client runs its own runtime thread and may not be built (or dropped)
    // on an async worker, so it is built on a thread of its own; the SDK's batch thread drives
    // it, never a request. Rustls with ring, like every other client of the origin.
    let client = std::thread::spawn(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::blocking::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP client panicked"))??;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    // The default sampler reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (parent-based,
    // always on when unset); the batch processor reads OTEL_BSP_* (queue, delay, batch size).
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(args.otel_service_name.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("mcpbox");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("origin", tracing::Level::INFO),
        )
        .boxed();
    Ok(Some((layer, Telemetry { provider })))
}

impl Telemetry {
    /// Sends what is queued, waiting at most `SHUTDOWN_TIMEOUT` (an unreachable collector must
    /// not hold up the exit).
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("traces not all sent at exit: {err}");
        }
    }
}

/// The trace context of an incoming HTTP request's `traceparent`/`tracestate` headers (an
/// empty context when they are missing, invalid, or tracing is off).
pub fn from_headers(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &HeaderText(headers))
    })
}

/// The trace context an MCP request carries in its `_meta` (SEP-414), if it carries a valid one.
pub fn from_meta(meta: &Map<String, Value>) -> Option<Context> {
    use opentelemetry::trace::TraceContextExt as _;
    meta.get("traceparent")?;
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &MetaText(meta))
    });
    context.span().span_context().is_valid().then_some(context)
}

/// Writes the current span's context into an outgoing MCP request's `_meta` (SEP-414), so the
/// external source's spans join the trace. Nothing when tracing is off.
pub fn inject_meta(meta: &mut Map<String, Value>) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetaWriter(meta))
    });
}

/// The HTTP request's span, put into the request's extensions by `http::with_layers` so the MCP
/// handler (which rmcp runs on a task of its own, outside that span) can hang its span under it.
#[derive(Clone)]
pub struct RequestSpan(pub tracing::Span);

struct HeaderText<'a>(&'a HeaderMap);

impl Extractor for HeaderText<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct MetaText<'a>(&'a Map<String, Value>);

impl Extractor for MetaText<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct MetaWriter<'a>(&'a mut Map<String, Value>);

impl Injector for MetaWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_endpoint_wins_and_base_gets_the_signal_path() {
        let mut args = TracingArgs {
            otlp_endpoint: Some("http://collector:4318/".into()),
            ..TracingArgs::default()
        };
        assert_eq!(
            args.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        args.otlp_traces_endpoint = Some("http://other/traces".into());
        assert_eq!(args.traces_url().as_deref(), Some("http://other/traces"));
        assert_eq!(TracingArgs::default().traces_url(), None);
        let blank = TracingArgs {
            otlp_endpoint: Some(" ".into()),
            ..TracingArgs::default()
        };
        assert_eq!(blank.traces_url(), None);
    }
}
