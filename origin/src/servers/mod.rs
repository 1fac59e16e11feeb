//! Servers: named groups of tools that are started and stopped together. Only tools of a
//! running server are callable.

mod api;

pub(crate) use api::openapi;

pub use api::{ServerBody, router};

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::control::{self, Principal};
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};
use crate::names::Name;

pub const DESCRIPTION_MAX: usize = 2000;
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<i64> = 1_000..=300_000;

#[derive(Debug, Clone)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub description: String,
    pub running: bool,
    /// The last stop was a person's (an admin's): only a person may start it again
    /// (`control::may_start`). False while running.
    pub stopped_by_admin: bool,
    pub default_timeout_ms: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Server {
    /// `running` or `stopped`, as the API and MCP show it.
    pub fn status(&self) -> &'static str {
        if self.running { "running" } else { "stopped" }
    }
}

const COLUMNS: &str = "id, name, description, status, stopped_by_admin, default_timeout_ms, created_by, created_at, updated_at";

impl Server {
    fn from_row(row: &AnyRow) -> Result<Server> {
        let status: String = row.try_get("status")?;
        Ok(Server {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            running: status == "running",
            stopped_by_admin: row.try_get::<i64, _>("stopped_by_admin")? != 0,
            default_timeout_ms: row.try_get("default_timeout_ms")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

pub fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > DESCRIPTION_MAX {
        return Err(Error::Validation(format!(
            "the description is longer than {DESCRIPTION_MAX} characters"
        )));
    }
    Ok(())
}

/// Tool timeouts (a server's default, a tool's own) must lie in `TIMEOUT_MS_RANGE`.
pub fn check_timeout(timeout_ms: i64) -> Result<()> {
    if TIMEOUT_MS_RANGE.contains(&timeout_ms) {
        return Ok(());
    }
    Err(Error::Validation(format!(
        "timeouts must be between {} and {} ms",
        TIMEOUT_MS_RANGE.start(),
        TIMEOUT_MS_RANGE.end()
    )))
}

pub async fn create(db: &Db, name: &Name, description: &str, actor: &str) -> Result<Server> {
    check_description(description)?;
    let now = db::now();
    let row = sqlx::query(&format!(
        "INSERT INTO servers (id, name, description, status, default_timeout_ms, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, 'stopped', 30000, $4, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(db::new_id())
    .bind(name.as_str())
    .bind(description)
    .bind(actor)
    .bind(now)
    .fetch_one(&db.pool)
    .await
    .on_conflict(|| format!("a server named {:?} already exists", name.as_str()))?;
    Server::from_row(&row)
}

/// `create` plus its activity row: what every front (REST, MCP) calls.
pub async fn create_recorded(
    state: &crate::app::AppState,
    name: &Name,
    description: &str,
    audit: &crate::activity::Audit,
) -> Result<Server> {
    let server = create(&state.db, name, description, &audit.actor).await?;
    let event =
        crate::activity::NewEvent::info("server.create", format!("server {} created", server.name))
            .server(&server.id);
    crate::activity::record_now(state, audit, event).await?;
    Ok(server)
}

/// `update` plus its activity row: what every front (REST, UI) calls.
pub async fn update_recorded(
    state: &crate::app::AppState,
    id: &str,
    changes: Changes,
    audit: &crate::activity::Audit,
) -> Result<Server> {
    let server = update(&state.db, id, changes).await?;
    let event =
        crate::activity::NewEvent::info("server.update", format!("server {} changed", server.name))
            .server(&server.id);
    crate::activity::record_now(state, audit, event).await?;
    Ok(server)
}

/// `set_running` plus its activity row: what every front (REST, UI, MCP) calls.
pub async fn set_running_recorded(
    state: &crate::app::AppState,
    id: &str,
    running: bool,
    by: Principal,
    audit: &crate::activity::Audit,
) -> Result<Server> {
    let server = set_running(&state.db, id, running, by).await?;
    let (action, verb) = if running {
        ("server.start", "started")
    } else {
        ("server.stop", "stopped")
    };
    let event = crate::activity::NewEvent::info(action, format!("server {} {verb}", server.name))
        .server(&server.id)
        .details(serde_json::json!({"stopped_by_admin": server.stopped_by_admin}));
    crate::activity::record_now(state, audit, event).await?;
    Ok(server)
}

/// `delete` plus its activity row: what every front (REST, MCP) calls.
pub async fn delete_recorded(
    state: &crate::app::AppState,
    id: &str,
    audit: &crate::activity::Audit,
) -> Result<()> {
    let server = get(&state.db, id).await?;
    delete(&state.db, id).await?;
    let event = crate::activity::NewEvent::warning(
        "server.delete",
        format!("server {} deleted with its tools", server.name),
    );
    crate::activity::record_now(state, audit, event).await
}

pub async fn get(db: &Db, id: &str) -> Result<Server> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM servers WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound("no server with that id".into()))?;
    Server::from_row(&row)
}

pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<(Vec<Server>, i64)> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM servers ORDER BY name LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM servers")
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    Ok((
        rows.iter().map(Server::from_row).collect::<Result<_>>()?,
        total,
    ))
}

#[derive(Debug, Default)]
pub struct Changes {
    pub name: Option<Name>,
    pub description: Option<String>,
    pub default_timeout_ms: Option<i64>,
}

pub async fn update(db: &Db, id: &str, changes: Changes) -> Result<Server> {
    if let Some(description) = &changes.description {
        check_description(description)?;
    }
    if let Some(timeout) = changes.default_timeout_ms {
        check_timeout(timeout)?;
    }
    let current = get(db, id).await?;
    let name = changes
        .name
        .as_ref()
        .map(Name::as_str)
        .unwrap_or(&current.name)
        .to_owned();
    if name != current.name {
        longest_tool_fits(db, id, &name).await?;
    }
    // Conditional on every tool's public name fitting under the new name, tools created since
    // the check above included.
    let row = sqlx::query(&format!(
        "UPDATE servers SET name = $1, description = $2, default_timeout_ms = $3, updated_at = $4 \
         WHERE id = $5 AND NOT EXISTS (SELECT 1 FROM tools t WHERE t.server_id = $5 \
           AND length(CAST($1 AS TEXT)) + 2 + length(t.name) > {max}) RETURNING {COLUMNS}",
        max = crate::names::PUBLIC_NAME_MAX
    ))
    .bind(&name)
    .bind(changes.description.unwrap_or(current.description))
    .bind(
        changes
            .default_timeout_ms
            .unwrap_or(current.default_timeout_ms),
    )
    .bind(db::now())
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .on_conflict(|| format!("a server named {name:?} already exists"))?;
    let Some(row) = row else {
        longest_tool_fits(db, id, &name).await?;
        return Err(Error::NotFound("no server with that id".into()));
    };
    Server::from_row(&row)
}

/// Whether every tool (prompt, resource) of the server keeps a public name within
/// `names::PUBLIC_NAME_MAX` when the server is called `name`; the error names the longest.
async fn longest_tool_fits(db: &Db, id: &str, name: &str) -> Result<()> {
    let longest: Option<String> = sqlx::query_scalar(
        "SELECT name FROM tools WHERE server_id = $1 ORDER BY length(name) DESC, name LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    match longest {
        Some(tool) => crate::names::fits(name, &tool),
        None => Ok(()),
    }
}

/// Deletes a server and (cascade) its tools, versions and their history.
pub async fn delete(db: &Db, id: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM servers WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound("no server with that id".into()));
    }
    Ok(())
}

/// Starts or stops a server. Starting needs at least one tool that can run (enabled, with an
/// approved version); stopping takes every tool of the server out of reach at once.
///
/// Who stops it is recorded: a person's stop is an admin's kill switch, which an LLM's start
/// cannot undo (`control::may_start`); a person may also take over an LLM's stop (stopping a
/// server an LLM stopped marks it stopped by an admin). Each change is one conditional UPDATE,
/// so an admin's stop racing an LLM's start cannot be lost.
pub async fn set_running(db: &Db, id: &str, running: bool, by: Principal) -> Result<Server> {
    let server = get(db, id).await?;
    let person = by == Principal::Person;
    if running {
        if server.running {
            return Err(Error::Conflict("the server is already running".into()));
        }
        control::may_start(by, server.stopped_by_admin)?;
        let runnable: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM tools t WHERE t.server_id = $1 AND t.enabled = 1 AND EXISTS \
             (SELECT 1 FROM tool_versions v WHERE v.tool_id = t.id AND v.status = 'approved')",
        )
        .bind(id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
        if runnable == 0 {
            return Err(Error::Conflict(
                "the server has no enabled tool with an approved version; approve one first".into(),
            ));
        }
        // An LLM's start applies only if no admin stopped the server since it was read.
        let row = sqlx::query(&format!(
            "UPDATE servers SET status = 'running', stopped_by_admin = 0, updated_at = $1 \
             WHERE id = $2 AND status = 'stopped' AND (stopped_by_admin = 0 OR $3 = 1) \
             RETURNING {COLUMNS}"
        ))
        .bind(db::now())
        .bind(id)
        .bind(i64::from(person))
        .fetch_optional(&db.pool)
        .await?;
        return match row {
            Some(row) => Server::from_row(&row),
            // Changed meanwhile: explain from the state it is in now.
            None => {
                let now = get(db, id).await?;
                control::may_start(by, now.stopped_by_admin)?;
                Err(Error::Conflict("the server is already running".into()))
            }
        };
    }
    // Stopping: from running, or (a person) taking over an LLM's stop.
    if !server.running && (!person || server.stopped_by_admin) {
        return Err(Error::Conflict("the server is already stopped".into()));
    }
    let row = sqlx::query(&format!(
        "UPDATE servers SET status = 'stopped', stopped_by_admin = $1, updated_at = $2 \
         WHERE id = $3 AND (status = 'running' OR ($1 = 1 AND stopped_by_admin = 0)) \
         RETURNING {COLUMNS}"
    ))
    .bind(i64::from(person))
    .bind(db::now())
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Server::from_row(&row),
        None => Err(Error::Conflict("the server is already stopped".into())),
    }
}
