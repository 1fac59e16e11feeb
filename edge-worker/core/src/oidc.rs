//! The OIDC client to Cloudflare Access for SaaS: the redirect to Access (state, nonce, PKCE),
//! `/callback` (code exchange with the client secret), and id_token verification against the
//! JWKS (signature, `kid`, `iss`, `aud`, `exp`/`nbf`, `nonce`, `email_verified`). The user's
//! email comes only from a verified id_token, and the login only finishes in the browser that
//! started it (the login cookie).

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use url::Url;

use crate::crypto::{self, constant_time_eq};
use crate::http::{EdgeResponse, Headers, Method};
use crate::ports::HttpRequest;
use crate::store::{self, AuthRequest, StateRecord, StateSecrets};
use crate::{Clock, Cx, Error, HttpClient, Kv, Level, Random, respond};

/// How long an upstream login may take.
const STATE_SECONDS: u64 = 600;
/// Binds an upstream login to the browser that consented (RFC 6749 §10.12): set with the
/// redirect to Access, its hash kept in the state record, required and cleared by `/callback`.
/// Without it, a login started (and consented to) in an attacker's browser could be finished by
/// a victim who follows the attacker's Access link while signed in to Access, handing the
/// victim's identity to the attacker's client. SameSite=Lax, not Strict: the callback is a
/// cross-site top-level redirect back from Access, which Lax cookies accompany.
///
/// One cookie per browser: a second login started in the same browser before the first came
/// back replaces it, and the first then has to start again.
const LOGIN_COOKIE: &str = "__Host-mcpbox_login";
/// Clock skew tolerated on `exp` and `nbf`.
const SKEW_SECONDS: u64 = 60;
/// How long a fetched JWKS is trusted.
const JWKS_CACHE_SECONDS: u64 = 300;
/// How long an unknown `kid` is remembered, so tokens with made-up key ids cannot make us fetch
/// the JWKS on every request; and the most remembered at once.
const UNKNOWN_KID_SECONDS: u64 = 60;
const MAX_UNKNOWN_KIDS: usize = 100;
/// A fresh JWKS is not refetched for an unknown kid until it is this old.
const JWKS_MIN_REFETCH_SECONDS: u64 = 30;
const UPSTREAM_TIMEOUT_MS: u32 = 10_000;
const UPSTREAM_MAX_BYTES: usize = 64 * 1024;

/// The per-isolate JWKS cache.
#[derive(Default)]
pub struct JwksCache {
    keys: Vec<Jwk>,
    fetched_at: Option<u64>,
    /// Recently unknown kids and when they were last looked for.
    unknown: Vec<(String, u64)>,
}

/// Why an id_token was refused: a verdict for the log, not an error of ours (the user sees a
/// generic answer).
#[derive(Debug, PartialEq, Eq)]
pub enum IdTokenRejection {
    Malformed,
    UnsupportedAlgorithm,
    MissingKid,
    UnknownKid,
    BadSignatureOrClaims(String),
    Expired,
    NotYetValid,
    NonceMismatch,
    NoVerifiedEmail,
}

#[derive(Deserialize)]
struct IdClaims {
    exp: u64,
    nbf: Option<u64>,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

impl<K: Kv, C: Clock, R: Random, H: HttpClient> Cx<'_, K, C, R, H> {
    /// Start the upstream login for a validated, consented request: the redirect to Access,
    /// and the cookie that binds the login to this browser.
    pub(crate) async fn to_upstream(&self, auth: AuthRequest) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let random = &self.ports.random;
        let state = crypto::new_token(random)?;
        let browser = crypto::new_token(random)?;
        let secrets = StateSecrets {
            nonce: crypto::new_token(random)?,
            verifier: crypto::new_token(random)?,
        };
        let key = store::state_key(&state);
        let plain = serde_json::to_vec(&secrets).map_err(|e| Error::Stored(e.to_string()))?;
        let record = StateRecord {
            request: auth,
            secrets: self.edge.grant_sealer.seal(random, &key, &plain)?,
            browser: crypto::hash(&browser),
            expires_at: now + STATE_SECONDS,
        };
        store::put(&self.ports.kv, &key, &record, STATE_SECONDS).await?;
        let access = &self.config().access;
        let mut target = Url::parse(&access.authorization_url)
            .map_err(|_| Error::Config("the Access authorization URL does not parse".into()))?;
        target
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &access.client_id)
            .append_pair("redirect_uri", &self.callback_url())
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &secrets.nonce)
            .append_pair("code_challenge", &crypto::pkce_challenge(&secrets.verifier))
            .append_pair("code_challenge_method", "S256");
        let mut response = respond::redirect(target.as_str());
        response.headers.append(
            "Set-Cookie",
            format!(
                "{LOGIN_COOKIE}={browser}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={STATE_SECONDS}"
            ),
        );
        Ok(response)
    }

    fn callback_url(&self) -> String {
        format!("{}/callback", self.config().public_url)
    }

    /// `GET /callback`: finish the upstream login and send the client its code. Whatever the
    /// outcome, the login cookie is spent with it.
    pub(crate) async fn callback(
        &self,
        url: &Url,
        headers: &Headers,
    ) -> Result<EdgeResponse, Error> {
        let mut response = self.finish_login(url, headers).await?;
        response.headers.append(
            "Set-Cookie",
            format!("{LOGIN_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
        Ok(response)
    }

    async fn finish_login(&self, url: &Url, headers: &Headers) -> Result<EdgeResponse, Error> {
        let now = self.ports.clock.now();
        let kv = &self.ports.kv;
        let params = crate::oauth::Params::from_pairs(url.query_pairs());
        let invalid_state = || {
            Ok(respond::error_page(
                400,
                "invalid_state",
                "Sign-in expired",
                "This sign-in is unknown, already used or expired. Start again from your MCP client.",
            ))
        };
        let Some(state) = params.single("state") else {
            return invalid_state();
        };
        let key = store::state_key(state);
        let Some(record) = store::get::<StateRecord>(kv, &key).await? else {
            return invalid_state();
        };
        // Single use: the state (and with it the nonce and verifier) is gone after this.
        kv.delete(&key).await?;
        if now >= record.expires_at {
            return invalid_state();
        }
        // Before anything is done with Access's answer (its code is never redeemed for a
        // browser that did not consent): this browser must hold the login's cookie.
        let bound = crate::oauth::cookie(headers, LOGIN_COOKIE).is_some_and(|presented| {
            !record.browser.is_empty()
                && constant_time_eq(
                    crypto::hash(&presented).as_bytes(),
                    record.browser.as_bytes(),
                )
        });
        if !bound {
            self.log(
                Level::Warn,
                "callback refused: the browser does not hold this login's cookie \
                 (another browser, cookies blocked, or a newer login in the same browser)",
            );
            return Ok(respond::error_page(
                400,
                "login_browser_mismatch",
                "Sign-in not finished",
                "This sign-in was started in another browser, or this browser did not keep its \
                 cookie. For your safety it was not completed. Start again from your MCP client, \
                 in this browser.",
            ));
        }
        let secrets: StateSecrets = self
            .edge
            .grant_sealer
            .open(&key, &record.secrets)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or_else(|| Error::Stored("login state does not decrypt".into()))?;
        let auth = record.request;
        let denied = |description: &str| {
            let mut target = Url::parse(&auth.redirect_uri)
                .map_err(|_| Error::Stored("stored redirect URI does not parse".into()))?;
            {
                let mut query = target.query_pairs_mut();
                query.append_pair("error", "access_denied");
                query.append_pair("error_description", description);
                if let Some(state) = &auth.state {
                    query.append_pair("state", state);
                }
                query.append_pair("iss", &self.config().public_url);
            }
            Ok(respond::redirect(target.as_str()))
        };
        if params.single("error").is_some() {
            return denied("the upstream login did not succeed");
        }
        let Some(code) = params.single("code") else {
            return denied("the upstream login returned no code");
        };
        let id_token = match self.exchange(code, &secrets.verifier).await {
            Ok(id_token) => id_token,
            Err(reason) => {
                self.log(
                    Level::Error,
                    format!("upstream token exchange failed: {reason}"),
                );
                return Ok(respond::error_page(
                    502,
                    "token_exchange_failed",
                    "Sign-in failed",
                    "Your organisation's login did not complete the sign-in. Try again later.",
                ));
            }
        };
        match self.verify_id_token(&id_token, &secrets.nonce).await? {
            Ok(email) => self.issue_code(auth, email).await,
            Err(reason) => {
                self.log(Level::Warn, format!("id_token refused: {reason:?}"));
                Ok(match reason {
                    IdTokenRejection::NoVerifiedEmail => respond::error_page(
                        403,
                        "email_not_verified",
                        "Email address not verified",
                        "Your organisation's login did not confirm your email address \
                         (email_verified), so MCPbox cannot tell who you are. Ask your \
                         administrator to check the login provider.",
                    ),
                    _ => respond::error_page(
                        502,
                        "invalid_id_token",
                        "Sign-in failed",
                        "Your organisation's login answered with an identity token that is not \
                         valid. Try again later, or ask your administrator.",
                    ),
                })
            }
        }
    }

    /// Exchange the upstream code for an id_token, authenticating with the client secret.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<String, String> {
        let access = &self.config().access;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.callback_url())
            .append_pair("client_id", &access.client_id)
            .append_pair("client_secret", access.client_secret.expose())
            .append_pair("code_verifier", verifier)
            .finish();
        let mut headers = Headers::new();
        headers.set("Content-Type", "application/x-www-form-urlencoded");
        headers.set("Accept", "application/json");
        let response = self
            .ports
            .http
            .fetch(HttpRequest {
                method: Method::Post,
                url: access.token_url.clone(),
                headers,
                body: body.into_bytes(),
                timeout_ms: UPSTREAM_TIMEOUT_MS,
                max_response_bytes: UPSTREAM_MAX_BYTES,
            })
            .await
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("HTTP {}", response.status));
        }
        serde_json::from_slice::<TokenAnswer>(&response.body)
            .map(|answer| answer.id_token)
            .map_err(|_| "no id_token in the answer".to_owned())
    }

    /// Verify an id_token and return its verified email. `Err` is for infrastructure failures
    /// (the JWKS could not be fetched); a bad token is `Ok(Err(reason))`.
    pub(crate) async fn verify_id_token(
        &self,
        token: &str,
        nonce: &str,
    ) -> Result<Result<String, IdTokenRejection>, Error> {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(Err(IdTokenRejection::Malformed));
        };
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Ok(Err(IdTokenRejection::UnsupportedAlgorithm));
        }
        let Some(kid) = header.kid else {
            return Ok(Err(IdTokenRejection::MissingKid));
        };
        let Some(jwk) = self.jwk(&kid).await? else {
            return Ok(Err(IdTokenRejection::UnknownKid));
        };
        let access = &self.config().access;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&access.issuer]);
        validation.set_audience(&[&access.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Time is checked below against our Clock: jsonwebtoken would read the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = DecodingKey::from_jwk(&jwk)
            .and_then(|key| jsonwebtoken::decode::<IdClaims>(token, &key, &validation));
        let claims = match claims {
            Ok(data) => data.claims,
            Err(e) => {
                return Ok(Err(IdTokenRejection::BadSignatureOrClaims(format!(
                    "{e:?}"
                ))));
            }
        };
        let now = self.ports.clock.now();
        if now > claims.exp + SKEW_SECONDS {
            return Ok(Err(IdTokenRejection::Expired));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + SKEW_SECONDS) {
            return Ok(Err(IdTokenRejection::NotYetValid));
        }
        let nonce_ok = claims
            .nonce
            .is_some_and(|claimed| constant_time_eq(claimed.as_bytes(), nonce.as_bytes()));
        if !nonce_ok {
            return Ok(Err(IdTokenRejection::NonceMismatch));
        }
        // The email is the identity the origin admits, so only one the provider vouches for
        // counts: `email_verified` must be present and true (Access for SaaS sends it). A
        // provider that leaves it out may let users type any address.
        match claims.email {
            Some(email) if claims.email_verified == Some(true) && email.contains('@') => {
                Ok(Ok(email))
            }
            _ => Ok(Err(IdTokenRejection::NoVerifiedEmail)),
        }
    }

    /// The JWK with this `kid`, from the cache or a fresh JWKS. Unknown kids are remembered
    /// briefly (bounded), so a flood of made-up kids costs at most one fetch a minute each.
    async fn jwk(&self, kid: &str) -> Result<Option<Jwk>, Error> {
        let now = self.ports.clock.now();
        {
            let mut cache = self.edge.jwks.borrow_mut();
            let fresh = cache
                .fetched_at
                .is_some_and(|at| now < at + JWKS_CACHE_SECONDS);
            if fresh && let Some(jwk) = find(&cache.keys, kid) {
                return Ok(Some(jwk));
            }
            cache
                .unknown
                .retain(|(_, seen)| now < seen + UNKNOWN_KID_SECONDS);
            if cache.unknown.iter().any(|(unknown, _)| unknown == kid) {
                return Ok(None);
            }
            let recent = cache
                .fetched_at
                .is_some_and(|at| now < at + JWKS_MIN_REFETCH_SECONDS);
            if recent {
                remember_unknown(&mut cache, kid, now);
                return Ok(None);
            }
        }
        let keys = self.fetch_jwks().await?;
        let mut cache = self.edge.jwks.borrow_mut();
        cache.keys = keys;
        cache.fetched_at = Some(now);
        let found = find(&cache.keys, kid);
        if found.is_none() {
            remember_unknown(&mut cache, kid, now);
        }
        Ok(found)
    }

    async fn fetch_jwks(&self) -> Result<Vec<Jwk>, Error> {
        let mut headers = Headers::new();
        headers.set("Accept", "application/json");
        let response = self
            .ports
            .http
            .fetch(HttpRequest {
                method: Method::Get,
                url: self.config().access.jwks_url.clone(),
                headers,
                body: Vec::new(),
                timeout_ms: UPSTREAM_TIMEOUT_MS,
                max_response_bytes: UPSTREAM_MAX_BYTES,
            })
            .await?;
        if response.status != 200 {
            return Err(Error::Http(format!(
                "JWKS answered HTTP {}",
                response.status
            )));
        }
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let set: RawSet = serde_json::from_slice(&response.body)
            .map_err(|_| Error::Http("JWKS is not a key set".into()))?;
        // Keys we cannot parse (other key types) are skipped rather than failing the set.
        Ok(set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value(key).ok())
            .collect())
    }
}

fn find(keys: &[Jwk], kid: &str) -> Option<Jwk> {
    keys.iter()
        .find(|jwk| jwk.common.key_id.as_deref() == Some(kid))
        .cloned()
}

fn remember_unknown(cache: &mut JwksCache, kid: &str, now: u64) {
    if cache.unknown.len() >= MAX_UNKNOWN_KIDS {
        cache.unknown.remove(0);
    }
    cache.unknown.push((kid.to_owned(), now));
}
