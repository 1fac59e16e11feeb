//! Session tokens for the admin API.
//!
//! * Access token: an HS256 JWT, 15 minutes, claims `sub`, `role`, `typ = "access"`, `aud` (the
//!   front it was issued for, `Audience`), `ep` (the user's token epoch), `jti`. It is checked
//!   against the database on every request: the account must be active, its epoch and role
//!   unchanged, and the `jti` not revoked. So logout, password change, "sign out everywhere" and
//!   disabling take effect at once and survive restarts. Long-lived responses (the live activity
//!   stream) re-check it before each event (`still_valid`).
//! * Refresh token: 32 random bytes, 7 days, stored only as a SHA-256 hash. Each use spends it and
//!   issues a new one in the same family; presenting a spent token again means it leaked, and the
//!   whole family is revoked.
//! * Audiences: the UI's cookies hold tokens for `mcpbox-ui`, the API's bearer tokens are for
//!   `mcpbox-api`, and each front accepts only its own, so a leaked UI cookie is no API token
//!   (and an API token is no UI session). A refresh token's audience is its prefix (`mbr_` API,
//!   `mbu_` UI), part of the secret and so of its stored hash: it cannot be edited.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::auth::Role;
use crate::crypto::Keyring;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::users::{self, User};

pub const ACCESS_TTL: chrono::Duration = chrono::Duration::minutes(15);
pub const REFRESH_TTL: chrono::Duration = chrono::Duration::days(7);
const ACCESS_TYPE: &str = "access";
/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 5;

/// The front a token is for; each front accepts only tokens issued for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Bearer tokens of the JSON API (`/auth/*`, `/api/*`).
    Api,
    /// The admin UI's session cookies (`/ui`).
    Ui,
}

impl Audience {
    /// The JWT `aud` claim.
    pub fn claim(self) -> &'static str {
        match self {
            Audience::Api => "mcpbox-api",
            Audience::Ui => "mcpbox-ui",
        }
    }

    fn refresh_prefix(self) -> &'static str {
        match self {
            Audience::Api => "mbr_",
            Audience::Ui => "mbu_",
        }
    }
}

/// The JWT keys, derived from the encryption key so there is one secret to keep.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    api: Validation,
    ui: Validation,
}

impl JwtKeys {
    pub fn from_keyring(keyring: &Keyring) -> JwtKeys {
        let secret = keyring.derive("admin-jwt-hs256");
        let validation = |audience: Audience| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = LEEWAY_SECS;
            validation.set_required_spec_claims(&["exp", "sub", "aud"]);
            validation.set_audience(&[audience.claim()]);
            validation
        };
        JwtKeys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            api: validation(Audience::Api),
            ui: validation(Audience::Ui),
        }
    }

    fn validation(&self, audience: Audience) -> &Validation {
        match audience {
            Audience::Api => &self.api,
            Audience::Ui => &self.ui,
        }
    }
}

/// The claims of an access token. Public so tests can forge tokens with the right key.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub role: String,
    pub typ: String,
    /// `Audience::claim` of the front it was issued for.
    pub aud: String,
    pub ep: i64,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// What a valid access token says, after the database agreed.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub jti: String,
    pub expires_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = auth::TokenPair)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String)]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

pub fn encode_access(keys: &JwtKeys, claims: &AccessClaims) -> Result<String> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &keys.encoding)
        .map_err(|err| Error::Internal(anyhow::anyhow!("jwt encode: {err}")))
}

const INVALID_ACCESS: &str = "the access token is invalid or has expired; sign in again";

/// Validates an access token for `audience`: signature, expiry, audience, type and role in the
/// token, then the account, its epoch and role, and the revocation list in the database. Fails
/// closed on anything odd.
pub async fn verify_access(
    db: &Db,
    keys: &JwtKeys,
    token: &str,
    audience: Audience,
) -> Result<Session> {
    let claims =
        jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, keys.validation(audience))
            .map_err(|_| Error::Unauthorized(INVALID_ACCESS))?
            .claims;
    if claims.typ != ACCESS_TYPE {
        return Err(Error::Unauthorized("this is not an access token"));
    }
    let role: Role = claims
        .role
        .parse()
        .map_err(|_| Error::Unauthorized(INVALID_ACCESS))?;
    let user = current_account(db, &claims.sub, claims.ep, role, &claims.jti).await?;
    Ok(Session {
        user,
        jti: claims.jti,
        expires_at: claims.exp,
    })
}

/// The account an API access token speaks for, from the token alone (signature, audience,
/// expiry, type; no database): what the rate limiter keys a request by before its handler
/// runs. Never a grant of access: `verify_access` decides that.
pub fn account_of(keys: &JwtKeys, token: &str) -> Option<String> {
    let claims =
        jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, keys.validation(Audience::Api))
            .ok()?
            .claims;
    (claims.typ == ACCESS_TYPE).then_some(claims.sub)
}

/// Whether a session verified earlier still holds now: not expired, and the same database
/// checks as `verify_access` (revoked, epoch, disabled, role). A response that outlives its
/// request (the live activity stream) asks this before each event it delivers.
pub async fn still_valid(db: &Db, session: &Session) -> Result<Session> {
    if chrono::Utc::now().timestamp() > session.expires_at + LEEWAY_SECS as i64 {
        return Err(Error::Unauthorized(INVALID_ACCESS));
    }
    let user = current_account(
        db,
        &session.user.id,
        session.user.token_epoch,
        session.user.role,
        &session.jti,
    )
    .await?;
    Ok(Session {
        user,
        ..session.clone()
    })
}

/// The database half of an access token's check: the account as it is now, if the token with
/// this `jti`, epoch and role still speaks for it.
async fn current_account(
    db: &Db,
    user_id: &str,
    epoch: i64,
    role: Role,
    jti: &str,
) -> Result<User> {
    let revoked: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM revoked_access_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?;
    let user = match users::get(&db.pool, user_id).await {
        Ok(user) => user,
        Err(Error::NotFound(_)) => return Err(Error::Unauthorized(INVALID_ACCESS)),
        Err(other) => return Err(other),
    };
    if revoked > 0 || epoch != user.token_epoch {
        return Err(Error::Unauthorized(
            "this session was signed out; sign in again",
        ));
    }
    if !user.is_active {
        return Err(Error::Unauthorized("this account is disabled"));
    }
    if user.role != role {
        return Err(Error::Unauthorized(
            "the account's role changed; sign in again",
        ));
    }
    Ok(user)
}

/// Issues an access token and a refresh token for `audience` in `family` (a new family for a
/// fresh sign-in).
pub async fn issue_pair(
    conn: &mut AnyConnection,
    keys: &JwtKeys,
    user: &User,
    family: Option<&str>,
    audience: Audience,
) -> Result<TokenPair> {
    let now = chrono::Utc::now();
    let claims = AccessClaims {
        sub: user.id.clone(),
        role: user.role.as_str().to_owned(),
        typ: ACCESS_TYPE.to_owned(),
        aud: audience.claim().to_owned(),
        ep: user.token_epoch,
        jti: db::new_id(),
        iat: now.timestamp(),
        exp: (now + ACCESS_TTL).timestamp(),
    };
    let access_token = encode_access(keys, &claims)?;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let refresh_token = format!("{}{}", audience.refresh_prefix(), hex::encode(raw));
    let family = family.map(str::to_owned).unwrap_or_else(db::new_id);
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, token_epoch, expires_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(db::new_id())
    .bind(&user.id)
    .bind(family)
    .bind(hash_refresh(&refresh_token))
    .bind(user.token_epoch)
    .bind(db::timestamp(now + REFRESH_TTL))
    .bind(db::timestamp(now))
    .execute(conn)
    .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "bearer",
        expires_in: ACCESS_TTL.num_seconds(),
    })
}

fn hash_refresh(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const INVALID_REFRESH: &str = "the refresh token is invalid or has expired; sign in again";

/// Spends a refresh token of `audience` and issues a new pair in its family. A replay of a spent
/// token revokes the family (the legitimate holder signs in again; the thief's copy is dead).
pub async fn refresh(
    db: &Db,
    keys: &JwtKeys,
    token: &str,
    audience: Audience,
) -> Result<TokenPair> {
    // Another front's token is refused before it is looked up (and so never spent here).
    if !token.starts_with(audience.refresh_prefix()) || token.len() > 128 {
        return Err(Error::Unauthorized(INVALID_REFRESH));
    }
    let token_hash = hash_refresh(token);
    let now = db::now();
    let mut tx = db.pool.begin().await?;
    // Spend first, in one conditional write: of two concurrent uses exactly one matches, and on
    // SQLite the transaction holds the write lock from its first statement (no upgrade deadlock).
    let spent = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $1 RETURNING user_id, family_id, token_epoch",
    )
    .bind(&now)
    .bind(&token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(spent) = spent else {
        let row = sqlx::query(
            "SELECT family_id, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(&token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let used_at: Option<String> = row.try_get("used_at")?;
            let revoked_at: Option<String> = row.try_get("revoked_at")?;
            if used_at.is_some() && revoked_at.is_none() {
                let family: String = row.try_get("family_id")?;
                revoke_family(&mut tx, &family, &now).await?;
                tx.commit().await?;
                tracing::warn!(family, "refresh token replayed; its family is revoked");
                return Err(Error::Unauthorized(
                    "this refresh token was already used, so it may have leaked: every session \
                     from that sign-in is now signed out",
                ));
            }
        }
        return Err(Error::Unauthorized(INVALID_REFRESH));
    };
    let user_id: String = spent.try_get("user_id")?;
    let family: String = spent.try_get("family_id")?;
    let epoch: i64 = spent.try_get("token_epoch")?;
    let user = users::get(&mut *tx, &user_id).await?;
    if !user.is_active || user.token_epoch != epoch {
        return Err(Error::Unauthorized(INVALID_REFRESH));
    }
    let pair = issue_pair(&mut tx, keys, &user, Some(&family), audience).await?;
    tx.commit().await?;
    Ok(pair)
}

async fn revoke_family(conn: &mut AnyConnection, family: &str, now: &str) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .execute(conn)
    .await?;
    Ok(())
}

/// Logout: revokes this access token and, when given, the refresh token's family (only if it
/// belongs to the same account, so one user cannot sign another out).
pub async fn logout(db: &Db, session: &Session, refresh_token: Option<&str>) -> Result<()> {
    let now = db::now();
    let mut tx = db.pool.begin().await?;
    let expires =
        chrono::DateTime::from_timestamp(session.expires_at, 0).unwrap_or_else(chrono::Utc::now);
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&session.jti)
    .bind(db::timestamp(expires))
    .execute(&mut *tx)
    .await?;
    if let Some(token) = refresh_token {
        let family = sqlx::query(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
        )
        .bind(hash_refresh(token))
        .bind(&session.user.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = family {
            let family: String = row.try_get("family_id")?;
            revoke_family(&mut tx, &family, &now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes revocation rows and refresh tokens that have expired (they are refused anyway).
pub async fn prune_expired(db: &Db) -> Result<u64> {
    let now = db::now();
    let a = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
        .bind(&now)
        .execute(&db.pool)
        .await?;
    let b = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
        .bind(&now)
        .execute(&db.pool)
        .await?;
    Ok(a.rows_affected() + b.rows_affected())
}
