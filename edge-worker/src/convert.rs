//! Conversions between the core's plain HTTP values and workers-rs types.

use mcpbox_edge_core::{Headers, Method};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;

pub fn method(method: &Method) -> worker::Method {
    worker::Method::from(method.as_str().to_owned())
}

/// A request body for `RequestInit`: none for GET and HEAD (the runtime refuses one there) and
/// none when empty.
pub fn body(method: &Method, body: &[u8]) -> Option<JsValue> {
    if body.is_empty() || matches!(method, Method::Get | Method::Head) {
        None
    } else {
        Some(Uint8Array::from(body).into())
    }
}

pub fn worker_headers(headers: &Headers) -> worker::Result<worker::Headers> {
    let out = worker::Headers::new();
    for (name, value) in headers.iter() {
        out.append(name, value)?;
    }
    Ok(out)
}

pub fn core_headers(headers: &worker::Headers) -> Headers {
    headers.entries().collect()
}
