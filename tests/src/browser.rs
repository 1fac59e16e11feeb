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
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")]
            }
        }}});
        let session = browser.raw("POST", "/session", capabilities).await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
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

    /// Saves a PNG of the viewport as `<artifacts>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let data = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
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
