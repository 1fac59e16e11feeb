//! Approvals, where a person decides what may run: queues for tool versions, module requests
//! and network requests; the review of one version (diff against the last approved version,
//! the server's requested modules and hosts, the author's notes); approve, reject with a reason,
//! revoke; bulk actions. Every decision goes through the same `approvals`/`access` functions as
//! the REST API, with a `Reviewer` built from the signed-in approver.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, failed, outcome, page};
use crate::access::{self, AccessRequest, Kind};
use crate::app::AppState;
use crate::approvals::{self, QueueItem, Reviewer};
use crate::auth::Role;
use crate::error::Error;
use crate::names::public_name;
use crate::servers::{self, Server};
use crate::tools::{self, Tool, Version};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/approvals", get(queues))
        .route("/ui/approvals/bulk", post(bulk))
        .route("/ui/approvals/tools/{tool}/{version}", get(review))
        .route(
            "/ui/approvals/tools/{tool}/{version}/{action}",
            post(decide_tool),
        )
        .route(
            "/ui/approvals/requests/{kind}/{id}/{action}",
            post(decide_request),
        )
}

const QUEUE_LIMIT: i64 = 200;

pub struct RequestRow {
    pub request: AccessRequest,
    pub server_name: String,
    /// A package request: exactly what approving installs (versions, hashes, metadata, OSV).
    pub resolution: Option<Vec<crate::packages::Resolved>>,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct QueuesPage {
    chrome: Chrome,
    tools: Vec<QueueItem>,
    tools_total: i64,
    modules: Vec<RequestRow>,
    network: Vec<RequestRow>,
    approved_tools: Vec<QueueItem>,
    sources: Vec<crate::external::Source>,
}

async fn with_servers(
    state: &AppState,
    requests: Vec<AccessRequest>,
) -> Result<Vec<RequestRow>, Error> {
    let mut names = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(requests.len());
    for request in requests {
        let server_name = match names.get(&request.server_id) {
            Some(name) => String::clone(name),
            None => {
                let name = servers::get(&state.db, &request.server_id).await?.name;
                names.insert(request.server_id.clone(), name.clone());
                name
            }
        };
        let resolution = crate::packages::resolution_of(&state.db, &request.id).await?;
        rows.push(RequestRow {
            request,
            server_name,
            resolution,
        });
    }
    Ok(rows)
}

async fn queues(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Viewer)?;
    let (tools, tools_total) =
        approvals::queue(&state.db, Some("pending_review"), QUEUE_LIMIT, 0).await?;
    let (approved_tools, _) = approvals::queue(&state.db, Some("approved"), QUEUE_LIMIT, 0).await?;
    let (modules, _) =
        access::queue(&state.db, Kind::Module, Some("pending"), QUEUE_LIMIT, 0).await?;
    let (network, _) =
        access::queue(&state.db, Kind::Network, Some("pending"), QUEUE_LIMIT, 0).await?;
    page(&QueuesPage {
        chrome: ui.chrome("approvals"),
        tools,
        tools_total,
        modules: with_servers(&state, modules).await?,
        network: with_servers(&state, network).await?,
        approved_tools,
        sources: crate::external::pending(&state.db).await?,
    })
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    chrome: Chrome,
    tool: Tool,
    server: Server,
    public_name: String,
    version: Version,
    /// The last approved version it is compared with (none for a first review).
    baseline: Option<i64>,
    diff_html: String,
    code_html: String,
    /// The author's words beside the code, with hidden characters shown like in the code.
    change_html: String,
    description_html: String,
    /// The annotations the version declares and its output schema (`tools::reviewed_text`),
    /// bound by the approval like the code.
    declared: String,
    notes_html: Option<String>,
    requests: Vec<AccessRequest>,
    modules: Vec<String>,
    hosts: Vec<String>,
}

async fn review(
    State(state): State<AppState>,
    ui: Ui,
    Path((tool_id, number)): Path<(String, i64)>,
) -> Page {
    ui.require(Role::Viewer)?;
    let tool = tools::get(&state.db, &tool_id).await?;
    let server = servers::get(&state.db, &tool.server_id).await?;
    let version = tools::version(&state.db, &tool_id, number).await?;
    let baseline = tools::approved_version(&state.db, &tool_id)
        .await?
        .filter(|approved| *approved != number);
    let diff_html = match baseline {
        Some(approved) => {
            super::render_diff(&tools::diff(&state.db, &tool_id, approved, number).await?)
        }
        None => String::new(),
    };
    page(&ReviewPage {
        chrome: ui.chrome("approvals"),
        public_name: public_name(&server.name, &tool.name),
        code_html: super::highlight_python(&version.python_code),
        change_html: super::render::visible_text(&version.change_summary),
        description_html: super::render::visible_text(&version.description),
        declared: crate::prompts::reviewed_text(
            tool.kind,
            &version.python_code,
            &server.name,
            &tool.name,
        )
        .unwrap_or_else(|| {
            tools::reviewed_text(
                version.annotations.as_deref(),
                version.output_schema.as_deref(),
            )
        }),
        notes_html: version
            .publish_notes
            .as_deref()
            .map(super::render::visible_text),
        requests: access::requests_of(&state.db, &server.id, None, false).await?,
        modules: access::allowed_modules(&state.db, &server.id).await?,
        hosts: access::allowed_hosts(&state.db, &server.id).await?,
        diff_html,
        baseline,
        version,
        tool,
        server,
    })
}

async fn decide_tool_version(
    state: &AppState,
    reviewer: &Reviewer,
    tool_id: &str,
    number: i64,
    action: &str,
    reason: &str,
) -> Result<(), Error> {
    match action {
        "approve" => approvals::approve(state, tool_id, Some(number), reviewer)
            .await
            .map(drop),
        "reject" => approvals::reject(state, tool_id, Some(number), reason, reviewer)
            .await
            .map(drop),
        "revoke" => approvals::revoke(state, tool_id, Some(number), reviewer)
            .await
            .map(drop),
        _ => Err(Error::NotFound(format!("unknown action {action:?}"))),
    }
}

/// `submit`: an admin puts a draft (or rejected) version up for review, as the REST API's
/// `submit_for_review` does; then an approver decides it like any request.
async fn decide_tool(
    State(state): State<AppState>,
    ui: Ui,
    Path((tool_id, number, action)): Path<(String, i64, String)>,
    form: Form,
) -> Response {
    let back = format!("/ui/approvals/tools/{tool_id}/{number}");
    let result = async {
        if action == "submit" {
            ui.require(Role::Admin)?;
            return approvals::request_publish(&state, &tool_id, Some(number), None, &ui.audit())
                .await
                .map(drop);
        }
        let reviewer = Reviewer::from_audited(&ui.audited())?;
        decide_tool_version(
            &state,
            &reviewer,
            &tool_id,
            number,
            &action,
            form.text("reason"),
        )
        .await
    }
    .await;
    match result {
        // Submitted: the approver reviews it on the same page.
        Ok(()) if action == "submit" => {
            super::done(&back, format!("Version {number} submitted for review."))
        }
        Ok(()) => super::done(
            "/ui/approvals",
            format!("Version {number} {}.", past(&action)),
        ),
        Err(err) => failed(&back, err),
    }
}

fn kind_of(text: &str) -> Result<Kind, Error> {
    match text {
        "module" => Ok(Kind::Module),
        "network" => Ok(Kind::Network),
        other => Err(Error::NotFound(format!("unknown request kind {other:?}"))),
    }
}

async fn decide_access(
    state: &AppState,
    reviewer: &Reviewer,
    kind: Kind,
    id: &str,
    action: &str,
    reason: &str,
) -> Result<(), Error> {
    match action {
        "approve" => access::approve(state, kind, id, reviewer).await.map(drop),
        "reject" => access::reject(state, kind, id, reason, reviewer)
            .await
            .map(drop),
        "revoke" => access::revoke(state, kind, id, reviewer).await.map(drop),
        _ => Err(Error::NotFound(format!("unknown action {action:?}"))),
    }
}

async fn decide_request(
    State(state): State<AppState>,
    ui: Ui,
    Path((kind, id, action)): Path<(String, String, String)>,
    form: Form,
) -> Response {
    let result = async {
        let reviewer = Reviewer::from_audited(&ui.audited())?;
        decide_access(
            &state,
            &reviewer,
            kind_of(&kind)?,
            &id,
            &action,
            form.text("reason"),
        )
        .await
    }
    .await;
    let back = form
        .get("back")
        .filter(|b| b.starts_with("/ui/"))
        .unwrap_or("/ui/approvals")
        .to_owned();
    outcome(&back, result, format!("Request {}.", past(&action)))
}

fn past(action: &str) -> &'static str {
    match action {
        "approve" => "approved",
        "reject" => "rejected",
        _ => "revoked",
    }
}

/// Several items at once: `item` values are `tool:{id}:{version}`, `module:{id}` or
/// `network:{id}`. Each is decided on its own (one refusal does not undo the others); the
/// notice says how many went through and why any did not.
async fn bulk(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let reviewer = match Reviewer::from_audited(&ui.audited()) {
        Ok(reviewer) => reviewer,
        Err(err) => return failed("/ui/approvals", err),
    };
    let action = form.text("action");
    let reason = form.text("reason");
    let items = form.all("item");
    if items.is_empty() {
        return failed(
            "/ui/approvals",
            Error::Validation("select at least one item".into()),
        );
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    for item in &items {
        let result = match item.split(':').collect::<Vec<_>>().as_slice() {
            ["tool", tool_id, number] => match number.parse::<i64>() {
                Ok(number) => {
                    decide_tool_version(&state, &reviewer, tool_id, number, action, reason).await
                }
                Err(_) => Err(Error::Validation(format!("bad item {item:?}"))),
            },
            [kind, id] => match kind_of(kind) {
                Ok(kind) => decide_access(&state, &reviewer, kind, id, action, reason).await,
                Err(err) => Err(err),
            },
            _ => Err(Error::Validation(format!("bad item {item:?}"))),
        };
        match result {
            Ok(()) => ok += 1,
            Err(err) => refused.push(err.public_message()),
        }
    }
    if refused.is_empty() {
        super::done("/ui/approvals", format!("{ok} item(s) {}.", past(action)))
    } else {
        failed(
            "/ui/approvals",
            Error::Validation(format!(
                "{ok} item(s) {}; {} refused: {}",
                past(action),
                refused.len(),
                refused.join("; ")
            )),
        )
    }
}
