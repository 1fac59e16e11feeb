//! Step 1: the API token, the account and the permission probe.

use axum::http::StatusCode;

use super::*;
use crate::cloudflare::Failure;
use crate::cloudflare::client::{Account, CfError, Organization, TokenStatus};
use crate::cloudflare::store;

/// Step 1: verify the token, choose the account, read the Access team domain, probe every
/// permission the later steps need.
pub(super) async fn token(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
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
