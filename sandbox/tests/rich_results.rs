//! Rich results: `image`, `audio`, `resource` made and serialised in Rust, MIME types from the
//! allowlists, sizes capped, and markers without bytes in the result.

use std::path::PathBuf;

use contract::sandbox::{ContentBlock, ErrorKind, ExecuteRequest, Limits};
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

fn request(code: &str) -> ExecuteRequest {
    ExecuteRequest {
        input: None,
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
    }
}

#[tokio::test]
async fn blocks_come_back_in_order_with_markers_in_the_result() {
    let supervisor = supervisor().await;
    let code = "def main():\n    return ['a chart', image(b'\\x89PNG', 'image/png'), audio(bytearray(b'RIFF'), 'Audio/WAV'), resource('file:///r.txt', text='hello'), resource('mcpbox://x', blob=b'\\x00\\x01', mime_type='application/pdf')]\n";
    let answer = supervisor.execute(request(code)).await;
    assert!(answer.ok, "{:?}", answer.error);
    let result: serde_json::Value =
        serde_json::from_str(answer.result.as_deref().unwrap()).unwrap();
    assert_eq!(result[0], "a chart");
    assert_eq!(
        result[1],
        serde_json::json!({"$content": 0, "type": "image", "mime_type": "image/png", "size_bytes": 4})
    );
    assert_eq!(result[2]["mime_type"], "audio/wav");
    assert_eq!(result[3]["uri"], "file:///r.txt");
    assert_eq!(answer.content.len(), 4);
    assert_eq!(
        answer.content[0],
        ContentBlock::Image {
            mime_type: "image/png".into(),
            data: "iVBORw==".into()
        }
    );
    assert_eq!(
        answer.content[2],
        ContentBlock::Resource {
            uri: "file:///r.txt".into(),
            mime_type: "text/plain".into(),
            text: Some("hello".into()),
            blob: None
        }
    );
    let single = supervisor
        .execute(request(
            "def main():\n    return image(b'GIF89a', 'image/gif')\n",
        ))
        .await;
    assert_eq!(single.content.len(), 1);
    assert!(single.result.unwrap().contains("\"$content\":0"));
}

#[tokio::test]
async fn bad_types_sizes_and_places_are_refused_with_a_reason() {
    let supervisor = supervisor().await;
    let cases = [
        ("return image(b'x', 'image/svg+xml')", "not allowed"),
        ("return image(b'x', 'text/html')", "not allowed"),
        ("return image('not bytes', 'image/png')", "must be bytes"),
        ("return resource('no-scheme', text='x')", "absolute URI"),
        ("return resource('a:b', text='x', blob=b'y')", "exactly one"),
        (
            "return resource('a:b', text='x', mime_type='text/html')",
            "not allowed",
        ),
        (
            "return {'chart': image(b'x', 'image/png')}",
            "alone or as items",
        ),
        ("return [[image(b'x', 'image/png')]]", "alone or as items"),
        (
            "return image(bytes(4 * 1024 * 1024 + 1), 'image/png')",
            "over the limit",
        ),
    ];
    for (body, expected) in cases {
        let code = format!("def main():\n    {body}\n");
        let answer = supervisor.execute(request(&code)).await;
        let error = answer
            .error
            .unwrap_or_else(|| panic!("{body} was accepted"));
        assert!(
            error.message.contains(expected),
            "{body}: {}",
            error.message
        );
        assert!(answer.content.is_empty());
    }
    // The result cap counts the blocks: 2 × 700 KB of image is over the default 1 MB.
    let code = "def main():\n    return [image(bytes(700000), 'image/png'), image(bytes(700000), 'image/png')]\n";
    let error = supervisor.execute(request(code)).await.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Result);
    assert!(
        error.message.contains("larger than the limit"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_content_object_cannot_be_made_or_changed_by_the_tool() {
    let supervisor = supervisor().await;
    let cases = [
        // The type is out of reach (no `type`, no `__class__`), so nothing can construct or
        // subclass it; and it holds no attribute a tool can set.
        (
            "c = image(b'x', 'image/png')\n    return type(c)(b'y')",
            "type() is not available",
        ),
        (
            "c = image(b'x', 'image/png')\n    return c.__class__",
            "__class__",
        ),
        (
            "c = image(b'x', 'image/png')\n    c.block = 1\n    return c",
            "AttributeError",
        ),
        (
            "c = image(b'x', 'image/png')\n    c.mime_type = 'text/html'\n    return c",
            "AttributeError",
        ),
    ];
    for (body, expected) in cases {
        let code = format!("def main():\n    {body}\n");
        let answer = supervisor.execute(request(&code)).await;
        let error = answer
            .error
            .unwrap_or_else(|| panic!("{body} was accepted"));
        assert!(
            error.message.contains(expected),
            "{body}: {}",
            error.message
        );
        assert!(answer.content.is_empty());
    }
}
