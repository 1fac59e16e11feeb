//! Module and network access requests: one queue with two kinds (`Kind`), the same actions
//! (approve, reject with a reason, revoke, delete) and the same audit fields. What a server's
//! tools may import and reach is derived from approved rows when a tool runs, so approving,
//! rejecting or revoking takes effect on the next call.

mod api;

pub(crate) use api::{RequestBody, openapi};

pub use api::router;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::approvals::Reviewer;
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Module,
    Network,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Network => "network",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessRequest {
    pub id: String,
    pub kind: String,
    pub server_id: String,
    pub tool_id: Option<String>,
    pub target: String,
    pub port: Option<i64>,
    /// Network requests: `public` or `lan` (an exact LAN host and port; see [`network_target`]).
    pub scope: String,
    pub justification: String,
    pub requested_by: String,
    pub status: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub rejection_reason: Option<String>,
    pub created_at: String,
}

const COLUMNS: &str = "id, kind, server_id, tool_id, target, port, scope, justification, requested_by, status, reviewed_by, \
     reviewed_at, rejection_reason, created_at";

impl AccessRequest {
    fn from_row(row: &AnyRow) -> Result<AccessRequest> {
        Ok(AccessRequest {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            server_id: row.try_get("server_id")?,
            tool_id: row.try_get("tool_id")?,
            target: row.try_get("target")?,
            port: row.try_get("port")?,
            scope: row.try_get("scope")?,
            justification: row.try_get("justification")?,
            requested_by: row.try_get("requested_by")?,
            status: row.try_get("status")?,
            reviewed_by: row.try_get("reviewed_by")?,
            reviewed_at: row.try_get("reviewed_at")?,
            rejection_reason: row.try_get("rejection_reason")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// A network request for a LAN host.
    pub fn is_lan(&self) -> bool {
        self.scope == "lan"
    }

    /// The target as people read it: `host`, `host:port`, `[v6]:port`.
    pub fn shown_target(&self) -> String {
        let host = contract::network::bracketed(&self.target);
        match self.port {
            Some(port) if self.kind == "network" => format!("{host}:{port}"),
            _ if self.kind == "network" => host,
            _ => self.target.clone(),
        }
    }
}

/// A module name: dotted identifiers, at most 128 characters, never one that defeats the
/// sandbox (`contract::sandbox::NEVER_IMPORTABLE`).
pub fn check_module(name: &str) -> Result<()> {
    let well_formed = !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !well_formed {
        return Err(Error::Validation(format!("invalid module name {name:?}")));
    }
    let top = name.split('.').next().unwrap_or(name);
    if contract::sandbox::NEVER_IMPORTABLE.contains(&top) {
        return Err(Error::Validation(format!(
            "the module {name:?} can never be allowed: it would let tools get around the sandbox"
        )));
    }
    Ok(())
}

/// A port, when given, is 1 to 65535.
pub fn check_port(port: Option<i64>) -> Result<()> {
    match port {
        Some(port) if !(1..=65535).contains(&port) => Err(Error::Validation(
            "the port must be between 1 and 65535".into(),
        )),
        _ => Ok(()),
    }
}

/// A host as tools will name it: trimmed, lower-cased, no trailing dot; a DNS name or an IP.
pub fn normalise_host(host: &str) -> Result<String> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let is_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if is_ip || is_name {
        Ok(host)
    } else {
        Err(Error::Validation(format!(
            "invalid host {host:?} (give a name like api.example.com, without scheme or path)"
        )))
    }
}

/// A checked network target: what a network request row stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkTarget {
    pub host: String,
    pub port: Option<i64>,
    pub lan: bool,
}

/// The one rule for what a network request may name, for every front (REST, MCP, UI).
///
/// `target` is `host`, `host:port`, `a.b.c.d:port`, an IPv6 literal, or `[v6]:port`; `port`
/// may say the port instead (both must agree). A LAN host (`lan`, or any private IP literal,
/// which can only be one) always has a port: approved, tools reach exactly that host and
/// port. Never allowed as a LAN host: loopback, link-local, metadata and other non-LAN
/// addresses, and names that mean the MCPbox host or a metadata service (`localhost`,
/// `metadata.google.internal`); `contract::network` holds those lists for the broker too.
pub fn network_target(target: &str, port: Option<i64>, lan: Option<bool>) -> Result<NetworkTarget> {
    use contract::network::{is_forbidden_name, is_lan_address, is_public, split_host_port};
    let (host, written) = split_host_port(target).map_err(|why| {
        Error::Validation(format!(
            "invalid network target {why} (give a host like api.example.com, 192.168.1.20:8123 or [fd00::5]:1883)"
        ))
    })?;
    let host = normalise_host(&host)?;
    check_port(port)?;
    let port = match (written.map(i64::from), port) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::Validation(format!(
                "the target says port {a} but the port field says {b}"
            )));
        }
        (written, port) => written.or(port),
    };
    let ip = host.parse::<std::net::IpAddr>().ok();
    if let Some(ip) = ip
        && !is_public(ip)
        && !is_lan_address(ip)
    {
        return Err(Error::Validation(format!(
            "{ip} can never be allowed: loopback, link-local, metadata, multicast and reserved \
             addresses reach the MCPbox host itself, a cloud's metadata service, or nothing"
        )));
    }
    let private_literal = ip.is_some_and(is_lan_address);
    let lan = match lan {
        Some(false) if private_literal => {
            return Err(Error::Validation(format!(
                "{host} is a private address: request it as a LAN host (lan: true) with a port"
            )));
        }
        Some(lan) => lan,
        None => private_literal,
    };
    if lan {
        if port.is_none() {
            return Err(Error::Validation(format!(
                "a LAN host needs a port ({}:PORT): tools reach exactly that host and port",
                contract::network::bracketed(&host)
            )));
        }
        if is_forbidden_name(&host) {
            return Err(Error::Validation(format!(
                "{host} can never be a LAN host: it names the MCPbox host or a metadata service"
            )));
        }
        if let Some(ip) = ip
            && !is_lan_address(ip)
        {
            return Err(Error::Validation(format!(
                "{ip} is a public address: request it as a public host"
            )));
        }
    }
    Ok(NetworkTarget { host, port, lan })
}

pub struct NewRequest<'a> {
    pub kind: Kind,
    pub tool_id: &'a str,
    pub target: &'a str,
    pub port: Option<i64>,
    pub justification: &'a str,
}

/// A tool asks for a module or a host. Refused when it is already allowed, was already
/// rejected for this tool, or is already pending. `audit.actor` is who asked.
pub async fn request(
    state: &AppState,
    audit: &Audit,
    new: NewRequest<'_>,
) -> Result<AccessRequest> {
    request_scoped(state, audit, new, None).await
}

/// [`request`], saying whether a network request is for a LAN host (`lan`; `None`: a private
/// IP address is one, anything else is public). Module requests take `None` only.
pub async fn request_scoped(
    state: &AppState,
    audit: &Audit,
    new: NewRequest<'_>,
    lan: Option<bool>,
) -> Result<AccessRequest> {
    let db = &state.db;
    let tool = crate::tools::get(db, new.tool_id).await?;
    if new.justification.trim().is_empty() || new.justification.chars().count() > 2000 {
        return Err(Error::Validation(
            "give a justification of 1 to 2000 characters".into(),
        ));
    }
    let mut resolution = None;
    let (target, port, scope) = match new.kind {
        Kind::Module if crate::packages::is_distribution(&state.packages, new.target) => {
            if lan.is_some() {
                return Err(Error::Validation(
                    "a module request has no port and no LAN flag".into(),
                ));
            }
            let (target, resolved) = package_target(state, &tool.server_id, &new).await?;
            resolution = Some(resolved);
            (target, None, "public")
        }
        Kind::Module => {
            check_module(new.target)?;
            if new.port.is_some() || lan.is_some() {
                return Err(Error::Validation(
                    "a module request has no port and no LAN flag".into(),
                ));
            }
            let allowed = allowed_modules(db, &tool.server_id).await?;
            if allowed.iter().any(|m| m == new.target) {
                return Err(Error::Conflict(format!(
                    "the module {} is already allowed",
                    new.target
                )));
            }
            (new.target.to_owned(), None, "public")
        }
        Kind::Network => {
            let target = network_target(new.target, new.port, lan)?;
            let wanted = host_entry(&target);
            let covered = allowed_hosts(db, &tool.server_id)
                .await?
                .iter()
                .filter_map(|entry| contract::network::HostEntry::parse(entry))
                .any(|entry| covers(&entry, &wanted));
            if covered {
                return Err(Error::Conflict(format!(
                    "{} is already allowed for this server",
                    wanted.to_entry()
                )));
            }
            let scope = if target.lan { "lan" } else { "public" };
            (target.host, target.port, scope)
        }
    };
    let rejected: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM access_requests WHERE kind = $1 AND tool_id = $2 AND target = $3 \
         AND COALESCE(port, 0) = $4 AND scope = $5 AND status = 'rejected'",
    )
    .bind(new.kind.as_str())
    .bind(&tool.id)
    .bind(&target)
    .bind(port.unwrap_or(0))
    .bind(scope)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    if rejected > 0 {
        return Err(Error::Conflict(format!(
            "{target} was already rejected for this tool; read the reason in the tool's status"
        )));
    }
    // Under `module_approval_mode = auto_approve`, module requests are approved on arrival.
    let auto =
        new.kind == Kind::Module && crate::settings::policy(db).await?.auto_approve_modules();
    let policy = Reviewer::policy(audit.request_id.clone());
    let row = NewRow {
        kind: new.kind,
        server_id: &tool.server_id,
        tool_id: Some(&tool.id),
        target: &target,
        port,
        scope,
        justification: new.justification,
        status: if auto { "approved" } else { "pending" },
        reviewer: auto.then_some(&policy),
    };
    let request = insert(state, audit, row).await?;
    if let Some(resolved) = resolution {
        crate::packages::store_resolution(&state.db, &request.id, &target, &resolved).await?;
        if auto {
            crate::packages::enqueue(state, &resolved).await?;
        }
    }
    Ok(request)
}

/// A module request naming a PyPI distribution: the pip requirement it stands for and what it
/// resolves to now (the reviewer sees and approves exactly that; see `packages`).
async fn package_target(
    state: &AppState,
    server_id: &str,
    new: &NewRequest<'_>,
) -> Result<(String, Vec<crate::packages::Resolved>)> {
    if new.port.is_some() {
        return Err(Error::Validation("a module request has no port".into()));
    }
    let spec = crate::packages::parse_spec(new.target)?;
    let target = spec.requirement();
    let approved: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM access_requests WHERE kind = 'module' AND server_id = $1 AND target = $2 AND status = 'approved'",
    )
    .bind(server_id)
    .bind(&target)
    .fetch_one(&state.db.pool)
    .await?
    .try_get("n")?;
    if approved > 0 {
        return Err(Error::Conflict(format!(
            "the package {target} is already approved for this server"
        )));
    }
    let config = state.packages.config()?;
    let resolved = crate::packages::resolve::resolve(&config, &spec).await?;
    Ok((target, resolved))
}

/// Before approving a package request: resolve again and refuse when the result differs from
/// what the reviewer was shown (a new release, a changed dependency, another wheel), storing
/// the new resolution for the next review. `Ok(None)` for plain module requests.
async fn check_package_approval(
    state: &AppState,
    id: &str,
) -> Result<Option<Vec<crate::packages::Resolved>>> {
    let Some(shown) = crate::packages::resolution_of(&state.db, id).await? else {
        return Ok(None);
    };
    let request = get(&state.db, Kind::Module, id).await?;
    if request.status != "pending" {
        return Ok(None); // `transition` gives the error
    }
    let spec = crate::packages::parse_spec(&request.target)?;
    let config = state.packages.config()?;
    let now = crate::packages::resolve::resolve(&config, &spec).await?;
    if crate::packages::pins(&now) != crate::packages::pins(&shown) {
        crate::packages::store_resolution(&state.db, id, &request.target, &now).await?;
        return Err(Error::Conflict(format!(
            "what {} resolves to changed since it was shown (versions or hashes); review the new              resolution and approve again",
            request.target
        )));
    }
    Ok(Some(shown))
}

/// A new row of the queue.
struct NewRow<'a> {
    kind: Kind,
    server_id: &'a str,
    tool_id: Option<&'a str>,
    target: &'a str,
    port: Option<i64>,
    scope: &'a str,
    justification: &'a str,
    status: &'a str,
    reviewer: Option<&'a Reviewer>,
}

/// Inserts a row and its activity entry in one transaction.
async fn insert(state: &AppState, audit: &Audit, new: NewRow<'_>) -> Result<AccessRequest> {
    let now = db::now();
    let mut tx = state.db.pool.begin().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO access_requests (id, kind, server_id, tool_id, target, port, justification, requested_by, status, \
         reviewed_by, reviewed_at, created_at, updated_at, scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) \
         RETURNING {COLUMNS}"
    ))
    .bind(db::new_id())
    .bind(new.kind.as_str())
    .bind(new.server_id)
    .bind(new.tool_id)
    .bind(new.target)
    .bind(new.port)
    .bind(new.justification)
    .bind(&audit.actor)
    .bind(new.status)
    .bind(new.reviewer.map(|r| r.name().to_owned()))
    .bind(new.reviewer.map(|_| now.clone()))
    .bind(&now)
    .bind(new.scope)
    .fetch_one(&mut *tx)
    .await
    .on_conflict(|| format!("a request for {} is already pending", new.target))?;
    let request = AccessRequest::from_row(&row)?;
    let action = format!("{}.request", new.kind.as_str());
    let event = NewEvent::info(&action, format!("{} {} requested ({})", new.kind.as_str(), request.target, request.status))
        .server(new.server_id)
        .details(serde_json::json!({"request_id": request.id, "target": request.target, "port": request.port, "scope": request.scope, "status": request.status}));
    let event = match new.tool_id {
        Some(tool) => event.tool(tool),
        None => event,
    };
    let recorded = activity::record(&mut *tx, audit, event).await?;
    tx.commit().await?;
    state.activity.publish(recorded);
    Ok(request)
}

/// An admin allows a host for a whole server directly (an approved row without a tool).
pub async fn allow_host(
    state: &AppState,
    server_id: &str,
    host: &str,
    port: Option<i64>,
    lan: Option<bool>,
    reviewer: &Reviewer,
) -> Result<AccessRequest> {
    crate::servers::get(&state.db, server_id).await?;
    let target = network_target(host, port, lan)?;
    let row = NewRow {
        kind: Kind::Network,
        server_id,
        tool_id: None,
        target: &target.host,
        port: target.port,
        scope: if target.lan { "lan" } else { "public" },
        justification: "added by an admin",
        status: "approved",
        reviewer: Some(reviewer),
    };
    insert(state, reviewer.audit(), row).await
}

pub async fn get(db: &Db, kind: Kind, id: &str) -> Result<AccessRequest> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM access_requests WHERE id = $1 AND kind = $2"
    ))
    .bind(id)
    .bind(kind.as_str())
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no {} request with that id", kind.as_str())))?;
    AccessRequest::from_row(&row)
}

/// `status: from → to` with its activity entry, in one transaction.
async fn transition(
    state: &AppState,
    kind: Kind,
    id: &str,
    (from, to): (&str, &str),
    reviewer: &Reviewer,
    reason: Option<&str>,
) -> Result<AccessRequest> {
    let now = db::now();
    let mut tx = state.db.pool.begin().await?;
    let row = sqlx::query(&format!(
        "UPDATE access_requests SET status = $1, reviewed_by = $2, reviewed_at = $3, rejection_reason = $4, updated_at = $3 \
         WHERE id = $5 AND kind = $6 AND status = $7 RETURNING {COLUMNS}"
    ))
    .bind(to)
    .bind(reviewer.name())
    .bind(&now)
    .bind(reason)
    .bind(id)
    .bind(kind.as_str())
    .bind(from)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        drop(tx);
        let current = get(&state.db, kind, id).await?;
        return Err(Error::Conflict(format!(
            "the request is {}, not {from}",
            current.status
        )));
    };
    let request = AccessRequest::from_row(&row)?;
    let action = format!(
        "{}.{}",
        kind.as_str(),
        if to == "pending" {
            "revoke"
        } else if to == "approved" {
            "approve"
        } else {
            "reject"
        }
    );
    let event = NewEvent::info(&action, format!("{} {} is now {}", kind.as_str(), request.target, crate::activity::status_words(&request.status)))
        .server(&request.server_id)
        .details(serde_json::json!({"request_id": request.id, "target": request.target, "port": request.port, "reason": reason}));
    let event = match request.tool_id.as_deref() {
        Some(tool) => event.tool(tool),
        None => event,
    };
    let recorded = activity::record(&mut *tx, reviewer.audit(), event).await?;
    tx.commit().await?;
    state.activity.publish(recorded);
    Ok(request)
}

pub async fn approve(
    state: &AppState,
    kind: Kind,
    id: &str,
    reviewer: &Reviewer,
) -> Result<AccessRequest> {
    let package = match kind {
        Kind::Module => check_package_approval(state, id).await?,
        Kind::Network => None,
    };
    let request = transition(state, kind, id, ("pending", "approved"), reviewer, None).await?;
    if let Some(resolved) = package {
        crate::packages::enqueue(state, &resolved).await?;
    }
    Ok(request)
}

pub async fn reject(
    state: &AppState,
    kind: Kind,
    id: &str,
    reason: &str,
    reviewer: &Reviewer,
) -> Result<AccessRequest> {
    if reason.trim().is_empty() {
        return Err(Error::Validation(
            "rejecting needs a reason the author can act on".into(),
        ));
    }
    transition(
        state,
        kind,
        id,
        ("pending", "rejected"),
        reviewer,
        Some(reason.trim()),
    )
    .await
}

/// Takes an approval back to pending: the access ends at the next call.
pub async fn revoke(
    state: &AppState,
    kind: Kind,
    id: &str,
    reviewer: &Reviewer,
) -> Result<AccessRequest> {
    transition(state, kind, id, ("approved", "pending"), reviewer, None).await
}

/// Only pending or rejected requests can be deleted (approved ones are revoked first).
pub async fn delete(state: &AppState, kind: Kind, id: &str, reviewer: &Reviewer) -> Result<()> {
    let current = get(&state.db, kind, id).await?;
    let deleted = sqlx::query("DELETE FROM access_requests WHERE id = $1 AND kind = $2 AND status IN ('pending', 'rejected')")
        .bind(id)
        .bind(kind.as_str())
        .execute(&state.db.pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "an {} request cannot be deleted; revoke it first",
            current.status
        )));
    }
    let action = format!("{}.delete", kind.as_str());
    let event = NewEvent::info(
        &action,
        format!("{} request for {} deleted", kind.as_str(), current.target),
    )
    .server(&current.server_id);
    activity::record_now(state, reviewer.audit(), event).await
}

pub async fn queue(
    db: &Db,
    kind: Kind,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AccessRequest>, i64)> {
    let filter = if status.is_some() {
        "AND status = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM access_requests WHERE kind = $1 {filter} ORDER BY created_at, id LIMIT $2 OFFSET $3"
    );
    let mut rows = sqlx::query(&sql)
        .bind(kind.as_str())
        .bind(limit)
        .bind(offset);
    if let Some(status) = status {
        rows = rows.bind(status);
    }
    let rows = rows.fetch_all(&db.pool).await?;
    let count_sql = format!(
        "SELECT COUNT(*) AS n FROM access_requests WHERE kind = $1 {}",
        filter.replace("$4", "$2")
    );
    let mut count = sqlx::query(&count_sql).bind(kind.as_str());
    if let Some(status) = status {
        count = count.bind(status);
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;
    Ok((
        rows.iter()
            .map(AccessRequest::from_row)
            .collect::<Result<_>>()?,
        total,
    ))
}

/// A server's requests of both kinds, oldest first; only one tool's with `tool_id`, only
/// pending ones with `pending_only`.
pub async fn requests_of(
    db: &Db,
    server_id: &str,
    tool_id: Option<&str>,
    pending_only: bool,
) -> Result<Vec<AccessRequest>> {
    let mut sql = format!("SELECT {COLUMNS} FROM access_requests WHERE server_id = $1");
    if pending_only {
        sql.push_str(" AND status = 'pending'");
    }
    if tool_id.is_some() {
        sql.push_str(" AND tool_id = $2");
    }
    sql.push_str(" ORDER BY created_at, id");
    let mut query = sqlx::query(&sql).bind(server_id);
    if let Some(tool_id) = tool_id {
        query = query.bind(tool_id);
    }
    query
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(AccessRequest::from_row)
        .collect()
}

/// The modules a server's tools may import now: the global allowlist plus approved module
/// requests.
pub async fn allowed_modules(db: &Db, server_id: &str) -> Result<Vec<String>> {
    let (mut modules, _) = crate::settings::global_modules(db).await?;
    modules.extend(crate::packages::approved_import_names(db, server_id).await?);
    // Package requests grant their import names (above), not their targets.
    let rows = sqlx::query("SELECT DISTINCT target FROM access_requests WHERE server_id = $1 AND kind = 'module' AND status = 'approved' \
         AND id NOT IN (SELECT request_id FROM package_resolutions)")
        .bind(server_id)
        .fetch_all(&db.pool)
        .await?;
    for row in rows {
        let module: String = row.try_get("target")?;
        if !modules.contains(&module) {
            modules.push(module);
        }
    }
    modules.sort();
    Ok(modules)
}

/// What a server's tools may reach now, as `ExecuteRequest::allowed_hosts` entries
/// (`contract::network`), sorted: public hosts (`host` = any port, `host:port`), and approved
/// LAN hosts as `lan:host:port`. Under `network_access_policy = allow_all_public` the public
/// part is `*` (any host, still public addresses only); approved LAN hosts are added to it,
/// since the policy covers public hosts only.
pub async fn allowed_hosts(db: &Db, server_id: &str) -> Result<Vec<String>> {
    let all_public = crate::settings::policy(db).await?.all_public_hosts();
    let rows = sqlx::query("SELECT DISTINCT target, port, scope FROM access_requests WHERE server_id = $1 AND kind = 'network' AND status = 'approved'")
        .bind(server_id)
        .fetch_all(&db.pool)
        .await?;
    let mut hosts = Vec::new();
    if all_public {
        hosts.push("*".to_owned());
    }
    for row in rows {
        let target = NetworkTarget {
            host: row.try_get("target")?,
            port: row.try_get("port")?,
            lan: row.try_get::<String, _>("scope")? == "lan",
        };
        if all_public && !target.lan {
            continue;
        }
        hosts.push(host_entry(&target).to_entry());
    }
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

/// A target as the sandbox reads it. A LAN row always has a port (`network_target`); one that
/// somehow has none is written as port 0, which no connection uses.
fn host_entry(target: &NetworkTarget) -> contract::network::HostEntry {
    use contract::network::HostEntry;
    let port = target.port.and_then(|p| u16::try_from(p).ok());
    if target.lan {
        HostEntry::Lan {
            host: target.host.clone(),
            port: port.unwrap_or(0),
        }
    } else {
        HostEntry::Public {
            host: target.host.clone(),
            port,
        }
    }
}

/// `allowed` already lets tools reach what `wanted` asks for.
fn covers(allowed: &contract::network::HostEntry, wanted: &contract::network::HostEntry) -> bool {
    use contract::network::HostEntry;
    match (allowed, wanted) {
        (HostEntry::Lan { .. }, HostEntry::Lan { .. }) => allowed == wanted,
        (HostEntry::Public { host, port: None }, HostEntry::Public { host: h, .. }) => host == h,
        (HostEntry::Public { .. }, HostEntry::Public { .. }) => allowed == wanted,
        _ => false,
    }
}
