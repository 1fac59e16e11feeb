//! A tool's execution logs, scoped to what the caller may read.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool, body_json};
use crate::error::Result;
use crate::execution::{self, LogBody, LogFilter};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct GetToolLogs {
    tool_id: String,
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 50))]
    limit: i64,
}

fn default_limit() -> i64 {
    10
}

impl ManagementTool for GetToolLogs {
    const NAME: &'static str = "mcpbox_get_tool_logs";
    const DESCRIPTION: &'static str = "The newest execution logs of a tool (arguments redacted).";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let tool = crate::tools::get(&cx.state.db, &self.tool_id).await?;
        let filter = LogFilter {
            tool_id: Some(tool.id),
            // A remote caller reads only its own calls; the local LLM (this machine's
            // trusted user) and admins (REST, UI) read every call.
            executed_by: cx.caller.log_scope(),
            ..Default::default()
        };
        let (rows, total) = execution::logs(&cx.state.db, &filter, self.limit, 0).await?;
        let logs: Vec<Value> = rows
            .into_iter()
            .map(|row| body_json(LogBody::from(row)))
            .collect();
        Ok(json!({"logs": logs, "total": total}))
    }
}
