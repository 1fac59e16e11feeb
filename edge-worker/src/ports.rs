//! The core's platform traits over the Workers runtime: KV, `Date.now()`,
//! `crypto.getRandomValues` and `fetch`.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use mcpbox_edge_core::{Clock, Error, HttpClient, HttpRequest, HttpResponse, Kv, Random};
use worker::wasm_bindgen::{self, JsValue, prelude::wasm_bindgen};
use worker::{AbortController, Delay, Fetch, KvStore, Request, RequestInit, RequestRedirect};

use crate::convert;

/// [`Kv`] over a Workers KV namespace binding.
pub struct WorkersKv(pub KvStore);

impl Kv for WorkersKv {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        self.0
            .get(key)
            .text()
            .await
            .map_err(|err| Error::Kv(format!("get: {err}")))
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), Error> {
        let mut put = self
            .0
            .put(key, value)
            .map_err(|err| Error::Kv(format!("put: {err}")))?;
        if let Some(ttl) = ttl_seconds {
            // KV refuses TTLs under 60 s; the core never asks for less, but never let a short TTL
            // turn into a failed write.
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute()
            .await
            .map_err(|err| Error::Kv(format!("put: {err}")))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.0
            .delete(key)
            .await
            .map_err(|err| Error::Kv(format!("delete: {err}")))
    }
}

/// [`Clock`] over `Date.now()`.
pub struct WorkersClock;

impl Clock for WorkersClock {
    fn now(&self) -> u64 {
        worker::Date::now().as_millis() / 1000
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(buf: &mut [u8]) -> Result<JsValue, JsValue>;
}

/// [`Random`] over `crypto.getRandomValues` (the Workers CSPRNG).
pub struct WorkersRandom;

impl Random for WorkersRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), Error> {
        // getRandomValues fills at most 65 536 bytes per call.
        for chunk in buf.chunks_mut(65_536) {
            get_random_values(chunk)
                .map_err(|err| Error::Random(format!("crypto.getRandomValues: {err:?}")))?;
        }
        Ok(())
    }
}

/// [`HttpClient`] over the global `fetch`: no redirects followed, a deadline over the whole
/// exchange (headers and body), and a cap on the body read.
pub struct WorkersFetch;

impl HttpClient for WorkersFetch {
    async fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, Error> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut init = RequestInit::new();
            init.with_method(convert::method(&request.method))
                .with_headers(convert::worker_headers(&request.headers).map_err(http_error)?)
                .with_redirect(RequestRedirect::Manual)
                .with_body(convert::body(&request.method, &request.body));
            let outbound = Request::new_with_init(&request.url, &init).map_err(http_error)?;
            let mut response = Fetch::Request(outbound)
                .send_with_signal(&signal)
                .await
                .map_err(http_error)?;
            let status = response.status_code();
            let headers = convert::core_headers(response.headers());
            let mut body = Vec::new();
            if let Ok(mut stream) = response.stream() {
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(http_error)?;
                    if body.len() + chunk.len() > request.max_response_bytes {
                        return Err(Error::Http(format!(
                            "response from {} is larger than {} bytes",
                            host_of(&request.url),
                            request.max_response_bytes
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        };
        let deadline = Delay::from(Duration::from_millis(u64::from(request.timeout_ms)));
        match select(Box::pin(exchange), deadline).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => {
                controller.abort();
                Err(Error::Http(format!(
                    "{} did not answer within {} ms",
                    host_of(&request.url),
                    request.timeout_ms
                )))
            }
        }
    }
}

fn http_error(err: worker::Error) -> Error {
    Error::Http(err.to_string())
}

/// Only the host of a URL goes into error messages (query strings may carry codes).
fn host_of(url: &str) -> String {
    worker::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "the upstream".to_owned())
}
