//! Tool detail: the code of the version that runs (highlighted), the version history, a diff
//! between any two versions, the input schema, execution logs with filters, and a test run.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::format::filters;
use super::{Chrome, Form, Page, Ui, failed, page};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::Error;
use crate::execution::{self, LogFilter, LogRow};
use crate::names::public_name;
use crate::servers::{self, Server};
use crate::tools::{self, Source, Tool, Version};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/tools/{id}", get(show))
        .route("/ui/tools/{id}/test", post(test_run))
        .route("/ui/tools/{id}/enabled", post(set_enabled))
        .route("/ui/tools/{id}/rollback", post(rollback))
        .route("/ui/tools/{id}/delete", post(delete))
}

const LOGS_PER_PAGE: i64 = 25;

#[derive(Deserialize)]
struct Params {
    from: Option<i64>,
    to: Option<i64>,
    status: Option<String>,
    page: Option<i64>,
}

#[derive(Template)]
#[template(path = "tool.html")]
struct ToolPage {
    chrome: Chrome,
    tool: Tool,
    server: Server,
    public_name: String,
    /// The version shown: the approved one when there is one, else the newest.
    shown: Version,
    approved: Option<i64>,
    code_html: String,
    schema: String,
    /// The shown version's annotations and output schema (`tools::reviewed_text`).
    declared: String,
    versions: Vec<Version>,
    from: i64,
    to: i64,
    diff_html: String,
    logs: Vec<LogRow>,
    logs_total: i64,
    status: String,
    page: i64,
    pages: i64,
    example_arguments: String,
}

async fn show(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Page {
    ui.require(Role::Viewer)?;
    let tool = tools::get(&state.db, &id).await?;
    let server = servers::get(&state.db, &tool.server_id).await?;
    let versions = tools::versions(&state.db, &id).await?;
    let approved = tools::approved_version(&state.db, &id).await?;
    let shown_number = approved.unwrap_or(tool.current_version);
    let shown = versions
        .iter()
        .find(|v| v.version == shown_number)
        .cloned()
        .ok_or_else(|| Error::NotFound("this tool has no versions".into()))?;
    let newest = tool.current_version;
    let to = params.to.unwrap_or(newest);
    let from = params
        .from
        .unwrap_or_else(|| approved.filter(|a| *a != to).unwrap_or((to - 1).max(1)));
    let diff_html = if from == to {
        String::new()
    } else {
        super::render_diff(&tools::diff(&state.db, &id, from, to).await?)
    };
    let status = match params.status.as_deref() {
        Some(s @ ("ok" | "error")) => s.to_owned(),
        _ => "all".to_owned(),
    };
    let filter = LogFilter {
        tool_id: Some(id.clone()),
        server_id: None,
        executed_by: None,
        success: match status.as_str() {
            "ok" => Some(true),
            "error" => Some(false),
            _ => None,
        },
    };
    let page_number = params.page.unwrap_or(1).clamp(1, 100_000);
    let (logs, logs_total) = execution::logs(
        &state.db,
        &filter,
        LOGS_PER_PAGE,
        (page_number - 1) * LOGS_PER_PAGE,
    )
    .await?;
    let schema = serde_json::from_str::<serde_json::Value>(&shown.input_schema)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| shown.input_schema.clone());
    page(&ToolPage {
        chrome: ui.chrome("servers"),
        public_name: public_name(&server.name, &tool.name),
        code_html: super::highlight_python(&shown.python_code),
        declared: crate::prompts::reviewed_text(
            tool.kind,
            &shown.python_code,
            &server.name,
            &tool.name,
        )
        .unwrap_or_else(|| {
            tools::reviewed_text(shown.annotations.as_deref(), shown.output_schema.as_deref())
        }),
        example_arguments: example_arguments(&shown.input_schema),
        schema,
        shown,
        approved,
        versions,
        from,
        to,
        diff_html,
        logs,
        logs_total,
        status,
        page: page_number,
        pages: ((logs_total + LOGS_PER_PAGE - 1) / LOGS_PER_PAGE).max(1),
        tool,
        server,
    })
}

/// `{}` with the schema's properties and empty values, so the test form starts well-formed.
fn example_arguments(schema: &str) -> String {
    let properties = serde_json::from_str::<serde_json::Value>(schema)
        .ok()
        .and_then(|v| v.get("properties").and_then(|p| p.as_object()).cloned())
        .unwrap_or_default();
    let example: serde_json::Map<String, serde_json::Value> = properties
        .iter()
        .map(|(name, spec)| {
            let value = match spec.get("type").and_then(|t| t.as_str()) {
                Some("integer" | "number") => serde_json::json!(0),
                Some("boolean") => serde_json::json!(false),
                Some("array") => serde_json::json!([]),
                Some("object") => serde_json::json!({}),
                _ => serde_json::json!(""),
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::to_string_pretty(&example).unwrap_or_else(|_| "{}".into())
}

async fn test_run(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let back = format!("/ui/tools/{id}");
    let result = async {
        ui.require(Role::Approver)?;
        let arguments: serde_json::Value = serde_json::from_str(form.text("arguments"))
            .map_err(|err| Error::Validation(format!("the arguments are not JSON: {err}")))?;
        if !arguments.is_object() {
            return Err(Error::Validation(
                "the arguments must be a JSON object".into(),
            ));
        }
        execution::test_run(
            &state,
            &id,
            arguments,
            &ui.auth.user().username,
            crate::control::Principal::Person,
        )
        .await
    }
    .await;
    match result {
        Ok(outcome) if outcome.ok => {
            let result = outcome
                .result
                .map(|r| r.to_string())
                .unwrap_or_else(|| "null".into());
            let shown: String = result.chars().take(400).collect();
            super::done(
                &back,
                format!(
                    "Test run of version {} succeeded in {} ms: {shown}",
                    outcome.version, outcome.duration_ms
                ),
            )
        }
        Ok(outcome) => {
            let message = outcome
                .error
                .map(|e| e.describe())
                .unwrap_or_else(|| "the tool failed".into());
            failed(
                &back,
                Error::Validation(format!(
                    "Test run of version {} failed: {message}",
                    outcome.version
                )),
            )
        }
        Err(err) => failed(&back, err),
    }
}

async fn set_enabled(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let enabled = form.text("enabled") == "true";
    let result = async {
        ui.require(Role::Admin)?;
        let changes = tools::Changes {
            name: None,
            description: None,
            python_code: None,
            enabled: Some(enabled),
            timeout_ms: None,
            summary: None,
            annotations: None,
        };
        tools::update(&state, &id, changes, Source::Admin, &ui.audit()).await
    }
    .await;
    super::outcome(
        &format!("/ui/tools/{id}"),
        result,
        if enabled {
            "Tool enabled."
        } else {
            "Tool disabled: it is no longer listed or callable."
        },
    )
}

async fn rollback(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let back = format!("/ui/tools/{id}");
    let result = async {
        ui.require(Role::Admin)?;
        let to = form
            .text("version")
            .parse::<i64>()
            .map_err(|_| Error::Validation("choose a version to roll back to".into()))?;
        tools::rollback(&state, &id, to, &ui.audit()).await
    }
    .await;
    match result {
        Ok(version) => super::done(
            &back,
            format!(
                "Version {} created from the old code; it needs review before it runs.",
                version.version
            ),
        ),
        Err(err) => failed(&back, err),
    }
}

async fn delete(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let back = format!("/ui/tools/{id}");
    let result = async {
        ui.require(Role::Admin)?;
        let tool = tools::get(&state.db, &id).await?;
        super::confirm_typed(&form, &tool.name, "tool")?;
        tools::delete(&state, &id, &ui.audit()).await?;
        Ok(tool.server_id)
    }
    .await;
    match result {
        Ok(server) => super::done(&format!("/ui/servers/{server}"), "Tool deleted."),
        Err(err) => failed(&back, err),
    }
}
