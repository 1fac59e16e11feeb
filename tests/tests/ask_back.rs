//! Tools that ask back (`ask`, `sample`, `roots`, `ask_all`) on the real binaries: 2026-07-28
//! rounds over raw HTTP (`InputRequiredResult`, the sealed `requestState` and every guard on
//! it, the bounds), and both revisions through the official MCP Python SDK answering with its
//! callbacks. Every round is a row of the execution log.

use std::time::Duration;

use mcpbox_e2e::mcp::{
    Mcp, NEW, admin_token, api, approve_and_start, draft_tool, get_json, message_with_id,
    python_sdk, submit_and_approve, tool_error,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

/// Three questions, one per round: a name, a model's greeting, the client's roots.
const GREETER: &str = r#"def main(punctuation: str = "!") -> str:
    who = ask("What is your name?", {"type": "object", "properties": {"name": {"type": "string"}}}, key="user_name")
    hello = sample("Say hello in French", max_tokens=20)
    where = roots()
    name = (who or {}).get("name", "stranger")
    return f"{hello}, {name}{punctuation} ({where[0]['name'] if where else 'no roots'})"
"#;

/// The same three in one round.
const TOGETHER: &str = r#"def main() -> str:
    got = ask_all({
        "user_name": ask_request("Name?", {"type": "object", "properties": {"name": {"type": "string"}}}),
        "greeting": sample_request("Greet", max_tokens=50),
        "client_roots": roots_request(),
    })
    return f"{got['greeting']} {got['user_name']['name']} {len(got['client_roots'])}"
"#;

/// Never satisfied: a new question every round.
const LOOPER: &str = r#"def main() -> str:
    for i in range(100):
        ask(f"Question {i}?", key=f"q{i}")
    return "unreachable"
"#;

/// Asks only through what the client declared.
const CAPABLE: &str = r#"def main() -> str:
    if client_can("elicitation"):
        ask("Name?")
    if client_can("sampling"):
        return sample("Say hi")
    return "nothing to ask with"
"#;

const ALL: &str = r#"{"elicitation": {}, "sampling": {}, "roots": {}}"#;

fn all_capabilities() -> Value {
    serde_json::from_str(ALL).unwrap()
}

/// A 2026-07-28 `tools/call` with these capabilities and `extra` params (`inputResponses`,
/// `requestState`): the JSON-RPC answer.
async fn call(mcp: &mut Mcp, name: &str, arguments: Value, extra: Value, caps: Value) -> Value {
    let mut params = json!({"name": name, "arguments": arguments, "_meta": {
        "io.modelcontextprotocol/protocolVersion": NEW,
        "io.modelcontextprotocol/clientCapabilities": caps,
    }});
    if let (Some(params), Value::Object(extra)) = (params.as_object_mut(), extra) {
        params.extend(extra);
    }
    mcp.next_id += 1;
    let id = json!(mcp.next_id);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let response = mcp
        .request("tools/call", &params)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status < 500, "{status} {text}");
    message_with_id(&text, &id).unwrap_or_else(|| panic!("no answer in {status} {text}"))
}

/// The `InputRequiredResult` of an answer: its requests and state.
fn input_required(answer: &Value) -> (Value, String) {
    let result = &answer["result"];
    assert_eq!(result["resultType"], "input_required", "{answer}");
    (
        result["inputRequests"].clone(),
        result["requestState"].as_str().unwrap().to_owned(),
    )
}

fn text(answer: &Value) -> String {
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_ne!(answer["result"]["resultType"], "input_required", "{answer}");
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

fn invalid_params(answer: &Value, expected: &str) {
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(expected), "{expected:?} not in {message}");
}

fn elicited(name: &str) -> Value {
    json!({"action": "accept", "content": {"name": name}})
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "model": "m", "content": {"type": "text", "text": text}})
}

fn listed() -> Value {
    json!({"roots": [{"uri": "file:///home/ada/project", "name": "project"}]})
}

/// A server `ask` with the four tools above, approved and started: their ids by name.
async fn asking_server(url: &str, token: &str) -> Vec<(String, String)> {
    let (server, first) = draft_tool(url, token, "ask", "greeter", GREETER).await;
    let mut ids = vec![("greeter".to_owned(), first)];
    for (name, code) in [
        ("together", TOGETHER),
        ("looper", LOOPER),
        ("capable", CAPABLE),
    ] {
        let (status, created) = api(
            &format!("{url}/api/servers/{server}/tools"),
            json!({"name": name, "python_code": code}),
            Some(token),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        submit_and_approve(url, token, &id).await;
        ids.push((name.to_owned(), id));
    }
    approve_and_start(url, token, &server, &ids[0].1).await;
    ids
}

/// 2026-07-28: each round answers an `InputRequiredResult` whose sealed `requestState` carries
/// the earlier answers; the retry with the answers is the next round, until the tool
/// completes. Missing answers are asked again, extra ones ignored, several questions fit in
/// one round, and every round is a row of the log with its status.
#[tokio::test]
async fn stateless_rounds_ask_until_the_tool_completes() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let ids = asking_server(&url, &token).await;
    let mut mcp = Mcp::stateless(&format!("{url}/mcp"));
    let args = json!({"punctuation": "!"});
    let caps = all_capabilities();

    let first = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        json!({}),
        caps.clone(),
    )
    .await;
    let (requests, state) = input_required(&first);
    assert_eq!(
        requests,
        json!({"user_name": {"method": "elicitation/create", "params": {
            "mode": "form", "message": "What is your name?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}}})
    );
    // A retry that does not answer what was asked gets the question again, not an error.
    let unanswered = json!({"requestState": state, "inputResponses": {"wrong_key": elicited("x")}});
    let again = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        unanswered,
        caps.clone(),
    )
    .await;
    assert!(input_required(&again).0["user_name"].is_object(), "{again}");
    // Answered (plus a key nobody asked for, ignored): the next question, a new state.
    let answered = json!({"requestState": state, "inputResponses": {
        "user_name": elicited("Ada"), "bogus": elicited("Eve")}});
    let second = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        answered,
        caps.clone(),
    )
    .await;
    let (requests, state2) = input_required(&second);
    assert_eq!(requests["sample_1"]["method"], "sampling/createMessage");
    assert_eq!(requests["sample_1"]["params"]["maxTokens"], 20);
    assert_ne!(state, state2);
    // The state holds the earlier answers: this round's retry answers only its own question.
    let third = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        json!({"requestState": state2, "inputResponses": {"sample_1": sampled("Bonjour")}}),
        caps.clone(),
    )
    .await;
    let (requests, state3) = input_required(&third);
    // rmcp's `ListRootsRequest` has no params to send.
    assert_eq!(requests, json!({"roots_1": {"method": "roots/list"}}));
    let done = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        json!({"requestState": state3, "inputResponses": {"roots_1": listed()}}),
        caps.clone(),
    )
    .await;
    assert_eq!(text(&done), "Bonjour, Ada! (project)");

    // Several questions in one round, answered together.
    let first = call(
        &mut mcp,
        "ask__together",
        json!({}),
        json!({}),
        caps.clone(),
    )
    .await;
    let (requests, state) = input_required(&first);
    let mut keys: Vec<&String> = requests.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["client_roots", "greeting", "user_name"]);
    let all = json!({"requestState": state, "inputResponses": {
        "user_name": elicited("Ada"), "greeting": sampled("Salut"), "client_roots": listed()}});
    let done = call(&mut mcp, "ask__together", json!({}), all, caps.clone()).await;
    assert_eq!(text(&done), "Salut Ada 1");

    // The log: one row per round, the asking rounds told apart, the ignored key absent.
    let greeter = &ids[0].1;
    let logs = get_json(&format!("{url}/api/tools/{greeter}/logs"), &token).await;
    let mut rows: Vec<Value> = logs["items"].as_array().unwrap().clone();
    rows.reverse();
    let seen: Vec<(String, i64)> = rows
        .iter()
        .map(|row| {
            (
                row["status"].as_str().unwrap().to_owned(),
                row["input_round"].as_i64().unwrap(),
            )
        })
        .collect();
    // The unanswered retry was round 2 (its state said so), as was the answered one.
    let asked = |round| ("input_required".to_owned(), round);
    assert_eq!(
        seen,
        [asked(1), asked(2), asked(2), asked(3), ("ok".into(), 4)],
        "{logs}"
    );
    assert_eq!(
        rows[0]["input_requests"]["user_name"]["method"],
        "elicitation/create"
    );
    assert_eq!(rows[0]["success"], true);
    assert_eq!(rows[0]["result"], Value::Null);
    assert_eq!(rows[4]["input_requests"], Value::Null);
    assert_eq!(
        rows[4]["input_answers"],
        json!({"user_name": elicited("Ada"), "sample_1": sampled("Bonjour"), "roots_1": listed()}),
        "the answers the last round ran with, without the ignored key"
    );
    drop(origin);
}

/// Every guard on `requestState` and `inputResponses`, by attack: tampered, replayed for
/// other arguments or another tool, over-long, too many or too large answers, too many rounds;
/// and a client's capabilities decide what may be asked.
#[tokio::test]
async fn request_state_and_answers_are_guarded_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    asking_server(&url, &token).await;
    let mut mcp = Mcp::stateless(&format!("{url}/mcp"));
    let args = json!({"punctuation": "!"});
    let caps = all_capabilities();
    let first = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        json!({}),
        caps.clone(),
    )
    .await;
    let (_, state) = input_required(&first);
    let answers = json!({"user_name": elicited("Ada")});

    // Tampered: one character of the state changed.
    let mut tampered: Vec<char> = state.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let answer = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        json!({"requestState": tampered, "inputResponses": answers}),
        caps.clone(),
    )
    .await;
    invalid_params(&answer, "integrity");
    let forged = json!({"requestState": "rs2.e30.e30", "inputResponses": answers});
    let answer = call(&mut mcp, "ask__greeter", args.clone(), forged, caps.clone()).await;
    invalid_params(&answer, "integrity");
    // Replayed with other arguments, or for another tool.
    let replay = json!({"requestState": state, "inputResponses": answers});
    let other_args = json!({"punctuation": "?"});
    let answer = call(
        &mut mcp,
        "ask__greeter",
        other_args,
        replay.clone(),
        caps.clone(),
    )
    .await;
    invalid_params(&answer, "another call");
    let answer = call(&mut mcp, "ask__together", json!({}), replay, caps.clone()).await;
    invalid_params(&answer, "another call");
    // Over the bounds: the state's length, the answers' count and size.
    let long = json!({"requestState": "x".repeat(512 * 1024 + 1)});
    let answer = call(&mut mcp, "ask__greeter", args.clone(), long, caps.clone()).await;
    invalid_params(&answer, "longer than");
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), elicited("x"))).collect();
    let answer = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        json!({"inputResponses": many}),
        caps.clone(),
    )
    .await;
    invalid_params(&answer, "at most 32");
    let big = json!({"inputResponses": {"user_name": elicited(&"x".repeat(70 * 1024))}});
    let answer = call(&mut mcp, "ask__greeter", args.clone(), big, caps.clone()).await;
    invalid_params(&answer, "larger than");
    // Answers sent before any question (no state) are offered: the tool takes its own.
    let ahead = json!({"inputResponses": {"user_name": elicited("Ada"), "sample_1": sampled("Hej"),
        "roots_1": listed(), "unrelated": {"x": 1}}});
    let answer = call(&mut mcp, "ask__greeter", args.clone(), ahead, caps.clone()).await;
    assert_eq!(text(&answer), "Hej, Ada! (project)");
    // A malformed answer (a number for an ElicitResult) is not an answer: asked again.
    let malformed = json!({"inputResponses": {"user_name": 12345}});
    let answer = call(
        &mut mcp,
        "ask__greeter",
        args.clone(),
        malformed,
        caps.clone(),
    )
    .await;
    assert!(input_required(&answer).0["user_name"].is_object());

    // At most 8 rounds: the looper's eighth question ends the call with a tool error.
    let mut extra = json!({});
    for round in 1..=8 {
        let answer = call(&mut mcp, "ask__looper", json!({}), extra, caps.clone()).await;
        if round == 8 {
            assert!(tool_error(&answer).contains("8 rounds"), "{answer}");
            break;
        }
        let (requests, state) = input_required(&answer);
        let key = requests.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(key, format!("q{}", round - 1));
        extra = json!({"requestState": state, "inputResponses": {key: elicited("a")}});
    }

    // Capabilities: only what the client declared is asked.
    let sampling_only = json!({"sampling": {}});
    let answer = call(
        &mut mcp,
        "ask__capable",
        json!({}),
        json!({}),
        sampling_only,
    )
    .await;
    let (requests, _) = input_required(&answer);
    assert_eq!(
        requests.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["sample_1"]
    );
    let answer = call(&mut mcp, "ask__capable", json!({}), json!({}), json!({})).await;
    assert_eq!(text(&answer), "nothing to ask with");
    // A tool that asks anyway is refused with -32021 naming what it needed (the spec's
    // MissingRequiredClientCapabilityError), not run to a tool error.
    let answer = call(&mut mcp, "ask__greeter", args.clone(), json!({}), json!({})).await;
    assert_eq!(answer["error"]["code"], -32021, "{answer}");
    assert_eq!(
        answer["error"]["data"]["requiredCapabilities"],
        json!({"elicitation": {}}),
        "{answer}"
    );
    drop(origin);
}

/// The official Python SDK with its elicitation, sampling and roots callbacks: on 2025-11-25
/// MCPbox asks over the session and re-runs the tool itself; on 2026-07-28 the SDK drives the
/// `InputRequiredResult` rounds. Same questions, same answer. A test run has no client to ask.
#[tokio::test]
async fn the_official_python_sdk_answers_on_both_revisions() {
    let (python, sdk) = python_sdk();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let ids = asking_server(&url, &token).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python_sdk_ask.py");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(&url)
            .arg("ask__greeter")
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client did not finish in 90 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    for mode in ["legacy", "modern"] {
        assert_eq!(seen[mode]["is_error"], false, "{seen}");
        // The result's JSON text, a string.
        assert_eq!(seen[mode]["text"], "\"Bonjour, Ada! (project)\"", "{seen}");
        assert_eq!(
            seen[mode]["questions"],
            json!([
                ["elicitation", "What is your name?"],
                ["sampling", "Say hello in French"],
                ["roots", null]
            ]),
            "{seen}"
        );
    }
    // Four rounds a call, each logged.
    let greeter = &ids[0].1;
    let logs = get_json(&format!("{url}/api/tools/{greeter}/logs"), &token).await;
    let rounds: Vec<i64> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["input_round"].as_i64().unwrap())
        .collect();
    assert_eq!(rounds, [4, 3, 2, 1, 4, 3, 2, 1], "{logs}");
    // An admin's test run: no client behind it, so the tool's question fails inside it.
    let (status, ran) = api(
        &format!("{url}/api/tools/test-code"),
        json!({"tool_id": greeter, "arguments": {}}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["success"], false);
    let message = ran["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no MCP client stands behind this run"),
        "{message}"
    );
    drop(origin);
}
