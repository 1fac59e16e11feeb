//! The conformance suite's fixture server, built the way a person builds any server: through
//! the REST API, every tool, prompt and resource a draft that is submitted and approved, then
//! the server started. `tests/conformance/fixture/` holds them: `tools/<name>.py` (the code; the
//! module docstring's first line is the description), `prompts/<name>.json` and
//! `resources/<name>.json` (create bodies). Every file there is loaded, so a new scenario's
//! fixture is one new file.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::mcp::{api, submit_and_approve};

/// The fixture server's name: its endpoint is `/servers/conformance/mcp`.
pub const SERVER: &str = "conformance";

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/fixture")
}

/// The files of `kind` (`tools`, `prompts`, `resources`) ending in `ext`, sorted by name.
fn files(kind: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir().join(kind))
        .unwrap_or_else(|e| panic!("{}: {e}", dir().join(kind).display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// A tool's description: the first line of its module docstring.
fn module_doc_line(code: &str, path: &Path) -> String {
    let rest = code
        .trim_start()
        .strip_prefix("\"\"\"")
        .unwrap_or_else(|| panic!("{} does not start with a docstring", path.display()));
    rest.lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches("\"\"\"")
        .trim()
        .to_owned()
}

async fn create(url: &str, token: &str, path: &str, body: Value) -> String {
    let (status, created) = api(&format!("{url}{path}"), body, Some(token)).await;
    assert_eq!(status, 201, "POST {path}: {created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Creates server `conformance` with every fixture, approves each and starts the server.
/// Returns the number of tools, prompts and resources loaded.
pub async fn load(url: &str, token: &str) -> (usize, usize, usize) {
    let server = create(url, token, "/api/servers", json!({"name": SERVER})).await;
    let mut ids = Vec::new();
    let tools = files("tools", "py");
    for path in &tools {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let code = std::fs::read_to_string(path).unwrap();
        let description = module_doc_line(&code, path);
        let body = json!({"name": name, "description": description, "python_code": code});
        ids.push(create(url, token, &format!("/api/servers/{server}/tools"), body).await);
    }
    // After the tools: a tool-backed resource names a tool of its server.
    let mut counts = Vec::new();
    for kind in ["prompts", "resources"] {
        let items = files(kind, "json");
        for path in &items {
            let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path.file_stem().unwrap().to_str().unwrap();
            assert_eq!(
                body["name"],
                stem,
                "{}: name it as its file",
                path.display()
            );
            ids.push(create(url, token, &format!("/api/servers/{server}/{kind}"), body).await);
        }
        counts.push(items.len());
    }
    for id in &ids {
        submit_and_approve(url, token, id).await;
    }
    let start = format!("{url}/api/sandbox/servers/{server}/start");
    let (status, body) = api(&start, json!({}), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    (tools.len(), counts[0], counts[1])
}
