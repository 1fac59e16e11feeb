//! The MCP endpoints the Worker forwards: `/mcp` (and `/`, for clients configured with the bare
//! host), every server's tools; and `/servers/{name}/mcp`, one server's. Each is its own OAuth
//! protected resource (RFC 9728 metadata at `/.well-known/oauth-protected-resource` + its
//! path) and a token is valid exactly for the resource it was issued for (RFC 8707): a token
//! for one server's endpoint reaches neither `/mcp` nor another server, and an `/mcp` token is
//! not one server's either (a client that discovered `/servers/x/mcp` asks for that resource
//! and gets a token for it).

use crate::config::EdgeConfig;

/// One MCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/mcp`: every server's tools.
    All,
    /// `/servers/{name}/mcp`, with a valid server name (`contract::names`).
    Server(String),
}

impl Endpoint {
    /// The endpoint at a request path (`/` is `/mcp`). A per-server path with an invalid name
    /// is no endpoint (404 here, never forwarded).
    pub(crate) fn at(path: &str) -> Option<Endpoint> {
        match path {
            "/mcp" | "/" => Some(Endpoint::All),
            _ => {
                let name = path.strip_prefix("/servers/")?.strip_suffix("/mcp")?;
                contract::names::is_server_name(name).then(|| Endpoint::Server(name.to_owned()))
            }
        }
    }

    /// The path on the origin's tunnel listener (and on the Worker).
    pub(crate) fn path(&self) -> String {
        match self {
            Endpoint::All => "/mcp".to_owned(),
            Endpoint::Server(name) => format!("/servers/{name}/mcp"),
        }
    }

    /// The resource URL: the configured MCP URL, or that URL's host with the server's path.
    pub(crate) fn resource(&self, config: &EdgeConfig) -> String {
        match self {
            Endpoint::All => config.mcp_url.clone(),
            Endpoint::Server(_) => format!("{}{}", base(config), self.path()),
        }
    }

    /// The endpoint whose resource URL a client named (`resource` at `/authorize`); a trailing
    /// slash is tolerated, as for `/mcp`.
    pub(crate) fn of_resource(given: &str, config: &EdgeConfig) -> Option<Endpoint> {
        let given = given.strip_suffix('/').unwrap_or(given);
        if given == config.mcp_url {
            return Some(Endpoint::All);
        }
        let path = given.strip_prefix(base(config))?;
        match Endpoint::at(path)? {
            // `/` names the base, not a resource.
            Endpoint::All => None,
            server => Some(server),
        }
    }
}

/// The MCP URL without its `/mcp` (`EdgeConfig::check` makes it exactly `https://host/mcp`).
fn base(config: &EdgeConfig) -> &str {
    config
        .mcp_url
        .strip_suffix("/mcp")
        .unwrap_or(&config.mcp_url)
}
