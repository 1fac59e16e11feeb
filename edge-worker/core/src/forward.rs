//! `/mcp`, `/` and `/servers/{name}/mcp`: check the bearer token (issued for that endpoint's
//! resource, `endpoint`), then hand the request to the origin's same path with our identity
//! headers instead of the client's.

use url::Url;

use crate::endpoint::Endpoint;
use crate::http::{EdgeRequest, EdgeResponse, Forward, Headers, Outcome};
use crate::store::{self, AccessRecord, GrantProps, GrantRecord};
use crate::{Clock, Cx, Error, HttpClient, Kv, Random, respond};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus `Host`, which
/// the shell's fetch sets for the origin.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Header namespaces a client may never fill in for the origin (lower case, matched on the
/// lower-cased name).
/// - `x-mcpbox-`: ours. Every header in it goes, not just today's two: a future identity header
///   must never be client-suppliable by default.
/// - `cf-access-`: Cloudflare Access's (`Cf-Access-Jwt-Assertion`,
///   `Cf-Access-Authenticated-User-Email`, `Cf-Access-Client-Id`/`-Secret`, …). On this hop
///   Access never set them (the Worker is the only caller), so a copy can only be the client's,
///   and whatever behind the tunnel reads them (the origin, a proxy in front of it, a later
///   feature) must not be told who the caller is by the caller.
const CLIENT_IDENTITY_PREFIXES: [&str; 2] = ["x-mcpbox-", "cf-access-"];

impl Forward {
    /// The headers to send back to the client with the origin's streamed answer: the origin's
    /// headers minus hop-by-hop headers and any CORS headers of its own, plus ours.
    pub fn response_headers(&self, upstream: &Headers) -> Headers {
        let mut headers = upstream.clone();
        headers.retain(|name, _| {
            let name = name.to_ascii_lowercase();
            !name.starts_with("access-control-") && !HOP_BY_HOP.contains(&name.as_str())
        });
        for (name, value) in self.cors.iter() {
            headers.set(name, value);
        }
        headers
    }

    /// The answer when the origin could not be reached (502, with CORS headers).
    pub fn bad_gateway(&self) -> EdgeResponse {
        let mut response = respond::json(
            502,
            &contract::ErrorBody::new("origin_unreachable", "The MCPbox origin is not reachable"),
        );
        for (name, value) in self.cors.iter() {
            response.headers.set(name, value);
        }
        response
    }
}

impl<K: Kv, C: Clock, R: Random, H: HttpClient> Cx<'_, K, C, R, H> {
    pub(crate) async fn forward(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        request: EdgeRequest,
        cors: &Headers,
    ) -> Result<Outcome, Error> {
        let email = match self.bearer_identity(endpoint, &request.headers).await? {
            Ok(email) => email,
            Err(unauthorized) => return Ok(Outcome::Respond(unauthorized)),
        };
        let config = self.config();
        let mut headers = request.headers;
        headers.retain(|name, _| {
            let name = name.to_ascii_lowercase();
            !CLIENT_IDENTITY_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
                && !contract::headers::IDENTITY_HEADERS.contains(&name.as_str())
                && name != "authorization"
                // Our own cookies (consent state) are none of the origin's business.
                && name != "cookie"
                && !HOP_BY_HOP.contains(&name.as_str())
        });
        headers.set(
            contract::headers::SERVICE_TOKEN,
            config.service_token.expose(),
        );
        headers.set(contract::headers::USER_EMAIL, email);
        let mut target = format!("{}{}", config.origin_url, endpoint.path());
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        Ok(Outcome::Forward(Forward {
            url: target,
            method: request.method,
            headers,
            body: request.body,
            cors: cors.clone(),
        }))
    }

    /// The verified email behind the request's bearer token, or the 401 to send.
    async fn bearer_identity(
        &self,
        endpoint: &Endpoint,
        headers: &Headers,
    ) -> Result<Result<String, EdgeResponse>, Error> {
        let resource = endpoint.resource(self.config());
        let token = headers.get("Authorization").and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return Ok(Err(self.unauthorized(&resource, None)));
        };
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        let Some(access) = store::get::<AccessRecord>(kv, &store::access_key(token)).await? else {
            return Ok(Err(self.unauthorized(&resource, Some("unknown token"))));
        };
        if now >= access.expires_at {
            return Ok(Err(self.unauthorized(&resource, Some("token expired"))));
        }
        // RFC 8707: a token minted for another resource is not valid here (one server's
        // token is not `/mcp`'s, nor another server's, nor is `/mcp`'s one server's).
        if access.resource != resource {
            return Ok(Err(
                self.unauthorized(&resource, Some("token is for another resource"))
            ));
        }
        let Some(grant) = store::get::<GrantRecord>(kv, &store::grant_key(&access.grant_id))
            .await?
            .filter(|grant| now < grant.expires_at)
        else {
            return Ok(Err(
                self.unauthorized(&resource, Some("grant revoked or expired"))
            ));
        };
        let props: GrantProps = self.open_grant_props(&access.grant_id, &grant)?;
        Ok(Ok(props.email))
    }

    /// 401 with the RFC 9728 pointer to the endpoint's protected-resource metadata.
    fn unauthorized(&self, resource: &str, error: Option<&str>) -> EdgeResponse {
        let metadata = resource_metadata_url(resource);
        let challenge = match error {
            None => format!("Bearer resource_metadata=\"{metadata}\""),
            Some(description) => format!(
                "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", \
                 error_description=\"{description}\""
            ),
        };
        let mut response = respond::oauth_error(
            401,
            "invalid_token",
            error.unwrap_or("a bearer token is required"),
        );
        response.headers.set("WWW-Authenticate", challenge);
        response
    }

    pub(crate) fn open_grant_props(
        &self,
        grant_id: &str,
        grant: &GrantRecord,
    ) -> Result<GrantProps, Error> {
        let key = store::grant_key(grant_id);
        let plain = self
            .edge
            .grant_sealer
            .open(&key, &grant.props)
            .ok_or_else(|| Error::Stored("grant properties do not decrypt".into()))?;
        serde_json::from_slice(&plain).map_err(|e| Error::Stored(e.to_string()))
    }
}

/// The RFC 9728 metadata URL for a resource: the well-known path inserted before its path.
pub fn resource_metadata_url(resource: &str) -> String {
    match Url::parse(resource) {
        Ok(url) => {
            let path = url.path().trim_end_matches('/');
            format!(
                "{}/.well-known/oauth-protected-resource{path}",
                url.origin().ascii_serialization()
            )
        }
        Err(_) => resource.to_owned(),
    }
}
