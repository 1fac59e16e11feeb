//! Raw TCP for tools (MQTT, Redis, line protocols): the broker owns the sockets; the worker,
//! which has none (empty network namespace, seccomp), sends `TcpRequest`s over its channel to
//! the supervisor and gets bytes back. One [`TcpSession`] per call, dropped with the call, so
//! every stream closes when the tool returns, fails or is killed at its deadline.
//!
//! Targets: approved LAN `host:port` entries (LAN address rules) and public entries that name
//! a port (`host:port`, public address rules). `host` without a port and `*` never open raw TCP.
//!
//! Caps per call: [`MAX_STREAMS`] connection attempts; `CallScope::response_bytes` bytes sent
//! and as many received over all streams; at most [`MAX_RECV`] bytes per `recv`; every wait
//! ends at the call's deadline (or the operation's own timeout, if shorter).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Broker, CallScope};
use crate::protocol::{TcpReply, TcpRequest};

/// Connection attempts in one call (successful or not), so a tool cannot scan ports.
pub const MAX_STREAMS: u32 = 8;
/// Largest single `recv` (and the most a `recv_until` buffers while looking for its delimiter).
pub const MAX_RECV: u32 = 1024 * 1024;
/// Longest delimiter `recv_until` accepts.
const MAX_DELIMITER: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Stream {
    socket: TcpStream,
    /// Read from the socket but not yet handed to the tool.
    buffer: Vec<u8>,
    eof: bool,
}

#[derive(Default)]
pub struct TcpSession {
    streams: Vec<Option<Stream>>,
    attempts: u32,
    sent: u64,
    received: u64,
}

impl TcpSession {
    pub fn new() -> TcpSession {
        TcpSession::default()
    }

    /// One operation; every refusal or failure is a reply the tool sees as a `TCPError`.
    pub async fn handle(
        &mut self,
        broker: &Broker,
        request: TcpRequest,
        scope: &CallScope,
    ) -> TcpReply {
        let done = match request {
            TcpRequest::Connect {
                host,
                port,
                timeout_ms,
            } => self.connect(broker, &host, port, timeout_ms, scope).await,
            TcpRequest::Send { stream, data } => self.send(stream, &data, scope).await,
            TcpRequest::Recv {
                stream,
                max,
                until,
                timeout_ms,
            } => self.recv(stream, max, until, timeout_ms, scope).await,
            TcpRequest::Close { stream } => self.close(stream),
        };
        done.unwrap_or_else(|error| TcpReply::Refused { error })
    }

    async fn connect(
        &mut self,
        broker: &Broker,
        host: &str,
        port: u16,
        timeout_ms: Option<u64>,
        scope: &CallScope,
    ) -> Result<TcpReply, String> {
        if self.attempts >= MAX_STREAMS {
            return Err(format!(
                "too many TCP connections in one call (limit {MAX_STREAMS})"
            ));
        }
        self.attempts += 1;
        let addrs = broker.tcp_addresses(host, port, scope).await?;
        let wait = until(
            scope,
            timeout_ms.map(Duration::from_millis),
            CONNECT_TIMEOUT,
        )?;
        let socket = tokio::time::timeout(wait, TcpStream::connect(&addrs[..]))
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))?
            .map_err(|err| format!("could not connect to {host}:{port}: {}", err.kind()))?;
        let _ = socket.set_nodelay(true);
        let peer = socket
            .peer_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let stream = u32::try_from(self.streams.len()).unwrap_or(u32::MAX);
        self.streams.push(Some(Stream {
            socket,
            buffer: Vec::new(),
            eof: false,
        }));
        Ok(TcpReply::Opened { stream, peer })
    }

    fn stream(&mut self, id: u32) -> Result<&mut Stream, String> {
        self.streams
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| "the stream is closed".to_owned())
    }

    async fn send(&mut self, id: u32, data: &str, scope: &CallScope) -> Result<TcpReply, String> {
        let data = BASE64
            .decode(data)
            .map_err(|_| "invalid data to send".to_owned())?;
        let total = self.sent.saturating_add(data.len() as u64);
        if total > scope.response_bytes {
            return Err(format!(
                "sending this would pass the call's limit of {} bytes sent over TCP",
                scope.response_bytes
            ));
        }
        let wait = until(scope, None, Duration::MAX)?;
        let stream = self.stream(id)?;
        tokio::time::timeout(wait, stream.socket.write_all(&data))
            .await
            .map_err(|_| "sending timed out".to_owned())?
            .map_err(|err| format!("sending failed: {}", err.kind()))?;
        self.sent = total;
        Ok(TcpReply::Sent {
            sent: data.len() as u64,
        })
    }

    async fn recv(
        &mut self,
        id: u32,
        max: u32,
        delimiter: Option<String>,
        timeout_ms: Option<u64>,
        scope: &CallScope,
    ) -> Result<TcpReply, String> {
        let max = max.clamp(1, MAX_RECV) as usize;
        let delimiter = match delimiter {
            Some(text) => {
                let bytes = BASE64
                    .decode(text)
                    .map_err(|_| "invalid delimiter".to_owned())?;
                if bytes.is_empty() || bytes.len() > MAX_DELIMITER {
                    return Err(format!("the delimiter must be 1 to {MAX_DELIMITER} bytes"));
                }
                Some(bytes)
            }
            None => None,
        };
        let wait = until(scope, timeout_ms.map(Duration::from_millis), Duration::MAX)?;
        let give_up = Instant::now() + wait;
        let cap = scope.response_bytes;
        let TcpSession {
            streams, received, ..
        } = self;
        let stream = streams
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| "the stream is closed".to_owned())?;
        loop {
            // Enough already buffered?
            let ready = match &delimiter {
                Some(d) => find(&stream.buffer, d).map(|at| at + d.len()),
                None => (!stream.buffer.is_empty()).then_some(stream.buffer.len()),
            };
            if let Some(end) = ready.map(|end| end.min(max)) {
                return Ok(take(stream, end));
            }
            if stream.buffer.len() >= max || stream.eof {
                let end = stream.buffer.len().min(max);
                return Ok(take(stream, end));
            }
            let room = (max - stream.buffer.len()).min(64 * 1024) as u64;
            let room = room.min(cap.saturating_sub(*received)) as usize;
            if room == 0 {
                return Err(format!(
                    "the call's limit of {cap} bytes received over TCP is used up"
                ));
            }
            let mut chunk = vec![0u8; room];
            let read = tokio::time::timeout_at(give_up, stream.socket.read(&mut chunk))
                .await
                .map_err(|_| "receiving timed out".to_owned())?
                .map_err(|err| format!("receiving failed: {}", err.kind()))?;
            if read == 0 {
                stream.eof = true;
            }
            stream.buffer.extend_from_slice(&chunk[..read]);
            *received += read as u64;
        }
    }

    fn close(&mut self, id: u32) -> Result<TcpReply, String> {
        let slot = self
            .streams
            .get_mut(id as usize)
            .ok_or_else(|| "no such stream".to_owned())?;
        let closed = slot.take().is_some();
        Ok(TcpReply::Closed { closed })
    }
}

/// The first `end` buffered bytes, handed to the tool.
fn take(stream: &mut Stream, end: usize) -> TcpReply {
    let data: Vec<u8> = stream.buffer.drain(..end).collect();
    let eof = stream.eof && stream.buffer.is_empty();
    TcpReply::Received {
        data: BASE64.encode(&data),
        eof,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// How long an operation may wait: its own timeout or `default`, never past the deadline.
fn until(
    scope: &CallScope,
    asked: Option<Duration>,
    default: Duration,
) -> Result<Duration, String> {
    let left = scope
        .deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| "the tool's time ran out".to_owned())?;
    Ok(asked.unwrap_or(default).min(left))
}
