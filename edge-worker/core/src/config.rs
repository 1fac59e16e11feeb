//! The Worker's configuration, from its vars and secrets.
//!
//! Built once per isolate by the shell through [`EdgeConfig::from_vars`] (the names are in
//! [`vars`]) and checked there, so a misconfigured Worker fails loudly at its first request
//! instead of misbehaving later.

use url::Url;

use crate::Error;

/// The names of the Worker vars and secrets [`EdgeConfig::from_vars`] reads.
pub mod vars {
    /// Required. The Worker's public base URL and OAuth issuer, e.g.
    /// `https://mcpbox.example.workers.dev` (no path).
    pub const PUBLIC_URL: &str = "MCPBOX_PUBLIC_URL";
    /// Optional. The MCP URL clients use; default `<public url>/mcp`. It is the RFC 9728
    /// `resource` and the RFC 8707 audience of every token.
    pub const MCP_URL: &str = "MCPBOX_MCP_URL";
    /// Required. Base URL of the origin's tunnel listener, e.g. `http://mcp-gateway:8002`;
    /// requests are forwarded to `<origin url>/mcp`.
    pub const ORIGIN_URL: &str = "MCPBOX_ORIGIN_URL";
    /// Required secret. Sent to the origin in `contract::headers::SERVICE_TOKEN`.
    pub const SERVICE_TOKEN: &str = "MCPBOX_SERVICE_TOKEN";
    /// Required secret. Any string of at least 32 characters; keys for grant encryption and
    /// cookies are derived from it. Changing it invalidates every grant and cookie.
    pub const ENCRYPTION_KEY: &str = "MCPBOX_ENCRYPTION_KEY";
    /// Required unless all four URL overrides are set. The Access team domain, e.g.
    /// `myteam.cloudflareaccess.com`.
    pub const ACCESS_TEAM_DOMAIN: &str = "ACCESS_TEAM_DOMAIN";
    /// Required. The Access for SaaS (OIDC) application's client id.
    pub const ACCESS_CLIENT_ID: &str = "ACCESS_CLIENT_ID";
    /// Required secret. The Access for SaaS application's client secret.
    pub const ACCESS_CLIENT_SECRET: &str = "ACCESS_CLIENT_SECRET";
    /// Optional overrides of the endpoints derived from the team domain and client id.
    pub const ACCESS_ISSUER: &str = "ACCESS_ISSUER";
    pub const ACCESS_AUTHORIZATION_URL: &str = "ACCESS_AUTHORIZATION_URL";
    pub const ACCESS_TOKEN_URL: &str = "ACCESS_TOKEN_URL";
    pub const ACCESS_JWKS_URL: &str = "ACCESS_JWKS_URL";
    /// Optional lifetimes in seconds (see [`super::Lifetimes`] for defaults).
    pub const ACCESS_TOKEN_TTL: &str = "MCPBOX_ACCESS_TOKEN_TTL";
    pub const REFRESH_TOKEN_TTL: &str = "MCPBOX_REFRESH_TOKEN_TTL";
    pub const REFRESH_GRACE: &str = "MCPBOX_REFRESH_GRACE";
    pub const AUTH_CODE_TTL: &str = "MCPBOX_AUTH_CODE_TTL";
    pub const CLIENT_REGISTRATION_TTL: &str = "MCPBOX_CLIENT_REGISTRATION_TTL";
    /// Optional. Dynamic client registrations allowed per caller address per hour (default 10).
    pub const DCR_RATE_LIMIT: &str = "MCPBOX_DCR_RATE_LIMIT_PER_HOUR";
}

/// A secret value: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Everything the core needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The public base URL and OAuth issuer, without a trailing slash.
    pub public_url: String,
    /// The MCP URL clients use: the protected resource and token audience.
    pub mcp_url: String,
    /// Base URL of the origin's tunnel listener, without a trailing slash.
    pub origin_url: String,
    pub service_token: Secret,
    /// Root secret for grant-property and cookie encryption.
    pub encryption_key: Secret,
    pub access: AccessConfig,
    pub lifetimes: Lifetimes,
    /// Dynamic client registrations allowed per caller address per hour.
    pub dcr_per_hour: u32,
}

/// The upstream OIDC provider: a Cloudflare Access for SaaS application.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub client_id: String,
    pub client_secret: Secret,
    /// Expected `iss` of id_tokens.
    pub issuer: String,
    pub authorization_url: String,
    pub token_url: String,
    pub jwks_url: String,
}

/// How long things live, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access tokens (default 1 hour).
    pub access_token: u64,
    /// Refresh tokens, and so grants without activity (default 30 days).
    pub refresh_token: u64,
    /// How long a refresh token that was just rotated still works, so two concurrent refreshes
    /// both succeed (default 60 s). Using it later is a replay and revokes the grant.
    pub refresh_grace: u64,
    /// Authorization codes (default 60 s).
    pub auth_code: u64,
    /// Dynamically registered clients (default 90 days).
    pub client_registration: u64,
}

impl Default for Lifetimes {
    fn default() -> Lifetimes {
        Lifetimes {
            access_token: 3600,
            refresh_token: 30 * 24 * 3600,
            refresh_grace: 60,
            auth_code: 60,
            client_registration: 90 * 24 * 3600,
        }
    }
}

impl AccessConfig {
    /// Endpoints of an Access for SaaS OIDC application, derived from the team domain (with or
    /// without `https://`) and the client id.
    pub fn for_team(team_domain: &str, client_id: &str, client_secret: Secret) -> AccessConfig {
        let host = team_domain
            .trim()
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let issuer = format!("https://{host}/cdn-cgi/access/sso/oidc/{client_id}");
        AccessConfig {
            client_id: client_id.to_owned(),
            client_secret,
            authorization_url: format!("{issuer}/authorization"),
            token_url: format!("{issuer}/token"),
            jwks_url: format!("{issuer}/jwks"),
            issuer,
        }
    }
}

impl EdgeConfig {
    /// Read and check the configuration from Worker vars and secrets; `get(name)` returns a
    /// var's value, or `None` when unset. Names are in [`vars`].
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<EdgeConfig, Error> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required =
            |name: &str| get(name).ok_or_else(|| Error::Config(format!("{name} is not set")));
        let number = |name: &str, default: u64| -> Result<u64, Error> {
            match get(name) {
                None => Ok(default),
                Some(raw) => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::Config(format!("{name} must be a positive integer"))),
            }
        };
        let public_url = required(vars::PUBLIC_URL)?.trim_end_matches('/').to_owned();
        let client_id = required(vars::ACCESS_CLIENT_ID)?;
        let client_secret = Secret::new(required(vars::ACCESS_CLIENT_SECRET)?);
        let overrides = [
            get(vars::ACCESS_ISSUER),
            get(vars::ACCESS_AUTHORIZATION_URL),
            get(vars::ACCESS_TOKEN_URL),
            get(vars::ACCESS_JWKS_URL),
        ];
        let mut access = match get(vars::ACCESS_TEAM_DOMAIN) {
            Some(team) => AccessConfig::for_team(&team, &client_id, client_secret),
            None if overrides.iter().all(Option::is_some) => AccessConfig {
                client_id,
                client_secret,
                issuer: String::new(),
                authorization_url: String::new(),
                token_url: String::new(),
                jwks_url: String::new(),
            },
            None => {
                return Err(Error::Config(format!(
                    "{} is not set (or set all four endpoint overrides)",
                    vars::ACCESS_TEAM_DOMAIN
                )));
            }
        };
        let [issuer, authorization_url, token_url, jwks_url] = overrides;
        if let Some(issuer) = issuer {
            access.issuer = issuer;
        }
        if let Some(url) = authorization_url {
            access.authorization_url = url;
        }
        if let Some(url) = token_url {
            access.token_url = url;
        }
        if let Some(url) = jwks_url {
            access.jwks_url = url;
        }
        let defaults = Lifetimes::default();
        let lifetimes = Lifetimes {
            access_token: number(vars::ACCESS_TOKEN_TTL, defaults.access_token)?,
            refresh_token: number(vars::REFRESH_TOKEN_TTL, defaults.refresh_token)?,
            refresh_grace: number(vars::REFRESH_GRACE, defaults.refresh_grace)?,
            auth_code: number(vars::AUTH_CODE_TTL, defaults.auth_code)?,
            client_registration: number(
                vars::CLIENT_REGISTRATION_TTL,
                defaults.client_registration,
            )?,
        };
        let dcr_per_hour = u32::try_from(number(vars::DCR_RATE_LIMIT, 10)?)
            .map_err(|_| Error::Config(format!("{} is too large", vars::DCR_RATE_LIMIT)))?;
        let config = EdgeConfig {
            mcp_url: get(vars::MCP_URL).unwrap_or_else(|| format!("{public_url}/mcp")),
            public_url,
            origin_url: required(vars::ORIGIN_URL)?.trim_end_matches('/').to_owned(),
            service_token: Secret::new(required(vars::SERVICE_TOKEN)?),
            encryption_key: Secret::new(required(vars::ENCRYPTION_KEY)?),
            access,
            lifetimes,
            dcr_per_hour,
        };
        config.check()?;
        Ok(config)
    }

    /// Check the invariants the rest of the core relies on.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        let public = match Url::parse(&self.public_url) {
            Ok(url) => url,
            Err(_) => return bad("the public URL does not parse"),
        };
        if !secure_or_loopback(&public) || public.path() != "/" || public.query().is_some() {
            return bad("the public URL must be https://host[:port] (http only for localhost)");
        }
        if self.public_url.ends_with('/') {
            return bad("the public URL must not end with a slash");
        }
        match Url::parse(&self.mcp_url) {
            Ok(url)
                if secure_or_loopback(&url) && url.path() == "/mcp" && url.query().is_none() => {}
            _ => return bad("the MCP URL must be https://host[:port]/mcp"),
        }
        match Url::parse(&self.origin_url) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https") && !self.origin_url.ends_with('/') => {}
            _ => return bad("the origin URL must be an http(s) URL without a trailing slash"),
        }
        if self.encryption_key.expose().len() < 32 {
            return bad("the encryption key must be at least 32 characters");
        }
        if self.service_token.expose().is_empty() {
            return bad("the service token is empty");
        }
        for (name, value) in [
            ("Access issuer", &self.access.issuer),
            ("Access authorization URL", &self.access.authorization_url),
            ("Access token URL", &self.access.token_url),
            ("Access JWKS URL", &self.access.jwks_url),
        ] {
            if !Url::parse(value).is_ok_and(|url| secure_or_loopback(&url)) {
                return Err(Error::Config(format!(
                    "the {name} must be an https URL (http only for localhost)"
                )));
            }
        }
        let l = &self.lifetimes;
        if [
            l.access_token,
            l.refresh_token,
            l.auth_code,
            l.client_registration,
        ]
        .contains(&0)
        {
            return bad("lifetimes must be positive");
        }
        Ok(())
    }
}

/// https anywhere; plain http only on loopback, for local tests (Miniflare, `oidc-provider`).
fn secure_or_loopback(url: &Url) -> bool {
    url.scheme() == "https"
        || (url.scheme() == "http"
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
}
