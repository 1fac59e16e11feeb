//! The MCPbox edge worker: a workers-rs `#[event(fetch)]` shell over `mcpbox-edge-core`.
//!
//! This crate only adapts the Workers runtime to the core's traits (KV, `Date.now()`,
//! `crypto.getRandomValues`, `fetch`; see [`ports`]) and carries out the core's decision for each
//! request: send its answer, or forward to the origin and stream the origin's answer back.
//! Everything that decides anything (OAuth, OIDC, CORS, forwarding rules) lives in the core.
//!
//! Bindings (see `wrangler.toml`): `OAUTH_KV` (KV namespace), `ORIGIN` (optional Workers VPC
//! service binding to the origin's tunnel listener; without it the origin is fetched over the
//! public internet at `MCPBOX_ORIGIN_URL`), plus the vars and secrets the core reads.

mod convert;
mod ports;

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::StreamExt;
use mcpbox_edge_core::{
    Edge, EdgeConfig, EdgeRequest, EdgeResponse, Forward, Handled, Level, Method, Outcome, Ports,
};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    Context, Env, Fetch, Fetcher, Request, RequestInit, RequestRedirect, Response, event, js_sys,
};

use ports::{WorkersClock, WorkersFetch, WorkersKv, WorkersRandom};

/// The KV namespace binding: the config document written by the origin and the core's records.
const KV_BINDING: &str = "OAUTH_KV";
/// The optional Workers VPC service binding that reaches the origin through the tunnel.
const ORIGIN_BINDING: &str = "ORIGIN";
/// Largest request body accepted from a client (MCP and OAuth bodies are small).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

thread_local! {
    /// One `Edge` per isolate: vars and secrets never change within an isolate, and the core
    /// keeps its caches (config document, JWKS) in it.
    static EDGE: RefCell<Option<Rc<Edge>>> = const { RefCell::new(None) };
}

fn edge(env: &Env) -> Result<Rc<Edge>, String> {
    if let Some(edge) = EDGE.with(|cell| cell.borrow().clone()) {
        return Ok(edge);
    }
    let config = EdgeConfig::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))
        .map_err(|err| err.to_string())?;
    let edge = Rc::new(Edge::new(config).map_err(|err| err.to_string())?);
    EDGE.with(|cell| *cell.borrow_mut() = Some(edge.clone()));
    Ok(edge)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let edge = match edge(&env) {
        Ok(edge) => edge,
        Err(err) => {
            worker::console_error!("mcpbox edge worker is misconfigured: {err}");
            return plain(500, "the edge worker is misconfigured; see its log");
        }
    };
    let kv = match env.kv(KV_BINDING) {
        Ok(kv) => kv,
        Err(err) => {
            worker::console_error!("mcpbox edge worker: no KV binding {KV_BINDING}: {err}");
            return plain(500, "the edge worker is misconfigured; see its log");
        }
    };
    let request = match edge_request(req).await {
        Ok(Some(request)) => request,
        Ok(None) => return plain(413, "request body too large"),
        Err(err) => {
            worker::console_warn!("could not read the request: {err}");
            return plain(400, "could not read the request");
        }
    };
    let ports = Ports {
        kv: WorkersKv(kv),
        clock: WorkersClock,
        random: WorkersRandom,
        http: WorkersFetch,
    };
    let Handled { outcome, log } = edge.handle(&ports, request).await;
    for line in log {
        match line.level {
            Level::Info => worker::console_log!("{}", line.message),
            Level::Warn => worker::console_warn!("{}", line.message),
            Level::Error => worker::console_error!("{}", line.message),
        }
    }
    match outcome {
        Outcome::Respond(answer) => respond(answer),
        Outcome::Forward(forward) => match to_origin(&env, &forward).await {
            Ok(response) => Ok(response),
            Err(err) => {
                worker::console_error!("the origin could not be reached: {err}");
                respond(forward.bad_gateway())
            }
        },
    }
}

/// The incoming request as the core wants it; `None` when the body is over the limit.
async fn edge_request(mut req: Request) -> worker::Result<Option<EdgeRequest>> {
    let headers = convert::core_headers(req.headers());
    let method = Method::parse(&String::from(req.method()));
    let url = req.url()?.to_string();
    let client_ip = headers.get("cf-connecting-ip").map(str::to_owned);
    let declared = headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BYTES) {
        return Ok(None);
    }
    let mut body = Vec::new();
    if !matches!(method, Method::Get | Method::Head)
        && let Ok(mut stream) = req.stream()
    {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > MAX_REQUEST_BYTES {
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
    }
    Ok(Some(EdgeRequest {
        method,
        url,
        headers,
        body,
        client_ip,
    }))
}

fn respond(answer: EdgeResponse) -> worker::Result<Response> {
    let headers = convert::worker_headers(&answer.headers)?;
    let builder = Response::builder()
        .with_status(answer.status)
        .with_headers(headers);
    Ok(if answer.body.is_empty() {
        builder.empty()
    } else {
        builder.fixed(answer.body)
    })
}

fn plain(status: u16, message: &str) -> worker::Result<Response> {
    Ok(Response::builder()
        .with_status(status)
        .with_header("content-type", "text/plain; charset=utf-8")?
        .fixed(message.as_bytes().to_vec()))
}

/// Send the forwarded request to the origin (through the VPC binding when there is one) and
/// stream its answer back with the core's response headers.
async fn to_origin(env: &Env, forward: &Forward) -> worker::Result<Response> {
    let mut init = RequestInit::new();
    init.with_method(convert::method(&forward.method))
        .with_headers(convert::worker_headers(&forward.headers)?)
        .with_redirect(RequestRedirect::Manual)
        .with_body(convert::body(&forward.method, &forward.body));
    let outbound = Request::new_with_init(&forward.url, &init)?;
    let upstream = match origin_binding(env) {
        Some(binding) => binding.fetch_request(outbound).await?,
        None => Fetch::Request(outbound).send().await?,
    };
    let status = upstream.status_code();
    let headers = forward.response_headers(&convert::core_headers(upstream.headers()));
    let (_, body) = upstream.into_parts();
    Ok(Response::builder()
        .with_status(status)
        .with_headers(convert::worker_headers(&headers)?)
        .body(body))
}

/// The `ORIGIN` binding when it exists: any binding object with a `fetch` method (a Workers VPC
/// service binding, or a service binding in tests). Looked up by shape rather than class name,
/// which differs between binding kinds.
fn origin_binding(env: &Env) -> Option<Fetcher> {
    let env: &JsValue = env.as_ref();
    let binding = js_sys::Reflect::get(env, &JsValue::from_str(ORIGIN_BINDING)).ok()?;
    if !binding.is_object() {
        return None;
    }
    let fetch = js_sys::Reflect::get(&binding, &JsValue::from_str("fetch")).ok()?;
    fetch
        .is_function()
        .then(|| Fetcher::unchecked_from_js(binding))
}
