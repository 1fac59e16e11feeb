//! Teardown: what the wizard created, removed in reverse order.

use serde_json::json;

use super::tunnel::delete_tunnel;
use super::*;
use crate::activity::{Audit, NewEvent};
use crate::app::AppState;
use crate::cloudflare::Failure;
use crate::cloudflare::client::{
    AccessApp, CfError, Client, KvNamespace, Script, Tunnel, VpcService,
};
use crate::cloudflare::store::{self, Resource, Step};

/// One part of a teardown.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = cloudflare::Removed)]
pub struct Removed {
    pub kind: String,
    pub name: String,
    pub id: Option<String>,
    /// `removed`, `already gone`, `not ours (left alone)` or `failed: …`.
    pub outcome: String,
}

/// Removes what the wizard created, in reverse order, best effort: every part is tried and
/// reported; a part that failed keeps its record, so teardown can run again.
pub async fn teardown(state: &AppState, audit: &Audit) -> Result<Vec<Removed>, Failure> {
    let _guard = state.remote.lock.clone_guard()?;
    let db = &state.db;
    let Some(token) = store::secret(db, &state.keys, "api_token").await? else {
        return Err(Failure::conflict(
            "nothing to tear down: step 1 was never done",
        ));
    };
    let client = client_for(state, &token)?;
    let Some(a) = store::value(db, "account_id").await? else {
        return Err(Failure::conflict(
            "nothing to tear down: step 1 was never done",
        ));
    };
    let mut removed = Vec::new();
    let app_id = store::resource(db, "access_app").await?.and_then(|r| r.id);
    for kind in store::KINDS.iter().rev() {
        let Some(record) = store::resource(db, kind).await? else {
            continue;
        };
        let outcome = match remove(&client, &a, &record, app_id.as_deref()).await {
            Ok(outcome) => {
                store::forget(db, kind).await?;
                outcome
            }
            Err(err) => format!("failed: {err}"),
        };
        removed.push(Removed {
            kind: kind.to_string(),
            name: record.name.clone(),
            id: record.id.clone(),
            outcome,
        });
    }
    if removed.iter().all(|r| !r.outcome.starts_with("failed")) {
        store::delete_values(
            db,
            &[
                "tunnel_token",
                "service_token",
                "worker_encryption_key",
                "access_client_id",
                "access_client_secret",
                "worker_url",
                "worker_name",
            ],
        )
        .await?;
        store::reset_steps(db, &Step::ALL[1..]).await?;
    }
    state.remote.invalidate();
    let event = NewEvent::warning("cloudflare.teardown", "remote set-up torn down")
        .details(json!({"removed": removed}));
    crate::activity::record_now(state, audit, event).await?;
    Ok(removed)
}

/// Deletes one recorded resource. An intent without an id is looked up by name (a crash right
/// after its create); if nothing of that name exists there is nothing to delete.
async fn remove(
    client: &Client,
    a: &str,
    record: &Resource,
    app_id: Option<&str>,
) -> Result<String, CfError> {
    let id = match &record.id {
        Some(id) => Some(id.clone()),
        None => find_by_name(client, a, record).await?,
    };
    let Some(id) = id else {
        return Ok("nothing was created".into());
    };
    match record.kind.as_str() {
        "access_policy" => {
            // Deleted with its app when that is ours too.
            if let Some(app) = app_id {
                client
                    .delete(
                        &format!("/accounts/{a}/access/apps/{app}/policies/{id}"),
                        &[],
                    )
                    .await?;
            }
        }
        "access_app" => {
            client
                .delete(&format!("/accounts/{a}/access/apps/{id}"), &[])
                .await?
        }
        "worker" => {
            client
                .delete(
                    &format!("/accounts/{a}/workers/scripts/{id}"),
                    &[("force", "true".to_owned())],
                )
                .await?
        }
        "kv_namespace" => {
            client
                .delete(&format!("/accounts/{a}/storage/kv/namespaces/{id}"), &[])
                .await?
        }
        "vpc_service" => {
            client
                .delete(
                    &format!("/accounts/{a}/connectivity/directory/services/{id}"),
                    &[],
                )
                .await?
        }
        "tunnel" => delete_tunnel(client, a, &id).await?,
        _ => return Ok("unknown kind, left alone".into()),
    }
    Ok("removed".into())
}

async fn find_by_name(
    client: &Client,
    a: &str,
    record: &Resource,
) -> Result<Option<String>, CfError> {
    let name = record.name.as_str();
    Ok(match record.kind.as_str() {
        "tunnel" => client
            .list::<Tunnel>(
                &format!("/accounts/{a}/cfd_tunnel"),
                &[
                    ("name", name.to_owned()),
                    ("is_deleted", "false".to_owned()),
                ],
            )
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.id),
        "vpc_service" => client
            .list::<VpcService>(
                &format!("/accounts/{a}/connectivity/directory/services"),
                &[],
            )
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.service_id),
        "kv_namespace" => client
            .list::<KvNamespace>(&format!("/accounts/{a}/storage/kv/namespaces"), &[])
            .await?
            .into_iter()
            .find(|n| n.title == name)
            .map(|n| n.id),
        "worker" => client
            .list::<Script>(&format!("/accounts/{a}/workers/scripts"), &[])
            .await?
            .into_iter()
            .find(|s| s.id == name)
            .map(|s| s.id),
        "access_app" => client
            .list::<AccessApp>(&format!("/accounts/{a}/access/apps"), &[])
            .await?
            .into_iter()
            .find(|app| app.name == name)
            .map(|app| app.id),
        // A policy intent without an id goes with its app.
        _ => None,
    })
}
