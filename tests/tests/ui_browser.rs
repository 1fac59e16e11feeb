//! The admin UI in a real browser (headless Chromium over WebDriver), against the real
//! `mcpbox serve`, with the official MCP Python SDK playing the LLM:
//! first-run set-up → the admin creates an approver → the LLM creates a server and a tool and
//! asks to publish → the approver reviews the code and approves in the browser → the LLM writes
//! version 2 → the approver reviews the diff and approves → the tool is live, and the LLM's next
//! call appears in the live activity view without a reload. Also: a viewer sees no actions and
//! is refused the admin pages, a form stripped of its CSRF token is refused, no page carries
//! inline script, and every main page, at 1280 and at 390 px wide, passes axe-core (no serious
//! or critical violation), keeps table words whole, shows no raw timestamp and does not scroll
//! sideways.
//!
//! Screenshots of the main pages land in `target/ui-screenshots/` (not committed).

use std::time::Duration;

use mcpbox_e2e::browser::Browser;
use mcpbox_e2e::mcp::python_sdk;
use mcpbox_e2e::{Origin, ServeOptions, binary};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// Runs one step of `clients/python_sdk_publish.py` and returns its JSON.
async fn llm(url: &str, args: &[&str]) -> Value {
    let (python, sdk) = python_sdk();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python_sdk_publish.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(url)
            .args(args)
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client finishes in 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)))
}

async fn sign_in(browser: &Browser, url: &str, username: &str, password: &str) {
    browser.goto(&format!("{url}/ui/login")).await;
    browser.type_into("#username", username).await;
    browser.type_into("#password", password).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_text("Dashboard", 10).await;
}

async fn sign_out(browser: &Browser) {
    browser.click("header form button").await;
    browser.wait_for_text("Signed out.", 10).await;
}

async fn assert_no_inline_script(browser: &Browser) {
    let inline = browser
        .script("return document.querySelectorAll('script:not([src]), [style], [onclick], [onload]').length")
        .await;
    assert_eq!(
        inline,
        0,
        "inline script or style on {}",
        browser.url().await
    );
}

/// Words in table headers and cells that the layout split over two lines (allowed only inside
/// `code`, `pre` and `.wrap`, the long unbroken values), and raw RFC 3339 timestamps in the
/// visible text (times are shown relative, inside `<time>`).
const LAYOUT_PROBLEMS: &str = "
  var split = [];
  document.querySelectorAll('th, td').forEach(function (cell) {
    var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest('code, pre, .wrap')) continue;
      var re = /\\S+/g, m;
      while ((m = re.exec(node.data))) {
        var range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        var lines = new Set(Array.from(range.getClientRects()).map(function (r) { return Math.round(r.top); }));
        if (lines.size > 1) split.push(m[0]);
      }
    }
  });
  var raw = document.body.innerText.match(/\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}[^\\s]*/g) || [];
  return {split: split, raw: raw};";

/// The checks every main page gets at every width: axe-core (no serious or critical
/// violation), no word split mid-word in a table, no raw timestamp, no horizontal scrolling of
/// the page itself; and a screenshot.
async fn check_page(browser: &Browser, name: &str) {
    browser.find("main h1").await;
    browser.screenshot(name).await;
    browser.assert_accessible(name).await;
    let problems = browser.script(LAYOUT_PROBLEMS).await;
    assert_eq!(
        problems["split"],
        serde_json::json!([]),
        "{name}: words split over two lines"
    );
    assert_eq!(
        problems["raw"],
        serde_json::json!([]),
        "{name}: raw timestamps in the text"
    );
    let overflow = browser
        .script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        )
        .await;
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "{name} overflows the window by {overflow}px"
    );
}

/// Every main page, signed in as an admin, then the sign-in page.
async fn tour(browser: &Browser, url: &str, server: &str, tool: &str, prefix: &str) {
    sign_in(browser, url, "admin", PASSWORD).await;
    let pages = [
        ("dashboard", "/ui".to_owned()),
        ("servers", "/ui/servers".to_owned()),
        ("server", format!("/ui/servers/{server}")),
        ("tool", format!("/ui/tools/{tool}")),
        ("approvals", "/ui/approvals".to_owned()),
        ("review", format!("/ui/approvals/tools/{tool}/2")),
        ("activity", "/ui/activity".to_owned()),
        ("settings", "/ui/settings".to_owned()),
        ("users", "/ui/users".to_owned()),
        ("remote", "/ui/remote".to_owned()),
        ("remote-tunnel", "/ui/remote/tunnel".to_owned()),
        ("transfer", "/ui/transfer".to_owned()),
    ];
    for (name, path) in pages {
        browser.goto(&format!("{url}{path}")).await;
        check_page(browser, &format!("{prefix}-{name}")).await;
    }
    sign_out(browser).await;
    check_page(browser, &format!("{prefix}-sign-in")).await;
}

async fn focused_id(browser: &Browser) -> Value {
    browser
        .script("return document.activeElement && document.activeElement.id")
        .await
}

async fn create_account(browser: &Browser, url: &str, username: &str, role: &str) {
    browser.goto(&format!("{url}/ui/users")).await;
    browser.type_into("#username", username).await;
    browser.type_into("#password", PASSWORD).await;
    browser
        .script(&format!(
            "document.getElementById('role').value = '{role}'; return null"
        ))
        .await;
    browser.click("form[action='/ui/users'] button").await;
    browser
        .wait_for_text(&format!("Account {username} created."), 10)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_reviews_and_approves_in_the_browser_and_sees_the_call_live() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let artifacts = binary("mcpbox")
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("ui-screenshots");
    let browser = Browser::start(&artifacts, 1280, 1000).await;

    // First run: the root leads to set-up.
    browser.goto(&format!("{url}/")).await;
    assert!(
        browser.url().await.ends_with("/ui/setup"),
        "{}",
        browser.url().await
    );
    browser.screenshot("01-setup").await;
    browser.type_into("#username", "admin").await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#confirm", PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_text("Dashboard", 10).await;
    browser.wait_for_text("seccomp", 10).await;
    assert_no_inline_script(&browser).await;
    browser.screenshot("02-dashboard").await;

    // The admin creates an approver and a viewer, then signs out.
    create_account(&browser, &url, "alice", "approver").await;
    create_account(&browser, &url, "victor", "viewer").await;
    // A long name widens the users table past a phone's width, as a slow run's "1 minute ago"
    // once did: the table must scroll in its own box, with nothing of it widening the page.
    create_account(&browser, &url, "night_shift_operations_viewer", "viewer").await;
    browser.screenshot("03-users").await;
    sign_out(&browser).await;

    // The LLM creates a server and a tool over MCP and asks for review.
    let made = llm(&url, &["publish"]).await;
    let tool = made["tool"].as_str().unwrap().to_owned();
    let server = made["server"].as_str().unwrap().to_owned();

    // The approver finds it in the queue, reads the code, and approves with the keyboard.
    sign_in(&browser, &url, "alice", PASSWORD).await;
    browser.goto(&format!("{url}/ui/approvals")).await;
    browser.wait_for_text("weather__forecast", 10).await;
    check_page(&browser, "04-approvals").await;
    browser
        .click(&format!("a[href='/ui/approvals/tools/{tool}/1']"))
        .await;
    browser
        .wait_for_text("No approved version to compare with", 10)
        .await;
    assert!(
        browser
            .text("pre.code:not(#declared)")
            .await
            .contains("async def main(city: str)")
    );
    assert_no_inline_script(&browser).await;
    check_page(&browser, "05-review-v1").await;
    // Single-key shortcuts are off until turned on (WCAG 2.1.4), and the hint names only the
    // keys this page has: no diff for a first version, so no `d`.
    browser.keys("a").await;
    assert_ne!(focused_id(&browser).await, "approve", "shortcuts start off");
    let keys = browser.text("#shortcut-keys").await;
    assert!(
        keys.contains("a Approve") && keys.contains("r the reason") && !keys.contains("the diff"),
        "{keys}"
    );
    browser.click("#shortcuts-on").await;
    browser.keys("a").await;
    assert_eq!(
        focused_id(&browser).await,
        "approve",
        "the a key focuses Approve"
    );
    browser.keys("\u{E007}").await; // Enter
    browser.wait_for_text("Version 1 approved.", 10).await;

    // Version 2: the review shows the diff against version 1.
    let updated = llm(&url, &["update", &server, &tool]).await;
    assert_eq!(updated["started"], true, "{updated}");
    assert_eq!(updated["updated"], true, "{updated}");
    browser
        .goto(&format!("{url}/ui/approvals/tools/{tool}/2"))
        .await;
    browser
        .wait_for_text("Changes since approved version 1", 10)
        .await;
    let diff = browser.text("pre.diff").await;
    assert!(
        diff.contains("+async def main(city: str, days: int = 1) -> dict:")
            && diff.contains("-async def main(city: str) -> dict:"),
        "{diff}"
    );
    check_page(&browser, "06-review-diff").await;
    // The choice is remembered, and with a diff on the page `d` goes to it.
    assert_eq!(
        browser
            .script("return document.getElementById('shortcuts-on').checked")
            .await,
        true
    );
    assert!(browser.text("#shortcut-keys").await.contains("d the diff"));
    browser.keys("d").await;
    assert_eq!(
        focused_id(&browser).await,
        "diff",
        "the d key focuses the diff"
    );
    browser.click("#approve").await;
    browser.wait_for_text("Version 2 approved.", 10).await;

    // The tool page shows it live; the activity view is open when the LLM calls.
    browser.goto(&format!("{url}/ui/tools/{tool}")).await;
    browser.wait_for_text("Version 2 is approved", 10).await;
    browser.screenshot("07-tool").await;
    browser.goto(&format!("{url}/ui/activity")).await;
    browser.wait_for_text("Live: new events appear", 10).await;
    let called = llm(&url, &["call"]).await;
    assert_eq!(
        called["tools"],
        serde_json::json!(["weather__forecast"]),
        "{called}"
    );
    assert_eq!(called["is_error"], false, "{called}");
    assert_eq!(called["structured"]["days"], 3);
    // Arrives over the live stream: no reload happened.
    browser
        .wait_for_text("call of weather__forecast (version 2) succeeded", 10)
        .await;
    // The live row reads like the others: a relative time and the level's badge in words;
    // the script gave every time its exact local time as the hover text.
    let fresh = browser
        .script(
            "var row = document.querySelector('#activity tr.fresh');
             var time = row && row.querySelector('time[datetime]');
             return row && [time && time.textContent, row.querySelector('.badge').textContent,
                            document.querySelector('#activity tbody tr:last-child time').title];",
        )
        .await;
    assert_eq!(fresh[0], "just now", "{fresh}");
    assert_eq!(fresh[1], "info", "{fresh}");
    let title = fresh[2].as_str().unwrap_or_default();
    // The browser runs in en-US, so the script's title reads "Dec 1, 2026, 5:08:07 PM UTC"
    // where the server's reads "2026-12-01 17:08:07 UTC".
    assert!(
        title.contains(':') && !title.starts_with(|c: char| c.is_ascii_digit()),
        "the exact time is the browser's local one: {title:?}"
    );
    check_page(&browser, "08-activity-live").await;

    // A form whose CSRF token was removed is refused, and changes nothing.
    browser
        .goto(&format!("{url}/ui/approvals/tools/{tool}/2"))
        .await;
    browser
        .script(
            "document.querySelectorAll('input[name=_csrf]').forEach(e => e.remove()); return null",
        )
        .await;
    browser.click("form[action$='/revoke'] button").await;
    browser.wait_for_text("not sent by this site", 10).await;
    browser.goto(&format!("{url}/ui/tools/{tool}")).await;
    browser.wait_for_text("Version 2 is approved", 10).await;
    sign_out(&browser).await;

    // A viewer sees no actions and is refused the admin pages.
    sign_in(&browser, &url, "victor", PASSWORD).await;
    browser
        .goto(&format!("{url}/ui/approvals/tools/{tool}/2"))
        .await;
    browser.wait_for_text("Code of version 2", 10).await;
    assert!(!browser.exists("form[action$='/revoke']").await);
    assert!(!browser.exists("a[href='/ui/users']").await);
    browser.goto(&format!("{url}/ui/users")).await;
    browser.wait_for_text("only an admin may do this", 10).await;
    browser.screenshot("09-viewer-refused").await;
    browser.goto(&format!("{url}/ui")).await;
    sign_out(&browser).await;

    // Every main page at desktop and at phone width.
    tour(&browser, &url, &server, &tool, "11-desktop").await;
    browser.quit().await;
    let phone = Browser::start(&artifacts, 390, 844).await;
    tour(&phone, &url, &server, &tool, "12-phone").await;
    phone.quit().await;
    drop(origin);
}
