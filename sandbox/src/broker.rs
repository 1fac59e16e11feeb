//! The HTTP broker: a tool's only way out. Workers have no sockets; `http.get(...)` sends the
//! request over the worker's socket and the supervisor makes it here, after checking:
//!
//! * the scheme is http or https, the URL carries no credentials (`user@host` tricks);
//! * the host (as the WHATWG parser normalises it: decimal, hex and octal IPv4 forms, IPv6,
//!   trailing dots) is on the call's allowlist (`host` = any port, `host:port` = that port);
//! * every address it resolves to is public: no loopback, private, link-local (metadata at
//!   169.254.169.254), CGNAT, documentation, benchmark, multicast or reserved ranges, and no
//!   IPv6 form that embeds one (IPv4-mapped, -compatible, NAT64, 6to4, Teredo);
//! * the connection goes to the address that was checked: resolution happens once, inside the
//!   client's resolver, so DNS cannot answer differently between the check and the connect;
//! * redirects are followed by hand, each hop checked again; sizes and times are capped.
//!
//! An approved LAN host (`lan:host:port` entries, [`contract::network`]) is the one exception
//! to "public only": exactly that host and port may be a private address (`lan`), and raw TCP
//! streams go to approved `host:port` targets only (`tcp`).

mod lan;
pub mod tcp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::time::Instant;
use url::{Host, Url};

use contract::network::HostEntry;

use crate::protocol::{HttpReply, HttpRequest};

const MAX_REDIRECTS: usize = 5;
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// Which addresses a connection may go to. Only `PublicOnly` exists outside this module's tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    PublicOnly,
    #[cfg(test)]
    AllowLoopback,
}

impl AddressPolicy {
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            AddressPolicy::PublicOnly => is_public(ip),
            #[cfg(test)]
            AddressPolicy::AllowLoopback => is_public(ip) || ip.is_loopback(),
        }
    }
}

/// Public addresses only: the one definition is `contract::network::is_public`.
pub fn is_public(ip: IpAddr) -> bool {
    contract::network::is_public(ip)
}

/// Resolution inside the HTTP client: the addresses it returns are the ones connected to, so
/// checking them here pins the connection to a checked address.
struct PolicyResolver {
    policy: AddressPolicy,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(format!("{host} does not resolve"))) as _);
            }
            if let Some(bad) = addrs.iter().find(|addr| !policy.allows(addr.ip())) {
                return Err(Box::new(Refused(format!(
                    "refused: {host} resolves to {}, which is not a public address",
                    bad.ip()
                ))) as _);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The limits of one tool call, for its HTTP requests and TCP streams.
#[derive(Debug, Clone)]
pub struct CallScope {
    /// `ExecuteRequest::allowed_hosts` as sent (grammar in `contract::network`).
    pub allowed_hosts: Vec<String>,
    /// Cap on each HTTP response body, and on the bytes of TCP data each way in the call.
    pub response_bytes: u64,
    pub max_requests: u32,
    pub deadline: Instant,
}

impl CallScope {
    fn entries(&self) -> impl Iterator<Item = HostEntry> + '_ {
        self.allowed_hosts
            .iter()
            .filter_map(|entry| HostEntry::parse(entry))
    }

    /// `host` (normalised) and `port` are an approved LAN target.
    pub fn is_lan(&self, host: &str, port: u16) -> bool {
        self.entries().any(
            |entry| matches!(entry, HostEntry::Lan { host: h, port: p } if h == host && p == port),
        )
    }

    /// `host:port` is covered by a public entry (`*`, `host`, `host:port`).
    pub fn allows_public(&self, host: &str, port: u16) -> bool {
        self.allowed_hosts
            .iter()
            .any(|entry| host_matches(entry, host, port))
    }

    /// `host:port` is covered by a public entry that names this port (`host:port`): the only
    /// public targets raw TCP may reach.
    pub fn allows_public_port(&self, host: &str, port: u16) -> bool {
        self.entries().any(|entry| {
            matches!(entry, HostEntry::Public { host: h, port: Some(p) } if h == host && p == port)
        })
    }
}

/// Where one connection goes, once its target has been checked.
enum Route {
    /// Through the shared client, whose resolver allows public addresses only.
    Public,
    /// An approved LAN target, already resolved and checked: connect to exactly these.
    Lan(Vec<SocketAddr>),
}

pub struct Broker {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl Broker {
    pub fn new(policy: AddressPolicy) -> Result<Broker, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver { policy }))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("mcpbox-sandbox/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Broker { client, policy })
    }

    /// Performs one tool request (following allowed redirects). Every refusal is a reply the
    /// tool sees as an `HTTPError` with the reason.
    pub async fn fetch(&self, request: HttpRequest, scope: &CallScope) -> HttpReply {
        match self.fetch_inner(request, scope).await {
            Ok(reply) => reply,
            Err(error) => HttpReply::Refused { error },
        }
    }

    async fn fetch_inner(
        &self,
        request: HttpRequest,
        scope: &CallScope,
    ) -> Result<HttpReply, String> {
        let mut url = Url::parse(&request.url)
            .map_err(|err| format!("invalid URL {:?}: {err}", request.url))?;
        let mut method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("invalid HTTP method {:?}", request.method))?;
        let mut body = BASE64
            .decode(&request.body)
            .map_err(|_| "invalid request body".to_owned())?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            if DROPPED_REQUEST_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name}"))?;
            headers.append(name, value);
        }
        for hop in 0..=MAX_REDIRECTS {
            let client = match self.route(&url, scope).await? {
                Route::Public => self.client.clone(),
                Route::Lan(addrs) => lan::pinned_client(url.host_str().unwrap_or(""), &addrs)?,
            };
            let now = Instant::now();
            if now >= scope.deadline {
                return Err("the tool's time ran out before the request".into());
            }
            let mut timeout = scope.deadline - now;
            if let Some(ms) = request.timeout_ms {
                timeout = timeout.min(Duration::from_millis(ms));
            }
            let send = client
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .timeout(timeout)
                .send();
            let response = send.await.map_err(|err| describe(&err, &url))?;
            let status = response.status();
            if status.is_redirection() && request.follow_redirects {
                let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
                    return read_reply(response, scope, &url).await;
                };
                if hop == MAX_REDIRECTS {
                    return Err(format!("too many redirects (more than {MAX_REDIRECTS})"));
                }
                let location = location
                    .to_str()
                    .map_err(|_| "invalid redirect location".to_owned())?;
                url = url
                    .join(location)
                    .map_err(|err| format!("invalid redirect location: {err}"))?;
                // Browsers' rules: 303 always, and 301/302 after a POST, continue as a GET.
                if status == reqwest::StatusCode::SEE_OTHER
                    || (method == reqwest::Method::POST
                        && (status.as_u16() == 301 || status.as_u16() == 302))
                {
                    method = reqwest::Method::GET;
                    body.clear();
                }
                continue;
            }
            return read_reply(response, scope, &url).await;
        }
        Err(format!("too many redirects (more than {MAX_REDIRECTS})"))
    }

    /// Scheme, credentials, allowlist, and (for IP literals, which skip the resolver) address;
    /// an approved LAN target is resolved and checked here, and the route pins the result.
    async fn route(&self, url: &Url, scope: &CallScope) -> Result<Route, String> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "only http and https URLs are allowed, not {}:",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials (user@host) are not allowed".into());
        }
        let host = url.host().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(0);
        let name = normalise_host(&host_string(&host));
        if scope.is_lan(&name, port) {
            return lan::resolve(&name, port).await.map(Route::Lan);
        }
        if !scope.allows_public(&name, port) {
            return Err(format!(
                "the host {name} is not in this tool's approved hosts; request network access for it"
            ));
        }
        let literal = match host {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && !self.policy.allows(ip)
        {
            return Err(format!("refused: {ip} is not a public address"));
        }
        Ok(Route::Public)
    }

    /// The checked addresses of a TCP target: an approved LAN target under the LAN rules, or a
    /// public `host:port` entry under the public ones. Entries without a port, and `*`, do not
    /// open raw TCP.
    pub async fn tcp_addresses(
        &self,
        host: &str,
        port: u16,
        scope: &CallScope,
    ) -> Result<Vec<SocketAddr>, String> {
        let name = normalise_host(host);
        if scope.is_lan(&name, port) {
            return lan::resolve(&name, port).await;
        }
        if !scope.allows_public_port(&name, port) {
            return Err(format!(
                "{}:{port} is not an approved TCP target of this tool; request network access \
                 for exactly that host and port",
                contract::network::bracketed(&name)
            ));
        }
        lan::resolve_public(&name, port, self.policy).await
    }
}

fn host_string(host: &Host<&str>) -> String {
    match host {
        Host::Domain(domain) => (*domain).to_owned(),
        Host::Ipv4(v4) => v4.to_string(),
        Host::Ipv6(v6) => v6.to_string(),
    }
}

fn normalise_host(host: &str) -> String {
    contract::network::normalise_host(host)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or `*` (any host: the origin's
/// `allow_all_public` policy; the address policy still refuses non-public addresses). LAN
/// entries never match here: they are [`CallScope::is_lan`]'s.
fn host_matches(entry: &str, host: &str, port: u16) -> bool {
    match HostEntry::parse(entry) {
        Some(HostEntry::AnyPublic) => true,
        Some(HostEntry::Public { host: h, port: p }) => {
            h == normalise_host(host) && p.is_none_or(|p| p == port)
        }
        Some(HostEntry::Lan { .. }) | None => false,
    }
}

fn describe(err: &reqwest::Error, url: &Url) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
        source = current.source();
    }
    if err.is_timeout() {
        return format!("the request to {} timed out", url.host_str().unwrap_or("?"));
    }
    if err.is_connect() {
        return format!("could not connect to {}", url.host_str().unwrap_or("?"));
    }
    format!("the request to {} failed", url.host_str().unwrap_or("?"))
}

async fn read_reply(
    mut response: reqwest::Response,
    scope: &CallScope,
    url: &Url,
) -> Result<HttpReply, String> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limit = usize::try_from(scope.response_bytes).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| describe(&err, url))? {
        if body.len() + chunk.len() > limit {
            return Err(format!(
                "the response is larger than the limit of {limit} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpReply::Response {
        status,
        headers,
        body: BASE64.encode(&body),
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn public_addresses_only() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "93.184.216.34",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::ffff:169.254.169.254",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[test]
    fn allowlist_entries_match_host_and_port() {
        assert!(host_matches("api.example.com", "api.example.com", 443));
        assert!(host_matches("API.Example.com.", "api.example.com", 80));
        assert!(host_matches(
            "api.example.com:8443",
            "api.example.com",
            8443
        ));
        assert!(!host_matches(
            "api.example.com:8443",
            "api.example.com",
            443
        ));
        assert!(!host_matches("example.com", "api.example.com", 443));
        assert!(!host_matches(
            "api.example.com",
            "api.example.com.evil.com",
            443
        ));
        assert!(host_matches("[2606:4700::1]:443", "2606:4700::1", 443));
        assert!(host_matches("1.1.1.1", "1.1.1.1", 80));
        assert!(host_matches("*", "anything.example", 8443));
    }

    fn scope(hosts: &[&str]) -> CallScope {
        CallScope {
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            response_bytes: 1024,
            max_requests: 10,
            deadline: Instant::now() + Duration::from_secs(5),
        }
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: String::new(),
            timeout_ms: None,
            follow_redirects: true,
        }
    }

    /// A tiny HTTP server on loopback answering each connection with `reply(path)`.
    async fn server(reply: fn(&str) -> String) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = stream.write_all(reply(&path).as_bytes()).await;
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn the_public_policy_refuses_loopback_even_when_allowlisted() {
        let (port, hits) =
            server(|_| "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into()).await;
        let broker = Broker::new(AddressPolicy::PublicOnly).unwrap();
        for host in ["127.0.0.1", "localhost"] {
            let reply = broker
                .fetch(get(&format!("http://{host}:{port}/")), &scope(&[host]))
                .await;
            assert!(
                matches!(&reply, HttpReply::Refused { error } if error.contains("public")),
                "{reply:?}"
            );
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn fetches_follow_checked_redirects_and_cap_sizes() {
        let (port, _) = server(|path| match path {
            "/ok" => "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello".into(),
            "/hop" => "HTTP/1.1 302 Found\r\nlocation: /ok\r\ncontent-length: 0\r\n\r\n".into(),
            "/away" => "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest\r\ncontent-length: 0\r\n\r\n".into(),
            "/big" => format!("HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n{}", "x".repeat(2000)),
            _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into(),
        })
        .await;
        let broker = Broker::new(AddressPolicy::AllowLoopback).unwrap();
        let allowed = scope(&["127.0.0.1"]);
        let reply = broker
            .fetch(get(&format!("http://127.0.0.1:{port}/hop")), &allowed)
            .await;
        let HttpReply::Response {
            status, body, url, ..
        } = reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!(status, 200);
        assert_eq!(BASE64.decode(body).unwrap(), b"hello");
        assert!(url.ends_with("/ok"));
        let away = broker
            .fetch(get(&format!("http://127.0.0.1:{port}/away")), &allowed)
            .await;
        assert!(
            matches!(&away, HttpReply::Refused { error } if error.contains("not in this tool's approved hosts")),
            "{away:?}"
        );
        let big = broker
            .fetch(get(&format!("http://127.0.0.1:{port}/big")), &allowed)
            .await;
        assert!(
            matches!(&big, HttpReply::Refused { error } if error.contains("larger than")),
            "{big:?}"
        );
        let wrong_port = broker
            .fetch(
                get(&format!("http://127.0.0.1:{port}/ok")),
                &scope(&["127.0.0.1:1"]),
            )
            .await;
        assert!(matches!(wrong_port, HttpReply::Refused { .. }));
    }

    #[tokio::test]
    async fn url_tricks_are_refused() {
        let broker = Broker::new(AddressPolicy::PublicOnly).unwrap();
        let allowed = scope(&["example.com"]);
        for (url, needle) in [
            ("file:///etc/passwd", "only http and https"),
            ("gopher://example.com/", "only http and https"),
            ("http://example.com@127.0.0.1/", "credentials"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://2130706433/", "not in this tool's approved hosts"),
            ("http://0x7f000001/", "not in this tool's approved hosts"),
            ("http://0177.0.0.1/", "not in this tool's approved hosts"),
            (
                "http://[::ffff:7f00:1]/",
                "not in this tool's approved hosts",
            ),
            ("not a url", "invalid URL"),
        ] {
            let reply = broker.fetch(get(url), &allowed).await;
            assert!(
                matches!(&reply, HttpReply::Refused { error } if error.contains(needle)),
                "{url}: {reply:?}"
            );
        }
        // Allowlisting an address in another notation, or every host, does not get past the
        // address policy.
        for (url, entry) in [
            ("http://127.0.0.1/", "*"),
            ("http://169.254.169.254/latest/meta-data/", "*"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
        ] {
            let reply = broker.fetch(get(url), &scope(&[entry])).await;
            assert!(
                matches!(&reply, HttpReply::Refused { error } if error.contains("not a public address")),
                "{url}: {reply:?}"
            );
        }
    }
}
