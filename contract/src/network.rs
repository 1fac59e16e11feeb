//! Where a tool's network access may go: the grammar of the entries in
//! [`ExecuteRequest::allowed_hosts`](crate::sandbox::ExecuteRequest::allowed_hosts) (written by
//! the origin from approved network requests, read by the sandbox's broker), and the one
//! definition of which private addresses an approved LAN host may be.
//!
//! Entries:
//! * `*` — any public host (the origin's `allow_all_public` policy);
//! * `host`, `host:port`, `[v6]`, `[v6]:port` — a public host; its addresses must be public;
//! * `lan:host:port`, `lan:[v6]:port` — a LAN host: exactly that host and port, and its
//!   addresses may be private ([`is_lan_address`]), never loopback, link-local or metadata.
//!
//! Kept as strings in the existing `allowed_hosts` field so an older origin or sandbox still
//! reads the other's requests: an older sandbox sees `lan:…` as a host name no URL can have.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The prefix that marks a LAN entry.
pub const LAN_PREFIX: &str = "lan:";

/// One parsed `allowed_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// `*`.
    AnyPublic,
    /// A public host; `port: None` = any port. `host` is normalised ([`normalise_host`]).
    Public { host: String, port: Option<u16> },
    /// An approved LAN host and port.
    Lan { host: String, port: u16 },
}

impl HostEntry {
    /// Reads an entry; `None` for one that is not well formed (it then matches nothing).
    pub fn parse(entry: &str) -> Option<HostEntry> {
        let entry = entry.trim();
        if entry == "*" {
            return Some(HostEntry::AnyPublic);
        }
        if let Some(rest) = entry.strip_prefix(LAN_PREFIX) {
            let (host, port) = split_host_port(rest).ok()?;
            return Some(HostEntry::Lan { host, port: port? });
        }
        let (host, port) = split_host_port(entry).ok()?;
        Some(HostEntry::Public { host, port })
    }

    /// The entry as `allowed_hosts` carries it.
    pub fn to_entry(&self) -> String {
        match self {
            HostEntry::AnyPublic => "*".to_owned(),
            HostEntry::Public { host, port: None } => bracketed(host),
            HostEntry::Public {
                host,
                port: Some(port),
            } => format!("{}:{port}", bracketed(host)),
            HostEntry::Lan { host, port } => format!("{LAN_PREFIX}{}:{port}", bracketed(host)),
        }
    }
}

/// IPv6 literals in brackets, so a port can follow.
pub fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Lower-cased, no trailing dot, no IPv6 brackets; IP literals in their canonical form.
pub fn normalise_host(host: &str) -> String {
    let host = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host,
    }
}

/// `host`, `host:port`, `a.b.c.d:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal (no port).
/// The host comes back normalised; the port, when written, is 1 to 65535.
pub fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 address in brackets needs its ']'"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "{text:?}: {host:?} in brackets is not an IPv6 address"
            ));
        }
        match tail {
            "" => (host, None),
            _ => match tail.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{text:?}: expected ':port' after ']'")),
            },
        }
    } else if text.parse::<Ipv6Addr>().is_ok() {
        (text, None)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => {
                return Err(format!(
                    "{text:?}: write an IPv6 address with a port as [address]:port"
                ));
            }
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => {
                return Err(format!(
                    "{text:?}: the port must be a number from 1 to 65535"
                ));
            }
        },
    };
    if host.trim().is_empty() {
        return Err(format!("{text:?}: no host"));
    }
    Ok((normalise_host(host), port))
}

/// A public address: not loopback, private, link-local (metadata at 169.254.169.254), CGNAT,
/// documentation, benchmarking, multicast or reserved, and no IPv6 form that embeds one
/// (IPv4-mapped, -compatible, NAT64, 6to4, Teredo). The broker's rule for every host that is not
/// an approved LAN host.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = a == 0                       // "this network"
        || a == 10                               // private
        || a == 127                              // loopback
        || (a == 100 && (b & 0xc0) == 64)        // CGNAT 100.64/10
        || (a == 169 && b == 254)                // link-local, cloud metadata
        || (a == 172 && (b & 0xf0) == 16)        // private
        || (a == 192 && b == 0 && c == 0)        // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)        // documentation
        || (a == 192 && b == 88 && c == 99)      // 6to4 relay anycast
        || (a == 192 && b == 168)                // private
        || (a == 198 && (b & 0xfe) == 18)        // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100)     // documentation
        || (a == 203 && b == 0 && c == 113)      // documentation
        || a >= 224; // multicast, reserved, broadcast
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let reserved = s[..6] == [0; 6]              // ::, ::1 and IPv4-compatible ::a.b.c.d
        || (s[0] & 0xff00) == 0xff00             // multicast
        || (s[0] & 0xfe00) == 0xfc00             // unique local (incl. fd00:ec2::254 metadata)
        || (s[0] & 0xffc0) == 0xfe80             // link-local
        || (s[0] & 0xffc0) == 0xfec0             // site-local
        || (s[0] == 0x2001 && s[1] == 0x0db8)    // documentation
        || (s[0] == 0x2001 && s[1] == 0)         // Teredo (embeds an IPv4 address)
        || s[0] == 0x2002                        // 6to4 (embeds an IPv4 address)
        || (s[0] == 0x0064 && s[1] == 0xff9b)    // NAT64 (embeds an IPv4 address)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard
    !reserved
}

/// The private addresses an approved LAN host may resolve to: IPv4 private ranges
/// (10/8, 172.16/12, 192.168/16), carrier-grade NAT (100.64/10, Tailscale's range) and IPv6
/// unique local addresses (fc00::/7). Not loopback (it would reach the MCPbox host itself, the
/// origin included), not link-local (169.254/16, fe80::/10: cloud metadata lives there), not the
/// known metadata addresses inside these ranges (fd00:ec2::254, 100.100.100.200), and not
/// multicast, broadcast, documentation, benchmarking or reserved ranges. IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`) is judged as the IPv4 address it carries; other IPv4-embedding forms are
/// not LAN addresses.
pub fn is_lan_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_lan_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_lan_v4(v4),
            None => {
                let s = v6.segments();
                (s[0] & 0xfe00) == 0xfc00
                    && v6 != Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        },
    }
}

fn is_lan_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    let metadata = ip == Ipv4Addr::new(100, 100, 100, 200);
    (a == 10
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 168)
        || (a == 100 && (b & 0xc0) == 64))
        && !metadata
}

/// Names that are never a LAN host: they mean the MCPbox host itself or a cloud's metadata
/// service, whatever DNS says.
pub fn is_forbidden_name(host: &str) -> bool {
    let host = normalise_host(host);
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "metadata"
        || host == "metadata.google.internal"
        || host == "instance-data"
        || host.starts_with("instance-data.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for (text, entry) in [
            ("*", HostEntry::AnyPublic),
            (
                "API.example.com.",
                HostEntry::Public {
                    host: "api.example.com".into(),
                    port: None,
                },
            ),
            (
                "api.example.com:8443",
                HostEntry::Public {
                    host: "api.example.com".into(),
                    port: Some(8443),
                },
            ),
            (
                "lan:192.168.1.20:8123",
                HostEntry::Lan {
                    host: "192.168.1.20".into(),
                    port: 8123,
                },
            ),
            (
                "lan:[FD00::5]:1883",
                HostEntry::Lan {
                    host: "fd00::5".into(),
                    port: 1883,
                },
            ),
            (
                "lan:nas.lan:5000",
                HostEntry::Lan {
                    host: "nas.lan".into(),
                    port: 5000,
                },
            ),
        ] {
            assert_eq!(HostEntry::parse(text), Some(entry.clone()), "{text}");
            assert_eq!(HostEntry::parse(&entry.to_entry()), Some(entry), "{text}");
        }
        // A LAN entry always has a port.
        assert_eq!(HostEntry::parse("lan:nas.lan"), None);
        assert_eq!(HostEntry::parse("lan:[fd00::5]"), None);
        assert_eq!(HostEntry::parse("host:0"), None);
        assert_eq!(HostEntry::parse("host:99999"), None);
    }

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(
            split_host_port("192.168.1.20:8123"),
            Ok(("192.168.1.20".into(), Some(8123)))
        );
        assert_eq!(split_host_port("nas.lan"), Ok(("nas.lan".into(), None)));
        assert_eq!(split_host_port("fd00::1"), Ok(("fd00::1".into(), None)));
        assert_eq!(
            split_host_port("[fd00::1]:80"),
            Ok(("fd00::1".into(), Some(80)))
        );
        for bad in [
            "",
            ":80",
            "[fd00::1",
            "[nope]:80",
            "[fd00::1]80",
            "fd00::1:x",
            "a:b",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lan_addresses_exclude_loopback_link_local_and_metadata() {
        for lan in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.20",
            "100.64.0.1",
            "fd12:3456::1",
            "fc00::1",
            "::ffff:192.168.1.20",
        ] {
            assert!(is_lan_address(lan.parse().unwrap()), "{lan}");
        }
        for never in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::c0a8:114",
            "2002:c0a8:114::",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "8.8.8.8",
            "172.32.0.1",
        ] {
            assert!(!is_lan_address(never.parse().unwrap()), "{never}");
        }
        assert!(is_forbidden_name("LOCALHOST."));
        assert!(is_forbidden_name("a.localhost"));
        assert!(is_forbidden_name("metadata.google.internal"));
        assert!(!is_forbidden_name("nas.lan"));
    }
}
