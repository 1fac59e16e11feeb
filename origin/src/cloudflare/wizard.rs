//! The six steps and teardown.
//!
//! Every step follows one rule: look for what this install created (by recorded id, then by
//! name), create only what is missing, record it, and be safe to run again. Before each create
//! a write-ahead intent is recorded (`store::intend`), so a crash between the create call and
//! its record is adopted by name on the next run; a same-name resource without our intent is
//! someone else's, a clash (409) unless the admin asked to `replace` it.
//!
//! A step runs in its own task (a browser that goes away does not cut it in half) under
//! `Remote::lock`, and writes its progress to the database as it goes.

use std::time::Duration;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use rand::RngCore;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use super::client::{
    self, AccessApp, AccessPolicy, Account, CfError, Client, KvNamespace, Organization, Part,
    Script, Subdomain, TokenStatus, Tunnel, VpcService,
};
use super::store::{self, Resource, Step};
use super::{Failure, bundle};
use crate::activity::{Audit, NewEvent};
use crate::app::AppState;

pub const DEFAULT_TUNNEL: &str = "mcpbox";
pub const DEFAULT_VPC_SERVICE: &str = "mcpbox-origin";
pub const DEFAULT_WORKER: &str = "mcpbox-edge";
pub const DEFAULT_ACCESS_APP: &str = "MCPbox";
const POLICY_NAME: &str = "MCPbox allowlist";
/// The Worker's forward URL: with the ORIGIN (VPC) binding only its path matters.
const ORIGIN_URL: &str = "http://mcp-gateway:8002";
/// How long the probe of `<worker>/mcp` keeps trying after step 5.
const PROBE_FOR: Duration = Duration::from_secs(15);
/// Longest name accepted for a resource.
const NAME_MAX: usize = 63;

/// What the admin asks of a step (every field optional; defaults above).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub name: Option<String>,
    pub replace: bool,
    pub api_token: Option<String>,
    pub account_id: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub public_url: Option<String>,
    pub allowed_emails: Option<Vec<String>>,
}

/// What a finished step did.
#[derive(Debug, Clone)]
pub struct Report {
    pub step: Step,
    pub progress: Vec<String>,
}

/// Runs one step: under the lock, in its own task, its state in the database throughout.
pub async fn run(
    state: &AppState,
    step: Step,
    request: Request,
    audit: &Audit,
) -> Result<Report, Failure> {
    let guard = state.remote.lock.clone_guard()?;
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        let _guard = guard;
        let mut ctx = Ctx {
            state: task_state,
            step,
            progress: Vec::new(),
        };
        store::set_step(&ctx.state.db, step, "running", &[], None).await?;
        let result = match step {
            Step::Token => token(&mut ctx, &request).await,
            Step::Tunnel => tunnel(&mut ctx, &request).await,
            Step::VpcService => vpc_service(&mut ctx, &request).await,
            Step::Worker => worker(&mut ctx, &request).await,
            Step::Access => access(&mut ctx, &request).await,
            Step::Connect => connect(&mut ctx).await,
        };
        ctx.state.remote.invalidate();
        match result {
            Ok(()) => {
                store::set_step(&ctx.state.db, step, "done", &ctx.progress, None).await?;
                Ok(ctx.progress)
            }
            Err(mut failure) => {
                failure.step = Some(step);
                store::set_step(
                    &ctx.state.db,
                    step,
                    "failed",
                    &ctx.progress,
                    Some(&failure.error),
                )
                .await?;
                Err(failure)
            }
        }
    });
    let result = task.await.unwrap_or_else(|err| {
        Err(Failure::from(crate::Error::Internal(anyhow::anyhow!(
            "the wizard step stopped: {err}"
        ))))
    });
    let (outcome, event) = match &result {
        Ok(_) => (
            "done",
            NewEvent::info(
                "cloudflare.step",
                format!("remote set-up: {} done", step.title()),
            ),
        ),
        Err(failure) => (
            "failed",
            NewEvent::warning(
                "cloudflare.step",
                format!(
                    "remote set-up: {} failed: {}",
                    step.title(),
                    failure.error.message
                ),
            ),
        ),
    };
    let event = event.details(json!({"step": step.as_str(), "outcome": outcome}));
    crate::activity::record_now(state, audit, event).await?;
    result.map(|progress| Report { step, progress })
}

/// The lock as an owned guard the step's task can hold.
trait CloneGuard {
    fn clone_guard(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, Failure>;
}

impl CloneGuard for std::sync::Arc<tokio::sync::Mutex<()>> {
    fn clone_guard(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, Failure> {
        self.clone().try_lock_owned().map_err(|_| {
            Failure::conflict("another remote set-up step is running; wait for it to finish")
        })
    }
}

/// A running step: where progress goes.
struct Ctx {
    state: AppState,
    step: Step,
    progress: Vec<String>,
}

impl Ctx {
    /// One line of progress, stored at once (a page reload shows it).
    async fn say(&mut self, line: impl Into<String>) -> Result<(), Failure> {
        self.progress.push(line.into());
        store::set_step(&self.state.db, self.step, "running", &self.progress, None).await?;
        Ok(())
    }

    async fn value(&self, key: &str) -> Result<Option<String>, Failure> {
        Ok(store::value(&self.state.db, key).await?)
    }

    async fn secret(&self, key: &str) -> Result<Option<String>, Failure> {
        Ok(store::secret(&self.state.db, &self.state.keys, key).await?)
    }

    async fn set_secret(&self, key: &str, value: &str) -> Result<(), Failure> {
        Ok(store::set_secret(&self.state.db, &self.state.keys, key, value).await?)
    }

    async fn require(&self, before: Step) -> Result<(), Failure> {
        if store::step_status(&self.state.db, before).await? == "done" {
            Ok(())
        } else {
            Err(Failure::conflict(format!(
                "step {} ({}) must be done first",
                before.number(),
                before.title()
            )))
        }
    }

    /// The client of the stored token, and the chosen account.
    async fn client(&self) -> Result<(Client, String), Failure> {
        let (Some(token), Some(account)) = (
            self.secret("api_token").await?,
            self.value("account_id").await?,
        ) else {
            return Err(Failure::conflict("step 1 (API token) must be done first"));
        };
        Ok((client_for(&self.state, &token)?, account))
    }
}

fn client_for(state: &AppState, token: &str) -> Result<Client, Failure> {
    Ok(Client::new(&state.remote.config.api_url, token)?)
}

/// A name for a resource: the admin's, or the default; plain characters only.
fn name_or(request: &Request, default: &str) -> Result<String, Failure> {
    let name = request
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(default);
    let ok = name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ' ');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Failure::invalid(format!(
            "the name {name:?} is not acceptable: use at most {NAME_MAX} letters, digits, spaces, - and _"
        )))
    }
}

/// What to do with a resource after looking for it.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Ours and there: keep (and record) this id.
    Keep(String),
    /// Someone else's of the same name, to delete first (the admin said `replace`).
    Replace(String),
    Create,
}

/// `alive`: the recorded id still exists. `same_name`: the id of an existing resource with the
/// wanted name (looked up only when the recorded one is not alive).
fn plan(
    kind: &str,
    record: Option<&Resource>,
    alive: bool,
    name: &str,
    same_name: Option<String>,
    replace: bool,
) -> Result<Plan, Failure> {
    if alive && let Some(id) = record.and_then(|r| r.id.clone()) {
        return Ok(Plan::Keep(id));
    }
    let Some(existing) = same_name else {
        return Ok(Plan::Create);
    };
    let our_intent = record.is_some_and(|r| r.id.is_none() && r.name == name);
    if our_intent {
        // Created by us just before a crash: adopt it.
        Ok(Plan::Keep(existing))
    } else if replace {
        Ok(Plan::Replace(existing))
    } else {
        Err(Failure::conflict(format!(
            "a {} named {name:?} (id {existing}) exists in this Cloudflare account but was not \
             created by this MCPbox; choose another name, or send replace: true to delete it and \
             create ours",
            kind.replace('_', " ")
        ))
        .hint("Pick another name, or confirm the replacement (the other resource is deleted)."))
    }
}

/// `GET` of one resource: `None` when Cloudflare says it does not exist.
async fn exists<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
) -> Result<Option<T>, Failure> {
    match client.get::<T>(path).await {
        Ok(found) => Ok(Some(found)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Step 1: verify the token, choose the account, read the Access team domain, probe every
/// permission the later steps need.
async fn token(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    let api_token = match request.api_token.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_owned(),
        // The token of a run that stopped at the choice of account, else the stored one.
        _ => match ctx
            .secret("pending_api_token")
            .await?
            .or(ctx.secret("api_token").await?)
        {
            Some(stored) => stored,
            None => {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "api_token is missing: paste a Cloudflare API token",
                ));
            }
        },
    };
    if api_token.len() > 200 || api_token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "cloudflare_token_invalid",
            "this does not look like a Cloudflare API token (printable characters, at most 200)",
        )
        .hint("Copy the token again from dash.cloudflare.com → My Profile → API Tokens."));
    }
    let client = client_for(&ctx.state, &api_token)?;
    let status: TokenStatus = client.get("/user/tokens/verify").await?;
    if status.status != "active" {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "cloudflare_token_invalid",
            format!("the API token is {}, not active", status.status),
        )
        .hint("Create a new token, or re-enable this one, and paste it again."));
    }
    ctx.say("token verified").await?;
    let accounts: Vec<Account> = client.list("/accounts", &[]).await?;
    let account = match (
        request.account_id.as_deref().filter(|a| !a.is_empty()),
        &accounts[..],
    ) {
        (_, []) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the token reaches no Cloudflare account",
            )
            .hint("Give the token access to your account (Account Resources: Include)."));
        }
        (Some(chosen), _) => accounts
            .iter()
            .find(|a| a.id == chosen)
            .cloned()
            .ok_or_else(|| {
                Failure::invalid(format!("the token does not reach the account {chosen}"))
            })?,
        (None, [only]) => only.clone(),
        // Run again without a choice: keep the account chosen before, while the token reaches it.
        (None, _)
            if let Some(before) = store::value(&ctx.state.db, "account_id")
                .await?
                .and_then(|id| accounts.iter().find(|a| a.id == id).cloned()) =>
        {
            before
        }
        (None, _) => {
            // Kept for the next run, so the choice alone completes the step.
            ctx.set_secret("pending_api_token", &api_token).await?;
            let listed: Vec<(&str, &str)> = accounts
                .iter()
                .map(|a| (a.id.as_str(), a.name.as_str()))
                .collect();
            store::set_value(
                &ctx.state.db,
                "pending_accounts",
                &serde_json::to_string(&listed).unwrap_or_default(),
            )
            .await?;
            let mut failure =
                Failure::conflict("the token reaches several accounts: choose one (account_id)")
                    .hint("Choose the account to set up and run this step again.");
            failure.accounts = accounts.clone();
            return Err(failure);
        }
    };
    ctx.say(format!("account {} ({})", account.name, account.id))
        .await?;
    let a = &account.id;
    let organization: Organization = match client
        .get(&format!("/accounts/{a}/access/organizations"))
        .await
    {
        Ok(org) => org,
        Err(err) if err.is_not_found() => {
            return Err(Failure::invalid(
                "this account has no Zero Trust organization, so there is no Access team domain",
            )
            .hint("Open one.dash.cloudflare.com once to choose a team name (the free plan is enough), then run this step again."));
        }
        Err(err) => return Err(err.into()),
    };
    ctx.say(format!("Access team domain {}", organization.auth_domain))
        .await?;
    let mut missing = Vec::new();
    for path in [
        "cfd_tunnel",
        "connectivity/directory/services",
        "storage/kv/namespaces",
        "workers/scripts",
        "access/apps",
    ] {
        match client.probe(&format!("/accounts/{a}/{path}")).await {
            Ok(()) => {}
            Err(CfError::MissingPermission { permission, .. }) => missing.push(permission),
            Err(err) => return Err(err.into()),
        }
    }
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "cloudflare_permission_missing",
            format!("the API token lacks the permission {list}"),
        )
        .hint(format!(
            "Edit the token at dash.cloudflare.com → My Profile → API Tokens, add {list} for this account, and run this step again."
        )));
    }
    ctx.say("every permission the wizard needs is granted")
        .await?;
    let db = &ctx.state.db;
    ctx.set_secret("api_token", &api_token).await?;
    store::delete_values(db, &["pending_api_token", "pending_accounts"]).await?;
    store::set_value(db, "account_id", &account.id).await?;
    store::set_value(db, "account_name", &account.name).await?;
    store::set_value(db, "team_domain", &organization.auth_domain).await?;
    Ok(())
}

/// Step 2: the tunnel (remotely managed) and its connector token.
async fn tunnel(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
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

async fn delete_tunnel(client: &Client, a: &str, id: &str) -> Result<(), CfError> {
    client
        .delete(&format!("/accounts/{a}/cfd_tunnel/{id}/connections"), &[])
        .await?;
    client
        .delete(&format!("/accounts/{a}/cfd_tunnel/{id}"), &[])
        .await
}

/// The VPC service's `host`: an address on the tunnel's network, or a name its resolver finds.
fn vpc_host(host: &str, tunnel_id: &str) -> Value {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        json!({"ipv4": host, "network": {"tunnel_id": tunnel_id}})
    } else {
        json!({"hostname": host, "resolver_network": {"tunnel_id": tunnel_id}})
    }
}

/// Step 3: the Workers VPC service pointing at the tunnel listener through the tunnel.
async fn vpc_service(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::Tunnel).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_VPC_SERVICE)?;
    let db = ctx.state.db.clone();
    let Some(tunnel_id) = store::resource(&db, "tunnel").await?.and_then(|r| r.id) else {
        return Err(Failure::conflict("step 2 (Tunnel) must be done first"));
    };
    let listen = ctx.state.remote.tunnel_bound.get().copied().or(ctx
        .state
        .remote
        .config
        .tunnel_listen);
    let host = match request
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        Some(host) => host.to_owned(),
        None => match listen {
            Some(addr) if !addr.ip().is_unspecified() && addr.ip().is_ipv4() => {
                addr.ip().to_string()
            }
            _ => "127.0.0.1".to_owned(),
        },
    };
    if host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(Failure::invalid(format!(
            "host {host:?} is not an IPv4 address or a host name"
        )));
    }
    let Some(port) = request.port.or(listen.map(|addr| addr.port())) else {
        return Err(Failure::invalid(
            "no port: start mcpbox with --tunnel-listen, or give the port cloudflared reaches the tunnel listener on",
        ));
    };
    let body = json!({"name": name, "type": "http", "http_port": port, "host": vpc_host(&host, &tunnel_id)});
    let path = format!("/accounts/{a}/connectivity/directory/services");
    let record = store::resource(&db, "vpc_service").await?;
    let services: Vec<VpcService> = client.list(&path, &[]).await?;
    let recorded = record
        .as_ref()
        .and_then(|r| r.id.as_deref())
        .and_then(|id| services.iter().find(|s| s.service_id == id));
    let same_name = services
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.service_id.clone());
    let id = match plan(
        "vpc_service",
        record.as_ref(),
        recorded.is_some(),
        &name,
        same_name,
        request.replace,
    )? {
        Plan::Keep(id) => {
            let current = services.iter().find(|s| s.service_id == id);
            let same = current.is_some_and(|s| s.http_port == Some(port) && s.host == body["host"]);
            if same {
                ctx.say(format!("VPC service {name} exists ({id}) → {host}:{port}"))
                    .await?;
            } else {
                let _: VpcService = client.put(&format!("{path}/{id}"), body.clone()).await?;
                ctx.say(format!(
                    "VPC service {name} ({id}) now points at {host}:{port}"
                ))
                .await?;
            }
            id
        }
        other => {
            if let Plan::Replace(old) = other {
                client.delete(&format!("{path}/{old}"), &[]).await?;
                ctx.say(format!(
                    "deleted the other VPC service named {name} ({old})"
                ))
                .await?;
            }
            store::intend(&db, "vpc_service", &name).await?;
            let created: VpcService = client.post(&path, body).await?;
            ctx.say(format!(
                "VPC service {name} created ({}) → {host}:{port} through the tunnel",
                created.service_id
            ))
            .await?;
            created.service_id
        }
    };
    store::record(&db, "vpc_service", &name, &id, None).await?;
    Ok(())
}

/// 32 random bytes in hex.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A public URL the admin gives: http(s), a host, no path, query or trailing slash.
fn check_public_url(url: &str) -> Result<String, Failure> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|_| Failure::invalid(format!("public_url {url:?} is not a URL")))?;
    let ok = matches!(parsed.scheme(), "https" | "http")
        && parsed.host_str().is_some()
        && parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty();
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(Failure::invalid(format!(
            "public_url {url:?} must be scheme://host[:port], nothing after it"
        )))
    }
}

/// Step 4: KV namespace, the Worker's secrets, the bundle uploaded with its bindings, the URL,
/// and the edge config document.
async fn worker(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::VpcService).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_WORKER)?;
    let db = ctx.state.db.clone();
    // KV namespace.
    let kv_title = format!("{name}-oauth");
    let kv_path = format!("/accounts/{a}/storage/kv/namespaces");
    let record = store::resource(&db, "kv_namespace").await?;
    let namespaces: Vec<KvNamespace> = client.list(&kv_path, &[]).await?;
    let alive = record
        .as_ref()
        .and_then(|r| r.id.as_deref())
        .is_some_and(|id| namespaces.iter().any(|n| n.id == id));
    let same_name = namespaces
        .iter()
        .find(|n| n.title == kv_title)
        .map(|n| n.id.clone());
    let kv_id = match plan(
        "kv_namespace",
        record.as_ref(),
        alive,
        &kv_title,
        same_name,
        request.replace,
    )? {
        Plan::Keep(id) => {
            ctx.say(format!("KV namespace {kv_title} exists ({id})"))
                .await?;
            id
        }
        other => {
            if let Plan::Replace(old) = other {
                client.delete(&format!("{kv_path}/{old}"), &[]).await?;
                ctx.say(format!("deleted the other KV namespace {kv_title} ({old})"))
                    .await?;
            }
            store::intend(&db, "kv_namespace", &kv_title).await?;
            let created: KvNamespace = client.post(&kv_path, json!({"title": kv_title})).await?;
            ctx.say(format!("KV namespace {kv_title} created ({})", created.id))
                .await?;
            created.id
        }
    };
    store::record(&db, "kv_namespace", &kv_title, &kv_id, None).await?;
    // Secrets generated here, once.
    for key in ["service_token", "worker_encryption_key"] {
        if ctx.secret(key).await?.is_none() {
            ctx.set_secret(key, &random_secret()).await?;
        }
    }
    ctx.say("service token and encryption key ready (stored encrypted)")
        .await?;
    // The public URL.
    if let Some(given) = &request.public_url {
        if given.trim().is_empty() {
            store::delete_values(&db, &["public_url"]).await?;
        } else {
            store::set_value(&db, "public_url", &check_public_url(given)?).await?;
        }
    }
    let (url, workers_dev) = match store::value(&db, "public_url").await? {
        Some(url) => (url, false),
        None => {
            let subdomain: Subdomain = match client
                .get(&format!("/accounts/{a}/workers/subdomain"))
                .await
            {
                Ok(found) => found,
                Err(err) if err.is_not_found() => Subdomain::default(),
                Err(err) => return Err(err.into()),
            };
            if subdomain.subdomain.is_empty() {
                return Err(Failure::invalid(
                    "this account has no workers.dev subdomain yet",
                )
                .hint("Open Workers & Pages in the dashboard once to choose one, or give a public_url, then run this step again."));
            }
            (
                format!("https://{name}.{}.workers.dev", subdomain.subdomain),
                true,
            )
        }
    };
    store::set_value(&db, "worker_name", &name).await?;
    store::set_value(&db, "worker_url", &url).await?;
    // The script.
    let scripts_path = format!("/accounts/{a}/workers/scripts");
    let record = store::resource(&db, "worker").await?;
    let scripts: Vec<Script> = client.list(&scripts_path, &[]).await?;
    let present = scripts.iter().any(|s| s.id == name);
    let ours = record
        .as_ref()
        .is_some_and(|r| r.id.as_deref() == Some(name.as_str()));
    let plan = plan(
        "worker",
        record.as_ref(),
        ours && present,
        &name,
        present.then(|| name.clone()),
        request.replace,
    )?;
    if let Plan::Replace(old) = &plan {
        client
            .delete(
                &format!("{scripts_path}/{old}"),
                &[("force", "true".to_owned())],
            )
            .await?;
        ctx.say(format!("deleted the other Worker named {old}"))
            .await?;
    }
    let uploaded = upload(ctx, &client, &a, &name, Some(matches!(plan, Plan::Keep(_)))).await?;
    if uploaded && workers_dev {
        let _: Value = client
            .post(
                &format!("{scripts_path}/{name}/subdomain"),
                json!({"enabled": true, "previews_enabled": false}),
            )
            .await?;
        ctx.say(format!("workers.dev route enabled: {url}")).await?;
    }
    ctx.say(format!("Worker URL {url}")).await?;
    let sync = super::edge::sync(&ctx.state).await;
    match sync {
        Ok(()) => ctx.say("edge config written to KV").await?,
        Err(failure) => return Err(failure),
    }
    Ok(())
}

/// The metadata part and the keyed digest of everything uploaded (bundle and bindings).
async fn metadata(ctx: &Ctx) -> Result<(Value, String), Failure> {
    let db = &ctx.state.db;
    let missing = || Failure::conflict("step 4 (Worker) must be done first");
    let kv_id = store::resource(db, "kv_namespace")
        .await?
        .and_then(|r| r.id)
        .ok_or_else(missing)?;
    let service_id = store::resource(db, "vpc_service")
        .await?
        .and_then(|r| r.id)
        .ok_or_else(missing)?;
    let url = ctx.value("worker_url").await?.ok_or_else(missing)?;
    let service_token = ctx.secret("service_token").await?.ok_or_else(missing)?;
    let encryption_key = ctx
        .secret("worker_encryption_key")
        .await?
        .ok_or_else(missing)?;
    let plain = |name: &str, text: &str| json!({"type": "plain_text", "name": name, "text": text});
    let secret =
        |name: &str, text: &str| json!({"type": "secret_text", "name": name, "text": text});
    let mut bindings = vec![
        json!({"type": "kv_namespace", "name": "OAUTH_KV", "namespace_id": kv_id}),
        json!({"type": "vpc_service", "name": "ORIGIN", "service_id": service_id}),
        plain("MCPBOX_PUBLIC_URL", &url),
        plain("MCPBOX_ORIGIN_URL", ORIGIN_URL),
        secret("MCPBOX_SERVICE_TOKEN", &service_token),
        secret("MCPBOX_ENCRYPTION_KEY", &encryption_key),
    ];
    // Step 5's values, once it has run.
    if let (Some(team), Some(client_id), Some(client_secret)) = (
        ctx.value("team_domain").await?,
        ctx.value("access_client_id").await?,
        ctx.secret("access_client_secret").await?,
    ) {
        bindings.push(plain("ACCESS_TEAM_DOMAIN", &team));
        bindings.push(plain("ACCESS_CLIENT_ID", &client_id));
        bindings.push(secret("ACCESS_CLIENT_SECRET", &client_secret));
        if let Some(base) = &ctx.state.remote.config.access_url {
            let issuer = access_issuer(base, &client_id);
            bindings.push(plain("ACCESS_ISSUER", &issuer));
            bindings.push(plain(
                "ACCESS_AUTHORIZATION_URL",
                &format!("{issuer}/authorization"),
            ));
            bindings.push(plain("ACCESS_TOKEN_URL", &format!("{issuer}/token")));
            bindings.push(plain("ACCESS_JWKS_URL", &format!("{issuer}/jwks")));
        }
    }
    let metadata = json!({
        "main_module": "index.js",
        "compatibility_date": bundle::COMPATIBILITY_DATE,
        "bindings": bindings,
        "observability": {"enabled": true},
    });
    // Keyed: the digest covers secret values, so it must not be a plain hash of them.
    let key = ctx.state.keys.derive("cloudflare-upload-digest");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .map_err(|err| crate::Error::Internal(anyhow::anyhow!("hmac: {err}")))?;
    mac.update(bundle::sha256().as_bytes());
    mac.update(metadata.to_string().as_bytes());
    Ok((metadata, hex::encode(mac.finalize().into_bytes())))
}

pub fn access_issuer(base: &str, client_id: &str) -> String {
    format!(
        "{}/cdn-cgi/access/sso/oidc/{client_id}",
        base.trim_end_matches('/')
    )
}

/// Uploads the bundle with its bindings unless exactly this was uploaded already and the
/// script is still there (`present`: known already, or `None` to ask Cloudflare). Returns
/// whether it uploaded.
async fn upload(
    ctx: &mut Ctx,
    client: &Client,
    a: &str,
    name: &str,
    present: Option<bool>,
) -> Result<bool, Failure> {
    let db = ctx.state.db.clone();
    let (metadata, digest) = metadata(ctx).await?;
    let record = store::resource(&db, "worker").await?;
    let unchanged = record
        .as_ref()
        .is_some_and(|r| r.id.as_deref() == Some(name) && r.digest.as_deref() == Some(&digest));
    let present = match present {
        Some(known) => known,
        None if unchanged => client
            .list::<Script>(&format!("/accounts/{a}/workers/scripts"), &[])
            .await?
            .iter()
            .any(|s| s.id == name),
        None => false,
    };
    if present && unchanged {
        ctx.say(format!(
            "Worker {name} is up to date (bundle and bindings unchanged)"
        ))
        .await?;
        return Ok(false);
    }
    let metadata_bytes = metadata.to_string().into_bytes();
    let body = client::multipart(&[
        Part {
            name: "metadata",
            filename: None,
            content_type: "application/json",
            bytes: &metadata_bytes,
        },
        Part {
            name: "index.js",
            filename: Some("index.js"),
            content_type: "application/javascript+module",
            bytes: bundle::INDEX_JS,
        },
        Part {
            name: "index_bg.wasm",
            filename: Some("index_bg.wasm"),
            content_type: "application/wasm",
            bytes: bundle::INDEX_BG_WASM,
        },
    ]);
    store::intend(&db, "worker", name).await?;
    let _: Script = client
        .request(
            Method::PUT,
            &format!("/accounts/{a}/workers/scripts/{name}"),
            &[],
            &body,
        )
        .await?;
    store::record(&db, "worker", name, name, Some(&digest)).await?;
    ctx.say(format!(
        "Worker {name} uploaded (bundle {}, {} KiB)",
        &bundle::sha256()[..12],
        (bundle::INDEX_JS.len() + bundle::INDEX_BG_WASM.len()) / 1024
    ))
    .await?;
    Ok(true)
}

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
async fn access(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::Worker).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_ACCESS_APP)?;
    let db = ctx.state.db.clone();
    if let Some(given) = &request.allowed_emails {
        let entries = super::check_allowlist(given)?;
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
async fn connect(ctx: &mut Ctx) -> Result<(), Failure> {
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

/// One part of a teardown.
#[derive(Debug, Clone, serde::Serialize)]
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

    fn intent(name: &str) -> Resource {
        Resource {
            kind: "tunnel".into(),
            name: name.into(),
            id: None,
            digest: None,
        }
    }

    fn created(name: &str, id: &str) -> Resource {
        Resource {
            id: Some(id.into()),
            ..intent(name)
        }
    }

    #[test]
    fn a_step_keeps_what_it_created_adopts_its_intent_and_refuses_a_clash() {
        // Recorded and still there: kept, whatever else has the name.
        let ours = created("mcpbox", "t1");
        assert_eq!(
            plan("tunnel", Some(&ours), true, "mcpbox", None, false).unwrap(),
            Plan::Keep("t1".into())
        );
        // Nothing recorded, nothing there: create.
        assert_eq!(
            plan("tunnel", None, false, "mcpbox", None, false).unwrap(),
            Plan::Create
        );
        // A crash between create and record: the intent adopts the same-name resource.
        assert_eq!(
            plan(
                "tunnel",
                Some(&intent("mcpbox")),
                false,
                "mcpbox",
                Some("t2".into()),
                false
            )
            .unwrap(),
            Plan::Keep("t2".into())
        );
        // Same name, no intent (or an intent for another name): someone else's.
        for record in [None, Some(intent("other")), Some(created("mcpbox", "gone"))] {
            let err = plan(
                "tunnel",
                record.as_ref(),
                false,
                "mcpbox",
                Some("t3".into()),
                false,
            )
            .unwrap_err();
            assert_eq!(err.status, StatusCode::CONFLICT);
            assert!(
                err.error.message.contains("\"mcpbox\""),
                "{}",
                err.error.message
            );
            assert_eq!(
                plan(
                    "tunnel",
                    record.as_ref(),
                    false,
                    "mcpbox",
                    Some("t3".into()),
                    true
                )
                .unwrap(),
                Plan::Replace("t3".into())
            );
        }
        // Recorded but deleted meanwhile (by hand): made again.
        assert_eq!(
            plan("tunnel", Some(&ours), false, "mcpbox", None, false).unwrap(),
            Plan::Create
        );
    }

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

    #[test]
    fn public_urls_are_bare_origins() {
        assert_eq!(
            check_public_url("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        assert_eq!(
            check_public_url("http://127.0.0.1:8787").unwrap(),
            "http://127.0.0.1:8787"
        );
        for bad in [
            "ftp://x.example",
            "https://x.example/path",
            "not a url",
            "https://x.example/?q",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }
}
