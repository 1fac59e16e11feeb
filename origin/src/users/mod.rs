//! Accounts: the `users` table, the domain functions every front (REST, CLI, later the UI) calls,
//! and the admin-only `/api/users` routes.

mod api;

pub(crate) use api::openapi;

pub use api::{create_recorded, router, update_recorded};

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::auth::Role;
use crate::auth::password::{NewPassword, Passwords, Username};
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};

/// Settings key written in the same transaction as the first account; its primary key makes
/// `POST /auth/setup` succeed exactly once even when two requests race.
const SETUP_MARKER: &str = "setup.completed";

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub is_active: bool,
    pub token_epoch: i64,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

const USER_COLUMNS: &str = "id, username, role, is_active, token_epoch, created_at, last_login_at";

impl User {
    fn from_row(row: &AnyRow) -> Result<User> {
        let role: String = row.try_get("role")?;
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            // A row with an unknown role is corrupt: refuse it instead of guessing a role.
            role: role
                .parse()
                .map_err(|err| Error::Internal(anyhow::anyhow!("user row: {err}")))?,
            is_active: row.try_get::<i64, _>("is_active")? != 0,
            token_epoch: row.try_get("token_epoch")?,
            created_at: row.try_get("created_at")?,
            last_login_at: row.try_get("last_login_at")?,
        })
    }
}

pub async fn setup_required(db: &Db) -> Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM settings WHERE key = $1")
        .bind(SETUP_MARKER)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get::<i64, _>("n")? == 0)
}

/// First-run set-up: creates the first admin, only while set-up has not been done.
pub async fn create_first_admin(
    db: &Db,
    passwords: &Passwords,
    username: &Username,
    password: &NewPassword,
) -> Result<User> {
    let hash = passwords.hash(password).await?;
    let mut tx = db.pool.begin().await?;
    sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $2)")
        .bind(SETUP_MARKER)
        .bind(db::now())
        .execute(&mut *tx)
        .await
        .on_conflict(|| {
            "set-up is already done: sign in, or ask an admin for an account".to_owned()
        })?;
    let user = insert(&mut tx, username, &hash, Role::Admin).await?;
    tx.commit().await?;
    Ok(user)
}

/// Creates an account (admin API and CLI). Marks set-up as done, so a headless host set up from
/// the command line never offers the web set-up form to whoever reaches it first.
pub async fn create(
    db: &Db,
    passwords: &Passwords,
    username: &Username,
    password: &NewPassword,
    role: Role,
) -> Result<User> {
    let hash = passwords.hash(password).await?;
    let mut tx = db.pool.begin().await?;
    let user = insert(&mut tx, username, &hash, role).await?;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $2) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(SETUP_MARKER)
    .bind(db::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(user)
}

async fn insert(
    conn: &mut AnyConnection,
    username: &Username,
    password_hash: &str,
    role: Role,
) -> Result<User> {
    let now = db::now();
    let row = sqlx::query(&format!(
        "INSERT INTO users (id, username, username_key, password_hash, role, is_active, \
         token_epoch, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, 0, $6, $6) \
         RETURNING {USER_COLUMNS}"
    ))
    .bind(db::new_id())
    .bind(username.as_str())
    .bind(username.key())
    .bind(password_hash)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(conn)
    .await
    .on_conflict(|| format!("the username {:?} is already taken", username.as_str()))?;
    User::from_row(&row)
}

/// Works on the pool or inside a transaction.
pub async fn get<'e>(executor: impl Executor<'e, Database = Any>, id: &str) -> Result<User> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| Error::NotFound("no user with that id".to_owned()))?;
    User::from_row(&row)
}

/// The account and its password hash, looked up case-insensitively.
pub async fn find_for_login(db: &Db, username: &str) -> Result<Option<(User, String)>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username_key = $1"
    ))
    .bind(username.to_ascii_lowercase())
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| Ok((User::from_row(&row)?, row.try_get("password_hash")?)))
        .transpose()
}

pub async fn record_login(db: &Db, user_id: &str) -> Result<()> {
    sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(db::now())
        .bind(user_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<(Vec<User>, i64)> {
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    Ok((
        rows.iter().map(User::from_row).collect::<Result<_>>()?,
        total,
    ))
}

/// Sets a new password and revokes every token issued before (all in one transaction).
pub async fn set_password(
    db: &Db,
    passwords: &Passwords,
    user_id: &str,
    password: &NewPassword,
) -> Result<User> {
    let hash = passwords.hash(password).await?;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(db::now())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let user = revoke_all_tokens(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(user)
}

/// "Sign out everywhere": bumps the token epoch (every access token issued before stops working)
/// and revokes every refresh token. Persisted, so it survives restarts.
pub async fn revoke_all_tokens(conn: &mut AnyConnection, user_id: &str) -> Result<User> {
    let now = db::now();
    let row = sqlx::query(&format!(
        "UPDATE users SET token_epoch = token_epoch + 1, updated_at = $1 WHERE id = $2 \
         RETURNING {USER_COLUMNS}"
    ))
    .bind(&now)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::NotFound("no user with that id".to_owned()))?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(&now)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    User::from_row(&row)
}

/// Changes an account's role and/or active flag. Refuses to leave the system without an active
/// admin. Disabling or changing the role also revokes the account's tokens, so the change takes
/// effect at once rather than when the access token expires.
pub async fn update(
    db: &Db,
    user_id: &str,
    role: Option<Role>,
    is_active: Option<bool>,
) -> Result<User> {
    let mut tx = db.pool.begin().await?;
    // Lock the active admins' rows first (a no-op write; SQLite locks the whole database on it
    // anyway). Two admins demoting each other at once then run one after the other, and the
    // second one's count below sees the first one's commit.
    sqlx::query("UPDATE users SET updated_at = updated_at WHERE role = 'admin' AND is_active = 1")
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound("no user with that id".to_owned()))?;
    let current = User::from_row(&row)?;
    let new_role = role.unwrap_or(current.role);
    let new_active = is_active.unwrap_or(current.is_active);
    if new_role == current.role && new_active == current.is_active {
        return Ok(current);
    }
    sqlx::query("UPDATE users SET role = $1, is_active = $2, updated_at = $3 WHERE id = $4")
        .bind(new_role.as_str())
        .bind(i64::from(new_active))
        .bind(db::now())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    // Checked after the write, inside the transaction: nothing is applied if it fails.
    let admins: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND is_active = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    if admins == 0 {
        return Err(Error::Conflict(
            "this change would leave no active admin; promote another account first".to_owned(),
        ));
    }
    let user = revoke_all_tokens(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(user)
}
