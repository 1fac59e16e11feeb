//! Step 5: the Access for SaaS app and its allowlist policy, the probe of the Worker; step 6,
//! connect, and the snippets it shows.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::worker::upload;
use super::*;
use crate::app::AppState;
use crate::cloudflare::Failure;
use crate::cloudflare::client::{AccessApp, AccessPolicy, Client};
use crate::cloudflare::store::{self, Step};

/// The Access policy's `include` rules from the allowlist.
pub fn policy_include(entries: &[String]) -> Vec<Value> {
    entries
        .iter()
        .map(|entry| match entry.strip_prefix('@') {
            Some(domain) => json!({"email_domain": {"domain": domain}}),
            None => json!({"email": {"email": entry}}),
        })
        .collect()
}

fn policy_body(entries: &[String]) -> Value {
    json!({"name": POLICY_NAME, "decision": "allow", "precedence": 1, "include": policy_include(entries)})
}

/// Step 5: the Access for SaaS OIDC app, its policy from the allowlist, the Worker's Access
/// settings, and the probe of `<worker>/mcp`.
pub(super) async fn access(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::Worker).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_ACCESS_APP)?;
    let db = ctx.state.db.clone();
    if let Some(given) = &request.allowed_emails {
        let entries = crate::cloudflare::check_allowlist(given)?;
        store::set_allowlist(&db, &entries).await?;
    }
    let entries = store::allowlist(&db).await?;
    if entries.is_empty() {
        return Err(Failure::invalid(
            "the allowlist is empty: give at least one email address or @domain (allowed_emails)",
        ));
    }
    ctx.say(format!("allowlist: {}", entries.join(", ")))
        .await?;
    let url = ctx
        .value("worker_url")
        .await?
        .ok_or_else(|| Failure::conflict("step 4 (Worker) must be done first"))?;
    let callback = format!("{url}/callback");
    let app_body = json!({
        "name": name,
        "type": "saas",
        "saas_app": {
            "auth_type": "oidc",
            "redirect_uris": [callback],
            "grant_types": ["authorization_code"],
            "scopes": ["openid", "email", "profile"],
        },
    });
    let apps_path = format!("/accounts/{a}/access/apps");
    let record = store::resource(&db, "access_app").await?;
    let apps: Vec<AccessApp> = client.list(&apps_path, &[]).await?;
    let alive = record
        .as_ref()
        .and_then(|r| r.id.as_deref())
        .is_some_and(|id| apps.iter().any(|app| app.id == id));
    let same_name = apps
        .iter()
        .find(|app| app.name == name)
        .map(|app| app.id.clone());
    let mut plan = plan(
        "access_app",
        record.as_ref(),
        alive,
        &name,
        same_name,
        request.replace,
    )?;
    // An app of ours whose client secret was never stored (a crash right after the create, and
    // Cloudflare shows the secret only then): it cannot be used, so it is made again.
    if let Plan::Keep(id) = &plan
        && ctx.secret("access_client_secret").await?.is_none()
    {
        let listed = apps
            .iter()
            .find(|app| &app.id == id)
            .and_then(|app| app.saas_app.as_ref())
            .and_then(|saas| {
                saas.client_secret
                    .clone()
                    .map(|s| (saas.client_id.clone(), s))
            });
        match listed {
            Some((client_id, secret)) => {
                store::set_value(&db, "access_client_id", &client_id).await?;
                ctx.set_secret("access_client_secret", &secret).await?;
            }
            None => {
                client.delete(&format!("{apps_path}/{id}"), &[]).await?;
                ctx.say(format!(
                    "the Access app {name} ({id}) had no stored client secret; made again"
                ))
                .await?;
                plan = Plan::Create;
            }
        }
    }
    let app_id = match plan {
        Plan::Keep(id) => {
            let current = apps.iter().find(|app| app.id == id);
            let redirects_ok = current
                .and_then(|app| app.saas_app.as_ref())
                .is_some_and(|saas| saas.redirect_uris == [callback.clone()]);
            if redirects_ok {
                ctx.say(format!("Access app {name} exists ({id})")).await?;
            } else {
                let _: AccessApp = client
                    .put(&format!("{apps_path}/{id}"), app_body.clone())
                    .await?;
                ctx.say(format!(
                    "Access app {name} ({id}) now redirects to {callback}"
                ))
                .await?;
            }
            id
        }
        other => {
            if let Plan::Replace(old) = other {
                client.delete(&format!("{apps_path}/{old}"), &[]).await?;
                ctx.say(format!("deleted the other Access app named {name} ({old})"))
                    .await?;
            }
            store::intend(&db, "access_app", &name).await?;
            store::forget(&db, "access_policy").await?;
            let created: AccessApp = client.post(&apps_path, app_body).await?;
            let Some(saas) = created.saas_app.clone() else {
                return Err(Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_failed",
                    "Cloudflare created the Access app without its OIDC settings",
                ));
            };
            store::set_value(&db, "access_client_id", &saas.client_id).await?;
            if let Some(secret) = &saas.client_secret {
                ctx.set_secret("access_client_secret", secret).await?;
            }
            ctx.say(format!("Access app {name} created ({})", created.id))
                .await?;
            created.id
        }
    };
    store::record(&db, "access_app", &name, &app_id, None).await?;
    push_policy(ctx, &client, &a, &app_id, &entries).await?;
    // The Worker learns its Access settings (a new upload only if they changed).
    let worker_name = ctx
        .value("worker_name")
        .await?
        .unwrap_or_else(|| DEFAULT_WORKER.to_owned());
    upload(ctx, &client, &a, &worker_name, None).await?;
    probe(ctx, &client, &url).await?;
    store::set_step(&db, Step::Connect, "done", &[format!("{url}/mcp")], None).await?;
    Ok(())
}

/// Creates or updates the allowlist policy on our app.
async fn push_policy(
    ctx: &mut Ctx,
    client: &Client,
    a: &str,
    app_id: &str,
    entries: &[String],
) -> Result<(), Failure> {
    let db = ctx.state.db.clone();
    let path = format!("/accounts/{a}/access/apps/{app_id}/policies");
    let policies: Vec<AccessPolicy> = client.list(&path, &[]).await?;
    let recorded = store::resource(&db, "access_policy")
        .await?
        .and_then(|r| r.id);
    // Policies on our own app are ours: the recorded one, or one of our name (a crash after
    // its create).
    let existing = policies
        .iter()
        .find(|p| Some(&p.id) == recorded.as_ref())
        .or_else(|| policies.iter().find(|p| p.name == POLICY_NAME));
    let body = policy_body(entries);
    let id = match existing {
        Some(policy)
            if policy.include == body["include"].as_array().cloned().unwrap_or_default() =>
        {
            ctx.say(format!("Access policy up to date ({})", policy.id))
                .await?;
            policy.id.clone()
        }
        Some(policy) => {
            let _: AccessPolicy = client.put(&format!("{path}/{}", policy.id), body).await?;
            ctx.say(format!("Access policy updated ({})", policy.id))
                .await?;
            policy.id.clone()
        }
        None => {
            store::intend(&db, "access_policy", POLICY_NAME).await?;
            let created: AccessPolicy = client.post(&path, body).await?;
            ctx.say(format!("Access policy created ({})", created.id))
                .await?;
            created.id
        }
    };
    store::record(&db, "access_policy", POLICY_NAME, &id, None).await?;
    Ok(())
}

/// `POST <worker>/mcp` without a token must get 401 with `resource_metadata` (the Worker is up
/// and its OAuth side configured). Retried for [`PROBE_FOR`]: a fresh upload takes a moment.
async fn probe(ctx: &mut Ctx, client: &Client, url: &str) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcpbox-wizard-probe", "version": env!("CARGO_PKG_VERSION")}}});
    let last = loop {
        let answer = client
            .http()
            .post(format!("{url}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let outcome = match answer {
            Ok(response) => {
                let status = response.status();
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if status == StatusCode::UNAUTHORIZED && challenge.contains("resource_metadata=") {
                    ctx.say(format!(
                        "probe: {url}/mcp asks for OAuth (401 with resource_metadata)"
                    ))
                    .await?;
                    return Ok(());
                }
                format!("it answered {status} (WWW-Authenticate: {challenge:?})")
            }
            Err(err) => format!("it could not be reached: {err}"),
        };
        if started.elapsed() >= PROBE_FOR {
            break outcome;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    Err(Failure::new(
        StatusCode::BAD_GATEWAY,
        "probe_failed",
        format!("the Worker at {url}/mcp does not ask for OAuth as it should: {last}"),
    )
    .hint("Wait a minute (a new Worker can take a moment to start) and run this step again; if it keeps failing, open the Worker's logs in the dashboard."))
}

/// Step 6: checks the Worker again; the URL and snippets come from `connect_info`.
pub(super) async fn connect(ctx: &mut Ctx) -> Result<(), Failure> {
    ctx.require(Step::Access).await?;
    let (client, _) = ctx.client().await?;
    let url = ctx
        .value("worker_url")
        .await?
        .ok_or_else(|| Failure::conflict("step 4 (Worker) must be done first"))?;
    probe(ctx, &client, &url).await?;
    ctx.say(format!("{url}/mcp is ready for remote clients"))
        .await?;
    Ok(())
}

/// The MCP URL and copy-ready snippets (None before step 5 is done).
pub struct ConnectInfo {
    pub mcp_url: String,
    pub claude_ai: String,
    pub chatgpt: String,
    pub claude_code: String,
    pub cursor: String,
}

pub async fn connect_info(state: &AppState) -> crate::Result<Option<ConnectInfo>> {
    if store::step_status(&state.db, Step::Access).await? != "done" {
        return Ok(None);
    }
    let Some(url) = store::value(&state.db, "worker_url").await? else {
        return Ok(None);
    };
    let mcp_url = format!("{url}/mcp");
    Ok(Some(ConnectInfo {
        claude_ai: format!(
            "claude.ai → Settings → Connectors → Add custom connector\nName: MCPbox\nURL: {mcp_url}\n(sign in with an address on the allowlist when asked)"
        ),
        chatgpt: format!(
            "ChatGPT → Settings → Apps & Connectors → Create (developer mode)\nName: MCPbox\nMCP server URL: {mcp_url}\nAuthentication: OAuth"
        ),
        claude_code: format!("claude mcp add --transport http mcpbox {mcp_url}"),
        cursor: serde_json::to_string_pretty(&json!({"mcpServers": {"mcpbox": {"url": mcp_url}}}))
            .unwrap_or_default(),
        mcp_url,
    }))
}

/// Pushes the allowlist to the Access policy when step 5 made one (after the caller stored it).
pub async fn push_allowlist(state: &AppState, entries: &[String]) -> Result<bool, Failure> {
    let db = &state.db;
    let Some(app_id) = store::resource(db, "access_app").await?.and_then(|r| r.id) else {
        return Ok(false);
    };
    let _guard = state.remote.lock.clone_guard()?;
    let mut ctx = Ctx {
        state: state.clone(),
        step: Step::Access,
        progress: Vec::new(),
    };
    let (client, a) = ctx.client().await?;
    // Progress of this push is not a step run: keep step 5's record as it is.
    let saved = store::steps(db).await?;
    let result = push_policy(&mut ctx, &client, &a, &app_id, entries).await;
    if let Some(access) = saved.iter().find(|s| s.step == Step::Access) {
        store::set_step(
            db,
            Step::Access,
            &access.status,
            &access.progress,
            access.error.as_ref(),
        )
        .await?;
    }
    result.map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_includes_addresses_and_domains() {
        assert_eq!(
            policy_include(&["a@b.co".into(), "@corp.example".into()]),
            vec![
                json!({"email": {"email": "a@b.co"}}),
                json!({"email_domain": {"domain": "corp.example"}})
            ]
        );
    }
}
