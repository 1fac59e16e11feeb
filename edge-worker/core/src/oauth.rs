//! The OAuth 2.1 authorization server for MCP clients: registration (RFC 7591 and client ID
//! metadata documents), `/authorize` with consent, `/token`, `/revoke`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use url::Url;
use url::form_urlencoded;

use crate::crypto::{self, constant_time_eq};
use crate::http::{EdgeRequest, EdgeResponse, Headers, Method};
use crate::ports::HttpRequest;
use crate::rules::{Rules, acceptable_redirect};
use crate::store::{
    self, AccessRecord, AuthRequest, CimdClient, CimdRecord, ClientRecord, CodeRecord, GrantRecord,
    RateRecord, RefreshRecord,
};
use crate::{Clock, Cx, Error, HttpClient, Kv, Level, Random, respond};

/// Client authentication methods we accept at `/token` and `/revoke`.
pub const AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];

/// The consent form's CSRF cookie (double submit: its value is sealed into the form).
const CSRF_COOKIE: &str = "__Host-mcpbox_csrf";
/// The clients this browser has approved, sealed.
const APPROVED_COOKIE: &str = "__Host-mcpbox_approved";
/// How long a consent page stays usable.
const CONSENT_SECONDS: u64 = 600;
/// How long the browser remembers approved clients.
const APPROVED_SECONDS: u64 = 30 * 24 * 3600;
/// Most clients remembered in the cookie; the oldest approval goes first.
const MAX_APPROVED: usize = 50;

/// Client ID metadata documents: fetch limits and how long answers are cached.
const CIMD_MAX_BYTES: usize = 5 * 1024;
const CIMD_TIMEOUT_MS: u32 = 5_000;
const CIMD_CACHE_SECONDS: u64 = 3600;
const CIMD_FAILURE_CACHE_SECONDS: u64 = 60;

/// Longest client id we look up (metadata document URLs included).
const MAX_CLIENT_ID: usize = 400;

/// A client as far as authorization is concerned.
pub struct Client {
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// Outcome of client authentication at `/token` and `/revoke`.
type Authenticated = Result<String, EdgeResponse>;

#[derive(Deserialize)]
struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
}

#[derive(Deserialize)]
struct MetadataDocument {
    client_id: String,
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    client_secret: Option<String>,
}

impl<K: Kv, C: Clock, R: Random, H: HttpClient> Cx<'_, K, C, R, H> {
    /// `POST /register` (RFC 7591).
    pub(crate) async fn register(
        &self,
        rules: &Rules,
        request: &EdgeRequest,
    ) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        if let Some(retry) = self
            .take_registration_slot(request.client_ip.as_deref())
            .await?
        {
            let mut response = respond::oauth_error(
                429,
                "too_many_requests",
                "too many registrations from this address",
            );
            response.headers.set("Retry-After", retry.to_string());
            return Ok(response);
        }

        let Ok(body) = serde_json::from_slice::<RegistrationRequest>(&request.body) else {
            return Ok(respond::oauth_error(
                400,
                "invalid_client_metadata",
                "the body must be a JSON client metadata object",
            ));
        };
        let redirect_uris = body.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty() || redirect_uris.len() > 10 {
            return Ok(respond::oauth_error(
                400,
                "invalid_redirect_uri",
                "between 1 and 10 redirect_uris are required",
            ));
        }
        if let Some(bad) = redirect_uris
            .iter()
            .find(|uri| !rules.redirect_allowed(uri))
        {
            return Ok(respond::oauth_error(
                400,
                "invalid_redirect_uri",
                &format!("redirect URI not allowed: {bad}"),
            ));
        }
        // RFC 7591 §2: the default is client_secret_basic.
        let auth_method = body
            .token_endpoint_auth_method
            .unwrap_or_else(|| "client_secret_basic".to_owned());
        if !AUTH_METHODS.contains(&auth_method.as_str()) {
            return Ok(respond::oauth_error(
                400,
                "invalid_client_metadata",
                "token_endpoint_auth_method must be none, client_secret_post or client_secret_basic",
            ));
        }
        let grant_types = body
            .grant_types
            .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
        if grant_types
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Ok(respond::oauth_error(
                400,
                "invalid_client_metadata",
                "only the authorization_code and refresh_token grants are supported",
            ));
        }
        let response_types = body
            .response_types
            .unwrap_or_else(|| vec!["code".to_owned()]);
        if response_types.iter().any(|r| r != "code") {
            return Ok(respond::oauth_error(
                400,
                "invalid_client_metadata",
                "only the code response type is supported",
            ));
        }
        let name = body
            .client_name
            .map(|name| name.chars().take(100).collect::<String>());

        let client_id = crypto::new_token(&self.ports.random)?;
        let secret = match auth_method.as_str() {
            "none" => None,
            _ => Some(crypto::new_token(&self.ports.random)?),
        };
        let lifetime = self.config().lifetimes.client_registration;
        let record = ClientRecord {
            redirect_uris: redirect_uris.clone(),
            auth_method: auth_method.clone(),
            secret_hash: secret.as_deref().map(crypto::hash),
            name: name.clone(),
            created_at: now,
            expires_at: now + lifetime,
        };
        store::put(kv, &store::client_key(&client_id), &record, lifetime).await?;
        let mut answer = serde_json::json!({
            "client_id": client_id,
            "client_id_issued_at": now,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": auth_method,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        });
        if let Some(name) = name {
            answer["client_name"] = name.into();
        }
        if let Some(secret) = secret {
            answer["client_secret"] = secret.into();
            answer["client_secret_expires_at"] = (now + lifetime).into();
        }
        Ok(respond::json(201, &answer))
    }

    /// Count one registration (or metadata-document fetch) against the caller's address;
    /// `Some(seconds)` when the hourly limit is reached, to wait that long.
    ///
    /// KV is eventually consistent, so this is a soft cap (a burst spread over locations can
    /// exceed it), which is enough to bound what one address costs us.
    async fn take_registration_slot(&self, client_ip: Option<&str>) -> Result<Option<u64>, Error> {
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        let rate_key = store::rate_key(client_ip.unwrap_or("unknown"));
        let mut rate = store::get::<RateRecord>(kv, &rate_key)
            .await?
            .filter(|rate| now < rate.window_start + 3600)
            .unwrap_or(RateRecord {
                window_start: now,
                count: 0,
            });
        if rate.count >= self.config().dcr_per_hour {
            return Ok(Some((rate.window_start + 3600).saturating_sub(now)));
        }
        rate.count += 1;
        // KV takes one write per key per second, and clients often register twice in a row
        // (claude.ai does): a refused counter update must not fail the registration.
        if let Err(error) = store::put(kv, &rate_key, &rate, 3600).await {
            self.log(
                Level::Warn,
                format!("registration counter not updated: {error}"),
            );
        }
        Ok(None)
    }

    /// The client behind `client_id`: a registration in KV, or, for an https URL, its client ID
    /// metadata document. `Ok(None)` when there is no such client (or its document is unusable;
    /// the reason is logged).
    pub(crate) async fn client(
        &self,
        rules: &Rules,
        client_id: &str,
        client_ip: Option<&str>,
    ) -> Result<Option<Client>, Error> {
        let now = self.ports.clock.now();
        // Our ids are 43 characters and URLs ids are hashed into keys; a longer id is not ours
        // and would exceed KV's key size.
        if client_id.len() > MAX_CLIENT_ID {
            return Ok(None);
        }
        if client_id.starts_with("https://") {
            return Ok(self
                .metadata_document(rules, client_id, client_ip)
                .await?
                .map(|doc| Client {
                    name: doc.name,
                    redirect_uris: doc.redirect_uris,
                }));
        }
        let record = store::get::<ClientRecord>(&self.ports.kv, &store::client_key(client_id))
            .await?
            .filter(|record| now < record.expires_at);
        Ok(record.map(|record| Client {
            name: record.name,
            redirect_uris: record.redirect_uris,
        }))
    }

    /// Fetch (or recall) a client ID metadata document. Only public https hosts are fetched,
    /// with a size and time cap and no redirects; answers and failures are cached in KV.
    async fn metadata_document(
        &self,
        rules: &Rules,
        client_id: &str,
        client_ip: Option<&str>,
    ) -> Result<Option<CimdClient>, Error> {
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        let key = store::cimd_key(client_id);
        if let Some(cached) = store::get::<CimdRecord>(kv, &key).await?
            && now < cached.expires_at
        {
            return Ok(cached.result.ok());
        }
        // A fetch (and the KV writes caching its outcome) counts like a registration, so a
        // stream of made-up client id URLs costs us no more than registrations do.
        if self.take_registration_slot(client_ip).await?.is_some() {
            self.log(
                Level::Warn,
                format!("client metadata document {client_id} not fetched: rate limit"),
            );
            return Ok(None);
        }
        let result = match metadata_url(client_id) {
            Err(reason) => Err(reason),
            Ok(()) => self.fetch_metadata_document(rules, client_id).await,
        };
        let ttl = match &result {
            Ok(_) => CIMD_CACHE_SECONDS,
            Err(reason) => {
                self.log(
                    Level::Warn,
                    format!("client metadata document {client_id} rejected: {reason}"),
                );
                CIMD_FAILURE_CACHE_SECONDS
            }
        };
        let record = CimdRecord {
            result,
            expires_at: now + ttl,
        };
        store::put(kv, &key, &record, ttl).await?;
        Ok(record.result.ok())
    }

    async fn fetch_metadata_document(
        &self,
        rules: &Rules,
        client_id: &str,
    ) -> Result<CimdClient, String> {
        let mut headers = Headers::new();
        headers.set("Accept", "application/json");
        let response = self
            .ports
            .http
            .fetch(HttpRequest {
                method: Method::Get,
                url: client_id.to_owned(),
                headers,
                body: Vec::new(),
                timeout_ms: CIMD_TIMEOUT_MS,
                max_response_bytes: CIMD_MAX_BYTES,
            })
            .await
            .map_err(|e| format!("fetch failed: {e}"))?;
        if response.status != 200 {
            return Err(format!("answered HTTP {}", response.status));
        }
        if response.body.len() > CIMD_MAX_BYTES {
            return Err("document too large".into());
        }
        let doc: MetadataDocument =
            serde_json::from_slice(&response.body).map_err(|e| format!("not a document: {e}"))?;
        if doc.client_id != client_id {
            return Err("client_id in the document differs from its URL".into());
        }
        if doc.client_secret.is_some()
            || doc
                .token_endpoint_auth_method
                .as_deref()
                .is_some_and(|method| method != "none")
        {
            return Err(
                "only public clients (token_endpoint_auth_method none) are supported".into(),
            );
        }
        if doc.redirect_uris.is_empty() {
            return Err("no redirect_uris".into());
        }
        if let Some(bad) = doc
            .redirect_uris
            .iter()
            .find(|uri| !rules.redirect_allowed(uri))
        {
            return Err(format!("redirect URI not allowed: {bad}"));
        }
        Ok(CimdClient {
            redirect_uris: doc.redirect_uris,
            name: doc.client_name.map(|name| name.chars().take(100).collect()),
        })
    }

    /// `GET /authorize`: validate the request, then show the consent page, or go straight to
    /// the upstream login when this browser already approved the client.
    pub(crate) async fn authorize(
        &self,
        rules: &Rules,
        url: &Url,
        request: &EdgeRequest,
    ) -> Result<EdgeResponse, Error> {
        let params = Params::from_pairs(url.query_pairs());
        let (auth, client) = match self
            .validate_authorize(rules, &params, request.client_ip.as_deref())
            .await?
        {
            Ok(validated) => validated,
            Err(response) => return Ok(response),
        };
        if self
            .approved_clients(&request.headers)
            .iter()
            .any(|id| id == &auth.client_id)
        {
            return self.to_upstream(auth).await;
        }
        self.consent_page(&auth, &client)
    }

    /// Check an authorization request. Until the redirect URI is known to be the client's, errors
    /// are shown here; after that they go back to the client (RFC 6749 §4.1.2.1).
    async fn validate_authorize(
        &self,
        rules: &Rules,
        params: &Params,
        client_ip: Option<&str>,
    ) -> Result<Result<(AuthRequest, Client), EdgeResponse>, Error> {
        let Some(client_id) = params.single("client_id") else {
            return Ok(Err(respond::oauth_error(
                400,
                "invalid_request",
                "client_id is required",
            )));
        };
        let Some(client) = self.client(rules, client_id, client_ip).await? else {
            return Ok(Err(respond::oauth_error(
                400,
                "invalid_client",
                "unknown client",
            )));
        };
        let redirect_uri = match params.single("redirect_uri") {
            Some(uri) => uri.to_owned(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Ok(Err(respond::oauth_error(
                    400,
                    "invalid_request",
                    "redirect_uri is required",
                )));
            }
        };
        // The allowlist is checked again here, not only at registration: removing a pattern
        // from the KV document must stop new logins through it.
        if !registered_redirect(&client.redirect_uris, &redirect_uri)
            || !rules.redirect_allowed(&redirect_uri)
        {
            return Ok(Err(respond::oauth_error(
                400,
                "invalid_request",
                "redirect_uri is not registered for this client or not allowed",
            )));
        }
        let state = params.single("state").map(str::to_owned);
        let fail = |error: &str, description: &str| {
            Ok(Err(error_redirect(
                &redirect_uri,
                error,
                description,
                state.as_deref(),
                &self.config().public_url,
            )))
        };
        if params.has_duplicates() {
            return fail("invalid_request", "parameters must not repeat");
        }
        if params.single("response_type") != Some("code") {
            return fail("unsupported_response_type", "response_type must be code");
        }
        let Some(code_challenge) = params.single("code_challenge") else {
            return fail("invalid_request", "PKCE is required (code_challenge)");
        };
        // OAuth 2.1 treats a missing method as `plain`, so both are refused.
        if params.single("code_challenge_method") != Some("S256") {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        if code_challenge.len() != 43
            || !code_challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return fail("invalid_request", "code_challenge is not an S256 challenge");
        }
        let config = self.config();
        let resource = match params.single("resource") {
            // Clients that predate RFC 8707 get `/mcp`'s (a per-server endpoint's token needs
            // its resource named, as MCP clients do: they send the URL they connected to).
            None => config.mcp_url.clone(),
            Some(resource) => match crate::Endpoint::of_resource(resource, config) {
                Some(endpoint) => endpoint.resource(config),
                None => {
                    return fail(
                        "invalid_target",
                        "resource is not this server's MCP URL (/mcp or /servers/{name}/mcp)",
                    );
                }
            },
        };
        Ok(Ok((
            AuthRequest {
                client_id: client_id.to_owned(),
                redirect_uri,
                state,
                code_challenge: code_challenge.to_owned(),
                resource,
                scope: params.single("scope").map(str::to_owned),
            },
            client,
        )))
    }

    fn consent_page(&self, auth: &AuthRequest, client: &Client) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let csrf = crypto::new_token(&self.ports.random)?;
        let form = ConsentForm {
            request: auth.clone(),
            csrf: csrf.clone(),
            expires_at: now + CONSENT_SECONDS,
        };
        let plain = serde_json::to_vec(&form).map_err(|e| Error::Stored(e.to_string()))?;
        let sealed = self
            .edge
            .cookie_sealer
            .seal(&self.ports.random, "consent", &plain)?;
        let redirect_host = Url::parse(&auth.redirect_uri)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let name = client.name.as_deref().unwrap_or("An MCP client");
        let page = format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Authorize {name}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font:inherit;padding:.5rem 1rem;margin-right:.5rem}}code{{word-break:break-all}}</style></head>
<body><h1>Connect to MCPbox?</h1>
<p><strong>{name}</strong> wants to use your MCPbox tools on your behalf.</p>
<p>Client: <code>{client_id}</code><br>It will receive access at <code>{host}</code>.</p>
<p>You will sign in with your organisation's login next.</p>
<form method="post" action="/authorize">
<input type="hidden" name="request" value="{sealed}">
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form></body></html>"#,
            name = respond::escape(name),
            client_id = respond::escape(&auth.client_id),
            host = respond::escape(&redirect_host),
            sealed = respond::escape(&sealed),
        );
        // The form's answer redirects to Access (approve) or back to the client (deny).
        let redirect_origin = Url::parse(&auth.redirect_uri)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        let targets = format!("{} {redirect_origin}", self.upstream_origin());
        let mut response = respond::html(200, page, &targets);
        response.headers.append(
            "Set-Cookie",
            format!(
                "{CSRF_COOKIE}={csrf}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={CONSENT_SECONDS}"
            ),
        );
        Ok(response)
    }

    /// `POST /authorize`: the consent form. The sealed request must carry the same CSRF value
    /// as this browser's cookie, so another site cannot submit it for the user.
    pub(crate) async fn consent(
        &self,
        rules: &Rules,
        request: &EdgeRequest,
    ) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let form = Params::from_pairs(form_urlencoded::parse(&request.body));
        let forbidden = |why: &str| Ok(respond::oauth_error(403, "access_denied", why));
        // Defence in depth behind the CSRF cookie: a browser that names another site as the
        // form's origin is refused. `null` (privacy modes, sandboxed frames) proves nothing
        // either way and is left to the cookie check, which a cross-site page cannot pass.
        if let Some(origin) = request.headers.get("Origin")
            && origin != "null"
            && origin != self.public_origin()
        {
            return forbidden("cross-site form submission");
        }
        let Some(consent) = form
            .single("request")
            .and_then(|sealed| self.edge.cookie_sealer.open("consent", sealed))
            .and_then(|plain| serde_json::from_slice::<ConsentForm>(&plain).ok())
        else {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "the consent form is not valid",
            ));
        };
        if now >= consent.expires_at {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "the consent page expired; start again from your client",
            ));
        }
        let cookie = cookie(&request.headers, CSRF_COOKIE).unwrap_or_default();
        if !constant_time_eq(cookie.as_bytes(), consent.csrf.as_bytes()) {
            return forbidden("CSRF check failed");
        }
        let auth = consent.request;
        // The client or the rules may have changed since the page was shown.
        let still_valid = match self
            .client(rules, &auth.client_id, request.client_ip.as_deref())
            .await?
        {
            Some(client) => {
                registered_redirect(&client.redirect_uris, &auth.redirect_uri)
                    && rules.redirect_allowed(&auth.redirect_uri)
            }
            None => false,
        };
        if !still_valid {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "the client or its redirect URI is no longer allowed",
            ));
        }
        let clear_csrf =
            format!("{CSRF_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
        if form.single("action") != Some("approve") {
            let mut response = error_redirect(
                &auth.redirect_uri,
                "access_denied",
                "the user denied access",
                auth.state.as_deref(),
                &self.config().public_url,
            );
            response.headers.append("Set-Cookie", clear_csrf);
            return Ok(response);
        }
        let mut approved = self.approved_clients(&request.headers);
        approved.retain(|id| id != &auth.client_id);
        approved.push(auth.client_id.clone());
        if approved.len() > MAX_APPROVED {
            approved.drain(..approved.len() - MAX_APPROVED);
        }
        let plain = serde_json::to_vec(&approved).map_err(|e| Error::Stored(e.to_string()))?;
        let sealed = self
            .edge
            .cookie_sealer
            .seal(&self.ports.random, "approved", &plain)?;
        let mut response = self.to_upstream(auth).await?;
        response.headers.append("Set-Cookie", clear_csrf);
        // Lax, not Strict: the cookie must come along when a client's link opens /authorize.
        response.headers.append(
            "Set-Cookie",
            format!(
                "{APPROVED_COOKIE}={sealed}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={APPROVED_SECONDS}"
            ),
        );
        Ok(response)
    }

    /// Client ids this browser approved (empty when the cookie is missing or not ours).
    fn approved_clients(&self, headers: &Headers) -> Vec<String> {
        cookie(headers, APPROVED_COOKIE)
            .and_then(|sealed| self.edge.cookie_sealer.open("approved", &sealed))
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or_default()
    }

    /// After the upstream login: record the grant and send the client its code, with the
    /// RFC 9207 `iss`.
    pub(crate) async fn issue_code(
        &self,
        auth: AuthRequest,
        email: String,
    ) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let lifetimes = self.config().lifetimes;
        let kv = &self.ports.kv;
        let grant_id = crypto::new_token(&self.ports.random)?;
        let grant_key = store::grant_key(&grant_id);
        let props = serde_json::to_vec(&store::GrantProps { email })
            .map_err(|e| Error::Stored(e.to_string()))?;
        let grant = GrantRecord {
            client_id: auth.client_id.clone(),
            resource: auth.resource.clone(),
            scope: auth.scope.clone(),
            props: self
                .edge
                .grant_sealer
                .seal(&self.ports.random, &grant_key, &props)?,
            created_at: now,
            expires_at: now + lifetimes.refresh_token,
        };
        store::put(kv, &grant_key, &grant, lifetimes.refresh_token).await?;
        let code = crypto::new_token(&self.ports.random)?;
        let record = CodeRecord {
            grant_id,
            client_id: auth.client_id,
            redirect_uri: auth.redirect_uri.clone(),
            code_challenge: auth.code_challenge,
            resource: auth.resource,
            expires_at: now + lifetimes.auth_code,
            used: false,
        };
        // Kept past its expiry so a late second use is still recognised as reuse.
        store::put(
            kv,
            &store::code_key(&code),
            &record,
            lifetimes.auth_code + 600,
        )
        .await?;
        let mut target = Url::parse(&auth.redirect_uri)
            .map_err(|_| Error::Stored("stored redirect URI does not parse".into()))?;
        {
            let mut query = target.query_pairs_mut();
            query.append_pair("code", &code);
            if let Some(state) = &auth.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.config().public_url);
        }
        Ok(respond::redirect(target.as_str()))
    }

    /// `POST /token`.
    pub(crate) async fn token(&self, request: &EdgeRequest) -> Result<EdgeResponse, Error> {
        let form = Params::from_pairs(form_urlencoded::parse(&request.body));
        if form.has_duplicates() {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "parameters must not repeat",
            ));
        }
        let client_id = match self.authenticate_client(&request.headers, &form).await? {
            Ok(client_id) => client_id,
            Err(response) => return Ok(response),
        };
        match form.single("grant_type") {
            Some("authorization_code") => self.redeem_code(&client_id, &form).await,
            Some("refresh_token") => self.refresh(&client_id, &form).await,
            _ => Ok(respond::oauth_error(
                400,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }

    /// Authenticate the client at `/token` or `/revoke`: public clients by `client_id`,
    /// confidential ones by their secret (HTTP Basic or form).
    async fn authenticate_client(
        &self,
        headers: &Headers,
        form: &Params,
    ) -> Result<Authenticated, Error> {
        let invalid = |why: &str| {
            let mut response = respond::oauth_error(401, "invalid_client", why);
            response
                .headers
                .set("WWW-Authenticate", "Basic realm=\"mcpbox\"");
            Ok(Err(response))
        };
        let basic = headers.get("Authorization").and_then(basic_credentials);
        let (client_id, secret, method) = match basic {
            Some((id, secret)) => (id, Some(secret), "client_secret_basic"),
            None => match form.single("client_id") {
                Some(id) => (
                    id.to_owned(),
                    form.single("client_secret").map(str::to_owned),
                    if form.single("client_secret").is_some() {
                        "client_secret_post"
                    } else {
                        "none"
                    },
                ),
                None => return invalid("client authentication is required"),
            },
        };
        // A URL client id is a public client (its metadata document was checked at
        // /authorize); what it may redeem is bound to it by the code and token records.
        let client = if client_id.len() > MAX_CLIENT_ID {
            None
        } else if client_id.starts_with("https://") {
            Some(("none".to_owned(), None))
        } else {
            let now = self.ports.clock.now();
            store::get::<ClientRecord>(&self.ports.kv, &store::client_key(&client_id))
                .await?
                .filter(|record| now < record.expires_at)
                .map(|record| (record.auth_method, record.secret_hash))
        };
        let Some((registered_method, secret_hash)) = client else {
            return invalid("unknown client");
        };
        let secret_ok = match (&secret, &secret_hash) {
            (None, None) => true,
            (Some(secret), Some(hash)) => {
                constant_time_eq(crypto::hash(secret).as_bytes(), hash.as_bytes())
            }
            _ => false,
        };
        // Basic and post are interchangeable for a confidential client; the secret is what
        // matters. A public client must not present one, a confidential client must.
        let method_ok = match registered_method.as_str() {
            "none" => method == "none",
            _ => method != "none",
        };
        if !secret_ok || !method_ok {
            return invalid("client authentication failed");
        }
        Ok(Ok(client_id))
    }

    async fn redeem_code(&self, client_id: &str, form: &Params) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        let invalid = |why: &str| Ok(respond::oauth_error(400, "invalid_grant", why));
        let (Some(code), Some(redirect_uri)) = (form.single("code"), form.single("redirect_uri"))
        else {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "code and redirect_uri are required",
            ));
        };
        let Some(verifier) = form.single("code_verifier") else {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "code_verifier is required (PKCE)",
            ));
        };
        let key = store::code_key(code);
        let Some(mut record) = store::get::<CodeRecord>(kv, &key).await? else {
            return invalid("unknown authorization code");
        };
        if record.used {
            // RFC 6749 §4.1.2: a reused code means it leaked; revoke what it produced.
            self.revoke_grant(&record.grant_id).await?;
            self.log(Level::Warn, "authorization code reused; grant revoked");
            return invalid("authorization code already used");
        }
        if record.client_id != client_id {
            return invalid("authorization code was issued to another client");
        }
        // Spend the code before any other check, so a failed guess at the verifier cannot be
        // followed by another.
        record.used = true;
        store::put(kv, &key, &record, self.config().lifetimes.auth_code + 600).await?;
        if now >= record.expires_at {
            return invalid("authorization code expired");
        }
        if record.redirect_uri != redirect_uri {
            return invalid("redirect_uri does not match the authorization request");
        }
        if !crypto::pkce_matches(verifier, &record.code_challenge) {
            return invalid("code_verifier does not match the code_challenge");
        }
        if let Some(resource) = form.single("resource")
            && !same_resource(resource, &record.resource)
        {
            return Ok(respond::oauth_error(
                400,
                "invalid_target",
                "resource differs from the authorization request",
            ));
        }
        let Some(grant) = store::get::<GrantRecord>(kv, &store::grant_key(&record.grant_id))
            .await?
            .filter(|grant| now < grant.expires_at)
        else {
            return invalid("the authorization was revoked");
        };
        self.issue_tokens(&record.grant_id, grant).await
    }

    async fn refresh(&self, client_id: &str, form: &Params) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        let grace = self.config().lifetimes.refresh_grace;
        let invalid = |why: &str| Ok(respond::oauth_error(400, "invalid_grant", why));
        let Some(token) = form.single("refresh_token") else {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "refresh_token is required",
            ));
        };
        let key = store::refresh_key(token);
        let Some(mut record) = store::get::<RefreshRecord>(kv, &key).await? else {
            return invalid("unknown refresh token");
        };
        if record.client_id != client_id {
            return invalid("refresh token was issued to another client");
        }
        if now >= record.expires_at {
            return invalid("refresh token expired");
        }
        let grant_key = store::grant_key(&record.grant_id);
        let Some(mut grant) = store::get::<GrantRecord>(kv, &grant_key)
            .await?
            .filter(|grant| now < grant.expires_at)
        else {
            return invalid("the authorization was revoked or expired");
        };
        match record.spent_at {
            // A second use inside the grace period is a concurrent refresh (one client, two
            // egress paths): both get working tokens.
            Some(spent_at) if now <= spent_at + grace => {}
            Some(_) => {
                self.revoke_grant(&record.grant_id).await?;
                self.log(
                    Level::Warn,
                    "refresh token replayed after rotation; grant revoked",
                );
                return invalid("refresh token already used");
            }
            None => {
                record.spent_at = Some(now);
                let ttl = record.expires_at.saturating_sub(now);
                // KV takes one write per key per second: when two refreshes of this token race,
                // the other one's mark may be why this write is refused. Either way the token
                // is (being) marked, so the refresh goes on.
                if let Err(error) = store::put(kv, &key, &record, ttl).await {
                    self.log(
                        Level::Warn,
                        format!("refresh token not marked spent: {error}"),
                    );
                }
            }
        }
        if let Some(resource) = form.single("resource")
            && !same_resource(resource, &grant.resource)
        {
            return Ok(respond::oauth_error(
                400,
                "invalid_target",
                "resource differs from the grant",
            ));
        }
        // Activity keeps the grant alive for another refresh-token lifetime. Written at most
        // once a day, so concurrent refreshes do not contend for the grant's key.
        let lifetime = self.config().lifetimes.refresh_token;
        if grant.expires_at + 86_400 < now + lifetime {
            grant.expires_at = now + lifetime;
            store::put(kv, &grant_key, &grant, lifetime).await?;
        }
        self.issue_tokens(&record.grant_id, grant).await
    }

    async fn issue_tokens(
        &self,
        grant_id: &str,
        grant: GrantRecord,
    ) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let lifetimes = self.config().lifetimes;
        let kv = &self.ports.kv;
        let access_token = crypto::new_token(&self.ports.random)?;
        let refresh_token = crypto::new_token(&self.ports.random)?;
        let access = AccessRecord {
            grant_id: grant_id.to_owned(),
            client_id: grant.client_id.clone(),
            resource: grant.resource.clone(),
            expires_at: now + lifetimes.access_token,
        };
        store::put(
            kv,
            &store::access_key(&access_token),
            &access,
            lifetimes.access_token,
        )
        .await?;
        let refresh = RefreshRecord {
            grant_id: grant_id.to_owned(),
            client_id: grant.client_id,
            // Never outlives its grant (grants are extended at most daily).
            expires_at: (now + lifetimes.refresh_token).min(grant.expires_at),
            spent_at: None,
        };
        store::put(
            kv,
            &store::refresh_key(&refresh_token),
            &refresh,
            lifetimes.refresh_token,
        )
        .await?;
        let mut answer = serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetimes.access_token,
            "refresh_token": refresh_token,
        });
        if let Some(scope) = grant.scope {
            answer["scope"] = scope.into();
        }
        Ok(respond::json(200, &answer))
    }

    /// Delete a grant: every token issued under it stops working (tokens check their grant).
    pub(crate) async fn revoke_grant(&self, grant_id: &str) -> Result<(), Error> {
        self.ports.kv.delete(&store::grant_key(grant_id)).await
    }

    /// `POST /revoke` (RFC 7009). Only the client a token was issued to may revoke it; revoking
    /// a refresh token revokes the whole grant.
    pub(crate) async fn revoke(&self, request: &EdgeRequest) -> Result<EdgeResponse, Error> {
        let form = Params::from_pairs(form_urlencoded::parse(&request.body));
        let client_id = match self.authenticate_client(&request.headers, &form).await? {
            Ok(client_id) => client_id,
            Err(response) => return Ok(response),
        };
        let Some(token) = form.single("token") else {
            return Ok(respond::oauth_error(
                400,
                "invalid_request",
                "token is required",
            ));
        };
        let kv = &self.ports.kv;
        let other_client = || {
            Ok(respond::oauth_error(
                400,
                "unauthorized_client",
                "the token was not issued to this client",
            ))
        };
        let access_key = store::access_key(token);
        if let Some(access) = store::get::<AccessRecord>(kv, &access_key).await? {
            if access.client_id != client_id {
                return other_client();
            }
            kv.delete(&access_key).await?;
            return Ok(respond::json(200, &serde_json::json!({})));
        }
        if let Some(refresh) = store::get::<RefreshRecord>(kv, &store::refresh_key(token)).await? {
            if refresh.client_id != client_id {
                return other_client();
            }
            self.revoke_grant(&refresh.grant_id).await?;
            kv.delete(&store::refresh_key(token)).await?;
        }
        // RFC 7009 §2.2: an unknown token is not an error.
        Ok(respond::json(200, &serde_json::json!({})))
    }

    fn public_origin(&self) -> String {
        Url::parse(&self.config().public_url)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default()
    }

    fn upstream_origin(&self) -> String {
        Url::parse(&self.config().access.authorization_url)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

/// What the consent form carries, sealed: the validated request and its CSRF value.
#[derive(serde::Serialize, Deserialize)]
struct ConsentForm {
    request: AuthRequest,
    csrf: String,
    expires_at: u64,
}

/// Query or form parameters, keeping repeats so they can be refused.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_pairs<'a>(
        pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Params {
        Params(
            pairs
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `name` when it appears exactly once and is not empty.
    pub fn single(&self, name: &str) -> Option<&str> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (Some((_, value)), None) if !value.is_empty() => Some(value),
            _ => None,
        }
    }

    /// Whether any parameter appears more than once (RFC 6749 §3.1: they must not).
    pub fn has_duplicates(&self) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        !self.0.iter().all(|(k, _)| seen.insert(k.as_str()))
    }
}

/// Whether `uri` is one of the client's redirect URIs. Loopback redirects match on any port
/// (RFC 8252 §7.3: native apps pick a free port at run time).
fn registered_redirect(registered: &[String], uri: &str) -> bool {
    let Some(url) = acceptable_redirect(uri) else {
        return false;
    };
    registered.iter().any(|candidate| {
        if candidate == uri {
            return true;
        }
        let Ok(mut candidate) = Url::parse(candidate) else {
            return false;
        };
        let loopback = url.scheme() == "http"
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1"))
            && candidate.scheme() == "http";
        if !loopback {
            return false;
        }
        let mut without_port = url.clone();
        // Both are http URLs with hosts, so clearing the port cannot fail.
        if candidate.set_port(None).is_err() || without_port.set_port(None).is_err() {
            return false;
        }
        candidate == without_port
    })
}

/// Whether a client's `resource` names our MCP URL (a trailing slash is tolerated).
fn same_resource(given: &str, ours: &str) -> bool {
    given == ours || given.strip_suffix('/') == Some(ours)
}

/// An error sent back to the client's redirect URI, with `state` and the RFC 9207 `iss`.
fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> EdgeResponse {
    let Ok(mut target) = Url::parse(redirect_uri) else {
        return respond::oauth_error(400, error, description);
    };
    {
        let mut query = target.query_pairs_mut();
        query.append_pair("error", error);
        query.append_pair("error_description", description);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    respond::redirect(target.as_str())
}

/// A cookie's value from the `Cookie` header.
pub(crate) fn cookie(headers: &Headers, name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, value)| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Whether a client id URL may be fetched: https, default port, a real path, and a public
/// host name. IP literals and local names are refused outright (we cannot resolve names here,
/// and the Workers runtime does not reach private networks anyway).
fn metadata_url(client_id: &str) -> Result<(), String> {
    let url = Url::parse(client_id).map_err(|_| "not a URL".to_owned())?;
    if url.scheme() != "https" || url.port().is_some() {
        return Err("must be https on the default port".into());
    }
    if url.as_str() != client_id {
        return Err("not in normal form".into());
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("must not have a fragment or credentials".into());
    }
    if url.path() == "/" {
        return Err("must have a path".into());
    }
    let Some(url::Host::Domain(host)) = url.host() else {
        return Err("must name a host, not an address".into());
    };
    let local = !host.contains('.')
        || [".localhost", ".local", ".internal", ".home.arpa", ".lan"]
            .iter()
            .any(|suffix| host.ends_with(suffix));
    if local {
        return Err("must be a public host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_must_be_public_https_with_a_path() {
        assert!(metadata_url("https://client.example.com/oauth/metadata.json").is_ok());
        for bad in [
            "http://client.example.com/meta",
            "https://client.example.com/",
            "https://client.example.com:8443/meta",
            "https://127.0.0.1/meta",
            "https://[::1]/meta",
            "https://10.0.0.1/meta",
            "https://localhost/meta",
            "https://printer.local/meta",
            "https://intranet/meta",
            "https://user@client.example.com/meta",
            "https://client.example.com/meta#x",
        ] {
            assert!(metadata_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port_others_exactly() {
        let registered = vec![
            "http://127.0.0.1/callback".to_owned(),
            "https://claude.ai/api/mcp/auth_callback".to_owned(),
        ];
        assert!(registered_redirect(
            &registered,
            "http://127.0.0.1:5555/callback"
        ));
        assert!(!registered_redirect(
            &registered,
            "http://127.0.0.1:5555/other"
        ));
        assert!(registered_redirect(
            &registered,
            "https://claude.ai/api/mcp/auth_callback"
        ));
        assert!(!registered_redirect(
            &registered,
            "https://claude.ai/api/mcp/auth_callback2"
        ));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret"));
        assert_eq!(
            basic_credentials(&header),
            Some(("my id".to_owned(), "s:cret".to_owned()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
    }
}
