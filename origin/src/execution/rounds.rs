//! Tools that ask back (`ask`, `sample`, `roots` in the runtime): the rounds of one call.
//!
//! Workers are single-use, so a tool never waits for an answer: a run that needs one ends
//! with its requests (`Asked`), and the call's next round runs the tool again from the start
//! with every answer so far (`Round`). On 2025-11-25 the gateway asks the client over the
//! session between rounds (`gateway::ask`); on 2026-07-28 the client gets an
//! `InputRequiredResult` and retries with `inputResponses` and the `requestState` sealed here,
//! which holds the answers of the earlier rounds, so no replica keeps anything between rounds.
//!
//! Everything a client can make us hold or compute is bounded: rounds (`MAX_ROUNDS`), answers
//! (`MAX_ANSWERS`, `MAX_ANSWER_BYTES`, `MAX_ANSWERS_BYTES`) and the state (`MAX_STATE_CHARS`).

use std::time::Duration;

use rmcp::model::{RequestStateCodec, RequestStateError, SealOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::tools::Approved;

/// Most rounds of one call: a tool still asking after this many ends with an error.
pub const MAX_ROUNDS: u32 = 8;
/// Most answers a round runs with (each round asks at most `contract`'s 16 questions).
pub const MAX_ANSWERS: usize = 32;
/// Largest single answer, as JSON text.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Largest answers of a round together, as JSON text.
pub const MAX_ANSWERS_BYTES: usize = 256 * 1024;
/// Longest `requestState` we read (a sealed state of `MAX_ANSWERS_BYTES` is well under it).
pub const MAX_STATE_CHARS: usize = 512 * 1024;
/// How long a `requestState` stays good: a person answering a question takes minutes, not days.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// The round a run is: its number (from 1), the answers it runs with and what the client
/// declared it can answer (`contract::sandbox::INPUT_CAPABILITIES`).
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub number: u32,
    pub answers: Map<String, Value>,
    pub capabilities: Vec<String>,
}

impl Round {
    pub fn first(capabilities: Vec<String>) -> Round {
        Round {
            number: 1,
            answers: Map::new(),
            capabilities,
        }
    }

    /// The round after one that asked: the answers the tool looked up (`asked`) are carried,
    /// others dropped, and `new` answers join them. Earlier answers are never replaced.
    pub fn next(&self, asked: &Asked, new: Map<String, Value>) -> Round {
        let mut answers = carried(&self.answers, &asked.asked);
        for (key, value) in new {
            answers.entry(key).or_insert(value);
        }
        Round {
            number: self.number + 1,
            answers,
            capabilities: self.capabilities.clone(),
        }
    }
}

/// A run that ended asking: its requests (key → `{"method", "params"}`) and every key it
/// looked up, answered or not.
#[derive(Debug, Clone)]
pub struct Asked {
    pub requests: Map<String, Value>,
    pub asked: Vec<String>,
}

fn carried(answers: &Map<String, Value>, asked: &[String]) -> Map<String, Value> {
    answers
        .iter()
        .filter(|(key, _)| asked.contains(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Refuses answers over the bounds, naming the bound.
pub fn check_answers(answers: &Map<String, Value>) -> Result<()> {
    if answers.len() > MAX_ANSWERS {
        return Err(Error::Validation(format!(
            "at most {MAX_ANSWERS} input responses are accepted, got {}",
            answers.len()
        )));
    }
    let mut total = 0;
    for (key, value) in answers {
        let size = key.len() + value.to_string().len();
        if size > MAX_ANSWER_BYTES {
            return Err(Error::Validation(format!(
                "the input response {key:?} is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        total += size;
    }
    if total > MAX_ANSWERS_BYTES {
        return Err(Error::Validation(format!(
            "the input responses are larger than {MAX_ANSWERS_BYTES} bytes together"
        )));
    }
    Ok(())
}

/// What a `requestState` is bound to: the tool and exact version, the arguments and the
/// caller. A state sealed for one of these is refused for any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    tool: String,
    version: i64,
    /// SHA-256 of the code (or binding) that runs, hex.
    code: String,
    /// SHA-256 of the arguments in canonical JSON (keys sorted), hex.
    arguments: String,
    caller: String,
}

impl Binding {
    pub fn new(approved: &Approved, arguments: &Value, caller: &str) -> Binding {
        Binding {
            tool: approved.tool_id.clone(),
            version: approved.version,
            code: hex::encode(Sha256::digest(approved.code.as_bytes())),
            arguments: hex::encode(Sha256::digest(canonical(arguments).as_bytes())),
            caller: caller.to_owned(),
        }
    }
}

/// JSON with object keys sorted, whatever order the client sent them in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{}:{}", Value::String(key.clone()), canonical(&map[key])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The sealed payload: integrity-protected (HMAC-SHA256), readable by the client (it holds
/// only what the client itself sent, and our binding).
#[derive(Debug, Serialize, Deserialize)]
struct State {
    binding: Binding,
    /// The round the retry will be.
    round: u32,
    answers: Map<String, Value>,
    /// The keys the last round asked: the only `inputResponses` the retry takes.
    requested: Vec<String>,
}

/// The request-state codec under a key derived from the origin's master key (replicas share
/// it, so any replica opens what another sealed).
fn codec(keys: &Keyring) -> Result<RequestStateCodec> {
    RequestStateCodec::try_new(keys.derive("mcp-request-state").to_vec())
        .map_err(|err| Error::Internal(anyhow::anyhow!("request state key: {err}")))
}

/// Seals the state a 2026-07-28 client echoes back with its answers to `asked`'s requests.
pub fn seal(keys: &Keyring, binding: &Binding, next: &Round, asked: &Asked) -> Result<String> {
    let state = State {
        binding: binding.clone(),
        round: next.number,
        answers: next.answers.clone(),
        requested: asked.requests.keys().cloned().collect(),
    };
    codec(keys)?
        .seal_json_with(&state, &SealOptions::new().ttl(STATE_TTL))
        .map_err(|err| Error::Internal(anyhow::anyhow!("sealing request state: {err}")))
}

/// The round a 2026-07-28 `tools/call` is: the first when it carries no `requestState`, else
/// the one its state says, with the state's answers plus the `inputResponses` to the keys the
/// last round requested (others are ignored). Without a state, every input response is offered
/// (a client may answer before it is asked); the tool reads only the keys it asks for, and
/// only those are carried on. A state that is malformed, forged, expired or bound to another
/// tool, version, arguments or caller is refused (`Error::Validation`, a -32602).
pub fn open(
    keys: &Keyring,
    binding: &Binding,
    state: Option<&str>,
    responses: Map<String, Value>,
    capabilities: Vec<String>,
) -> Result<Round> {
    let Some(sealed) = state else {
        check_answers(&responses)?;
        return Ok(Round {
            number: 1,
            answers: responses,
            capabilities,
        });
    };
    if sealed.len() > MAX_STATE_CHARS {
        return Err(Error::Validation(format!(
            "requestState is longer than {MAX_STATE_CHARS} characters"
        )));
    }
    let state: State = codec(keys)?.open_json(sealed).map_err(|err| {
        Error::Validation(match err {
            RequestStateError::Expired => format!(
                "requestState has expired (it is good for {} minutes): call the tool again \
                 without it",
                STATE_TTL.as_secs() / 60
            ),
            _ => "requestState failed its integrity check: send it back exactly as received"
                .to_owned(),
        })
    })?;
    if state.binding != *binding {
        return Err(Error::Validation(
            "requestState belongs to another call (tool, version, arguments or caller): send \
             it back only with the call it came from"
                .into(),
        ));
    }
    if state.round > MAX_ROUNDS {
        return Err(Error::Validation(format!(
            "requestState is past the last round ({MAX_ROUNDS})"
        )));
    }
    let mut answers = state.answers;
    for (key, value) in responses {
        if state.requested.contains(&key) {
            answers.entry(key).or_insert(value);
        }
    }
    check_answers(&answers)?;
    Ok(Round {
        number: state.round,
        answers,
        capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> Keyring {
        Keyring::new([7u8; 32], None)
    }

    fn binding(arguments: Value, caller: &str) -> Binding {
        Binding {
            tool: "t1".into(),
            version: 3,
            code: "c".into(),
            arguments: hex::encode(Sha256::digest(canonical(&arguments).as_bytes())),
            caller: caller.into(),
        }
    }

    fn asked(keys: &[&str]) -> Asked {
        Asked {
            requests: keys
                .iter()
                .map(|k| (k.to_string(), json!({"method": "roots/list", "params": {}})))
                .collect(),
            asked: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_sealed_state_opens_once_bound_to_the_same_call() {
        let b = binding(json!({"a": 1, "b": [2, {"y": 1, "x": 2}]}), "alice");
        let first = Round::first(vec![]);
        let next = first.next(&asked(&["k1"]), object(json!({"k0": 1})));
        let sealed = seal(&keys(), &b, &next, &asked(&["k1"])).unwrap();
        // Argument order does not matter; only the requested key is taken, extras ignored.
        let same = binding(json!({"b": [2, {"x": 2, "y": 1}], "a": 1}), "alice");
        let round = open(
            &keys(),
            &same,
            Some(&sealed),
            object(json!({"k1": "one", "extra": "ignored"})),
            vec![],
        )
        .unwrap();
        assert_eq!(round.number, 2);
        assert_eq!(round.answers, object(json!({"k0": 1, "k1": "one"})));
    }

    #[test]
    fn forged_expired_and_foreign_states_are_refused() {
        let b = binding(json!({}), "alice");
        let next = Round::first(vec![]).next(&asked(&["k"]), Map::new());
        let sealed = seal(&keys(), &b, &next, &asked(&["k"])).unwrap();
        let refuse = |binding: &Binding, state: &str| {
            open(&keys(), binding, Some(state), Map::new(), vec![])
                .unwrap_err()
                .to_string()
        };
        let mut tampered = sealed.clone().into_bytes();
        let at = tampered.len() / 2;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(refuse(&b, &tampered).contains("integrity"));
        assert!(refuse(&b, "rs2.garbage").contains("integrity"));
        assert!(refuse(&binding(json!({"a": 1}), "alice"), &sealed).contains("another call"));
        assert!(refuse(&binding(json!({}), "mallory"), &sealed).contains("another call"));
        // Sealed under another master key (another install): not ours.
        let other = seal(&Keyring::new([8u8; 32], None), &b, &next, &asked(&["k"])).unwrap();
        assert!(refuse(&b, &other).contains("integrity"));
        let expired = codec(&keys())
            .unwrap()
            .seal_json_with(
                &State {
                    binding: b.clone(),
                    round: 2,
                    answers: Map::new(),
                    requested: vec![],
                },
                &SealOptions::new().ttl(Duration::from_millis(1)),
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(refuse(&b, &expired).contains("expired"));
        assert!(refuse(&b, &"x".repeat(MAX_STATE_CHARS + 1)).contains("longer than"));
    }

    #[test]
    fn answers_are_bounded() {
        let many: Map<String, Value> = (0..=MAX_ANSWERS)
            .map(|i| (format!("k{i}"), json!(1)))
            .collect();
        assert!(
            check_answers(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 32")
        );
        let big = object(json!({"k": "x".repeat(MAX_ANSWER_BYTES)}));
        assert!(
            check_answers(&big)
                .unwrap_err()
                .to_string()
                .contains("\"k\" is larger")
        );
        let total: Map<String, Value> = (0..5)
            .map(|i| (format!("k{i}"), json!("x".repeat(MAX_ANSWER_BYTES - 100))))
            .collect();
        assert!(
            check_answers(&total)
                .unwrap_err()
                .to_string()
                .contains("together")
        );
        let b = binding(json!({}), "a");
        assert!(open(&keys(), &b, None, many, vec![]).is_err());
    }
}
