//! Errors an author can fix: the category, the tool's own frames with their source lines (and
//! none of the runtime's), and the output printed before a worker was killed.

use std::path::PathBuf;

use contract::sandbox::{ErrorCategory, ErrorKind, ExecuteRequest, Limits, ValidateRequest};
use sandbox::supervisor::{Config, Supervisor};

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

fn request(code: &str, timeout_ms: u64) -> ExecuteRequest {
    ExecuteRequest {
        input: None,
        code: code.to_owned(),
        arguments: "{}".to_owned(),
        allowed_modules: None,
        allowed_hosts: vec![],
        secrets: Default::default(),
        limits: Limits {
            timeout_ms,
            ..Limits::default()
        },
        packages: Vec::new(),
    }
}

#[tokio::test]
async fn a_raised_exception_has_its_category_type_and_the_tools_own_frames() {
    let supervisor = supervisor().await;
    let code = "def helper(x):\n    return 1 / x\n\n\ndef main():\n    print('before')\n    return helper(0)\n";
    let answer = supervisor.execute(request(code, 5_000)).await;
    assert!(!answer.ok);
    let error = answer.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::Runtime);
    assert_eq!(error.category, ErrorCategory::Code);
    assert_eq!(error.error_type.as_deref(), Some("ZeroDivisionError"));
    assert_eq!(error.line, Some(2));
    let frames: Vec<(u32, &str, &str)> = error
        .traceback
        .iter()
        .map(|f| (f.line, f.function.as_str(), f.source.as_str()))
        .collect();
    // Outermost first; the runtime's `call` frame (mcpbox_runtime.py) is not there.
    assert_eq!(
        frames,
        vec![
            (7, "main", "return helper(0)"),
            (2, "helper", "return 1 / x")
        ]
    );
    assert_eq!(answer.stdout, "before\n");
    let text = error.describe();
    assert!(text.contains("line 2, in helper: return 1 / x"), "{text}");
    assert!(!text.contains("mcpbox_runtime"), "{text}");
}

#[tokio::test]
async fn an_exception_raised_inside_the_runtime_shows_only_the_tools_frames() {
    let supervisor = supervisor().await;
    // `http.get` raises from the runtime's own code (no host is allowed): network category,
    // and the frames stop at the tool's line.
    let code = "async def main():\n    r = await http.get('https://example.com/')\n    return r.status_code\n";
    let answer = supervisor.execute(request(code, 5_000)).await;
    let error = answer.error.expect("an error");
    assert_eq!(error.category, ErrorCategory::Network, "{error:?}");
    assert_eq!(error.error_type.as_deref(), Some("HTTPError"));
    assert_eq!(error.traceback.len(), 1, "{error:?}");
    assert_eq!(error.traceback[0].line, 2);
    assert_eq!(
        error.traceback[0].source,
        "r = await http.get('https://example.com/')"
    );
    // A tool's own class of the same name is the tool's code failing, not the network.
    let code =
        "class HTTPError(Exception):\n    pass\n\n\ndef main():\n    raise HTTPError('mine')\n";
    let error = supervisor
        .execute(request(code, 5_000))
        .await
        .error
        .expect("an error");
    assert_eq!(error.category, ErrorCategory::Code, "{error:?}");
}

#[tokio::test]
async fn a_deep_recursion_keeps_the_innermost_frames_only() {
    let supervisor = supervisor().await;
    let code = "def f(n):\n    return f(n + 1)\n\n\ndef main():\n    return f(0)\n";
    let error = supervisor
        .execute(request(code, 10_000))
        .await
        .error
        .expect("an error");
    assert_eq!(error.error_type.as_deref(), Some("RecursionError"));
    assert_eq!(error.traceback.len(), 20);
    assert!(
        error
            .traceback
            .iter()
            .all(|f| f.line == 2 && f.function == "f")
    );
}

#[tokio::test]
async fn a_timed_out_tool_keeps_what_it_printed() {
    let supervisor = supervisor().await;
    let code = "import time\n\n\ndef main():\n    print('step 1 done')\n    time.sleep(30)\n    return 1\n";
    let answer = supervisor.execute(request(code, 1_500)).await;
    let error = answer.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert_eq!(error.category, ErrorCategory::Timeout);
    assert_eq!(answer.stdout, "step 1 done\n");
}

#[tokio::test]
async fn validation_errors_carry_their_source_lines_in_the_run_shape() {
    let supervisor = supervisor().await;
    let code = "import os\n\n\ndef main():\n    return os.getcwd()\n";
    let checked = supervisor
        .validate(ValidateRequest {
            code: code.to_owned(),
            allowed_modules: None,
        })
        .await
        .expect("validated");
    assert!(!checked.valid);
    assert_eq!(checked.errors[0].line, 1);
    assert_eq!(checked.errors[0].source, "import os");
    let error = checked.as_tool_error().expect("an error");
    assert_eq!(error.category, ErrorCategory::Validation);
    assert_eq!(error.line, Some(1));
    assert_eq!(error.traceback[0].source, "import os");
    // A run of the same code fails the same way, in the same shape.
    let ran = supervisor.execute(request(code, 5_000)).await;
    let run_error = ran.error.expect("an error");
    assert_eq!(run_error.category, ErrorCategory::Validation);
    assert_eq!(run_error.traceback, error.traceback);
}
