//! `mcpbox_call_tool`: the fallback for clients that never refresh their tool list. It names a
//! tool by its public name and the gateway makes exactly that `tools/call` of it (`forwarded`),
//! so the call-time approval check, the log and the caller are the same as a direct call's.
//! Management tools are refused through it: it must not reach around LOCAL_ONLY, or itself.

use std::sync::{Arc, OnceLock};

use rmcp::model::{CallToolRequestParams, JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;

use super::{PREFIX, args};
use crate::error::{Error, Result};

pub const CALL_TOOL: &str = "mcpbox_call_tool";

const DESCRIPTION: &str = "Call one of the toolbox's tools by its name ({server}__{tool}) with \
     its arguments, exactly as calling it directly. For clients whose tool list is out of date: \
     a tool approved since the list was read can be called at once. Management tools (mcpbox_*) \
     are called directly, never through this.";

#[derive(Deserialize, schemars::JsonSchema)]
struct CallTool {
    name: String,
    arguments: Option<JsonObject>,
}

fn schema() -> &'static Arc<JsonObject> {
    static SCHEMA: OnceLock<Arc<JsonObject>> = OnceLock::new();
    SCHEMA.get_or_init(|| Arc::new(args::schema::<CallTool>()))
}

/// As `tools/list` shows it. Not read-only, destructive or not, open-world or not: whatever the
/// tool it calls is (tools carry no annotations, so MCP's defaults for a tool apply).
pub(super) fn listed() -> Tool {
    Tool::new(CALL_TOOL, DESCRIPTION, schema().clone()).with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .open_world(true),
    )
}

/// The `tools/call` the gateway makes of `request`: for `mcpbox_call_tool`, the call it names
/// (with the request's other fields, so progress and the rest behave as on a direct call);
/// any other request as it is. A management tool's name is refused.
pub fn forwarded(mut request: CallToolRequestParams) -> Result<CallToolRequestParams> {
    if request.name != CALL_TOOL {
        return Ok(request);
    }
    let call: CallTool = args::parse(schema(), &request.arguments.take().unwrap_or_default())?;
    if call.name.starts_with(PREFIX) {
        return Err(Error::Validation(format!(
            "{CALL_TOOL} calls the toolbox's tools ({{server}}__{{tool}}), not management \
             tools: call {:?} directly",
            call.name
        )));
    }
    request.name = call.name.into();
    request.arguments = call.arguments;
    Ok(request)
}
