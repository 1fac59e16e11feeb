//! The `mcpbox_*` management tools: how an LLM grows the toolbox over MCP. Each is one type, the
//! struct of its arguments: its input schema is derived from it (`schemars`), the arguments are
//! checked against that schema and read into it (`serde`), and its `run` is a thin call into the
//! same domain functions the REST API uses; results are JSON objects.
//!
//! All 28 of issue #5, the four external-source ones (add/list/discover/import) over `external`,
//! the six prompt and resource ones (`prompts`: list/create/update of each, over `prompts`),
//! and `mcpbox_call_tool` (`call_tool`), which the gateway answers itself. LOCAL_ONLY covers the
//! reference's whole list.

mod args;
mod call_tool;
mod external;
mod logs;
mod prompts;
mod requests;
mod secrets;
mod servers;
mod tools;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Caller;
use crate::activity::Audit;
use crate::app::AppState;
use crate::error::{Error, Result};

pub use call_tool::{CALL_TOOL, forwarded};

/// Every management tool's name begins with it (`names` keeps other tools out of it).
pub const PREFIX: &str = crate::names::MANAGEMENT_PREFIX;

/// Tools a remote caller (through the Worker) may use only when the policy's
/// `remote_tool_editing` is `enabled` (the reference's list).
pub const LOCAL_ONLY: [&str; 12] = [
    "mcpbox_create_server",
    "mcpbox_delete_server",
    "mcpbox_create_tool",
    "mcpbox_update_tool",
    "mcpbox_delete_tool",
    "mcpbox_rollback_tool",
    "mcpbox_add_external_source",
    "mcpbox_import_external_tools",
    "mcpbox_create_prompt",
    "mcpbox_update_prompt",
    "mcpbox_create_resource",
    "mcpbox_update_resource",
];

/// The largest page a listing tool returns.
const PAGE_SIZE_MAX: i64 = 100;

/// What a management tool runs with: who calls, and what its recorded changes are audited as.
struct Context<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    audit: &'a Audit,
}

/// One management tool: the struct of its arguments. Its schema is the struct's, so a parameter
/// cannot be listed one way and read another.
trait ManagementTool: DeserializeOwned + JsonSchema + Send {
    const NAME: &'static str;
    /// What the LLM reads: a contract, kept word for word (tests/management.rs holds it).
    const DESCRIPTION: &'static str;
    const READ_ONLY: bool;

    fn run(self, cx: &Context<'_>) -> impl Future<Output = Result<Value>> + Send;
}

type Running<'a> = Pin<Box<dyn Future<Output = Result<Value>> + Send + 'a>>;

/// A management tool as the registry holds it (the trait is not object-safe: its arguments
/// are a type).
struct Entry {
    name: &'static str,
    description: &'static str,
    read_only: bool,
    schema: fn() -> JsonObject,
    run: for<'a> fn(&'a Context<'a>, &'a JsonObject, &'a JsonObject) -> Running<'a>,
}

const fn entry<T: ManagementTool>() -> Entry {
    Entry {
        name: T::NAME,
        description: T::DESCRIPTION,
        read_only: T::READ_ONLY,
        schema: args::schema::<T>,
        run: run_erased::<T>,
    }
}

/// Runs `T` with `raw` read against `schema` (`T`'s, from `schemas`).
fn run_erased<'a, T: ManagementTool>(
    cx: &'a Context<'a>,
    schema: &'a JsonObject,
    raw: &'a JsonObject,
) -> Running<'a> {
    Box::pin(async move { args::parse::<T>(schema, raw)?.run(cx).await })
}

/// Every management tool, in the order `tools/list` shows them (LLM prompts rely on it).
static REGISTRY: [Entry; 34] = [
    entry::<servers::ListServers>(),
    entry::<servers::CreateServer>(),
    entry::<tools::ListTools>(),
    entry::<tools::CreateTool>(),
    entry::<servers::GetServer>(),
    entry::<tools::GetTool>(),
    entry::<tools::ListToolVersions>(),
    entry::<servers::StartServer>(),
    entry::<servers::StopServer>(),
    entry::<tools::TestCode>(),
    entry::<logs::GetToolLogs>(),
    entry::<secrets::ListServerSecrets>(),
    entry::<requests::RequestModule>(),
    entry::<requests::RequestNetworkAccess>(),
    entry::<servers::DeleteServer>(),
    entry::<tools::UpdateTool>(),
    entry::<tools::DeleteTool>(),
    entry::<tools::RollbackTool>(),
    entry::<tools::ValidateCode>(),
    entry::<servers::GetServerModules>(),
    entry::<requests::GetToolStatus>(),
    entry::<secrets::CreateServerSecret>(),
    entry::<requests::ListPendingRequests>(),
    entry::<requests::RequestPublish>(),
    entry::<external::AddExternalSource>(),
    entry::<external::ListExternalSources>(),
    entry::<external::DiscoverExternalTools>(),
    entry::<external::ImportExternalTools>(),
    entry::<prompts::ListPrompts>(),
    entry::<prompts::CreatePrompt>(),
    entry::<prompts::UpdatePrompt>(),
    entry::<prompts::ListResources>(),
    entry::<prompts::CreateResource>(),
    entry::<prompts::UpdateResource>(),
];

/// The registry's schemas, by index, derived once (every `tools/list` shows them).
fn schemas() -> &'static [Arc<JsonObject>] {
    static SCHEMAS: OnceLock<Vec<Arc<JsonObject>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        REGISTRY
            .iter()
            .map(|tool| Arc::new((tool.schema)()))
            .collect()
    })
}

/// The management tools as MCP lists them: the registry's, then `mcpbox_call_tool`.
pub fn tools() -> Vec<Tool> {
    let mut listed: Vec<Tool> = REGISTRY
        .iter()
        .zip(schemas())
        .map(|(tool, schema)| {
            Tool::new(tool.name, tool.description, schema.clone()).with_annotations(
                ToolAnnotations::new()
                    .read_only(tool.read_only)
                    .destructive(false)
                    .open_world(false),
            )
        })
        .collect();
    listed.push(call_tool::listed());
    listed
}

/// Runs management tool `name`. `Ok(None)`: no such management tool. `mcpbox_call_tool` is not
/// run here: the gateway turns it into the `tools/call` it names first (`forwarded`).
pub async fn call(
    state: &AppState,
    caller: &Caller,
    audit: &Audit,
    name: &str,
    args: &JsonObject,
) -> Result<Option<Value>> {
    if name == CALL_TOOL {
        return Err(Error::Validation(format!(
            "{CALL_TOOL} is answered by the MCP gateway's tools/call, not as a management tool"
        )));
    }
    let Some((tool, schema)) = REGISTRY
        .iter()
        .zip(schemas())
        .find(|(tool, _)| tool.name == name)
    else {
        return Ok(None);
    };
    if LOCAL_ONLY.contains(&name) && matches!(caller, Caller::Remote { .. }) {
        let policy = crate::settings::policy(&state.db).await?;
        if policy.remote_tool_editing != "enabled" {
            return Err(Error::Forbidden(
                "this tool is only available to local MCP clients: the security policy's \
                 remote_tool_editing is disabled",
            ));
        }
    }
    let cx = Context {
        state,
        caller,
        audit,
    };
    (tool.run)(&cx, schema, args).await.map(Some)
}

/// Answers reuse the REST bodies, so both fronts show the same fields.
fn body_json(body: impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// `body` with `key` added (when it is an object, as every REST body is).
fn with_field(mut body: Value, key: &str, value: impl Into<Value>) -> Value {
    if let Value::Object(fields) = &mut body {
        fields.insert(key.to_owned(), value.into());
    }
    body
}

fn access_json(request: crate::access::AccessRequest) -> Value {
    body_json(crate::access::RequestBody::from(request))
}

/// The page arguments of the listing tools.
#[derive(serde::Deserialize, JsonSchema)]
struct Paging {
    #[serde(default = "first_page")]
    #[schemars(range(min = 1))]
    page: i64,
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = PAGE_SIZE_MAX))]
    page_size: i64,
}

fn first_page() -> i64 {
    1
}

fn default_page_size() -> i64 {
    50
}

impl Paging {
    /// `(limit, offset)` (the bounds are checked against the schema before).
    fn limit_offset(&self) -> (i64, i64) {
        (self.page_size, (self.page - 1) * self.page_size)
    }
}
