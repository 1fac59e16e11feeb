//! A server's secrets: which exist and whether each has a value (never the value), and
//! declaring one for an admin to fill in.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool};
use crate::error::Result;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListServerSecrets {
    server_id: String,
}

impl ManagementTool for ListServerSecrets {
    const NAME: &'static str = "mcpbox_list_server_secrets";
    const DESCRIPTION: &'static str =
        "The secret keys of a server and whether each has a value (values are never shown).";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let server = crate::servers::get(&cx.state.db, &self.server_id).await?;
        let secrets: Vec<Value> = crate::secrets::list(&cx.state.db, &server.id)
            .await?
            .into_iter()
            .map(|p| json!({"key": p.key, "description": p.description, "has_value": p.has_value}))
            .collect();
        Ok(json!({"server_id": server.id, "secrets": secrets}))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CreateServerSecret {
    server_id: String,
    key: String,
    description: Option<String>,
}

impl ManagementTool for CreateServerSecret {
    const NAME: &'static str = "mcpbox_create_server_secret";
    const DESCRIPTION: &'static str = "Declare a secret a server's tools need (an admin sets its value; tools read it as secrets[KEY]).";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let description = self.description.as_deref().unwrap_or_default();
        crate::secrets::create_placeholder_recorded(
            cx.state,
            &self.server_id,
            &self.key,
            description,
            cx.audit,
        )
        .await?;
        Ok(
            json!({"server_id": self.server_id, "key": self.key, "has_value": false,
                  "next_step": "an admin sets the value in MCPbox; tools read it as secrets[KEY]"}),
        )
    }
}
