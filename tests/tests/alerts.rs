//! Alerts from the real `mcpbox` binary: `serve` starts the delivery task, so a spike of wrong
//! passwords reaches a webhook receiver (a plain HTTP/1.1 server on 127.0.0.1 in the test).

use std::time::Duration;

use mcpbox_e2e::mcp::{admin_token, api, client};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Accepts POSTs, answers 200 and hands each JSON body over.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, bodies) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    let body = &buffer[end + 4..end + 4 + length];
                    let _ = sender.send(serde_json::from_slice(body).unwrap_or(Value::Null));
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (format!("http://{address}/hook"), bodies)
}

#[tokio::test]
async fn wrong_passwords_spiking_reach_the_webhook_from_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let (hook, mut bodies) = receiver().await;
    let (status, created) = api(
        &format!("{url}/api/alerts/webhooks"),
        json!({"name": "ops", "flavour": "generic", "url": hook}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let patched = client()
        .patch(format!("{url}/api/settings/alerts"))
        .bearer_auth(&token)
        .json(&json!({"sign_in_failures": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    for _ in 0..3 {
        let (status, _) = api(
            &format!("{url}/auth/login"),
            json!({"username": "admin", "password": "not the password"}),
            None,
        )
        .await;
        assert_eq!(status, 401);
    }
    let body = tokio::time::timeout(Duration::from_secs(10), bodies.recv())
        .await
        .expect("no alert within 10 s")
        .unwrap();
    assert_eq!(body["details"]["kind"], "sign_in_failures", "{body}");
    assert_eq!(body["source"], "mcpbox");
    assert_eq!(body["severity"], "warning");
    // The outcome is on the webhook.
    let listed: Value = client()
        .get(format!("{url}/api/alerts/webhooks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut status = listed["webhooks"][0]["last_status"].clone();
    for _ in 0..50 {
        if status == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listed: Value = client()
            .get(format!("{url}/api/alerts/webhooks"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status = listed["webhooks"][0]["last_status"].clone();
    }
    assert_eq!(status, "delivered");
    assert!(origin.terminate().unwrap().success());
}
