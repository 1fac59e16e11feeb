//! Tools and their immutable versions.
//!
//! A tool row holds what does not need review (name, enabled, timeout). Code and description live
//! in `tool_versions`: every change writes a new version (validated by the sandbox, with the
//! input schema it derives), so nothing that was approved can change underneath its approval.
//! `runnable` is the call-time check: the only way to get code to run is an `Approved` value,
//! which only it builds.

mod api;
mod meta;

pub use meta::{
    Annotations, WRAP_RESULT, output_schema_object, reviewed_text, structured, version_hash,
};

pub(crate) use api::openapi;

pub use api::{VersionBody as VersionBodyPublic, router};

/// The API shape of a version, for other domains' routes.
pub fn api_version_body(version: Version) -> VersionBodyPublic {
    version.into()
}

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};
use crate::names::{self, Name};
use contract::sandbox::ValidateRequest;

/// Largest accepted tool source.
pub const CODE_MAX_BYTES: usize = 100 * 1024;
pub const SUMMARY_MAX: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Llm,
    Admin,
    Rollback,
    Import,
}

impl Source {
    /// Who makes a change from this source: only the MCP management tools write `Llm`.
    pub fn principal(self) -> crate::control::Principal {
        match self {
            Source::Llm => crate::control::Principal::Llm,
            Source::Admin | Source::Rollback | Source::Import => crate::control::Principal::Person,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Admin => "admin",
            Source::Rollback => "rollback",
            Source::Import => "import",
        }
    }
}

/// What a tool's versions hold, fixed when the tool is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Python code, run in the sandbox.
    Python,
    /// A tool of an external MCP source: a version's content is the binding (source and remote
    /// tool, see `external::Binding`), approved and hash-checked exactly like code.
    Passthrough,
    /// Not a tool: an MCP prompt (`prompts`); a version's content is its template and
    /// arguments, approved and hash-checked like code. Never listed or run as a tool.
    Prompt,
    /// Not a tool: an MCP resource (`prompts`): static text, or a tool of the same server
    /// that produces it.
    Resource,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Python => "python",
            Kind::Passthrough => "passthrough",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
        }
    }

    /// Whether items of this kind are tools (listed by `tools/list`, run by `execution::run`).
    pub fn is_tool(self) -> bool {
        matches!(self, Kind::Python | Kind::Passthrough)
    }

    fn parse(text: &str) -> Result<Kind> {
        match text {
            "python" => Ok(Kind::Python),
            "passthrough" => Ok(Kind::Passthrough),
            "prompt" => Ok(Kind::Prompt),
            "resource" => Ok(Kind::Resource),
            other => Err(Error::Internal(anyhow::anyhow!(
                "unknown tool kind {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tool {
    pub id: String,
    pub server_id: String,
    pub name: String,
    pub kind: Kind,
    pub enabled: bool,
    pub timeout_ms: Option<i64>,
    pub current_version: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

const TOOL_COLUMNS: &str = "id, server_id, name, kind, enabled, timeout_ms, current_version, created_by, created_at, updated_at";

impl Tool {
    fn from_row(row: &AnyRow) -> Result<Tool> {
        Ok(Tool {
            id: row.try_get("id")?,
            server_id: row.try_get("server_id")?,
            name: row.try_get("name")?,
            kind: Kind::parse(&row.try_get::<String, _>("kind")?)?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            timeout_ms: row.try_get("timeout_ms")?,
            current_version: row.try_get("current_version")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Version {
    pub tool_id: String,
    pub version: i64,
    pub description: String,
    pub python_code: String,
    pub code_hash: String,
    pub input_schema: String,
    /// The author's MCP annotations (`Annotations::to_stored`), covered by `code_hash`.
    pub annotations: Option<String>,
    /// The output schema derived from `main`'s return annotation, covered by `code_hash`.
    pub output_schema: Option<String>,
    pub change_source: String,
    pub change_summary: String,
    pub created_by: String,
    pub created_at: String,
    pub status: String,
    pub publish_notes: Option<String>,
    pub requested_at: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub rejection_reason: Option<String>,
}

pub const VERSION_COLUMNS: &str = "tool_id, version, description, python_code, code_hash, input_schema, \
     change_source, change_summary, created_by, created_at, status, publish_notes, requested_at, \
     reviewed_by, reviewed_at, rejection_reason, annotations, output_schema";

impl Version {
    pub fn from_row(row: &AnyRow) -> Result<Version> {
        Ok(Version {
            tool_id: row.try_get("tool_id")?,
            version: row.try_get("version")?,
            description: row.try_get("description")?,
            python_code: row.try_get("python_code")?,
            code_hash: row.try_get("code_hash")?,
            input_schema: row.try_get("input_schema")?,
            change_source: row.try_get("change_source")?,
            change_summary: row.try_get("change_summary")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            status: row.try_get("status")?,
            publish_notes: row.try_get("publish_notes")?,
            requested_at: row.try_get("requested_at")?,
            reviewed_by: row.try_get("reviewed_by")?,
            reviewed_at: row.try_get("reviewed_at")?,
            rejection_reason: row.try_get("rejection_reason")?,
            annotations: row.try_get("annotations")?,
            output_schema: row.try_get("output_schema")?,
        })
    }
}

pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// Code accepted by the sandbox's validation, with the schemas it derived (and the annotations
/// the version declares): a version's content, all of it hashed.
pub struct ValidCode {
    code: String,
    input_schema: String,
    output_schema: Option<String>,
    annotations: Option<String>,
    /// `main`'s docstring: the description of a version given none, so MCP clients always get
    /// one (capped to the description limit).
    docstring: String,
}

impl ValidCode {
    /// A passthrough tool's version content: nothing for the sandbox to check (the binding was
    /// built by `external` from a discovered tool), the remote tool's schema and description.
    pub fn passthrough(binding: String, input_schema: String, description: &str) -> ValidCode {
        ValidCode {
            code: binding,
            input_schema,
            output_schema: None,
            annotations: None,
            docstring: description
                .trim()
                .chars()
                .take(crate::servers::DESCRIPTION_MAX)
                .collect(),
        }
    }

    /// An unchanged version's content again (a passthrough tool's new description, a rollback).
    fn again(version: &Version) -> ValidCode {
        ValidCode {
            code: version.python_code.clone(),
            input_schema: version.input_schema.clone(),
            output_schema: version.output_schema.clone(),
            annotations: version.annotations.clone(),
            docstring: String::new(),
        }
    }

    /// The same content declaring `annotations` (stored form, `Annotations::to_stored`).
    fn annotated(self, annotations: Option<String>) -> ValidCode {
        ValidCode {
            annotations,
            ..self
        }
    }
}

/// The sandbox's verdict on code, saved or not (`validate`, REST `validate-code`,
/// `mcpbox_validate_code`): the one place the size cap is applied before code travels to the
/// sandbox. `allowed_modules: None` checks against the defaults.
pub async fn check_code(
    sandbox: &crate::dispatch::Sandbox,
    code: &str,
    allowed_modules: Option<Vec<String>>,
) -> Result<contract::sandbox::ValidateResponse> {
    if code.len() > CODE_MAX_BYTES {
        return Err(Error::Validation(format!(
            "the code is larger than {} KB",
            CODE_MAX_BYTES / 1024
        )));
    }
    sandbox
        .validate(ValidateRequest {
            code: code.to_owned(),
            allowed_modules,
        })
        .await
        .map_err(|err| Error::Unavailable(format!("the code cannot be validated now: {err}")))
}

/// Validates code in the sandbox (static check against the server's allowed modules, `main`,
/// schema). Errors carry line numbers.
pub async fn validate(state: &AppState, server_id: &str, code: &str) -> Result<ValidCode> {
    let allowed = crate::access::allowed_modules(&state.db, server_id).await?;
    let checked = check_code(&state.sandbox, code, Some(allowed)).await?;
    if !checked.valid {
        let errors: Vec<String> = checked
            .errors
            .iter()
            .map(|e| format!("line {}: {}", e.line, e.message))
            .collect();
        return Err(Error::Validation(format!(
            "the code is not valid: {}",
            errors.join("; ")
        )));
    }
    Ok(ValidCode {
        code: code.to_owned(),
        docstring: checked
            .description
            .unwrap_or_default()
            .trim()
            .chars()
            .take(crate::servers::DESCRIPTION_MAX)
            .collect(),
        input_schema: checked
            .input_schema
            .unwrap_or_else(|| r#"{"type":"object","properties":{}}"#.to_owned()),
        output_schema: checked.output_schema,
        annotations: None,
    })
}

pub async fn get(db: &Db, id: &str) -> Result<Tool> {
    let row = sqlx::query(&format!("SELECT {TOOL_COLUMNS} FROM tools WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound("no tool with that id".into()))?;
    Tool::from_row(&row)
}

/// A page of a server's tools (prompts and resources are listed by `prompts`).
pub async fn list(db: &Db, server_id: &str, limit: i64, offset: i64) -> Result<(Vec<Tool>, i64)> {
    list_of(
        db,
        server_id,
        &[Kind::Python, Kind::Passthrough],
        limit,
        offset,
    )
    .await
}

/// A page of a server's items of the given kinds.
pub async fn list_of(
    db: &Db,
    server_id: &str,
    kinds: &[Kind],
    limit: i64,
    offset: i64,
) -> Result<(Vec<Tool>, i64)> {
    crate::servers::get(db, server_id).await?;
    // Constants of `Kind`, not input: safe to write into the SQL text.
    let kinds = kinds
        .iter()
        .map(|kind| format!("'{}'", kind.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query(&format!(
        "SELECT {TOOL_COLUMNS} FROM tools WHERE server_id = $1 AND kind IN ({kinds}) \
         ORDER BY name LIMIT $2 OFFSET $3"
    ))
    .bind(server_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let total: i64 = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM tools WHERE server_id = $1 AND kind IN ({kinds})"
    ))
    .bind(server_id)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    Ok((
        rows.iter().map(Tool::from_row).collect::<Result<_>>()?,
        total,
    ))
}

pub async fn version(db: &Db, tool_id: &str, number: i64) -> Result<Version> {
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool_id = $1 AND version = $2"
    ))
    .bind(tool_id)
    .bind(number)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("the tool has no version {number}")))?;
    Version::from_row(&row)
}

pub async fn versions(db: &Db, tool_id: &str) -> Result<Vec<Version>> {
    get(db, tool_id).await?;
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM tool_versions WHERE tool_id = $1 ORDER BY version DESC"
    ))
    .bind(tool_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Version::from_row).collect()
}

/// The approved version of every tool of a server that has one, in one query (a server page
/// lists hundreds of tools).
pub async fn approved_versions(
    db: &Db,
    server_id: &str,
) -> Result<std::collections::HashMap<String, i64>> {
    let rows = sqlx::query(
        "SELECT v.tool_id AS tool_id, MAX(v.version) AS v FROM tool_versions v \
         JOIN tools t ON t.id = v.tool_id WHERE t.server_id = $1 AND v.status = 'approved' \
         GROUP BY v.tool_id",
    )
    .bind(server_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("tool_id")?, row.try_get("v")?)))
        .collect()
}

/// Whether a person has approved a version of the tool or is asked to review one: then its
/// name is part of what was reviewed.
async fn reviewed(db: &Db, tool_id: &str) -> Result<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM tool_versions WHERE tool_id = $1 \
         AND status IN ('approved', 'pending_review')",
    )
    .bind(tool_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// The newest approved version number, if any (what runs while the server runs).
pub async fn approved_version(db: &Db, tool_id: &str) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT MAX(version) AS v FROM tool_versions WHERE tool_id = $1 AND status = 'approved'",
    )
    .bind(tool_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get::<Option<i64>, _>("v")?)
}

pub struct NewTool<'a> {
    pub server_id: &'a str,
    pub name: &'a Name,
    pub description: &'a str,
    pub code: &'a str,
    pub source: Source,
    /// Who creates it (and the request), for the version row and the activity log.
    pub audit: &'a Audit,
    /// The MCP annotations version 1 declares (none for a passthrough tool).
    pub annotations: Option<&'a Annotations>,
}

/// Creates a tool with version 1 (a draft: nothing runs until it is approved).
pub async fn create(state: &AppState, new: NewTool<'_>) -> Result<(Tool, Version)> {
    crate::servers::check_description(new.description)?;
    crate::servers::get(&state.db, new.server_id).await?;
    let valid = validate(state, new.server_id, new.code)
        .await?
        .annotated(new.annotations.and_then(Annotations::to_stored));
    insert_tool(state, &new, Kind::Python, None, &valid).await
}

/// Creates a passthrough tool bound to `source_id` with version 1 (a draft, like any tool).
/// `new.code` is unused: the content is `valid`, built by `external` from a discovered tool.
pub async fn create_passthrough(
    state: &AppState,
    new: NewTool<'_>,
    source_id: &str,
    valid: &ValidCode,
) -> Result<(Tool, Version)> {
    crate::servers::check_description(new.description)?;
    insert_tool(state, &new, Kind::Passthrough, Some(source_id), valid).await
}

/// Creates a prompt or resource (`prompts`) with version 1, a draft like any tool's; `valid` is
/// its checked content (`prompts::checked`). `new.code` is unused.
pub async fn create_item(
    state: &AppState,
    new: NewTool<'_>,
    kind: Kind,
    valid: &ValidCode,
) -> Result<(Tool, Version)> {
    crate::servers::check_description(new.description)?;
    insert_tool(state, &new, kind, None, valid).await
}

async fn insert_tool(
    state: &AppState,
    new: &NewTool<'_>,
    kind: Kind,
    source_id: Option<&str>,
    valid: &ValidCode,
) -> Result<(Tool, Version)> {
    let now = db::now();
    let server = crate::servers::get(&state.db, new.server_id).await?;
    crate::names::fits(&server.name, new.name.as_str())?;
    let mut tx = state.db.pool.begin().await?;
    // Conditional on the public name fitting under the server's name as it is now (a rename
    // may have landed since the check above).
    let row = sqlx::query(&format!(
        "INSERT INTO tools (id, server_id, name, kind, external_source_id, enabled, timeout_ms, current_version, created_by, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, 1, NULL, 1, $6, $7, $7 WHERE EXISTS (SELECT 1 FROM servers s \
           WHERE s.id = $2 AND length(s.name) + 2 + length(CAST($3 AS TEXT)) <= {max}) \
         RETURNING {TOOL_COLUMNS}",
        max = crate::names::PUBLIC_NAME_MAX
    ))
    .bind(db::new_id())
    .bind(new.server_id)
    .bind(new.name.as_str())
    .bind(kind.as_str())
    .bind(source_id)
    .bind(&new.audit.actor)
    .bind(&now)
    .fetch_optional(&mut *tx)
    .await
    .on_conflict(|| format!("the server already has a tool named {:?}", new.name.as_str()))?;
    let Some(row) = row else {
        drop(tx);
        let server = crate::servers::get(&state.db, new.server_id).await?;
        crate::names::fits(&server.name, new.name.as_str())?;
        return Err(Error::Conflict(
            "the server changed while the tool was created; try again".into(),
        ));
    };
    let tool = Tool::from_row(&row)?;
    let version = insert_version(
        &mut tx,
        &tool.id,
        1,
        new.description,
        valid,
        new.source,
        "Initial version",
        &new.audit.actor,
    )
    .await?;
    tx.commit().await?;
    let event = NewEvent::info(
        "tool.create",
        format!("tool {} created (version 1, draft)", tool.name),
    )
    .server(&tool.server_id)
    .tool(&tool.id);
    activity::record_now(state, new.audit, event).await?;
    Ok((tool, version))
}

#[allow(clippy::too_many_arguments)]
async fn insert_version(
    conn: &mut AnyConnection,
    tool_id: &str,
    number: i64,
    description: &str,
    code: &ValidCode,
    source: Source,
    summary: &str,
    actor: &str,
) -> Result<Version> {
    let summary: String = summary.chars().take(SUMMARY_MAX).collect();
    let description = if description.trim().is_empty() {
        code.docstring.as_str()
    } else {
        description
    };
    let row = sqlx::query(&format!(
        "INSERT INTO tool_versions (id, tool_id, version, description, python_code, code_hash, input_schema, \
         change_source, change_summary, created_by, created_at, status, annotations, output_schema) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'draft', $12, $13) RETURNING {VERSION_COLUMNS}"
    ))
    .bind(db::new_id())
    .bind(tool_id)
    .bind(number)
    .bind(description)
    .bind(&code.code)
    .bind(version_hash(
        &code.code,
        code.annotations.as_deref(),
        code.output_schema.as_deref(),
    ))
    .bind(&code.input_schema)
    .bind(source.as_str())
    .bind(summary)
    .bind(actor)
    .bind(db::now())
    .bind(&code.annotations)
    .bind(&code.output_schema)
    .fetch_one(conn)
    .await
    // Two concurrent edits both computed the same next number: one wins, the other retries.
    .on_conflict(|| "the tool was changed at the same time; try again".to_owned())?;
    Version::from_row(&row)
}

#[derive(Debug, Default)]
pub struct Changes {
    pub name: Option<Name>,
    pub description: Option<String>,
    pub python_code: Option<String>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears it (the server default applies).
    pub timeout_ms: Option<Option<i64>>,
    pub summary: Option<String>,
    /// New MCP annotations (all of them: an unset hint is dropped; `Some(default)` clears
    /// them). A change writes a new draft version, like a code change.
    pub annotations: Option<Annotations>,
}

/// Applies changes. Code or description changes write a new draft version (the approved one
/// keeps running until the new one is approved, and a version waiting for review stays
/// pending: approving it makes exactly it run, never the newer draft); the rest changes the
/// tool row only. From an LLM (`Source::Llm`), `control` rules out enabling a disabled tool and
/// renaming one a person approved or is reviewing; both are refused before anything changes.
pub async fn update(
    state: &AppState,
    tool_id: &str,
    changes: Changes,
    source: Source,
    audit: &Audit,
) -> Result<(Tool, Option<Version>)> {
    if let Some(Some(timeout)) = changes.timeout_ms {
        crate::servers::check_timeout(timeout)?;
    }
    if let Some(description) = &changes.description {
        crate::servers::check_description(description)?;
    }
    let tool = get(&state.db, tool_id).await?;
    let by = source.principal();
    crate::control::may_set_enabled(by, tool.enabled, changes.enabled)?;
    let renamed = changes
        .name
        .as_ref()
        .is_some_and(|name| name.as_str() != tool.name);
    if renamed {
        crate::control::may_rename(by, reviewed(&state.db, tool_id).await?)?;
        let server = crate::servers::get(&state.db, &tool.server_id).await?;
        crate::names::fits(&server.name, changes.name.as_ref().map_or("", Name::as_str))?;
    }
    let latest = version(&state.db, tool_id, tool.current_version).await?;
    let code_changed = changes
        .python_code
        .as_ref()
        .is_some_and(|code| *code != latest.python_code);
    if code_changed && tool.kind == Kind::Passthrough {
        return Err(Error::Validation(
            "a passthrough tool has no code: import the remote tool again to change what it calls"
                .into(),
        ));
    }
    if changes.annotations.is_some() && !tool.kind.is_tool() {
        return Err(Error::Validation(
            "prompts and resources carry no tool annotations: leave `annotations` out".into(),
        ));
    }
    let description_changed = changes
        .description
        .as_ref()
        .is_some_and(|d| *d != latest.description);
    let annotations = match &changes.annotations {
        Some(annotations) => annotations.to_stored(),
        None => latest.annotations.clone(),
    };
    let annotations_changed = annotations != latest.annotations;
    // Validate before opening the transaction: the sandbox round trip must not hold a lock.
    let valid = if tool.kind == Kind::Passthrough && (description_changed || annotations_changed) {
        Some(ValidCode::again(&latest).annotated(annotations))
    } else if !tool.kind.is_tool() && (code_changed || description_changed) {
        // A prompt's or resource's content: checked by its own rule, no sandbox. (They carry
        // no annotations: `prompts::update` never sets them.)
        let content = changes
            .python_code
            .as_deref()
            .unwrap_or(&latest.python_code);
        Some(
            crate::prompts::checked(
                &state.db,
                &tool.server_id,
                Some(&tool.id),
                tool.kind,
                content,
            )
            .await?,
        )
    } else if tool.kind.is_tool() && (code_changed || description_changed || annotations_changed) {
        Some(
            validate(
                state,
                &tool.server_id,
                changes
                    .python_code
                    .as_deref()
                    .unwrap_or(&latest.python_code),
            )
            .await?
            .annotated(annotations),
        )
    } else {
        None
    };
    let mut tx = state.db.pool.begin().await?;
    let new_version = match valid {
        Some(valid) => {
            let number = tool.current_version + 1;
            let description = changes
                .description
                .as_deref()
                .unwrap_or(&latest.description);
            let summary = changes.summary.as_deref().unwrap_or(if code_changed {
                "Code changed"
            } else if description_changed {
                "Description changed"
            } else {
                "Annotations changed"
            });
            Some(
                insert_version(
                    &mut tx,
                    tool_id,
                    number,
                    description,
                    &valid,
                    source,
                    summary,
                    &audit.actor,
                )
                .await?,
            )
        }
        None => None,
    };
    let name = changes
        .name
        .as_ref()
        .map(Name::as_str)
        .unwrap_or(&tool.name)
        .to_owned();
    // `enabled` is written only when asked (NULL keeps the stored value), so an edit never
    // writes back a stale `enabled = 1` over an admin's disable that landed meanwhile; an LLM
    // can only ever write 0 (`control::may_set_enabled` refused anything else above, and a
    // `true` that was already true is no change).
    let enabled = match changes.enabled {
        Some(true) if by == crate::control::Principal::Llm => None,
        Some(enabled) => Some(i64::from(enabled)),
        None => None,
    };
    // An LLM's rename applies only if no version became approved or pending meanwhile (the
    // check above read before this transaction).
    let llm_rename = renamed && by == crate::control::Principal::Llm;
    // And a rename applies only if the public name fits under the server's name as it is now.
    let row = sqlx::query(&format!(
        "UPDATE tools SET name = COALESCE($1, name), enabled = COALESCE($2, enabled), timeout_ms = $3, current_version = $4, updated_at = $5 \
         WHERE id = $6 AND ($7 = 0 OR NOT EXISTS (SELECT 1 FROM tool_versions v WHERE v.tool_id = $6 \
           AND v.status IN ('approved', 'pending_review'))) \
           AND (SELECT length(s.name) FROM servers s WHERE s.id = tools.server_id) \
             + 2 + length(COALESCE(CAST($1 AS TEXT), tools.name)) <= {max} \
         RETURNING {TOOL_COLUMNS}",
        max = crate::names::PUBLIC_NAME_MAX
    ))
    .bind(changes.name.as_ref().map(Name::as_str))
    .bind(enabled)
    .bind(changes.timeout_ms.unwrap_or(tool.timeout_ms))
    .bind(new_version.as_ref().map(|v| v.version).unwrap_or(tool.current_version))
    .bind(db::now())
    .bind(tool_id)
    .bind(i64::from(llm_rename))
    .fetch_optional(&mut *tx)
    .await
    .on_conflict(|| format!("the server already has a tool named {name:?}"))?;
    let Some(row) = row else {
        // Dropping the transaction undoes the new version too.
        drop(tx);
        crate::control::may_rename(by, true)?;
        if renamed {
            let server = crate::servers::get(&state.db, &tool.server_id).await?;
            crate::names::fits(&server.name, &name)?;
        }
        return Err(Error::NotFound("no tool with that id".into()));
    };
    tx.commit().await?;
    let new_version = match new_version {
        Some(version) => Some(
            crate::approvals::auto_approve(
                state,
                tool_id,
                version.version,
                audit.request_id.clone(),
            )
            .await?
            .unwrap_or(version),
        ),
        None => None,
    };
    let tool = Tool::from_row(&row)?;
    let message = match &new_version {
        Some(version) => format!(
            "tool {} changed: version {} ({})",
            tool.name, version.version, version.status
        ),
        None => format!("tool {} settings changed", tool.name),
    };
    let event = NewEvent::info("tool.update", message)
        .server(&tool.server_id)
        .tool(&tool.id)
        .details(serde_json::json!({"version": new_version.as_ref().map(|v| v.version), "enabled": tool.enabled}));
    activity::record_now(state, audit, event).await?;
    Ok((tool, new_version))
}

pub async fn delete(state: &AppState, tool_id: &str, audit: &Audit) -> Result<()> {
    let tool = get(&state.db, tool_id).await?;
    sqlx::query("DELETE FROM tools WHERE id = $1")
        .bind(tool_id)
        .execute(&state.db.pool)
        .await?;
    let event = NewEvent::warning(
        "tool.delete",
        format!("tool {} deleted with its versions", tool.name),
    )
    .server(&tool.server_id);
    activity::record_now(state, audit, event).await
}

/// Restores an earlier version's code and description as a new draft version: rolling back
/// never skips review.
pub async fn rollback(state: &AppState, tool_id: &str, to: i64, audit: &Audit) -> Result<Version> {
    let tool = get(&state.db, tool_id).await?;
    if to >= tool.current_version {
        return Err(Error::Validation(format!(
            "can only roll back to an earlier version (the newest is {})",
            tool.current_version
        )));
    }
    let target = version(&state.db, tool_id, to).await?;
    let valid = match tool.kind {
        Kind::Python => validate(state, &tool.server_id, &target.python_code)
            .await?
            .annotated(target.annotations.clone()),
        Kind::Passthrough | Kind::Prompt | Kind::Resource => ValidCode::again(&target),
    };
    let mut tx = state.db.pool.begin().await?;
    let number = tool.current_version + 1;
    let summary = format!("Rollback to version {to}");
    let version = insert_version(
        &mut tx,
        tool_id,
        number,
        &target.description,
        &valid,
        Source::Rollback,
        &summary,
        &audit.actor,
    )
    .await?;
    sqlx::query("UPDATE tools SET current_version = $1, updated_at = $2 WHERE id = $3")
        .bind(number)
        .bind(db::now())
        .bind(tool_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let version =
        crate::approvals::auto_approve(state, tool_id, version.version, audit.request_id.clone())
            .await?
            .unwrap_or(version);
    let event = NewEvent::info(
        "tool.rollback",
        format!(
            "tool {} rolled back to version {to} as version {}",
            tool.name, version.version
        ),
    )
    .server(&tool.server_id)
    .tool(tool_id);
    activity::record_now(state, audit, event).await?;
    Ok(version)
}

/// A unified diff between two versions' code, followed by one of what they declare besides it
/// (annotations, output schema: `meta::reviewed_text`) when that differs, so a reviewer sees
/// every change the approval binds.
pub async fn diff(db: &Db, tool_id: &str, from: i64, to: i64) -> Result<String> {
    let old = version(db, tool_id, from).await?;
    let new = version(db, tool_id, to).await?;
    let mut diff = similar::TextDiff::from_lines(&old.python_code, &new.python_code)
        .unified_diff()
        .context_radius(3)
        .header(&format!("version {from}"), &format!("version {to}"))
        .to_string();
    let declared =
        |v: &Version| meta::reviewed_text(v.annotations.as_deref(), v.output_schema.as_deref());
    let (old_declared, new_declared) = (declared(&old), declared(&new));
    if old_declared != new_declared {
        diff.push_str(
            &similar::TextDiff::from_lines(&old_declared, &new_declared)
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("version {from} (annotations, output schema)"),
                    &format!("version {to} (annotations, output schema)"),
                )
                .to_string(),
        );
    }
    Ok(diff)
}

/// What may run: built only by `runnable`, after every call-time check passed.
#[derive(Debug, Clone)]
pub struct Approved {
    pub tool_id: String,
    pub server_id: String,
    pub public_name: String,
    /// The server's and the tool's names (metrics labels).
    pub server_name: String,
    pub tool_name: String,
    pub kind: Kind,
    pub version: i64,
    /// Python code, or a passthrough tool's binding.
    pub code: String,
    pub timeout_ms: i64,
    /// The output schema the result is checked against (`structured`), if the version has one.
    pub output_schema: Option<String>,
}

/// Why code is about to run, which decides what the call-time check requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A client's call: the newest approved version, the server running and the tool enabled.
    Call,
    /// A test run, as `control::test_purpose` decides it for who asks.
    Test {
        /// The server must be running and the tool enabled, as for a call (an LLM's test run:
        /// an admin's stop or disable holds for test runs too). A person may try a stopped
        /// server or a disabled tool before going live.
        live_only: bool,
        /// The newest version runs even if it is not approved: only under the policy's
        /// `tool_approval_mode = auto_approve`. Otherwise approval and the hash are required.
        newest: bool,
    },
}

impl Purpose {
    fn live_only(self) -> bool {
        match self {
            Purpose::Call => true,
            Purpose::Test { live_only, .. } => live_only,
        }
    }

    fn newest(self) -> bool {
        matches!(self, Purpose::Test { newest: true, .. })
    }
}

/// The call-time check: the tool exists, it has an approved version, that version's code (and
/// annotations and output schema) still match the hash recorded with it, and (for calls) the tool is enabled and its server running.
pub async fn runnable(db: &Db, tool_id: &str) -> Result<Approved> {
    runnable_for(db, tool_id, Purpose::Call).await
}

pub async fn runnable_for(db: &Db, tool_id: &str, purpose: Purpose) -> Result<Approved> {
    let row = sqlx::query(
        "SELECT t.id, t.server_id, t.name, t.kind, t.enabled, t.timeout_ms, s.name AS server_name, s.status, \
         s.default_timeout_ms, v.version, v.python_code, v.code_hash, v.annotations, v.output_schema \
         FROM tools t JOIN servers s ON s.id = t.server_id \
         LEFT JOIN tool_versions v ON v.tool_id = t.id AND v.version = \
           (SELECT MAX(version) FROM tool_versions a WHERE a.tool_id = t.id AND (a.status = 'approved' OR $2)) \
         WHERE t.id = $1",
    )
    .bind(tool_id)
    .bind(purpose.newest())
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound("no tool with that id".into()))?;
    let name: String = row.try_get("name")?;
    let server_name: String = row.try_get("server_name")?;
    if purpose.live_only() {
        if row.try_get::<String, _>("status")? != "running" {
            return Err(Error::Conflict(format!(
                "the server {server_name:?} is not running"
            )));
        }
        if row.try_get::<i64, _>("enabled")? == 0 {
            return Err(Error::Conflict(format!("the tool {name:?} is disabled")));
        }
    }
    let Some(version) = row.try_get::<Option<i64>, _>("version")? else {
        return Err(Error::Conflict(format!(
            "the tool {name:?} has no approved version"
        )));
    };
    let code: String = row.try_get("python_code")?;
    let stored_hash: String = row.try_get("code_hash")?;
    let annotations: Option<String> = row.try_get("annotations")?;
    let output_schema: Option<String> = row.try_get("output_schema")?;
    // The hash covers the annotations and output schema too (when set): neither can change
    // under an approval.
    if version_hash(&code, annotations.as_deref(), output_schema.as_deref()) != stored_hash {
        tracing::error!(
            tool_id,
            version,
            "approved code does not match its hash; refusing to run it"
        );
        return Err(Error::Conflict(
            "the approved code was changed outside MCPbox; it will not run".into(),
        ));
    }
    let timeout_ms = row
        .try_get::<Option<i64>, _>("timeout_ms")?
        .unwrap_or(row.try_get::<i64, _>("default_timeout_ms")?);
    Ok(Approved {
        tool_id: row.try_get("id")?,
        server_id: row.try_get("server_id")?,
        public_name: names::public_name(&server_name, &name),
        server_name,
        tool_name: name,
        kind: Kind::parse(&row.try_get::<String, _>("kind")?)?,
        version,
        code,
        timeout_ms,
        output_schema,
    })
}
