//! Settings: small flags, and the security policy (the seven settings of the reference system,
//! strictest by default, with the presets strict / balanced / permissive).
//!
//! Where each setting takes effect:
//! - `tool_approval_mode`: `approvals::auto_approve` (publish, code edits, rollbacks) and the
//!   test-run gate (`execution` routes);
//! - `module_approval_mode`: `access::request`;
//! - `network_access_policy`: `access::allowed_hosts` (`*` = any public host; the sandbox's
//!   address policy still refuses private ones);
//! - `redact_secrets_in_output`: `execution::run` (what the caller gets; stored logs are always
//!   redacted);
//! - `log_retention_days`: `execution::apply_retention`, run hourly by `serve`;
//! - `mcp_rate_limit_rpm`: `gateway::tunnel` (per signed-in remote user);
//! - `remote_tool_editing`: `gateway::management::call` (the LOCAL_ONLY tools for remote callers).

use axum::extract::State;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{self, Db};
use crate::error::{ApiJson, Error, Result};
use contract::ErrorBody;

/// A boolean setting; missing means false.
pub async fn get_flag(db: &Db, key: &str) -> Result<bool> {
    Ok(get_value(db, key).await?.as_deref() == Some("true"))
}

async fn get_value(db: &Db, key: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|row| row.try_get("value")).transpose()?)
}

/// The security policy, as the API names its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = settings::Policy)]
pub struct Policy {
    /// `disabled` | `enabled`: may remote (Worker) callers use the editing tools.
    pub remote_tool_editing: String,
    /// `require_approval` | `auto_approve`.
    pub tool_approval_mode: String,
    /// `require_approval` | `allow_all_public`.
    pub network_access_policy: String,
    /// `require_approval` | `auto_approve`.
    pub module_approval_mode: String,
    /// `enabled` | `disabled`.
    pub redact_secrets_in_output: String,
    /// 1 to 3650.
    pub log_retention_days: i64,
    /// 10 to 10000.
    pub mcp_rate_limit_rpm: i64,
}

impl Default for Policy {
    /// Strict: the most restrictive value of every setting.
    fn default() -> Self {
        Policy {
            remote_tool_editing: "disabled".into(),
            tool_approval_mode: "require_approval".into(),
            network_access_policy: "require_approval".into(),
            module_approval_mode: "require_approval".into(),
            redact_secrets_in_output: "enabled".into(),
            log_retention_days: 30,
            mcp_rate_limit_rpm: 300,
        }
    }
}

impl Policy {
    pub fn auto_approve_tools(&self) -> bool {
        self.tool_approval_mode == "auto_approve"
    }

    pub fn auto_approve_modules(&self) -> bool {
        self.module_approval_mode == "auto_approve"
    }

    pub fn all_public_hosts(&self) -> bool {
        self.network_access_policy == "allow_all_public"
    }

    pub fn redact_output(&self) -> bool {
        self.redact_secrets_in_output == "enabled"
    }

    fn validate(&self) -> Result<()> {
        let check = |name: &str, value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(Error::Validation(format!(
                    "{name} must be one of {}",
                    allowed.join(", ")
                )))
            }
        };
        check(
            "remote_tool_editing",
            &self.remote_tool_editing,
            &["disabled", "enabled"],
        )?;
        check(
            "tool_approval_mode",
            &self.tool_approval_mode,
            &["require_approval", "auto_approve"],
        )?;
        check(
            "network_access_policy",
            &self.network_access_policy,
            &["require_approval", "allow_all_public"],
        )?;
        check(
            "module_approval_mode",
            &self.module_approval_mode,
            &["require_approval", "auto_approve"],
        )?;
        check(
            "redact_secrets_in_output",
            &self.redact_secrets_in_output,
            &["enabled", "disabled"],
        )?;
        if !(1..=3650).contains(&self.log_retention_days) {
            return Err(Error::Validation(
                "log_retention_days must be between 1 and 3650".into(),
            ));
        }
        if !(10..=10_000).contains(&self.mcp_rate_limit_rpm) {
            return Err(Error::Validation(
                "mcp_rate_limit_rpm must be between 10 and 10000".into(),
            ));
        }
        Ok(())
    }

    fn pairs(&self) -> [(&'static str, String); 7] {
        [
            ("remote_tool_editing", self.remote_tool_editing.clone()),
            ("tool_approval_mode", self.tool_approval_mode.clone()),
            ("network_access_policy", self.network_access_policy.clone()),
            ("module_approval_mode", self.module_approval_mode.clone()),
            (
                "redact_secrets_in_output",
                self.redact_secrets_in_output.clone(),
            ),
            ("log_retention_days", self.log_retention_days.to_string()),
            ("mcp_rate_limit_rpm", self.mcp_rate_limit_rpm.to_string()),
        ]
    }
}

const PREFIX: &str = "policy.";

/// The current policy (unset settings take their strict default). Read on every use, so a
/// change applies to the next call without a restart.
pub async fn policy(db: &Db) -> Result<Policy> {
    let rows = sqlx::query("SELECT key, value FROM settings WHERE key LIKE 'policy.%'")
        .fetch_all(&db.pool)
        .await?;
    let mut policy = Policy::default();
    for row in rows {
        let key: String = row.try_get("key")?;
        let value: String = row.try_get("value")?;
        let number = || value.parse::<i64>().unwrap_or_default();
        match key.trim_start_matches(PREFIX) {
            "remote_tool_editing" => policy.remote_tool_editing = value,
            "tool_approval_mode" => policy.tool_approval_mode = value,
            "network_access_policy" => policy.network_access_policy = value,
            "module_approval_mode" => policy.module_approval_mode = value,
            "redact_secrets_in_output" => policy.redact_secrets_in_output = value,
            "log_retention_days" => policy.log_retention_days = number(),
            "mcp_rate_limit_rpm" => policy.mcp_rate_limit_rpm = number(),
            _ => {}
        }
    }
    Ok(policy)
}

/// Validates the whole new policy, then writes it in one transaction (all or nothing).
pub async fn set_policy(db: &Db, policy: &Policy) -> Result<()> {
    policy.validate()?;
    let now = db::now();
    let mut tx = db.pool.begin().await?;
    for (name, value) in policy.pairs() {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(format!("{PREFIX}{name}"))
        .bind(value)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A preset applied to `base` (retention and rate limit are kept; every preset keeps output
/// redaction on).
pub fn preset(name: &str, base: &Policy) -> Result<Policy> {
    let mut policy = Policy {
        log_retention_days: base.log_retention_days,
        mcp_rate_limit_rpm: base.mcp_rate_limit_rpm,
        ..Policy::default()
    };
    match name {
        "strict" => {}
        "balanced" => {
            policy.tool_approval_mode = "auto_approve".into();
            policy.module_approval_mode = "auto_approve".into();
        }
        "permissive" => {
            policy.tool_approval_mode = "auto_approve".into();
            policy.module_approval_mode = "auto_approve".into();
            policy.network_access_policy = "allow_all_public".into();
            policy.remote_tool_editing = "enabled".into();
        }
        other => {
            return Err(Error::Validation(format!(
                "unknown profile {other:?} (use strict, balanced or permissive)"
            )));
        }
    }
    Ok(policy)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings/security-policy", get(show).patch(update))
        .route("/api/settings/security-profile", patch(apply_profile))
        .route(
            "/api/settings/modules",
            get(show_modules).patch(change_modules),
        )
}

const GLOBAL_MODULES_KEY: &str = "modules.global";

/// The global module allowlist every server's tools may import, and whether an admin changed
/// it (otherwise it is this release's `DEFAULT_MODULES`). Approved module requests add to it
/// per server (`access::allowed_modules`).
pub async fn global_modules(db: &Db) -> Result<(Vec<String>, bool)> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
        .bind(GLOBAL_MODULES_KEY)
        .fetch_optional(&db.pool)
        .await?;
    if let Some(row) = row {
        let value: String = row.try_get("value")?;
        if let Ok(modules) = serde_json::from_str::<Vec<String>>(&value) {
            return Ok((modules, true));
        }
        tracing::warn!("the stored global module allowlist is unreadable; using the defaults");
    }
    Ok((default_modules(), false))
}

fn default_modules() -> Vec<String> {
    contract::sandbox::DEFAULT_MODULES
        .iter()
        .map(|m| (*m).to_owned())
        .collect()
}

/// Adds and removes modules of the global allowlist (or resets it to the defaults first), all
/// validated before anything is written, and records the change. REST, UI.
pub async fn change_global_modules(
    state: &AppState,
    add: &[String],
    remove: &[String],
    reset: bool,
    audit: &crate::activity::Audit,
) -> Result<Vec<String>> {
    if add.len() + remove.len() > 200 {
        return Err(Error::Validation("at most 200 modules per change".into()));
    }
    for module in add {
        crate::access::check_module(module)?;
    }
    let mut modules = if reset {
        default_modules()
    } else {
        global_modules(&state.db).await?.0
    };
    for module in remove {
        modules.retain(|m| m != module);
    }
    for module in add {
        if !modules.contains(module) {
            modules.push(module.clone());
        }
    }
    modules.sort();
    if reset && add.is_empty() && remove.is_empty() {
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(GLOBAL_MODULES_KEY)
            .execute(&state.db.pool)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(GLOBAL_MODULES_KEY)
        .bind(serde_json::to_string(&modules).unwrap_or_else(|_| "[]".into()))
        .bind(db::now())
        .execute(&state.db.pool)
        .await?;
    }
    let event =
        crate::activity::NewEvent::warning("modules.update", "global module allowlist changed")
            .details(serde_json::json!({"added": add, "removed": remove, "reset": reset}));
    crate::activity::record_now(state, audit, event).await?;
    Ok(modules)
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = settings::Modules)]
struct ModulesBody {
    /// The global allowlist every server's tools may import.
    allowed_modules: Vec<String>,
    /// This release's defaults.
    default_modules: Vec<String>,
    /// Whether an admin changed the allowlist (otherwise it is the defaults).
    is_custom_config: bool,
}

impl ModulesBody {
    async fn read(db: &Db) -> Result<ModulesBody> {
        let (allowed_modules, is_custom_config) = global_modules(db).await?;
        Ok(ModulesBody {
            allowed_modules,
            default_modules: default_modules(),
            is_custom_config,
        })
    }
}

#[utoipa::path(get, path = "/api/settings/modules", tag = "settings", operation_id = "settings_modules", responses((status = 200, description = "The global module allowlist", body = ModulesBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn show_modules(State(state): State<AppState>, auth: AuthUser) -> Result<Json<ModulesBody>> {
    auth.require(Role::Viewer)?;
    Ok(Json(ModulesBody::read(&state.db).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = settings::ModulesPatch)]
#[serde(deny_unknown_fields)]
struct ModulesPatch {
    /// Top-level module names (at most 200 added and removed together).
    #[serde(default)]
    add_modules: Vec<String>,
    #[serde(default)]
    remove_modules: Vec<String>,
    /// Start again from the defaults before adding and removing.
    #[serde(default)]
    reset_to_defaults: bool,
}

#[utoipa::path(patch, path = "/api/settings/modules", tag = "settings", operation_id = "settings_change_modules", request_body = ModulesPatch, responses((status = 200, description = "The allowlist now", body = ModulesBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, a module name is not valid, or more than 200 are given", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn change_modules(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(patch): ApiJson<ModulesPatch>,
) -> Result<Json<ModulesBody>> {
    audited.auth.require(Role::Admin)?;
    change_global_modules(
        &state,
        &patch.add_modules,
        &patch.remove_modules,
        patch.reset_to_defaults,
        &audited.audit,
    )
    .await?;
    Ok(Json(ModulesBody::read(&state.db).await?))
}

#[utoipa::path(get, path = "/api/settings/security-policy", tag = "settings", operation_id = "settings_show", responses((status = 200, description = "The security policy in force", body = Policy),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn show(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Policy>> {
    auth.require(Role::Viewer)?;
    Ok(Json(policy(&state.db).await?))
}

/// Any subset of the settings; the result must be valid as a whole.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = settings::PolicyPatch)]
#[serde(deny_unknown_fields)]
struct PolicyPatch {
    #[schema(pattern = "^(disabled|enabled)$")]
    remote_tool_editing: Option<String>,
    #[schema(pattern = "^(require_approval|auto_approve)$")]
    tool_approval_mode: Option<String>,
    #[schema(pattern = "^(require_approval|allow_all_public)$")]
    network_access_policy: Option<String>,
    #[schema(pattern = "^(require_approval|auto_approve)$")]
    module_approval_mode: Option<String>,
    #[schema(pattern = "^(enabled|disabled)$")]
    redact_secrets_in_output: Option<String>,
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    log_retention_days: Option<i64>,
    #[schema(minimum = 10, maximum = 10000)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    mcp_rate_limit_rpm: Option<i64>,
}

#[utoipa::path(patch, path = "/api/settings/security-policy", tag = "settings", operation_id = "settings_update", request_body = PolicyPatch, responses((status = 200, description = "The policy now in force", body = Policy),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type or not one of its values", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(patch): ApiJson<PolicyPatch>,
) -> Result<Json<Policy>> {
    audited.auth.require(Role::Admin)?;
    let current = policy(&state.db).await?;
    let next = Policy {
        remote_tool_editing: patch
            .remote_tool_editing
            .unwrap_or(current.remote_tool_editing),
        tool_approval_mode: patch
            .tool_approval_mode
            .unwrap_or(current.tool_approval_mode),
        network_access_policy: patch
            .network_access_policy
            .unwrap_or(current.network_access_policy),
        module_approval_mode: patch
            .module_approval_mode
            .unwrap_or(current.module_approval_mode),
        redact_secrets_in_output: patch
            .redact_secrets_in_output
            .unwrap_or(current.redact_secrets_in_output),
        log_retention_days: patch
            .log_retention_days
            .unwrap_or(current.log_retention_days),
        mcp_rate_limit_rpm: patch
            .mcp_rate_limit_rpm
            .unwrap_or(current.mcp_rate_limit_rpm),
    };
    apply_recorded(&state, &next, None, &audited.audit).await?;
    Ok(Json(next))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = settings::Profile)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    /// `strict`, `balanced` or `permissive`.
    #[schema(pattern = "^(strict|balanced|permissive)$")]
    profile: String,
}

#[utoipa::path(patch, path = "/api/settings/security-profile", tag = "settings", operation_id = "settings_apply_profile", request_body = ProfileBody, responses((status = 200, description = "The policy now in force", body = Policy),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "Not one of the profiles", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn apply_profile(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(body): ApiJson<ProfileBody>,
) -> Result<Json<Policy>> {
    audited.auth.require(Role::Admin)?;
    let next = preset(&body.profile, &policy(&state.db).await?)?;
    apply_recorded(&state, &next, Some(&body.profile), &audited.audit).await?;
    Ok(Json(next))
}

/// Stores a whole policy (a preset's when `profile` names it) and records the change: what the
/// REST API and the UI call.
pub async fn apply_recorded(
    state: &AppState,
    next: &Policy,
    profile: Option<&str>,
    audit: &crate::activity::Audit,
) -> Result<()> {
    set_policy(&state.db, next).await?;
    let details = serde_json::to_value(next).unwrap_or_default();
    let event = match profile {
        Some(profile) => crate::activity::NewEvent::warning(
            "policy.profile",
            format!("security profile {profile} applied"),
        ),
        None => crate::activity::NewEvent::warning("policy.update", "security policy changed"),
    };
    crate::activity::record_now(state, audit, event.details(details)).await
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(show, update, apply_profile, show_modules, change_modules))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_strictest_and_presets_keep_redaction() {
        let strict = Policy::default();
        assert!(
            !strict.auto_approve_tools()
                && !strict.auto_approve_modules()
                && !strict.all_public_hosts()
        );
        assert!(strict.redact_output());
        assert_eq!(strict.remote_tool_editing, "disabled");
        let base = Policy {
            log_retention_days: 7,
            ..Policy::default()
        };
        for name in ["strict", "balanced", "permissive"] {
            let preset = preset(name, &base).unwrap();
            assert!(preset.redact_output(), "{name}");
            assert_eq!(preset.log_retention_days, 7, "{name}");
            preset.validate().unwrap();
        }
        let permissive = preset("permissive", &base).unwrap();
        assert!(permissive.auto_approve_tools() && permissive.all_public_hosts());
        assert!(preset("yolo", &base).is_err());
    }
}
