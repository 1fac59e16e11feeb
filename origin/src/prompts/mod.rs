//! Prompts and resources an LLM authors and a person approves (issue #16).
//!
//! They are rows of `tools` of kind `prompt` or `resource` (ARCHITECTURE.md says why): the
//! same immutable, hashed versions, the same approvals (`approvals`: draft → pending_review →
//! approved, only a `Reviewer` decides), the same `control` rules (only a person enables, no
//! LLM rename of a reviewed item), the same call-time check (`tools::runnable`: approved, hash
//! intact, enabled, server running). What differs is the content (`content`: a template and its
//! arguments, or a resource's text or producing tool), checked here instead of by the sandbox,
//! and how it is served (`gateway::catalog`). `execution::run` refuses both kinds, and
//! `tools/list` never lists them.

mod api;
pub mod content;

pub(crate) use api::openapi;
pub use api::router;

use sqlx::Row;

use crate::activity::Audit;
use crate::app::AppState;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::names::{self, Name};
use crate::tools::{self, Kind, Source, Tool, ValidCode, Version};
pub use content::{PromptArgument, PromptContent, ResourceContent};

/// Most prompts, and most resources, one server may have (each kind counted on its own).
pub const PER_SERVER_MAX: i64 = 100;

/// The URI scheme of served resources: `mcpbox://{server}/{name}` (plus `/{param}` segments
/// for a template). The server is in the authority, so two servers' resources of one name are
/// different URIs on `/mcp`, and a URI means the same on `/servers/{name}/mcp`.
pub const URI_SCHEME: &str = "mcpbox://";

/// A prompt's or resource's content, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Prompt(PromptContent),
    Resource(ResourceContent),
}

impl Item {
    pub fn kind(&self) -> Kind {
        match self {
            Item::Prompt(_) => Kind::Prompt,
            Item::Resource(_) => Kind::Resource,
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            Item::Prompt(prompt) => prompt.check(),
            Item::Resource(resource) => resource.check(),
        }
    }

    fn stored(&self) -> Result<String> {
        match self {
            Item::Prompt(prompt) => content::stored(prompt),
            Item::Resource(resource) => content::stored(resource),
        }
    }

    /// Reads stored (or submitted) content of `kind`.
    pub fn parse(kind: Kind, text: &str) -> Result<Item> {
        match kind {
            Kind::Prompt => Ok(Item::Prompt(content::parse("prompt", text)?)),
            Kind::Resource => Ok(Item::Resource(content::parse("resource", text)?)),
            Kind::Python | Kind::Passthrough => Err(Error::Validation(
                "a tool is not a prompt or a resource".into(),
            )),
        }
    }
}

/// The one check of a prompt's or resource's content, for every front and for
/// `tools::update` (a PATCH of `python_code` on one lands here): parsed as its kind, bounds,
/// a tool-backed resource's tool exists on the same server, and a declared URI is no other
/// resource's of the server (`own`: the item being changed). Returns the stored form.
pub async fn checked(
    db: &Db,
    server_id: &str,
    own: Option<&str>,
    kind: Kind,
    text: &str,
) -> Result<ValidCode> {
    let item = Item::parse(kind, text)?;
    checked_item(db, server_id, own, &item).await
}

async fn checked_item(
    db: &Db,
    server_id: &str,
    own: Option<&str>,
    item: &Item,
) -> Result<ValidCode> {
    item.check()?;
    if let Item::Resource(ResourceContent {
        tool: Some(tool), ..
    }) = item
    {
        let row = sqlx::query("SELECT kind FROM tools WHERE server_id = $1 AND name = $2")
            .bind(server_id)
            .bind(tool)
            .fetch_optional(&db.pool)
            .await?;
        let is_tool = match row {
            Some(row) => tools_kind_is_tool(&row.try_get::<String, _>("kind")?),
            None => false,
        };
        if !is_tool {
            return Err(Error::Validation(format!(
                "the server has no tool named {tool:?} to produce this resource"
            )));
        }
    }
    if let Item::Resource(ResourceContent { uri: Some(uri), .. }) = item
        && let Some(other) = declaring(db, server_id, own, uri).await?
    {
        return Err(Error::Conflict(format!(
            "the server's resource {other:?} already declares the uri {uri:?}"
        )));
    }
    // No input schema: a prompt's arguments and a template's params are in the content.
    Ok(ValidCode::passthrough(
        item.stored()?,
        r#"{"type":"object","properties":{}}"#.to_owned(),
        "",
    ))
}

/// The name of another resource of the server whose newest or served version declares `uri`.
/// Bounded: a server has at most `PER_SERVER_MAX` resources, two versions each read.
async fn declaring(
    db: &Db,
    server_id: &str,
    own: Option<&str>,
    uri: &str,
) -> Result<Option<String>> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, v.python_code FROM tools t \
         JOIN tool_versions v ON v.tool_id = t.id AND (v.version = t.current_version OR v.version = \
           (SELECT MAX(version) FROM tool_versions a WHERE a.tool_id = t.id AND a.status = 'approved')) \
         WHERE t.server_id = $1 AND t.kind = 'resource'",
    )
    .bind(server_id)
    .fetch_all(&db.pool)
    .await?;
    for row in rows {
        let id: String = row.try_get("id")?;
        if own == Some(id.as_str()) {
            continue;
        }
        let text: String = row.try_get("python_code")?;
        if let Ok(Item::Resource(other)) = Item::parse(Kind::Resource, &text)
            && other.uri.as_deref() == Some(uri)
        {
            return Ok(Some(row.try_get("name")?));
        }
    }
    Ok(None)
}

fn tools_kind_is_tool(kind: &str) -> bool {
    matches!(kind, "python" | "passthrough")
}

pub struct NewItem<'a> {
    pub server_id: &'a str,
    pub name: &'a Name,
    pub description: &'a str,
    pub item: Item,
    pub source: Source,
    pub audit: &'a Audit,
}

/// Creates a prompt or resource as version 1, a draft: nothing is served until a person
/// approves it. At most `PER_SERVER_MAX` of each kind per server.
pub async fn create(state: &AppState, new: NewItem<'_>) -> Result<(Tool, Version)> {
    crate::servers::check_description(new.description)?;
    crate::servers::get(&state.db, new.server_id).await?;
    let kind = new.item.kind();
    let count: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM tools WHERE server_id = $1 AND kind = $2")
            .bind(new.server_id)
            .bind(kind.as_str())
            .fetch_one(&state.db.pool)
            .await?
            .try_get("n")?;
    // Checked before the insert: concurrent creates can pass it together, so the bound is
    // PER_SERVER_MAX plus the creates in flight at once (each is one request).
    if count >= PER_SERVER_MAX {
        return Err(Error::Conflict(format!(
            "the server already has {PER_SERVER_MAX} {}s, the most it may have",
            kind.as_str()
        )));
    }
    let valid = checked_item(&state.db, new.server_id, None, &new.item).await?;
    tools::create_item(
        state,
        tools::NewTool {
            server_id: new.server_id,
            name: new.name,
            description: new.description,
            code: "",
            source: new.source,
            audit: new.audit,
            annotations: None,
        },
        kind,
        &valid,
    )
    .await
}

#[derive(Debug, Default)]
pub struct ItemChanges {
    pub name: Option<Name>,
    pub description: Option<String>,
    pub item: Option<Item>,
    pub enabled: Option<bool>,
    pub summary: Option<String>,
}

/// Changes a prompt or resource of `kind` through `tools::update`: new content or description
/// is a new draft version, and its rename and enable rules apply unchanged.
pub async fn update(
    state: &AppState,
    id: &str,
    kind: Kind,
    changes: ItemChanges,
    source: Source,
    audit: &Audit,
) -> Result<(Tool, Option<Version>)> {
    get(&state.db, id, kind).await?;
    if let Some(item) = &changes.item
        && item.kind() != kind
    {
        return Err(Error::Validation(format!(
            "this is a {}: its content cannot become a {}",
            kind.as_str(),
            item.kind().as_str()
        )));
    }
    let python_code = changes.item.as_ref().map(Item::stored).transpose()?;
    let changes = tools::Changes {
        name: changes.name,
        description: changes.description,
        python_code,
        enabled: changes.enabled,
        timeout_ms: None,
        summary: changes.summary,
        annotations: None,
    };
    // `timeout_ms: None` keeps the stored value.
    tools::update(state, id, changes, source, audit).await
}

/// The item `id` if it is of `kind` (404 otherwise: a tool id is no prompt).
pub async fn get(db: &Db, id: &str, kind: Kind) -> Result<Tool> {
    let tool = tools::get(db, id).await?;
    if tool.kind != kind {
        return Err(Error::NotFound(format!(
            "no {} with that id",
            kind.as_str()
        )));
    }
    Ok(tool)
}

/// A page of a server's items of `kind`.
pub async fn list(
    db: &Db,
    server_id: &str,
    kind: Kind,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Tool>, i64)> {
    tools::list_of(db, server_id, &[kind], limit, offset).await
}

/// An approved, enabled item of a running server, its content re-verified against the hash
/// approved with it (`tools::runnable`, the call-time check of tools).
#[derive(Debug, Clone)]
pub struct Served {
    pub id: String,
    pub server_id: String,
    pub server_name: String,
    pub name: String,
    pub version: i64,
    pub description: String,
    pub item: Item,
}

/// The serve-time check of a prompt or resource; a refusal says why (not approved, disabled,
/// server stopped, content changed outside MCPbox).
pub async fn served(db: &Db, id: &str, kind: Kind) -> Result<Served> {
    let approved = tools::runnable(db, id).await?;
    if approved.kind != kind {
        return Err(Error::NotFound(format!(
            "no {} with that id",
            kind.as_str()
        )));
    }
    let version = tools::version(db, id, approved.version).await?;
    Ok(Served {
        id: approved.tool_id,
        server_id: approved.server_id,
        server_name: approved.server_name,
        name: approved.tool_name,
        version: approved.version,
        description: version.description,
        item: Item::parse(kind, &approved.code)?,
    })
}

/// What `prompts/list`, `resources/list` and `resources/templates/list` show of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub server_name: String,
    pub name: String,
    pub description: String,
    pub item: Item,
    /// The approved version's hash (part of the list_changed digest).
    pub hash: String,
}

/// Items per list page.
pub const PAGE_SIZE: i64 = 200;

/// The public name, in order (keyset paging, as `tools/list`).
const PUBLIC_NAME: &str = "(s.name || '__' || t.name)";

/// One page of served items of `kind` after `cursor`: approved, enabled, of running servers,
/// content matching its hash (an item whose stored content was changed is left out, logged).
/// `server`: only that server's (`/servers/{name}/mcp`). Returns the next cursor.
pub async fn visible(
    db: &Db,
    kind: Kind,
    server: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Vec<Listed>, Option<String>)> {
    let only = if server.is_some() {
        "AND s.name = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {PUBLIC_NAME} AS public_name, s.name AS server_name, t.name AS name, \
         v.description, v.python_code, v.code_hash \
         FROM tools t JOIN servers s ON s.id = t.server_id \
         JOIN tool_versions v ON v.tool_id = t.id AND v.version = \
           (SELECT MAX(version) FROM tool_versions a WHERE a.tool_id = t.id AND a.status = 'approved') \
         WHERE s.status = 'running' AND t.enabled <> 0 AND t.kind = $1 AND {PUBLIC_NAME} > $2 {only} \
         ORDER BY {PUBLIC_NAME} LIMIT $3"
    );
    let query = sqlx::query(&sql)
        .bind(kind.as_str())
        .bind(cursor.unwrap_or(""))
        .bind(PAGE_SIZE + 1);
    let rows = match server {
        Some(server) => query.bind(server),
        None => query,
    }
    .fetch_all(&db.pool)
    .await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let mut listed = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows.iter().take(PAGE_SIZE as usize) {
        let public_name: String = row.try_get("public_name")?;
        last = Some(public_name.clone());
        let text: String = row.try_get("python_code")?;
        let hash: String = row.try_get("code_hash")?;
        if tools::code_hash(&text) != hash {
            tracing::error!(
                item = public_name,
                "approved content does not match its hash; not serving it"
            );
            continue;
        }
        let item = match Item::parse(kind, &text) {
            Ok(item) => item,
            Err(err) => {
                tracing::error!(item = public_name, error = %err, "stored content unreadable");
                continue;
            }
        };
        listed.push(Listed {
            server_name: row.try_get("server_name")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            item,
            hash,
        });
    }
    Ok((listed, if more { last } else { None }))
}

/// Every served item of both kinds, for the list_changed digest (`gateway::visible`): bounded
/// by `PER_SERVER_MAX` per kind and server.
pub async fn all_visible(db: &Db) -> Result<Vec<(Kind, Listed)>> {
    let mut all = Vec::new();
    for kind in [Kind::Prompt, Kind::Resource] {
        let mut cursor = None;
        loop {
            let (page, next) = visible(db, kind, None, cursor.as_deref()).await?;
            all.extend(page.into_iter().map(|listed| (kind, listed)));
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(all)
}

/// The id of the item of `kind` named `name` on server `server`, whatever its state (the
/// serve-time check decides). `None` for malformed names.
pub async fn id_of(db: &Db, kind: Kind, server: &str, name: &str) -> Result<Option<String>> {
    if Name::server(server).is_err() || Name::tool(name).is_err() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT t.id FROM tools t JOIN servers s ON s.id = t.server_id \
         WHERE s.name = $1 AND t.name = $2 AND t.kind = $3",
    )
    .bind(server)
    .bind(name)
    .bind(kind.as_str())
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("id")?),
        None => None,
    })
}

/// A resource's URI (a template's, with `{param}`s, when it has params).
pub fn uri(server: &str, name: &str, params: &[String]) -> String {
    let mut uri = format!("{URI_SCHEME}{server}/{name}");
    for param in params {
        uri.push_str(&format!("/{{{param}}}"));
    }
    uri
}

/// A requested URI split into server, resource name and the (percent-decoded) segments that
/// follow. `None`: not an MCPbox resource URI.
pub fn parse_uri(uri: &str) -> Option<(String, String, Vec<String>)> {
    let rest = uri.strip_prefix(URI_SCHEME)?;
    let mut parts = rest.split('/');
    let server = parts.next()?.to_owned();
    let name = parts.next()?.to_owned();
    let segments = parts.map(percent_decode).collect::<Option<Vec<String>>>()?;
    Some((server, name, segments))
}

/// `%XX` decoding of one URI segment; `None` when malformed or not UTF-8.
pub(crate) fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a prompt's or resource's version declares beyond its text, for the review and tool
/// pages' Declared block (where a tool's shows its annotations): where a resource is served and
/// what it holds (a blob's size, not its bytes), a prompt's arguments and attachments. `None`
/// for tools, and for content that does not parse (the page shows the stored text anyway).
pub fn reviewed_text(kind: Kind, text: &str, server: &str, name: &str) -> Option<String> {
    match Item::parse(kind, text).ok()? {
        Item::Resource(resource) => {
            let own = uri(server, name, &resource.params);
            let served = match &resource.uri {
                Some(declared) => {
                    format!("{declared} on /servers/{server}/mcp; {own} on it and on /mcp")
                }
                None => format!("{own} on /mcp and /servers/{server}/mcp"),
            };
            let holds = match (&resource.text, resource.blob_bytes(), &resource.tool) {
                (Some(text), _, _) => {
                    format!("{} bytes of {} text", text.len(), resource.mime_type)
                }
                (_, Some(bytes), _) => format!(
                    "a blob, {}, {} bytes (base64 in the content)",
                    resource.mime_type,
                    bytes.len()
                ),
                (_, _, Some(tool)) => format!(
                    "{} produced by the tool {tool:?} (its approved version, when read)",
                    resource.mime_type
                ),
                _ => "nothing".to_owned(),
            };
            Some(format!("served at: {served}\ncontent: {holds}\n"))
        }
        Item::Prompt(prompt) => {
            let arguments: Vec<String> = prompt
                .arguments
                .iter()
                .map(|a| {
                    if a.required {
                        format!("{} (required)", a.name)
                    } else {
                        a.name.clone()
                    }
                })
                .collect();
            let attachments: Vec<String> = prompt
                .attachments
                .iter()
                .enumerate()
                .map(|(i, attachment)| match attachment {
                    content::Attachment::Image { mime_type, data } => format!(
                        "{}. image, {mime_type}, {} bytes (base64 in the content)",
                        i + 1,
                        content::decoded_len(data)
                    ),
                    content::Attachment::Resource {
                        uri,
                        mime_type,
                        text,
                        ..
                    } => format!(
                        "{}. resource at {uri}, {mime_type}, {} bytes of text",
                        i + 1,
                        text.len()
                    ),
                })
                .collect();
            let or_none = |list: &[String], sep: &str| {
                if list.is_empty() {
                    "none".to_owned()
                } else {
                    list.join(sep)
                }
            };
            Some(format!(
                "arguments: {}\nmessages before the text: {}\n",
                or_none(&arguments, ", "),
                or_none(&attachments, "; ")
            ))
        }
    }
}

/// The public name of an item on `/mcp` (`{server}__{name}`, as tools).
pub fn public_name(server: &str, name: &str) -> String {
    names::public_name(server, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        let params = vec!["city".to_owned(), "day".to_owned()];
        assert_eq!(
            uri("weather", "forecast", &params),
            "mcpbox://weather/forecast/{city}/{day}"
        );
        assert_eq!(
            parse_uri("mcpbox://weather/forecast/S%C3%A3o%20Paulo/mon"),
            Some((
                "weather".into(),
                "forecast".into(),
                vec!["São Paulo".into(), "mon".into()]
            ))
        );
        assert_eq!(parse_uri("mcpbox://weather"), None);
        assert_eq!(parse_uri("file:///etc/passwd"), None);
        assert_eq!(parse_uri("mcpbox://a/b/%zz"), None);
        assert_eq!(parse_uri("mcpbox://a/b/%ff"), None);
    }
}
