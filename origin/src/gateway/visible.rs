//! Which tools MCP clients see, and noticing when that set changes: on `/mcp` every server's
//! under `{server}__{tool}`, on `/servers/{name}/mcp` (`scoped`) one server's under the tool's
//! own name.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::{broadcast::error::RecvError, watch};

use crate::app::AppState;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::names;
use crate::tools;

/// Tools per `tools/list` page.
pub const PAGE_SIZE: i64 = 200;

/// An approved, enabled tool of a running server, as its newest approved version describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibleTool {
    pub public_name: String,
    pub description: String,
    pub input_schema: JsonObject,
    /// What the approved version declares (`tools::meta`): listed as MCP's `outputSchema` and
    /// `annotations`.
    pub output_schema: Option<JsonObject>,
    pub annotations: Option<tools::Annotations>,
}

impl VisibleTool {
    pub fn into_mcp(self) -> Tool {
        let mut tool = Tool::new(
            self.public_name,
            self.description,
            Arc::new(self.input_schema),
        );
        tool.output_schema = self.output_schema.map(Arc::new);
        tool.annotations = self.annotations.as_ref().map(tools::Annotations::to_mcp);
        tool
    }
}

pub struct Page {
    pub tools: Vec<VisibleTool>,
    pub next_cursor: Option<String>,
}

/// The public name, in order, so a page ends where the next begins (keyset paging: a change
/// between pages never repeats or skips a tool that stayed).
const PUBLIC_NAME: &str = "(s.name || '__' || t.name)";

/// One page of visible tools after `cursor` (the last public name of the previous page).
/// `server`: only that server's tools, named by their tool name alone (`/servers/{name}/mcp`);
/// `None`: every server's, as `{server}__{tool}`.
/// Tools of a server named before `names` reserved `mcpbox`/`mcpbox_…` are left out: their
/// public names are read as management tools, so they could be listed but never called.
pub async fn visible_tools(db: &Db, server: Option<&str>, cursor: Option<&str>) -> Result<Page> {
    // A constant of `names`, not input: safe to write into the SQL text.
    let prefix = names::MANAGEMENT_PREFIX;
    let prefix_len = prefix.len();
    // The server's name is bound ($3), never written into the text.
    let (listed, only) = match server {
        Some(_) => ("t.name", "AND s.name = $3"),
        None => (PUBLIC_NAME, ""),
    };
    let sql = format!(
        "SELECT {listed} AS public_name, v.description, v.input_schema, v.annotations, v.output_schema \
         FROM tools t JOIN servers s ON s.id = t.server_id \
         JOIN tool_versions v ON v.tool_id = t.id AND v.version = \
           (SELECT MAX(version) FROM tool_versions a WHERE a.tool_id = t.id AND a.status = 'approved') \
         WHERE s.status = 'running' AND t.enabled <> 0 AND {listed} > $1 {only} \
           AND t.kind IN ('python', 'passthrough') \
           AND substr({PUBLIC_NAME}, 1, {prefix_len}) <> '{prefix}' \
         ORDER BY {listed} LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(cursor.unwrap_or(""))
        .bind(PAGE_SIZE + 1);
    let rows = match server {
        Some(server) => rows.bind(server),
        None => rows,
    }
    .fetch_all(&db.pool)
    .await?;
    let mut tools = Vec::with_capacity(rows.len());
    for row in &rows {
        let public_name: String = row.try_get("public_name")?;
        let description: String = row.try_get("description")?;
        let schema: String = row.try_get("input_schema")?;
        let input_schema = match serde_json::from_str::<serde_json::Value>(&schema) {
            Ok(serde_json::Value::Object(schema)) => schema,
            _ => {
                tracing::warn!(tool = public_name, "stored input schema is not an object");
                JsonObject::from_iter([("type".to_owned(), "object".into())])
            }
        };
        let annotations: Option<String> = row.try_get("annotations")?;
        let output_schema: Option<String> = row.try_get("output_schema")?;
        let output_schema = output_schema
            .as_deref()
            .and_then(tools::output_schema_object);
        let annotations = tools::Annotations::from_stored(annotations.as_deref());
        let description = if description.is_empty() {
            public_name.clone()
        } else {
            description
        };
        tools.push(VisibleTool {
            public_name,
            description,
            input_schema,
            output_schema,
            annotations,
        });
    }
    let next_cursor = if tools.len() as i64 > PAGE_SIZE {
        tools.truncate(PAGE_SIZE as usize);
        tools.last().map(|t| t.public_name.clone())
    } else {
        None
    };
    Ok(Page { tools, next_cursor })
}

/// The id of the tool a public name points at, whatever its state (the call-time check decides
/// whether it may run). `None` when no such tool exists or the name is malformed.
pub async fn tool_id(db: &Db, public_name: &str) -> Result<Option<String>> {
    // Names never contain `__`, so the split is unambiguous (see `names`).
    let Some((server, tool)) = public_name.split_once("__") else {
        return Ok(None);
    };
    if names::Name::server(server).is_err() || names::Name::tool(tool).is_err() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT t.id FROM tools t JOIN servers s ON s.id = t.server_id \
         WHERE s.name = $1 AND t.name = $2 AND t.kind IN ('python', 'passthrough')",
    )
    .bind(server)
    .bind(tool)
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// The id of the tool named `tool` on server `server` (`/servers/{server}/mcp`'s names),
/// whatever its state, like `tool_id`. A `{server}__{tool}` name is no tool name, so it is
/// `None` here.
pub async fn tool_id_in(db: &Db, server: &str, tool: &str) -> Result<Option<String>> {
    if names::Name::tool(tool).is_err() {
        return Ok(None);
    }
    tool_id(db, &names::public_name(server, tool)).await
}

/// What clients are shown, as digests: of the whole set (`/mcp`) and of each server's part of
/// it (`/servers/{name}/mcp`, which hears only of changes to its own server's tools).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisibleSet {
    /// Bumped whenever `all` changes.
    pub generation: u64,
    all: [u8; 32],
    /// Servers with at least one visible tool, prompt or resource; a server absent here shows
    /// none.
    servers: Arc<HashMap<String, [u8; 32]>>,
}

impl VisibleSet {
    /// The digest of one server's visible tools (`None`: it shows none).
    pub fn server(&self, name: &str) -> Option<[u8; 32]> {
        self.servers.get(name).copied()
    }
}

/// The digests of the visible set, to tell a change that clients should hear about from one
/// they should not (a draft edit, a log row).
async fn fingerprint(db: &Db) -> Result<VisibleSet> {
    let mut hasher = Sha256::new();
    let mut servers: HashMap<String, Sha256> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = visible_tools(db, None, cursor.as_deref()).await?;
        for tool in &page.tools {
            let schema =
                serde_json::to_string(&tool.input_schema).map_err(|e| Error::Internal(e.into()))?;
            // What else clients are shown: a new approved version that changes only these
            // is a change they hear about.
            let declared = serde_json::to_string(&(&tool.output_schema, &tool.annotations))
                .map_err(|e| Error::Internal(e.into()))?;
            let server = tool
                .public_name
                .split_once("__")
                .map_or("", |(server, _)| server);
            let per_server = servers.entry(server.to_owned()).or_default();
            for part in [&tool.public_name, &tool.description, &schema, &declared] {
                for hasher in [&mut hasher, &mut *per_server] {
                    hasher.update((part.len() as u64).to_le_bytes());
                    hasher.update(part.as_bytes());
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                // Served prompts and resources are part of the same set: one watcher, and a
                // change to any of the three lists tells clients of all three (`catalog`).
                for (kind, item) in crate::prompts::all_visible(db).await? {
                    let per_server = servers.entry(item.server_name.clone()).or_default();
                    for part in [
                        kind.as_str(),
                        item.name.as_str(),
                        item.description.as_str(),
                        item.hash.as_str(),
                    ] {
                        for hasher in [&mut hasher, &mut *per_server] {
                            hasher.update((part.len() as u64).to_le_bytes());
                            hasher.update(part.as_bytes());
                        }
                    }
                }
                return Ok(VisibleSet {
                    generation: 0,
                    all: hasher.finalize().into(),
                    servers: Arc::new(
                        servers
                            .into_iter()
                            .map(|(name, hasher)| (name, hasher.finalize().into()))
                            .collect(),
                    ),
                });
            }
        }
    }
}

/// Watches recorded activity (every change to servers, tools, approvals and policy is recorded;
/// other replicas' changes arrive on the same hub, `db::events`) and bumps the returned counter
/// when the visible set actually changed. Holds only the
/// database and the activity receiver, so it stops when the app is dropped.
pub fn watch_changes(state: &AppState) -> watch::Receiver<VisibleSet> {
    let (sender, receiver) = watch::channel(VisibleSet::default());
    let db = state.db.clone();
    let mut events = state.activity.subscribe();
    tokio::spawn(async move {
        let mut last = match fingerprint(&db).await {
            Ok(set) => {
                let all = set.all;
                // The starting point, not a change: nobody is told.
                sender.send_if_modified(|current| {
                    *current = set;
                    false
                });
                Some(all)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the visible tools");
                None
            }
        };
        loop {
            match events.recv().await {
                // Events from other replicas may have been missed (`db::events`): look.
                Ok(event) if event.action == crate::activity::RESYNC_ACTION => {}
                Ok(event) if event.server_id.is_none() && event.tool_id.is_none() => continue,
                // A call changes no tool (and there may be thousands a second).
                Ok(event) if event.action == crate::activity::CALL_ACTION => continue,
                // A lagged receiver may have missed a relevant event: look anyway.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
            match fingerprint(&db).await {
                Ok(mut now) if Some(now.all) != last => {
                    last = Some(now.all);
                    sender.send_modify(|set| {
                        now.generation = set.generation + 1;
                        *set = now;
                    });
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not check the visible tools"),
            }
        }
    });
    receiver
}
