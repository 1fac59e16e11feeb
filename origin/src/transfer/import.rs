//! Importing an export file: checked whole before anything is written (size, caps, version,
//! signature), then one transaction per server.
//!
//! Nothing in a file is trusted to be reviewed: every tool arrives as a new version pending
//! review (never approved, not even under the auto-approve policy), every module and network
//! request as pending, whatever status, reviewer or requester the file names. The code is
//! checked by the sandbox like any new version (static check, `main`, the input schema derived
//! from it; the file's schema is ignored), against the allowed modules plus those the file
//! requests (still pending: at call time only approved ones count).
//!
//! All-or-nothing per server: a server whose name, tools or code are not acceptable is not
//! imported at all and is reported as an error; the other servers are. A name that is taken
//! gets the suffix `_imported` (the reference's " (imported)" in our name rules); if that is
//! taken too the server is skipped with an error. Names that do not follow our rules are
//! rewritten into them (lower case, `_` between words) with a warning.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::format::{self, ExportFile, ModuleEntry, NetworkEntry, ServerEntry, SigningKey};
use super::{MAX_REQUESTS, MAX_SERVERS, MAX_TOOLS};
use crate::access::{self, Kind};
use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::db;
use crate::error::{Error, Result};
use crate::names::{self, Name};

/// Sandbox validations in flight at once during an import.
const VALIDATE_CONCURRENCY: usize = 4;
const SUFFIX: &str = "_imported";
const JUSTIFICATION_MAX: usize = 2000;

/// What an import did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[schema(as = transfer::ImportReport)]
pub struct Report {
    /// No errors: every server in the file was imported.
    pub success: bool,
    pub servers_created: usize,
    pub tools_created: usize,
    pub module_requests_created: usize,
    pub network_access_requests_created: usize,
    pub secrets_declared: usize,
    pub servers: Vec<ServerReport>,
    /// Servers imported under another name because theirs was taken.
    pub clashes: Vec<Clash>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = transfer::ServerReport)]
pub struct ServerReport {
    /// The name in the file.
    pub name: String,
    /// The name it has here; None when it was not imported.
    pub imported_as: Option<String>,
    pub server_id: Option<String>,
    pub tools: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = transfer::Clash)]
pub struct Clash {
    pub name: String,
    pub imported_as: String,
}

/// Parses a file (already within `MAX_FILE_BYTES`).
pub fn parse(bytes: &[u8]) -> Result<ExportFile> {
    serde_json::from_slice(bytes)
        .map_err(|err| Error::BadRequest(format!("the file is not an MCPbox export: {err}")))
}

/// Every check that needs no database: version, caps, signature. Refused files change nothing.
pub fn check(state: &AppState, file: &ExportFile, source_key: Option<&str>) -> Result<()> {
    if !format::VERSIONS.contains(&file.version.as_str()) {
        return Err(Error::BadRequest(format!(
            "export version {:?} is not supported (versions {} are)",
            file.version,
            format::VERSIONS.join(", ")
        )));
    }
    let tools: usize = file.servers.iter().map(|s| s.tools.len()).sum();
    let requests: usize = file.admin_module_requests.len()
        + file
            .servers
            .iter()
            .map(|s| {
                s.admin_network_requests.len()
                    + s.admin_module_requests.len()
                    + s.allowed_hosts.len()
                    + s.secrets.len()
                    + s.tools
                        .iter()
                        .map(|t| t.module_requests.len() + t.network_access_requests.len())
                        .sum::<usize>()
            })
            .sum::<usize>();
    if file.servers.len() > MAX_SERVERS {
        return Err(Error::Validation(format!(
            "the file has {} servers; at most {MAX_SERVERS} are imported at once",
            file.servers.len()
        )));
    }
    if tools > MAX_TOOLS {
        return Err(Error::Validation(format!(
            "the file has {tools} tools; at most {MAX_TOOLS} are imported at once"
        )));
    }
    if requests > MAX_REQUESTS {
        return Err(Error::Validation(format!(
            "the file has {requests} requests, hosts and secrets; at most {MAX_REQUESTS} are imported at once"
        )));
    }
    let Some(signature) = file.signature.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Err(Error::BadRequest(
            "the file is not signed; only signed exports are imported".into(),
        ));
    };
    let verified = match source_key {
        Some(key) => format::verify(file, signature, &SigningKey::Reference(key)),
        None => {
            let current = state.keys.derive(super::SIGNING_PURPOSE);
            format::verify(file, signature, &SigningKey::Derived(current))
                || state
                    .keys
                    .derive_previous(super::SIGNING_PURPOSE)
                    .is_some_and(|key| format::verify(file, signature, &SigningKey::Derived(key)))
        }
    };
    if !verified {
        let hint = match source_key {
            Some(_) => {
                "the file was changed after it was signed, or the source key is not the one that signed it"
            }
            None => {
                "the file was changed after it was signed, or it comes from another installation (for an export of the reference system, give its encryption key as the source key)"
            }
        };
        return Err(Error::BadRequest(format!(
            "the signature does not match: {hint}"
        )));
    }
    Ok(())
}

/// Imports a checked file (`check` first), one transaction per server.
pub async fn import(state: &AppState, audit: &Audit, file: &ExportFile) -> Result<Report> {
    let mut report = Report::default();
    if !file.admin_module_requests.is_empty() {
        let names: Vec<&str> = file
            .admin_module_requests
            .iter()
            .map(|m| m.module_name.as_str())
            .collect();
        report.warnings.push(format!(
            "{} global module requests were not imported ({}): here the modules every server \
             may import are a setting; add them in Settings if you want them",
            names.len(),
            names.join(", ")
        ));
    }
    let (global_modules, _) = crate::settings::global_modules(&state.db).await?;
    for entry in &file.servers {
        let outcome = match prepare(
            state,
            entry,
            &file.version,
            &global_modules,
            &mut report.warnings,
        )
        .await
        {
            Ok(prepared) => write(state, audit, &prepared, &mut report).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(server) => report.servers.push(server),
            Err(err) => {
                report.errors.push(format!(
                    "server {:?} was not imported (nothing of it was written): {}",
                    entry.name,
                    err.public_message()
                ));
                report.servers.push(ServerReport {
                    name: entry.name.clone(),
                    imported_as: None,
                    server_id: None,
                    tools: 0,
                });
            }
        }
    }
    report.success = report.errors.is_empty();
    let event = NewEvent::info(
        "import",
        format!(
            "import: {} servers, {} tools (pending review), {} errors",
            report.servers_created,
            report.tools_created,
            report.errors.len()
        ),
    )
    .details(serde_json::json!({
        "version": file.version,
        "exported_at": file.exported_at,
        "servers_created": report.servers_created,
        "tools_created": report.tools_created,
        "module_requests_created": report.module_requests_created,
        "network_access_requests_created": report.network_access_requests_created,
        "errors": report.errors.len(),
    }));
    activity::record_now(state, audit, event).await?;
    Ok(report)
}

struct Prepared {
    /// The name in the file.
    original: String,
    name: Name,
    description: String,
    default_timeout_ms: i64,
    tools: Vec<PreparedTool>,
    /// The server's own requests (no tool).
    requests: Vec<Request>,
    secrets: Vec<(String, String)>,
}

struct PreparedTool {
    name: Name,
    description: String,
    enabled: bool,
    timeout_ms: Option<i64>,
    code: String,
    input_schema: String,
    /// Derived again from the code, like the input schema (`tools::meta`).
    output_schema: Option<String>,
    requests: Vec<Request>,
}

struct Request {
    kind: Kind,
    target: String,
    port: Option<i64>,
    /// `public`, or `lan` (network requests of a LAN host).
    scope: &'static str,
    justification: String,
}

/// Checks one server of the file and validates its code; writes nothing.
async fn prepare(
    state: &AppState,
    entry: &ServerEntry,
    version: &str,
    global_modules: &[String],
    warnings: &mut Vec<String>,
) -> Result<Prepared> {
    let name = rewritten_name(&entry.name, names::SERVER_NAME_MAX, "server", warnings);
    let name = Name::server(&name)?;
    let description = entry.description.clone().unwrap_or_default();
    crate::servers::check_description(&description)?;
    crate::servers::check_timeout(entry.default_timeout_ms)?;
    let requests = server_requests(entry, version, warnings);
    let server_modules: Vec<String> = requests
        .iter()
        .filter(|r| r.kind == Kind::Module)
        .map(|r| r.target.clone())
        .collect();

    let mut tools = Vec::new();
    let mut seen = HashSet::new();
    let mut pending = Vec::new();
    for tool in &entry.tools {
        let Some(code) = tool.python_code.as_deref().filter(|c| !c.trim().is_empty()) else {
            warnings.push(format!(
                "tool {:?} of server {:?} was skipped: it has no Python code (an external MCP tool; import it from its source again)",
                tool.name, entry.name
            ));
            continue;
        };
        let tool_name = rewritten_name(
            &tool.name,
            names::tool_name_max(name.as_str()),
            &format!("tool of server {:?}", entry.name),
            warnings,
        );
        let tool_name = Name::tool(&tool_name)?;
        if !seen.insert(tool_name.as_str().to_owned()) {
            return Err(Error::Validation(format!(
                "two tools are named {:?}",
                tool_name.as_str()
            )));
        }
        let description = tool.description.clone().unwrap_or_default();
        crate::servers::check_description(&description).map_err(|err| in_tool(&tool.name, err))?;
        if let Some(timeout) = tool.timeout_ms {
            crate::servers::check_timeout(timeout).map_err(|err| in_tool(&tool.name, err))?;
        }
        let label = format!("tool {:?} of server {:?}", tool.name, entry.name);
        let mut requests: Vec<Request> = Vec::new();
        for module in &tool.module_requests {
            requests.extend(module_request(module, &label, warnings));
        }
        for network in &tool.network_access_requests {
            requests.extend(network_request(network, &label, warnings));
        }
        let mut allowed: BTreeSet<String> = global_modules.iter().cloned().collect();
        allowed.extend(server_modules.iter().cloned());
        allowed.extend(
            requests
                .iter()
                .filter(|r| r.kind == Kind::Module)
                .map(|r| r.target.clone()),
        );
        pending.push((
            tool.name.clone(),
            code.to_owned(),
            allowed.into_iter().collect::<Vec<_>>(),
        ));
        tools.push(PreparedTool {
            name: tool_name,
            description,
            enabled: tool.enabled,
            timeout_ms: tool.timeout_ms,
            code: code.to_owned(),
            input_schema: String::new(),
            output_schema: None,
            requests,
        });
    }
    let checked = validate_all(state, pending).await?;
    for (tool, (schema, docstring, output_schema)) in tools.iter_mut().zip(checked) {
        tool.input_schema = schema;
        tool.output_schema = output_schema;
        if tool.description.trim().is_empty() {
            tool.description = docstring;
        }
    }
    let mut secrets = Vec::new();
    for secret in &entry.secrets {
        match crate::secrets::check_key(&secret.key)
            .and_then(|()| crate::servers::check_description(&secret.description))
        {
            Ok(()) => secrets.push((secret.key.clone(), secret.description.clone())),
            Err(err) => warnings.push(format!(
                "secret {:?} of server {:?} was skipped: {}",
                secret.key,
                entry.name,
                err.public_message()
            )),
        }
    }
    Ok(Prepared {
        original: entry.name.clone(),
        name,
        description,
        default_timeout_ms: entry.default_timeout_ms,
        tools,
        requests,
        secrets,
    })
}

fn in_tool(tool: &str, err: Error) -> Error {
    Error::Validation(format!("tool {tool:?}: {}", err.public_message()))
}

/// The server's own requests: admin module (extension) and network requests (1.2), or for 1.0
/// and 1.1 files its `allowed_hosts` that no tool request covers (the reference made admin rows
/// of them).
fn server_requests(entry: &ServerEntry, version: &str, warnings: &mut Vec<String>) -> Vec<Request> {
    let label = format!("server {:?}", entry.name);
    let mut requests: Vec<Request> = Vec::new();
    for module in &entry.admin_module_requests {
        requests.extend(module_request(module, &label, warnings));
    }
    if version == "1.2" {
        for network in &entry.admin_network_requests {
            requests.extend(network_request(network, &label, warnings));
        }
    } else {
        let from_tools: HashSet<&str> = entry
            .tools
            .iter()
            .flat_map(|t| t.network_access_requests.iter().map(|n| n.host.as_str()))
            .collect();
        for host in &entry.allowed_hosts {
            if from_tools.contains(host.as_str()) {
                continue;
            }
            let (name, port) = split_host_port(host);
            let network = NetworkEntry {
                host: name.to_owned(),
                port,
                justification: "Allowed in the exported system (an older export's allowed_hosts)"
                    .into(),
                status: "pending".into(),
                requested_by: None,
                reviewed_by: None,
                rejection_reason: None,
                scope: None,
            };
            requests.extend(network_request(&network, &label, warnings));
        }
    }
    requests
}

/// `host`, `host:port` or `[v6]:port`.
fn split_host_port(text: &str) -> (&str, Option<i64>) {
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (text, None),
        },
        _ => (text, None),
    }
}

fn justification(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        "Imported without a justification".to_owned()
    } else {
        text.chars().take(JUSTIFICATION_MAX).collect()
    }
}

/// A module request as it will be stored (pending), or a warning why it is left out.
fn module_request(entry: &ModuleEntry, label: &str, warnings: &mut Vec<String>) -> Option<Request> {
    match access::check_module(&entry.module_name) {
        Ok(()) => Some(Request {
            kind: Kind::Module,
            target: entry.module_name.clone(),
            port: None,
            scope: "public",
            justification: justification(&entry.justification),
        }),
        Err(err) => {
            warnings.push(format!(
                "a module request of {label} was skipped: {}",
                err.public_message()
            ));
            None
        }
    }
}

fn network_request(
    entry: &NetworkEntry,
    label: &str,
    warnings: &mut Vec<String>,
) -> Option<Request> {
    // A LAN host goes through the LAN rule (a port, a private address or a name; never
    // loopback or metadata); anything else stays a public host, as in the reference's files.
    let checked = match entry.scope.as_deref() {
        Some("lan") => access::network_target(&entry.host, entry.port, Some(true))
            .map(|target| (target.host, target.port, "lan")),
        None | Some("public") => access::normalise_host(&entry.host)
            .and_then(|host| access::check_port(entry.port).map(|()| (host, entry.port, "public"))),
        Some(_) => Err(crate::error::Error::Validation(
            "its scope is neither public nor lan".into(),
        )),
    };
    match checked {
        Ok((host, port, scope)) => Some(Request {
            kind: Kind::Network,
            target: host,
            port,
            scope,
            justification: justification(&entry.justification),
        }),
        Err(err) => {
            warnings.push(format!(
                "a network request of {label} was skipped: {}",
                err.public_message()
            ));
            None
        }
    }
}

/// A name in our rules: lower case, words of letters and digits joined by single `_`, starting
/// with a letter, at most `max` characters. Warns when it differs from the file's.
fn rewritten_name(text: &str, max: usize, what: &str, warnings: &mut Vec<String>) -> String {
    let mut name = String::new();
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "n_");
    }
    name.truncate(max);
    let name = name.trim_end_matches('_').to_owned();
    if name != text {
        warnings.push(format!(
            "{what} {text:?} is named {name:?} here (our name rules)"
        ));
    }
    name
}

/// Validates every tool's code in the sandbox, a few at a time, in order: (schema, docstring).
async fn validate_all(
    state: &AppState,
    pending: Vec<(String, String, Vec<String>)>,
) -> Result<Vec<(String, String, Option<String>)>> {
    let mut results: Vec<Option<(String, String, Option<String>)>> = vec![None; pending.len()];
    let mut set = tokio::task::JoinSet::new();
    let mut queue = pending.into_iter().enumerate();
    loop {
        while set.len() < VALIDATE_CONCURRENCY {
            let Some((index, (name, code, allowed))) = queue.next() else {
                break;
            };
            let state = state.clone();
            set.spawn(async move {
                let checked = crate::tools::check_code(&state.sandbox, &code, Some(allowed)).await;
                (index, name, checked)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (index, name, checked) = joined.map_err(|e| Error::Internal(e.into()))?;
        let checked = checked.map_err(|err| in_tool(&name, err))?;
        if !checked.valid {
            let errors: Vec<String> = checked
                .errors
                .iter()
                .map(|e| format!("line {}: {}", e.line, e.message))
                .collect();
            return Err(Error::Validation(format!(
                "tool {name:?}: the code is not valid: {}",
                errors.join("; ")
            )));
        }
        results[index] = Some((
            checked
                .input_schema
                .unwrap_or_else(|| r#"{"type":"object","properties":{}}"#.to_owned()),
            checked
                .description
                .unwrap_or_default()
                .trim()
                .chars()
                .take(crate::servers::DESCRIPTION_MAX)
                .collect(),
            checked.output_schema,
        ));
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Internal(anyhow::anyhow!("a validation went missing"))))
        .collect()
}

/// Writes one prepared server in one transaction, with its activity row.
async fn write(
    state: &AppState,
    audit: &Audit,
    prepared: &Prepared,
    report: &mut Report,
) -> Result<ServerReport> {
    let mut tx = state.db.pool.begin().await?;
    let now = db::now();
    let mut name = prepared.name.as_str().to_owned();
    let mut server_id = insert_server(&mut tx, prepared, &name, &audit.actor, &now).await?;
    if server_id.is_none() {
        let base: String = name
            .chars()
            .take(names::SERVER_NAME_MAX - SUFFIX.len())
            .collect();
        let renamed = format!("{}{SUFFIX}", base.trim_end_matches('_'));
        server_id = insert_server(&mut tx, prepared, &renamed, &audit.actor, &now).await?;
        if server_id.is_none() {
            return Err(Error::Conflict(format!(
                "both {name:?} and {renamed:?} are taken by existing servers"
            )));
        }
        report.clashes.push(Clash {
            name: prepared.original.clone(),
            imported_as: renamed.clone(),
        });
        name = renamed;
    }
    let server_id = server_id.unwrap_or_default();
    let mut counts = Counts::default();
    for tool in &prepared.tools {
        let tool_id = db::new_id();
        sqlx::query(
            "INSERT INTO tools (id, server_id, name, kind, external_source_id, enabled, timeout_ms, current_version, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, 'python', NULL, $4, $5, 1, $6, $7, $7)",
        )
        .bind(&tool_id)
        .bind(&server_id)
        .bind(tool.name.as_str())
        .bind(i64::from(tool.enabled))
        .bind(tool.timeout_ms)
        .bind(&audit.actor)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        // Version 1, pending review: in the approval queue, never approved by the import.
        sqlx::query(
            "INSERT INTO tool_versions (id, tool_id, version, description, python_code, code_hash, input_schema, \
             change_source, change_summary, created_by, created_at, status, publish_notes, requested_at, output_schema) \
             VALUES ($1, $2, 1, $3, $4, $5, $6, 'import', $7, $8, $9, 'pending_review', $10, $9, $11)",
        )
        .bind(db::new_id())
        .bind(&tool_id)
        .bind(&tool.description)
        .bind(&tool.code)
        // Annotations are not in the export format (yet): an imported version has none.
        .bind(crate::tools::version_hash(
            &tool.code,
            None,
            tool.output_schema.as_deref(),
        ))
        .bind(&tool.input_schema)
        .bind("Imported from an export file")
        .bind(&audit.actor)
        .bind(&now)
        .bind("Imported: review the code before it runs")
        .bind(&tool.output_schema)
        .execute(&mut *tx)
        .await?;
        counts.tools += 1;
        for request in &tool.requests {
            insert_request(
                &mut tx,
                &server_id,
                Some(&tool_id),
                request,
                &now,
                &mut counts,
            )
            .await?;
        }
    }
    for request in &prepared.requests {
        insert_request(&mut tx, &server_id, None, request, &now, &mut counts).await?;
    }
    for (key, description) in &prepared.secrets {
        let inserted = sqlx::query(
            "INSERT INTO server_secrets (id, server_id, key, description, encrypted_value, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, NULL, $5, $5) ON CONFLICT DO NOTHING",
        )
        .bind(db::new_id())
        .bind(&server_id)
        .bind(key)
        .bind(description)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        counts.secrets += inserted.rows_affected() as usize;
    }
    let event = NewEvent::info(
        "server.import",
        format!(
            "server {name} imported with {} tools pending review",
            counts.tools
        ),
    )
    .server(&server_id)
    .details(serde_json::json!({
        "name_in_file": prepared.original,
        "tools": counts.tools,
        "module_requests": counts.modules,
        "network_access_requests": counts.networks,
        "secrets": counts.secrets,
    }));
    let recorded = activity::record(&mut *tx, audit, event).await?;
    tx.commit().await?;
    state.activity.publish(recorded);
    if !prepared.secrets.is_empty() {
        report.warnings.push(format!(
            "server {name} needs values for its secrets: {}",
            prepared
                .secrets
                .iter()
                .map(|(key, _)| key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    report.servers_created += 1;
    report.tools_created += counts.tools;
    report.module_requests_created += counts.modules;
    report.network_access_requests_created += counts.networks;
    report.secrets_declared += counts.secrets;
    Ok(ServerReport {
        name: prepared.original.clone(),
        imported_as: Some(name),
        server_id: Some(server_id),
        tools: counts.tools,
    })
}

#[derive(Default)]
struct Counts {
    tools: usize,
    modules: usize,
    networks: usize,
    secrets: usize,
}

/// The server row, or None when the name is taken (the database decides, without aborting the
/// transaction).
async fn insert_server(
    conn: &mut AnyConnection,
    prepared: &Prepared,
    name: &str,
    actor: &str,
    now: &str,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "INSERT INTO servers (id, name, description, status, default_timeout_ms, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, 'stopped', $4, $5, $6, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(db::new_id())
    .bind(name)
    .bind(&prepared.description)
    .bind(prepared.default_timeout_ms)
    .bind(actor)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| row.try_get("id"))
        .transpose()
        .map_err(Into::into)
}

/// A pending request; a duplicate of one already pending is skipped by the database.
async fn insert_request(
    conn: &mut AnyConnection,
    server_id: &str,
    tool_id: Option<&str>,
    request: &Request,
    now: &str,
    counts: &mut Counts,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO access_requests (id, kind, server_id, tool_id, target, port, justification, requested_by, status, created_at, updated_at, scope) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'import', 'pending', $8, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(db::new_id())
    .bind(request.kind.as_str())
    .bind(server_id)
    .bind(tool_id)
    .bind(&request.target)
    .bind(request.port)
    .bind(&request.justification)
    .bind(now)
    .bind(request.scope)
    .execute(&mut *conn)
    .await?;
    let n = inserted.rows_affected() as usize;
    match request.kind {
        Kind::Module => counts.modules += n,
        Kind::Network => counts.networks += n,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_rewritten_into_our_rules() {
        let mut warnings = Vec::new();
        assert_eq!(
            rewritten_name("weather", 30, "server", &mut warnings),
            "weather"
        );
        assert!(warnings.is_empty());
        assert_eq!(
            rewritten_name("My Weather Tools!", 30, "server", &mut warnings),
            "my_weather_tools"
        );
        assert_eq!(
            rewritten_name("2fa-codes", 30, "server", &mut warnings),
            "n_2fa_codes"
        );
        assert_eq!(
            rewritten_name("Ünïcode__x", 30, "server", &mut warnings),
            "n_code_x"
        );
        assert_eq!(
            rewritten_name(&"a_".repeat(40), 30, "server", &mut warnings).len(),
            29
        );
        assert_eq!(warnings.len(), 4);
    }

    #[test]
    fn hosts_split_like_allowed_hosts_shows_them() {
        assert_eq!(
            split_host_port("api.example.com"),
            ("api.example.com", None)
        );
        assert_eq!(
            split_host_port("api.example.com:8443"),
            ("api.example.com", Some(8443))
        );
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }
}
