//! Approved LAN targets: resolved once here, every address checked, and the connection pinned
//! to exactly the checked addresses (a one-off HTTP client whose only resolution is that
//! answer), so DNS cannot hand the connect a different address than the check saw.
//!
//! Always refused, approved or not: loopback and unspecified addresses (they reach the MCPbox
//! host itself, origin included), link-local and the known metadata addresses, multicast,
//! broadcast and reserved ranges (`contract::network::is_lan_address` is the one list), and
//! every address of this machine's own interfaces (the origin may listen on one of them).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use contract::network::is_lan_address;

use super::{AddressPolicy, Refused, is_public};

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// May a LAN target's name resolve to `ip`? Private LAN ranges and public addresses yes; the
/// machine's own addresses and everything `is_lan_address` leaves out no.
pub fn lan_allows(ip: IpAddr, local: &[IpAddr]) -> Result<(), String> {
    let ip = canonical(ip);
    if !(is_lan_address(ip) || is_public(ip)) {
        return Err(format!(
            "{ip} is never reachable from tools (loopback, link-local, metadata, multicast or \
             reserved), even for an approved LAN host"
        ));
    }
    if local.contains(&ip) {
        return Err(format!(
            "{ip} is an address of the MCPbox host itself, which tools may never reach"
        ));
    }
    Ok(())
}

/// IPv4-mapped IPv6 compared as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The approved LAN target `host:port`, resolved and checked (every address must pass: a
/// name with one bad answer is refused whole, so no connection attempt order can reach it).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs = lookup(host, port).await?;
    let local = local_addresses();
    for addr in &addrs {
        lan_allows(addr.ip(), &local).map_err(|why| format!("refused: {host}: {why}"))?;
    }
    Ok(addrs)
}

/// A public `host:port` for raw TCP: every address must pass the broker's public policy.
pub async fn resolve_public(
    host: &str,
    port: u16,
    policy: AddressPolicy,
) -> Result<Vec<SocketAddr>, String> {
    let addrs = lookup(host, port).await?;
    if let Some(bad) = addrs.iter().find(|addr| !policy.allows(addr.ip())) {
        return Err(format!(
            "refused: {host} resolves to {}, which is not a public address (approve it as a LAN \
             host if it is one)",
            bad.ip()
        ));
    }
    Ok(addrs)
}

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("resolving {host} timed out"))?
        .map_err(|_| format!("{host} does not resolve"))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve"));
    }
    Ok(addrs)
}

/// Resolution for a pinned client: anything not pinned is refused.
struct NothingElse;

impl reqwest::dns::Resolve for NothingElse {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(
            async move { Err(Box::new(Refused(format!("refused: {host} was not checked"))) as _) },
        )
    }
}

/// An HTTP client that can reach `host` only at `addrs` (already checked by [`resolve`]).
/// IP-literal URLs are not resolved at all: the client connects to the literal, which is the
/// one address `resolve` checked.
pub fn pinned_client(host: &str, addrs: &[SocketAddr]) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(NothingElse))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .user_agent(concat!("mcpbox-sandbox/", env!("CARGO_PKG_VERSION")));
    let name = host.trim_start_matches('[').trim_end_matches(']');
    if name.parse::<IpAddr>().is_err() {
        builder = builder.resolve_to_addrs(name, addrs);
    }
    builder
        .build()
        .map_err(|_| "the sandbox could not prepare the connection".to_owned())
}

/// Every address on this machine's interfaces, read at each check (they can change).
pub fn local_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return found;
    }
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family says which struct it is.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                found.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                found.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_targets_reach_private_ranges_but_never_the_host_or_metadata() {
        let local: Vec<IpAddr> = vec!["192.168.1.5".parse().unwrap()];
        for ok in [
            "192.168.1.20",
            "10.0.0.2",
            "100.64.1.1",
            "fd00::20",
            "1.1.1.1",
        ] {
            assert!(lan_allows(ok.parse().unwrap(), &local).is_ok(), "{ok}");
        }
        for never in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.251",
            "192.168.1.5",
            "::ffff:192.168.1.5",
        ] {
            assert!(
                lan_allows(never.parse().unwrap(), &local).is_err(),
                "{never}"
            );
        }
    }

    #[test]
    fn this_machine_has_loopback_among_its_addresses() {
        assert!(local_addresses().contains(&"127.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_as_lan_targets() {
        let refused = resolve("localhost", 80).await.unwrap_err();
        assert!(refused.contains("never reachable"), "{refused}");
        let refused = resolve("127.0.0.1", 80).await.unwrap_err();
        assert!(refused.contains("never reachable"), "{refused}");
    }
}
