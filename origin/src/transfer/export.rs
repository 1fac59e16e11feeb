//! Building the export: every server with its Python tools (each at its newest version), their
//! module and network requests, the server's own requests and its secrets' names, signed.
//!
//! Passthrough tools are left out, as the reference leaves out its external MCP tools: their
//! binding names a source of this installation, which the other side does not have. Secret
//! values never leave; only the names and descriptions, so the other side knows what to set.

use std::collections::HashMap;

use sqlx::Row;

use super::format::{
    self, ExportFile, ModuleEntry, NetworkEntry, SecretEntry, ServerEntry, SigningKey, ToolEntry,
};
use crate::app::AppState;
use crate::error::{Error, Result};

/// What `export` made, with what it left out.
pub struct Export {
    pub file: ExportFile,
    /// Passthrough tools not exported.
    pub skipped_passthrough: i64,
}

impl Export {
    pub fn tools(&self) -> usize {
        self.file.servers.iter().map(|s| s.tools.len()).sum()
    }
}

/// Reads everything in one transaction (one snapshot on SQLite; on PostgreSQL each statement
/// sees committed rows, and a request whose tool is not in the export is left out with it).
pub async fn export(state: &AppState) -> Result<Export> {
    let mut tx = state.db.pool.begin().await?;
    let rows =
        sqlx::query("SELECT id, name, description, default_timeout_ms FROM servers ORDER BY name")
            .fetch_all(&mut *tx)
            .await?;
    let mut servers = Vec::with_capacity(rows.len());
    let mut server_index = HashMap::new();
    for row in &rows {
        server_index.insert(row.try_get::<String, _>("id")?, servers.len());
        servers.push(ServerEntry {
            name: row.try_get("name")?,
            description: Some(row.try_get("description")?),
            tools: Vec::new(),
            allowed_hosts: Vec::new(),
            default_timeout_ms: row.try_get("default_timeout_ms")?,
            admin_network_requests: Vec::new(),
            admin_module_requests: Vec::new(),
            secrets: Vec::new(),
        });
    }

    let rows = sqlx::query(
        "SELECT t.id, t.server_id, t.name, t.enabled, t.timeout_ms, v.description, v.python_code, \
         v.input_schema FROM tools t JOIN tool_versions v ON v.tool_id = t.id AND v.version = t.current_version \
         WHERE t.kind = 'python' ORDER BY t.name",
    )
    .fetch_all(&mut *tx)
    .await?;
    // tool id -> (server index, tool index)
    let mut tool_index = HashMap::new();
    for row in &rows {
        let Some(&s) = server_index.get(&row.try_get::<String, _>("server_id")?) else {
            continue;
        };
        let schema: String = row.try_get("input_schema")?;
        let tool = ToolEntry {
            name: row.try_get("name")?,
            description: Some(row.try_get("description")?),
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            timeout_ms: row.try_get("timeout_ms")?,
            python_code: Some(row.try_get("python_code")?),
            input_schema: Some(
                serde_json::from_str(&schema).map_err(|e| Error::Internal(e.into()))?,
            ),
            module_requests: Vec::new(),
            network_access_requests: Vec::new(),
        };
        tool_index.insert(row.try_get::<String, _>("id")?, (s, servers[s].tools.len()));
        servers[s].tools.push(tool);
    }
    let skipped_passthrough: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM tools WHERE kind = 'passthrough'")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;

    let rows = sqlx::query(
        "SELECT kind, server_id, tool_id, target, port, justification, status, requested_by, \
         reviewed_by, rejection_reason, scope FROM access_requests ORDER BY created_at, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let Some(&s) = server_index.get(&row.try_get::<String, _>("server_id")?) else {
            continue;
        };
        let kind: String = row.try_get("kind")?;
        let target: String = row.try_get("target")?;
        let port: Option<i64> = row.try_get("port")?;
        let status: String = row.try_get("status")?;
        let justification: String = row.try_get("justification")?;
        let requested_by: Option<String> = row.try_get("requested_by")?;
        let reviewed_by: Option<String> = row.try_get("reviewed_by")?;
        let rejection_reason: Option<String> = row.try_get("rejection_reason")?;
        let tool: Option<String> = row.try_get("tool_id")?;
        let scope: String = row.try_get("scope")?;
        let server = &mut servers[s];
        if kind == "network" && status == "approved" {
            server.allowed_hosts.push(shown_host(&target, port));
        }
        let place = match &tool {
            Some(id) => match tool_index.get(id) {
                Some(&(_, t)) => Some(t),
                // A passthrough tool's request: left out with its tool.
                None => continue,
            },
            None => None,
        };
        if kind == "module" {
            let entry = ModuleEntry {
                module_name: target,
                justification,
                status,
                requested_by,
                reviewed_by,
                rejection_reason,
            };
            match place {
                Some(t) => server.tools[t].module_requests.push(entry),
                None => server.admin_module_requests.push(entry),
            }
        } else {
            let entry = NetworkEntry {
                host: target,
                port,
                justification,
                status,
                requested_by,
                reviewed_by,
                rejection_reason,
                scope: (scope == "lan").then(|| scope.clone()),
            };
            match place {
                Some(t) => server.tools[t].network_access_requests.push(entry),
                None => server.admin_network_requests.push(entry),
            }
        }
    }

    let rows = sqlx::query("SELECT server_id, key, description FROM server_secrets ORDER BY key")
        .fetch_all(&mut *tx)
        .await?;
    for row in &rows {
        if let Some(&s) = server_index.get(&row.try_get::<String, _>("server_id")?) {
            servers[s].secrets.push(SecretEntry {
                key: row.try_get("key")?,
                description: row.try_get("description")?,
            });
        }
    }
    tx.commit().await?;
    for server in &mut servers {
        server.allowed_hosts.sort();
        server.allowed_hosts.dedup();
    }

    let mut file = ExportFile {
        version: format::VERSION.to_owned(),
        exported_at: Some(crate::db::now()),
        servers,
        admin_module_requests: Vec::new(),
        signature: None,
    };
    file.signature = Some(format::sign(
        &file,
        &SigningKey::Derived(state.keys.derive(super::SIGNING_PURPOSE)),
    ));
    Ok(Export {
        file,
        skipped_passthrough,
    })
}

/// A host as `allowed_hosts` lists it: `host`, `host:port`, IPv6 literals in brackets.
fn shown_host(host: &str, port: Option<i64>) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}
