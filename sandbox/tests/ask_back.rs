//! Tools that ask back: `ask`, `sample`, `roots`, `ask_all` and `client_can` in a real worker.
//! A helper without its answer ends the run with the request; the same code run again with the
//! answer gets it; a pending request wins over whatever the tool did after catching the end.

use std::path::PathBuf;

use contract::sandbox::{ErrorKind, ExecuteRequest, ExecuteResponse, InputContext, Limits};
use sandbox::supervisor::{Config, Supervisor};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_mcpbox-sandbox");

async fn supervisor() -> Supervisor {
    Supervisor::start(Config {
        pool_size: 2,
        program: PathBuf::from(BINARY),
        unguarded_python: false,
        packages_dir: None,
    })
    .await
    .expect("supervisor starts")
}

const ALL: &[&str] = &["elicitation", "sampling", "roots"];

async fn run(
    supervisor: &Supervisor,
    code: &str,
    answers: Value,
    capabilities: Option<&[&str]>,
) -> ExecuteResponse {
    supervisor
        .execute(ExecuteRequest {
            input: capabilities.map(|capabilities| InputContext {
                answers: answers.to_string(),
                capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            }),
            code: code.to_owned(),
            arguments: "{}".to_owned(),
            allowed_modules: None,
            allowed_hosts: vec![],
            secrets: Default::default(),
            limits: Limits {
                timeout_ms: 5_000,
                ..Limits::default()
            },
            packages: Vec::new(),
        })
        .await
}

fn requests(answer: &ExecuteResponse) -> Value {
    let pending = answer.input_required.as_ref().expect("the run asked");
    serde_json::from_str(&pending.requests).unwrap()
}

fn result(answer: &ExecuteResponse) -> Value {
    assert!(answer.ok, "{:?} {:?}", answer.error, answer.input_required);
    serde_json::from_str(answer.result.as_deref().unwrap()).unwrap()
}

const GREETER: &str = "def main():\n    print('before the question')\n    got = ask('What is your name?', {'type': 'object', 'properties': {'name': {'type': 'string'}}, 'required': ['name']}, key='user_name')\n    if got is None:\n        return 'declined'\n    return 'Hello, ' + got['name'] + '!'\n";

#[tokio::test]
async fn ask_without_an_answer_ends_the_run_with_the_request() {
    let supervisor = supervisor().await;
    let first = run(&supervisor, GREETER, json!({}), Some(ALL)).await;
    assert!(!first.ok);
    assert!(first.error.is_none() && first.result.is_none());
    assert_eq!(
        requests(&first)["user_name"],
        json!({"method": "elicitation/create", "params": {"message": "What is your name?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}})
    );
    assert_eq!(first.input_required.as_ref().unwrap().asked, ["user_name"]);
    // What ran before the question ran (and runs again next round): documented.
    assert_eq!(first.stdout, "before the question\n");

    let accepted = json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}});
    let second = run(&supervisor, GREETER, accepted, Some(ALL)).await;
    assert_eq!(result(&second), "Hello, Alice!");
    let declined = json!({"user_name": {"action": "decline"}});
    assert_eq!(
        result(&run(&supervisor, GREETER, declined, Some(ALL)).await),
        "declined"
    );
}

#[tokio::test]
async fn sample_roots_and_default_keys_in_call_order() {
    let supervisor = supervisor().await;
    let code = "def main():\n    a = sample('Say hi', max_tokens=20, system='Be brief')\n    b = sample('Say bye')\n    r = roots()\n    return [a, b, [x['uri'] for x in r]]\n";
    let first = run(&supervisor, code, json!({}), Some(ALL)).await;
    let asked = requests(&first);
    assert_eq!(asked["sample_1"]["method"], "sampling/createMessage");
    assert_eq!(asked["sample_1"]["params"]["maxTokens"], 20);
    assert_eq!(asked["sample_1"]["params"]["systemPrompt"], "Be brief");
    assert!(asked.get("sample_2").is_none(), "one question at a time");
    let answers = json!({
        "sample_1": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "hi"}},
        "sample_2": {"role": "assistant", "model": "m", "content": [{"type": "text", "text": "bye"}]},
        "roots_1": {"roots": [{"uri": "file:///work", "name": "work"}]},
    });
    assert_eq!(
        result(&run(&supervisor, code, answers, Some(ALL)).await),
        json!(["hi", "bye", ["file:///work"]])
    );
}

#[tokio::test]
async fn ask_all_asks_every_missing_answer_in_one_round() {
    let supervisor = supervisor().await;
    let code = "def main():\n    got = ask_all({'user_name': ask_request('Name?'), 'greeting': sample_request('Greet', max_tokens=50), 'client_roots': roots_request()})\n    return sorted(got)\n";
    let answers = json!({"greeting": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "yo"}}});
    let first = run(&supervisor, code, answers, Some(ALL)).await;
    let asked = requests(&first);
    let mut keys: Vec<&String> = asked.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["client_roots", "user_name"], "only the missing ones");
    let mut asked_keys = first.input_required.unwrap().asked;
    asked_keys.sort();
    assert_eq!(asked_keys, ["client_roots", "greeting", "user_name"]);
}

#[tokio::test]
async fn a_pending_request_wins_over_a_tool_that_catches_the_end() {
    let supervisor = supervisor().await;
    let code = "def main():\n    try:\n        ask('Sure?')\n    except BaseException:\n        pass\n    return 'pretended to finish'\n";
    let first = run(&supervisor, code, json!({}), Some(ALL)).await;
    assert!(!first.ok && first.result.is_none());
    assert_eq!(requests(&first)["ask_1"]["method"], "elicitation/create");
    // Async tools end the same way.
    let code = "async def main():\n    return ask('Sure?', key='k')\n";
    assert!(requests(&run(&supervisor, code, json!({}), Some(ALL)).await)["k"].is_object());
}

#[tokio::test]
async fn capabilities_are_checked_and_told() {
    let supervisor = supervisor().await;
    let code = "def main():\n    can = [client_can('elicitation'), client_can('sampling'), client_can('roots'), client_can('nonsense')]\n    if client_can('elicitation'):\n        ask('Name?')\n    return can\n";
    assert_eq!(
        result(&run(&supervisor, code, json!({}), Some(&["sampling"])).await),
        json!([false, true, false, false])
    );
    // Asking what the client cannot answer is an error inside the tool, with its line.
    let code = "def main():\n    return ask('Name?')\n";
    let refused = run(&supervisor, code, json!({}), Some(&["sampling"])).await;
    let error = refused.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::Runtime);
    assert!(
        error
            .message
            .contains("did not declare the elicitation capability"),
        "{}",
        error.message
    );
    assert_eq!(error.line, Some(2));
    // The capability is recorded for the origin's -32021 ...
    assert_eq!(error.required_capability.as_deref(), Some("elicitation"));
    // ... only when InputUnavailable is what ended the run: a tool that caught it and failed
    // for another reason, or raised its own class of that name, failed for that reason.
    let later = "def main():\n    try:\n        ask('Name?')\n    except InputUnavailable:\n        pass\n    raise ValueError('other')\n";
    let error = run(&supervisor, later, json!({}), Some(&["sampling"]))
        .await
        .error
        .expect("an error");
    assert_eq!(error.error_type.as_deref(), Some("ValueError"));
    assert_eq!(error.required_capability, None);
    let own = "class InputUnavailable(Exception):\n    pass\n\ndef main():\n    raise InputUnavailable('sampling')\n";
    let error = run(&supervisor, own, json!({}), Some(&["sampling"]))
        .await
        .error
        .expect("an error");
    assert_eq!(error.required_capability, None, "{error:?}");
    // No client at all (a test run): the same, saying so; the tool can catch it.
    let no_client = run(&supervisor, code, json!({}), None).await;
    let no_client = no_client.error.unwrap();
    assert!(
        no_client
            .message
            .contains("no MCP client stands behind this run")
    );
    assert_eq!(no_client.required_capability, None);
    let code = "def main():\n    try:\n        return ask('Name?')\n    except InputUnavailable:\n        return 'no one to ask'\n";
    assert_eq!(
        result(&run(&supervisor, code, json!({}), None).await),
        "no one to ask"
    );
}

#[tokio::test]
async fn malformed_answers_are_asked_again_and_bad_requests_refused() {
    let supervisor = supervisor().await;
    // A number where an ElicitResult belongs: not an answer, so the question stands.
    let again = run(
        &supervisor,
        GREETER,
        json!({"user_name": 12345, "other": {"action": "accept"}}),
        Some(ALL),
    )
    .await;
    assert!(requests(&again)["user_name"].is_object());
    assert_eq!(again.input_required.unwrap().asked, ["user_name"]);
    let cases = [
        ("ask('Name?', key='has space')", "a request key is 1 to 64"),
        ("ask('Name?', key='k' * 65)", "a request key is 1 to 64"),
        ("ask('')", "non-empty string"),
        ("sample('x', max_tokens=0)", "positive integer"),
        ("ask_all({'a': 'not a request'})", "ask_all takes"),
        (
            "ask_all({str(i): ask_request('q') for i in range(17)})",
            "at most 16 questions",
        ),
    ];
    for (call, expected) in cases {
        let code = format!("def main():\n    return {call}\n");
        let answer = run(&supervisor, &code, json!({}), Some(ALL)).await;
        let message = answer.error.map(|e| e.message).unwrap_or_default();
        assert!(message.contains(expected), "{call}: {message}");
    }
    // The requests' size is bounded like a result.
    let code = "def main():\n    return ask('x' * 300000)\n";
    let answer = run(&supervisor, code, json!({}), Some(ALL)).await;
    assert!(answer.input_required.is_none());
    assert_eq!(answer.error.unwrap().kind, ErrorKind::Result);
}
