//! Plain HTTP values exchanged with the shell: the incoming request, the answer, and the
//! forwarding decision.

/// An HTTP method. Anything not listed travels as `Other` (upper-case as received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

impl Method {
    /// Parse a method name as the runtime gives it (case-insensitive).
    pub fn parse(name: &str) -> Method {
        match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method's name, upper-case.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(name) => name,
        }
    }
}

/// An ordered header list with case-insensitive lookup. Names keep the case they were added
/// with; repeated names are allowed (e.g. several `Set-Cookie`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Add a value, keeping any existing values of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replace every value of `name` with this one.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.0.push((name, value.into()));
    }

    /// Remove every value of `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Keep only the headers for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(n, v)| keep(n, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

/// An incoming request as the shell hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRequest {
    pub method: Method,
    /// The full request URL as received (`https://host/path?query`).
    pub url: String,
    pub headers: Headers,
    /// The whole body. The shell may cap its size; MCP and OAuth bodies are small.
    pub body: Vec<u8>,
    /// The caller's address (`CF-Connecting-IP`), used to rate-limit client registration.
    pub client_ip: Option<String>,
}

/// An answer the shell sends as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request the shell must send to the origin, streaming the origin's response back to the
/// client with [`Forward::response_headers`] applied.
///
/// Identity is already settled: client-supplied identity headers and `Authorization` are gone,
/// the service token and the verified email are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The origin URL to fetch, query included.
    pub url: String,
    pub method: Method,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The CORS headers for the client's answer (computed from the request's `Origin`).
    pub cors: Headers,
}

/// What [`crate::Edge::handle`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this answer.
    Respond(EdgeResponse),
    /// Fetch from the origin and stream the answer back.
    Forward(Forward),
}

/// The result of handling one request: the outcome, plus lines the shell should log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub outcome: Outcome,
    /// Operational messages (never secrets), e.g. an invalid KV config document or a KV
    /// failure. The shell writes them with `console_log!`/`console_error!`.
    pub log: Vec<LogLine>,
}

/// One message for the shell's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}
