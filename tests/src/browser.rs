//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, which
//! the test command installs). Just the W3C WebDriver calls the UI test needs, over reqwest.
//!
//! `MCPBOX_TEST_CHROMIUM` and `MCPBOX_TEST_CHROMEDRIVER` override the binaries' paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    /// Where `screenshot` writes its PNG files.
    pub artifacts: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// axe-core's browser bundle, which `scripts/test` installs (a pinned version) with the other
/// Node tools under `node_dir()`.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = crate::node_dir().join("node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "{} is missing ({err}): run scripts/test, which installs axe-core there \
                 (or set MCPBOX_TEST_NODE_DIR)",
                path.display()
            )
        })
    })
}

fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (phone-sized when `width` is small).
    pub async fn start(artifacts: &Path, width: u32, height: u32) -> Browser {
        let chromedriver = tool("MCPBOX_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("MCPBOX_TEST_CHROMIUM", "/usr/bin/chromium");
        assert!(
            Path::new(&chromedriver).exists() && Path::new(&chromium).exists(),
            "Chromium and chromedriver are needed ({chromium}, {chromedriver}): the test command \
             installs Debian's chromium and chromium-driver"
        );
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut browser = Browser {
            driver,
            base,
            http,
            artifacts: artifacts.to_owned(),
        };
        std::fs::create_dir_all(artifacts).expect("artifact directory");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US",
                         format!("--window-size={width},{height}")]
            }
        }}});
        let session = browser.raw("POST", "/session", capabilities).await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        // Headless Chromium keeps its window at least 500 px wide: the viewport is set through
        // the DevTools protocol instead, so a phone-sized test really is phone-sized.
        browser
            .call(
                "POST",
                "/goog/cdp/execute",
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false
                }}),
            )
            .await;
        let inner = browser.script("return window.innerWidth").await;
        assert_eq!(inner, width, "the viewport is {width} px wide");
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let response = request.send().await.expect("WebDriver answers");
        let answer: Value = response.json().await.expect("WebDriver JSON");
        answer["value"].clone()
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let value = self.raw(method, path, body).await;
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn title(&self) -> String {
        self.call("GET", "/title", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find_now(&self, css: &str) -> Option<String> {
        let found = self
            .raw(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    /// The element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(id) = self.find_now(css).await {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.find_now(css).await.is_some()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Presses keys on the focused element (page-level shortcuts go to the body).
    pub async fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page (WebDriver scripts are not subject to the page's CSP).
    pub async fn script(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": source, "args": []}),
        )
        .await
    }

    /// Runs an asynchronous script: it gets a callback as its last argument and the call
    /// returns what the script passes to it (WebDriver's default limit is 30 s).
    pub async fn script_async(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({"script": source, "args": []}),
        )
        .await
    }

    /// Runs axe-core in the page and panics on any `serious` or `critical` violation, naming
    /// each rule, its help text and the elements it found. Milder findings are printed (seen
    /// with `--no-capture`) but do not fail. `page` names the page in the message.
    pub async fn assert_accessible(&self, page: &str) {
        // WebDriver scripts are not subject to the page's CSP, so axe can be injected as is.
        let loaded = self
            .script("return typeof window.axe === 'object' && window.axe.version")
            .await;
        if loaded.as_str().is_none() {
            self.script(&format!("{}\nreturn null;", axe_source()))
                .await;
        }
        let found = self
            .script_async(
                "var done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(function (result) {
                   done({version: axe.version, violations: result.violations.map(function (v) {
                     return {id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(function (n) {
                       return {target: n.target.join(' '), html: n.html.slice(0, 160),
                               summary: (n.failureSummary || '').replace(/\\s+/g, ' ')};
                     })};
                   })});
                 }, function (error) { done({error: String(error)}); });",
            )
            .await;
        if let Some(error) = found.get("error") {
            panic!("axe-core failed on {page}: {error}");
        }
        let url = self.url().await;
        let mut serious = Vec::new();
        for violation in found["violations"].as_array().into_iter().flatten() {
            let impact = violation["impact"].as_str().unwrap_or("unknown");
            let mut text = format!(
                "[{impact}] {}: {}",
                violation["id"].as_str().unwrap_or("?"),
                violation["help"].as_str().unwrap_or("")
            );
            for node in violation["nodes"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\n    at {} — {} — {}",
                    node["target"].as_str().unwrap_or("?"),
                    node["html"].as_str().unwrap_or(""),
                    node["summary"].as_str().unwrap_or("")
                ));
            }
            eprintln!("axe on {page} ({url}): {text}");
            if matches!(impact, "serious" | "critical") {
                serious.push(text);
            }
        }
        assert!(
            serious.is_empty(),
            "axe-core {} found serious or critical accessibility problems on {page} ({url}):\n{}",
            found["version"].as_str().unwrap_or("?"),
            serious.join("\n")
        );
    }

    /// The page's visible text, or "" while it is being replaced (navigation in progress).
    pub async fn page_text(&self) -> String {
        let source = "return document.body ? document.body.innerText : ''";
        self.raw(
            "POST",
            "/execute/sync",
            json!({"script": source, "args": []}),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits up to `seconds` until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if self.page_text().await.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not appear on {}: {}",
                self.url().await,
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Saves a PNG of the whole page (beyond the viewport, through Chromium's DevTools
    /// protocol) as `<artifacts>/<name>.png`; the viewport only if that is refused.
    pub async fn screenshot(&self, name: &str) {
        let metrics = self
            .raw(
                "POST",
                "/goog/cdp/execute",
                json!({"cmd": "Page.getLayoutMetrics", "params": {}}),
            )
            .await;
        let size = &metrics["cssContentSize"];
        // Without a viewport to scroll, the page loses its scroll bar and lays out at the full
        // window width, which can be wider than the content size measured with the bar.
        let window = self.script("return window.innerWidth").await.as_f64();
        let full = match (size["width"].as_f64(), size["height"].as_f64()) {
            (Some(width), Some(height)) => {
                let width = width.max(window.unwrap_or(0.0));
                self.raw(
                    "POST",
                    "/goog/cdp/execute",
                    json!({"cmd": "Page.captureScreenshot", "params": {
                        "format": "png", "captureBeyondViewport": true,
                        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
                    }}),
                )
                .await["data"]
                    .as_str()
                    .map(str::to_owned)
            }
            _ => None,
        };
        let data = match full {
            Some(data) => data,
            None => self
                .call("GET", "/screenshot", Value::Null)
                .await
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("a base64 PNG");
        std::fs::write(self.artifacts.join(format!("{name}.png")), png).expect("screenshot saved");
    }
}

impl Browser {
    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn quit(self) {
        let _ = self.raw("DELETE", "", Value::Null).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
