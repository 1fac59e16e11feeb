//! Rich results (`image`, `audio`, `resource` in the runtime) on the origin's side: redacted
//! like a result, and turned into MCP content blocks in the order `main` returned them.
//!
//! The sandbox sends the blocks apart from the result, which holds a marker object (type, MIME
//! type, size, no bytes) in each one's place: the log and the REST answers keep the markers, and
//! only an MCP call gets the bytes.

use contract::sandbox::{CONTENT_MARKER, ContentBlock};
use rmcp::model::{ContentBlock as McpBlock, ResourceContents};
use serde_json::Value;

use super::Redactor;

/// A text resource's text without secrets (bytes are left alone: a secret in an image is not
/// text to find).
pub(super) fn redact(redactor: &Redactor, blocks: Vec<ContentBlock>) -> Vec<ContentBlock> {
    blocks
        .into_iter()
        .map(|block| match block {
            ContentBlock::Resource {
                uri,
                mime_type,
                text: Some(text),
                blob,
            } => ContentBlock::Resource {
                uri: redactor.text(&uri),
                mime_type,
                text: Some(redactor.text(&text)),
                blob,
            },
            other => other,
        })
        .collect()
}

/// The MCP content of a result with rich blocks: a marker alone is its block; a list's
/// markers are their blocks and its other items text blocks of their JSON. `None` when the
/// result has no blocks (the caller sends the JSON text as always).
pub fn mcp_blocks(result: &Value, blocks: &[ContentBlock]) -> Option<Vec<McpBlock>> {
    if blocks.is_empty() {
        return None;
    }
    let block_of = |value: &Value| {
        value
            .get(CONTENT_MARKER)
            .and_then(Value::as_u64)
            .and_then(|index| blocks.get(usize::try_from(index).ok()?))
            .map(to_mcp)
    };
    match result {
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| block_of(item).unwrap_or_else(|| McpBlock::text(item.to_string())))
                .collect(),
        ),
        single => block_of(single).map(|block| vec![block]),
    }
}

fn to_mcp(block: &ContentBlock) -> McpBlock {
    match block {
        ContentBlock::Image { mime_type, data } => McpBlock::image(data.clone(), mime_type.clone()),
        ContentBlock::Audio { mime_type, data } => McpBlock::audio(data.clone(), mime_type.clone()),
        ContentBlock::Resource {
            uri,
            mime_type,
            text,
            blob,
        } => McpBlock::resource(match (text, blob) {
            (Some(text), _) => ResourceContents::TextResourceContents {
                uri: uri.clone(),
                mime_type: Some(mime_type.clone()),
                text: text.clone(),
                meta: None,
            },
            (None, blob) => ResourceContents::BlobResourceContents {
                uri: uri.clone(),
                mime_type: Some(mime_type.clone()),
                blob: blob.clone().unwrap_or_default(),
                meta: None,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_blocks_in_place_and_other_items_text() {
        let blocks = vec![ContentBlock::Image {
            mime_type: "image/png".into(),
            data: "iVBO".into(),
        }];
        let result = serde_json::json!([
            "a chart",
            {"$content": 0, "type": "image", "mime_type": "image/png", "size_bytes": 3}
        ]);
        let mcp = mcp_blocks(&result, &blocks).unwrap();
        assert_eq!(mcp.len(), 2);
        assert_eq!(mcp[0].as_text().unwrap().text, "\"a chart\"");
        assert_eq!(mcp[1].as_image().unwrap().data, "iVBO");
        // A marker that names no block (a tool writing one by hand) stays text.
        let forged = serde_json::json!([{"$content": 7}]);
        assert!(mcp_blocks(&forged, &blocks).unwrap()[0].as_text().is_some());
        assert!(mcp_blocks(&result, &[]).is_none());
    }
}
