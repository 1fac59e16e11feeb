//! The legacy HTTP+SSE transport (MCP 2024-11-05), for sources that never moved to Streamable
//! HTTP. rmcp 3.11 has no client for it, so this is a small one: GET the SSE URL, whose first
//! event (`endpoint`) names the URL to POST messages to; answers arrive on the stream as `message`
//! events.
//!
//! Bounds and guards: the `endpoint` event must come within `ENDPOINT_TIMEOUT` and name a URL of
//! the same origin (scheme, host, port) as the SSE URL, since MCPbox posts the source's
//! credential there and must not be steered to another host by the source's stream; one event
//! is at most `EVENT_MAX_BYTES` (a longer one ends the stream, and the client reconnects on the
//! next call); each POST has `POST_TIMEOUT`.

use std::borrow::Cow;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;

/// The largest SSE event kept (a whole JSON-RPC message); beyond it the stream is ended.
pub const EVENT_MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long the source may take to open the stream and name its message endpoint.
pub const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);
/// One message POST (the answer comes on the stream; the POST itself is acknowledged at once).
const POST_TIMEOUT: Duration = Duration::from_secs(30);

struct Event {
    name: String,
    data: String,
}

/// The SSE stream of a response, parsed event by event within `EVENT_MAX_BYTES`.
struct Events {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Events {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            if self.buffer.len() > EVENT_MAX_BYTES {
                tracing::warn!("an SSE event of an external source is too large; stream ended");
                return None;
            }
            match self.response.chunk().await {
                // Line ends are CRLF or LF in practice; CRs are dropped (a CR-only stream,
                // allowed by the SSE grammar, is not supported).
                Ok(Some(bytes)) => self
                    .buffer
                    .extend(bytes.iter().copied().filter(|b| *b != b'\r')),
                _ => return None,
            }
        }
    }

    /// The next complete event in the buffer (events end with a blank line); comment-only
    /// blocks are skipped.
    fn parse_one(&mut self) -> Option<Event> {
        loop {
            let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let (mut name, mut data, mut any_data) = (String::new(), String::new(), false);
            for line in text.split('\n') {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => name = value.to_owned(),
                    "data" => {
                        if any_data {
                            data.push('\n');
                        }
                        data.push_str(value);
                        any_data = true;
                    }
                    _ => {}
                }
            }
            if !any_data {
                continue;
            }
            if name.is_empty() {
                name = "message".into();
            }
            return Some(Event { name, data });
        }
    }
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// An open legacy SSE session: the stream, and where to post.
pub struct LegacySse {
    http: reqwest::Client,
    post_url: reqwest::Url,
    headers: HeaderMap,
    events: Events,
}

impl std::fmt::Debug for LegacySse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySse")
            .field("post_url", &self.post_url.as_str())
            .finish()
    }
}

/// Opens the stream and waits for the `endpoint` event. `headers` (the source's auth) go with
/// the GET and every POST.
pub async fn connect(
    http: reqwest::Client,
    url: &str,
    headers: HeaderMap,
) -> std::result::Result<LegacySse, String> {
    let sse_url =
        reqwest::Url::parse(url).map_err(|err| format!("the SSE URL is not valid: {err}"))?;
    let open = async {
        let response = http
            .get(sse_url.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|err| format!("cannot connect: {err}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the SSE endpoint answered HTTP {}",
                response.status().as_u16()
            ));
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(
                "the URL does not answer with an SSE stream (text/event-stream): is it a \
                 Streamable HTTP source?"
                    .to_owned(),
            );
        }
        let mut events = Events {
            response,
            buffer: Vec::new(),
        };
        let first = events
            .next()
            .await
            .ok_or_else(|| "the SSE stream ended before naming its endpoint".to_owned())?;
        if first.name != "endpoint" {
            return Err(format!(
                "the SSE stream's first event is {:?}, not \"endpoint\"",
                first.name
            ));
        }
        Ok((events, first.data))
    };
    let (events, endpoint) = tokio::time::timeout(ENDPOINT_TIMEOUT, open)
        .await
        .map_err(|_| {
            format!(
                "the SSE endpoint named no message endpoint within {} s",
                ENDPOINT_TIMEOUT.as_secs()
            )
        })??;
    let post_url = sse_url
        .join(endpoint.trim())
        .map_err(|err| format!("the endpoint event is not a URL: {err}"))?;
    if !same_origin(&sse_url, &post_url) {
        return Err(format!(
            "the source's endpoint event names {}, another origin than its SSE URL: refused \
             (MCPbox posts only to the origin it was given)",
            post_url.origin().ascii_serialization()
        ));
    }
    Ok(LegacySse {
        http,
        post_url,
        headers,
        events,
    })
}

impl Transport<RoleClient> for LegacySse {
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "legacy-sse".into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = std::result::Result<(), Self::Error>> + Send + 'static {
        let request = self
            .http
            .post(self.post_url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(POST_TIMEOUT);
        async move {
            let body = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            let response = request
                .body(body)
                .send()
                .await
                .map_err(std::io::Error::other)?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "the source's message endpoint answered HTTP {}",
                    response.status().as_u16()
                )))
            }
        }
    }

    // Spelled out: the trait's signature promises a `Send` future.
    #[allow(clippy::manual_async_fn)]
    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        async move {
            loop {
                let event = self.events.next().await?;
                if event.name != "message" {
                    continue;
                }
                match serde_json::from_str(&event.data) {
                    Ok(message) => return Some(message),
                    Err(err) => {
                        tracing::debug!(error = %err, "an SSE message that is not JSON-RPC; skipped");
                    }
                }
            }
        }
    }

    fn close(&mut self) -> impl Future<Output = std::result::Result<(), Self::Error>> + Send {
        // Dropping the transport drops the response, which closes the stream.
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sse_urls_own_origin_is_posted_to() {
        let sse = reqwest::Url::parse("http://127.0.0.1:8000/sse").unwrap();
        let join = |endpoint: &str| sse.join(endpoint).unwrap();
        assert!(same_origin(&sse, &join("/messages/?session_id=1")));
        assert!(same_origin(&sse, &join("http://127.0.0.1:8000/m")));
        for other in [
            "http://127.0.0.1:8001/m",
            "https://127.0.0.1:8000/m",
            "http://evil.example/m",
            "//evil.example/m",
            "http://127.0.0.1.evil.example:8000/m",
        ] {
            assert!(!same_origin(&sse, &join(other)), "{other}");
        }
    }
}
