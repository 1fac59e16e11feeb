//! Step 2: the tunnel and its connector token; its health for the tunnel page.

use serde_json::json;

use super::*;
use crate::activity::{Audit, NewEvent};
use crate::app::AppState;
use crate::cloudflare::Failure;
use crate::cloudflare::client::{CfError, Client, Tunnel};
use crate::cloudflare::store::{self, Step};

/// Step 2: the tunnel (remotely managed) and its connector token.
pub(super) async fn tunnel(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::Token).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_TUNNEL)?;
    let db = ctx.state.db.clone();
    let record = store::resource(&db, "tunnel").await?;
    let alive = match record.as_ref().and_then(|r| r.id.as_deref()) {
        Some(id) => exists::<Tunnel>(&client, &format!("/accounts/{a}/cfd_tunnel/{id}"))
            .await?
            .is_some_and(|t| t.deleted_at.is_none()),
        None => false,
    };
    let same_name = if alive {
        None
    } else {
        let query = [("name", name.clone()), ("is_deleted", "false".to_owned())];
        client
            .list::<Tunnel>(&format!("/accounts/{a}/cfd_tunnel"), &query)
            .await?
            .into_iter()
            .find(|t| t.name == name && t.deleted_at.is_none())
            .map(|t| t.id)
    };
    let id = match plan(
        "tunnel",
        record.as_ref(),
        alive,
        &name,
        same_name,
        request.replace,
    )? {
        Plan::Keep(id) => {
            ctx.say(format!("tunnel {name} exists ({id})")).await?;
            id
        }
        other => {
            if let Plan::Replace(old) = other {
                delete_tunnel(&client, &a, &old).await?;
                ctx.say(format!("deleted the other tunnel named {name} ({old})"))
                    .await?;
            }
            store::intend(&db, "tunnel", &name).await?;
            let created: Tunnel = client
                .post(
                    &format!("/accounts/{a}/cfd_tunnel"),
                    json!({"name": name, "config_src": "cloudflare"}),
                )
                .await?;
            store::record(&db, "tunnel", &name, &created.id, None).await?;
            if let Some(token) = &created.token {
                ctx.set_secret("tunnel_token", token).await?;
            }
            ctx.say(format!("tunnel {name} created ({})", created.id))
                .await?;
            created.id
        }
    };
    store::record(&db, "tunnel", &name, &id, None).await?;
    if ctx.secret("tunnel_token").await?.is_none() || request.replace {
        let token: String = client
            .get(&format!("/accounts/{a}/cfd_tunnel/{id}/token"))
            .await?;
        ctx.set_secret("tunnel_token", &token).await?;
    }
    ctx.say("connector token stored (Remote → Tunnel shows how to run cloudflared)")
        .await?;
    Ok(())
}

pub(super) async fn delete_tunnel(client: &Client, a: &str, id: &str) -> Result<(), CfError> {
    client
        .delete(&format!("/accounts/{a}/cfd_tunnel/{id}/connections"), &[])
        .await?;
    client
        .delete(&format!("/accounts/{a}/cfd_tunnel/{id}"), &[])
        .await
}

/// The tunnel's health and connections (for the tunnel page).
pub async fn tunnel_health(state: &AppState) -> Result<Option<Tunnel>, Failure> {
    let Some(id) = store::resource(&state.db, "tunnel")
        .await?
        .and_then(|r| r.id)
    else {
        return Ok(None);
    };
    let (Some(token), Some(a)) = (
        store::secret(&state.db, &state.keys, "api_token").await?,
        store::value(&state.db, "account_id").await?,
    ) else {
        return Ok(None);
    };
    let client = client_for(state, &token)?;
    exists::<Tunnel>(&client, &format!("/accounts/{a}/cfd_tunnel/{id}")).await
}

/// The connector token (audited: whoever sees it can run the tunnel).
pub async fn tunnel_token(state: &AppState, audit: &Audit) -> Result<String, Failure> {
    let token = store::secret(&state.db, &state.keys, "tunnel_token")
        .await?
        .ok_or_else(|| Failure::conflict("no tunnel yet: run step 2 first"))?;
    let event = NewEvent::warning("cloudflare.tunnel_token", "tunnel connector token revealed");
    crate::activity::record_now(state, audit, event).await?;
    Ok(token)
}
