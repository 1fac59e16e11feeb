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
//!
//! Here: `run`, `Ctx` (a running step), `plan` and the small shared helpers. One file per step
//! (`token`, `tunnel`, `vpc`, `worker`, `access`, where `access` also holds step 6, connect)
//! and `teardown`.

use std::time::Duration;

use serde_json::json;

use super::Failure;
use super::client::Client;
use super::store::{self, Resource, Step};
use crate::activity::{Audit, NewEvent};
use crate::app::AppState;

mod access;
mod teardown;
mod token;
mod tunnel;
mod vpc;
mod worker;

pub use access::{ConnectInfo, connect_info, policy_include, push_allowlist};
pub use teardown::{Removed, teardown};
pub use tunnel::{tunnel_health, tunnel_token};
pub use worker::access_issuer;

use access::{access, connect};
use token::token;
use tunnel::tunnel;
use vpc::vpc_service;
use worker::worker;

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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

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
}
