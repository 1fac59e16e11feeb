//! Tools that ask back, over MCP: the rounds of a `tools/call` (`execution::rounds`).
//!
//! Each round runs the tool through `execution::run_observed` (a fresh single-use worker,
//! logged like any run) with every answer so far; a round that ends asking is answered:
//! - on a 2025-11-25 session, here: each request goes to the client over the session
//!   (`elicitation/create`, `sampling/createMessage`, `roots/list`, `PEER_ANSWER_TIMEOUT` each)
//!   and the tool runs again, at most `MAX_ROUNDS` times;
//! - on a 2026-07-28 request, by the client: the call answers an `InputRequiredResult` with
//!   the requests and a sealed `requestState`, and the client's retry is the next round. A
//!   state that does not verify is a -32602.
//!
//! Client capabilities come from the request's `_meta` (2026-07-28) or the session's
//! `initialize` (2025-11-25), through rmcp's `RequestContext::client_capabilities`.

use std::time::Duration;

use contract::sandbox::Progress;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, InputRequest,
    InputRequests, InputRequiredResult, ProtocolVersion, ServerRequest,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::error::Error;
use crate::execution::rounds::{self, Asked, Binding, MAX_ROUNDS, Round};
use crate::execution::{self, Outcome};
use crate::tools::Approved;

/// How long a 2025-11-25 client has to answer one request (a person may be typing).
const PEER_ANSWER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How a call's rounds ended.
pub(super) enum Ended {
    /// The tool completed (or failed): the last round's outcome.
    Ran(Box<Outcome>),
    /// 2026-07-28: the client answers and retries.
    Ask(InputRequiredResult),
    /// The rounds stopped before the tool completed (a client that did not answer, too many
    /// rounds): a tool error with this message.
    Stopped(String),
    /// 2026-07-28: the tool failed asking through a capability the request's `_meta` did not
    /// declare; the spec's MissingRequiredClientCapabilityError (-32021, HTTP 400) names it.
    /// (The round ran and is logged; a tool that checks `client_can` first never gets here.)
    MissingCapability(String),
}

/// The capabilities of `contract::sandbox::INPUT_CAPABILITIES` the client declared.
fn capabilities(context: &RequestContext<RoleServer>) -> Vec<String> {
    let Some(declared) = context.client_capabilities() else {
        return Vec::new();
    };
    [
        ("elicitation", declared.elicitation.is_some()),
        ("sampling", declared.sampling.is_some()),
        ("roots", declared.roots.is_some()),
    ]
    .into_iter()
    .filter(|(_, declared)| *declared)
    .map(|(name, _)| name.to_owned())
    .collect()
}

fn stateless(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// Runs a `tools/call` of `approved` round by round. `Err` is a protocol error (a bad
/// `requestState` or bad input responses: -32602); a tool that fails is `Ended::Ran`.
pub(super) async fn call(
    state: &AppState,
    approved: &Approved,
    arguments: Value,
    actor: &str,
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
    progress: Option<mpsc::Sender<Progress>>,
) -> Result<Ended, Error> {
    let capabilities = capabilities(context);
    if stateless(context) {
        let binding = Binding::new(approved, &arguments, actor);
        let responses = request.input_responses.clone().unwrap_or_default();
        let responses: Map<String, Value> = responses.into_iter().collect();
        let round = rounds::open(
            &state.keys,
            &binding,
            request.request_state.as_deref(),
            responses,
            capabilities,
        )?;
        let outcome = run_round(state, approved, &arguments, actor, &round, progress).await?;
        let Some(asked) = outcome.asked.clone() else {
            let missing = outcome
                .error
                .as_ref()
                .and_then(|error| error.required_capability.clone());
            return Ok(match missing {
                Some(capability) => Ended::MissingCapability(capability),
                None => Ended::Ran(Box::new(outcome)),
            });
        };
        if round.number >= MAX_ROUNDS {
            return Ok(Ended::Stopped(too_many_rounds()));
        }
        let next = round.next(&asked, Map::new());
        let sealed = rounds::seal(&state.keys, &binding, &next, &asked)?;
        let requests = input_requests(&asked)?;
        return Ok(Ended::Ask(InputRequiredResult::new(
            Some(requests),
            Some(sealed),
        )));
    }
    // 2025-11-25: this call drives the rounds itself, asking over the session.
    let mut round = Round::first(capabilities);
    loop {
        let outcome =
            run_round(state, approved, &arguments, actor, &round, progress.clone()).await?;
        let Some(asked) = outcome.asked.clone() else {
            return Ok(Ended::Ran(Box::new(outcome)));
        };
        if round.number >= MAX_ROUNDS {
            return Ok(Ended::Stopped(too_many_rounds()));
        }
        let answers = match ask_session(context, &asked).await {
            Ok(answers) => answers,
            Err(message) => return Ok(Ended::Stopped(message)),
        };
        round = round.next(&asked, answers);
        rounds::check_answers(&round.answers)
            .map_err(|err| Error::Validation(format!("the client's answers: {err}")))?;
    }
}

async fn run_round(
    state: &AppState,
    approved: &Approved,
    arguments: &Value,
    actor: &str,
    round: &Round,
    progress: Option<mpsc::Sender<Progress>>,
) -> Result<Outcome, Error> {
    execution::run_observed(
        state,
        approved,
        arguments.clone(),
        actor,
        false,
        progress,
        Some(round),
    )
    .await
}

fn too_many_rounds() -> String {
    format!(
        "the tool asked the client for input {MAX_ROUNDS} rounds in a row and was stopped; a \
         tool asks its questions together (ask_all) or in fewer steps"
    )
}

/// The requests as rmcp's typed `inputRequests`: a request the tool shaped wrongly (it builds
/// them only through the runtime's helpers, so this is a bug or a tampered runtime) is an error.
fn input_requests(asked: &Asked) -> Result<InputRequests, Error> {
    asked
        .requests
        .iter()
        .map(|(key, request)| {
            serde_json::from_value::<InputRequest>(request.clone())
                .map(|request| (key.clone(), request))
                .map_err(|err| {
                    Error::Internal(anyhow::anyhow!("the tool's request {key:?}: {err}"))
                })
        })
        .collect()
}

/// Asks each of the round's requests over the 2025-11-25 session, one after the other (a
/// person answers elicitations one at a time anyway). `Err`: what to tell the model.
async fn ask_session(
    context: &RequestContext<RoleServer>,
    asked: &Asked,
) -> Result<Map<String, Value>, String> {
    let requests = input_requests(asked).map_err(|err| err.to_string())?;
    let mut answers = Map::new();
    for (key, request) in requests {
        let method = asked.requests[&key]["method"]
            .as_str()
            .unwrap_or("a request")
            .to_owned();
        let request = match request {
            InputRequest::Elicitation(request) => ServerRequest::ElicitRequest(request),
            InputRequest::CreateMessage(request) => ServerRequest::CreateMessageRequest(request),
            InputRequest::ListRoots(request) => ServerRequest::ListRootsRequest(request),
            _ => return Err(format!("{method} ({key:?}) cannot be sent on this session")),
        };
        let answer = tokio::time::timeout(PEER_ANSWER_TIMEOUT, context.peer.send_request(request))
            .await
            .map_err(|_| {
                format!(
                    "the client did not answer {method} ({key:?}) within {} seconds",
                    PEER_ANSWER_TIMEOUT.as_secs()
                )
            })?
            .map_err(|err| format!("the client did not answer {method} ({key:?}): {err}"))?;
        let answer = serde_json::to_value(answer)
            .map_err(|err| format!("the client's answer to {key:?}: {err}"))?;
        answers.insert(key, answer);
    }
    Ok(answers)
}

/// A call stopped between rounds, as the tool error the model reads.
pub(super) fn stopped(message: String) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

/// -32021 naming `capability` as a `ClientCapabilities` object (`{"sampling": {}}`), as the
/// spec's MissingRequiredClientCapabilityError carries it; rmcp answers it with HTTP 400.
pub(super) fn missing_capability(capability: &str) -> McpError {
    let mut required = serde_json::Map::new();
    required.insert(capability.to_owned(), Value::Object(Map::new()));
    match serde_json::from_value(Value::Object(required)) {
        Ok(required) => McpError::missing_required_client_capability(required),
        Err(err) => McpError::internal_error(format!("capability {capability:?}: {err}"), None),
    }
}

/// A refused `requestState` or `inputResponses` is the client's mistake: -32602 with the reason.
pub(super) fn invalid(err: Error) -> McpError {
    McpError::invalid_params(err.to_string(), None)
}
