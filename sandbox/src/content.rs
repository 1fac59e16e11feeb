//! Rich results: `image(data, mime_type)`, `audio(data, mime_type)` and
//! `resource(uri, text=… | blob=…, mime_type=…)` in a tool's builtins.
//!
//! Each helper builds a `Content`, a frozen Rust object with no Python-visible state and no
//! subclasses: a tool cannot make one by hand or change one, and serialising it runs none of the
//! tool's code. The MIME type is checked against the allowlists in `contract::sandbox` and the
//! size against `MAX_CONTENT_BYTES` when it is made; `main` may return one alone or as items of
//! a returned list (`to_result`), where it becomes a block of `ExecuteResponse::content` and a
//! marker with its type and size (no bytes) in the result.

use base64::Engine;
use contract::sandbox::{
    AUDIO_MIME_TYPES, CONTENT_MARKER, ContentBlock, IMAGE_MIME_TYPES, MAX_CONTENT_BYTES,
    RESOURCE_MIME_TYPES,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use crate::python::{JsonError, write_json};

/// Longest resource URI accepted.
const MAX_URI_CHARS: usize = 2048;

#[pyclass(frozen, module = "mcpbox_runtime", name = "Content")]
pub struct Content {
    block: ContentBlock,
    /// Raw bytes (or text bytes) of the block, for the marker and the limits.
    size: usize,
}

#[pymethods]
impl Content {
    fn __repr__(&self) -> String {
        let (kind, mime_type) = kind_and_mime(&self.block);
        format!("<{kind} {mime_type}, {} bytes>", self.size)
    }
}

fn kind_and_mime(block: &ContentBlock) -> (&'static str, &str) {
    match block {
        ContentBlock::Image { mime_type, .. } => ("image", mime_type),
        ContentBlock::Audio { mime_type, .. } => ("audio", mime_type),
        ContentBlock::Resource { mime_type, .. } => ("resource", mime_type),
    }
}

/// The bytes of a `bytes` or `bytearray` (exact types: nothing of the tool's runs).
fn raw_bytes(data: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let bytes = if let Ok(bytes) = data.cast_exact::<PyBytes>() {
        bytes.as_bytes().to_vec()
    } else if let Ok(array) = data.cast_exact::<PyByteArray>() {
        array.to_vec()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be bytes or bytearray"
        )));
    };
    if bytes.len() > MAX_CONTENT_BYTES {
        return Err(PyValueError::new_err(format!(
            "{what} is {} bytes, over the limit of {MAX_CONTENT_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn allowed_mime(mime_type: &str, allowed: &[&str], what: &str) -> PyResult<String> {
    let normal = mime_type.trim().to_ascii_lowercase();
    if allowed.contains(&normal.as_str()) {
        Ok(normal)
    } else {
        Err(PyValueError::new_err(format!(
            "{what} MIME type {mime_type:?} is not allowed (allowed: {})",
            allowed.join(", ")
        )))
    }
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `image(data, mime_type)`.
#[pyfunction]
pub fn make_image(data: &Bound<'_, PyAny>, mime_type: &str) -> PyResult<Content> {
    let mime_type = allowed_mime(mime_type, IMAGE_MIME_TYPES, "the image")?;
    let bytes = raw_bytes(data, "the image data")?;
    Ok(Content {
        size: bytes.len(),
        block: ContentBlock::Image {
            mime_type,
            data: encode(&bytes),
        },
    })
}

/// `audio(data, mime_type)`.
#[pyfunction]
pub fn make_audio(data: &Bound<'_, PyAny>, mime_type: &str) -> PyResult<Content> {
    let mime_type = allowed_mime(mime_type, AUDIO_MIME_TYPES, "the audio")?;
    let bytes = raw_bytes(data, "the audio data")?;
    Ok(Content {
        size: bytes.len(),
        block: ContentBlock::Audio {
            mime_type,
            data: encode(&bytes),
        },
    })
}

/// `resource(uri, text=None, blob=None, mime_type=None)`: exactly one of `text` and `blob`.
#[pyfunction]
#[pyo3(signature = (uri, text = None, blob = None, mime_type = None))]
pub fn make_resource(
    uri: &Bound<'_, PyAny>,
    text: Option<&Bound<'_, PyAny>>,
    blob: Option<&Bound<'_, PyAny>>,
    mime_type: Option<&str>,
) -> PyResult<Content> {
    let uri = exact_str(uri, "the resource uri")?;
    let scheme_ok = uri
        .split_once(':')
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
    if !scheme_ok || uri.chars().count() > MAX_URI_CHARS || uri.chars().any(char::is_control) {
        return Err(PyValueError::new_err(format!(
            "the resource uri must be an absolute URI (scheme:rest) of at most {MAX_URI_CHARS} characters without control characters"
        )));
    }
    match (text, blob) {
        (Some(text), None) => {
            let text = exact_str(text, "the resource text")?;
            if text.len() > MAX_CONTENT_BYTES {
                return Err(PyValueError::new_err(format!(
                    "the resource text is {} bytes, over the limit of {MAX_CONTENT_BYTES}",
                    text.len()
                )));
            }
            let mime_type = allowed_mime(
                mime_type.unwrap_or("text/plain"),
                RESOURCE_MIME_TYPES,
                "the resource",
            )?;
            Ok(Content {
                size: text.len(),
                block: ContentBlock::Resource {
                    uri,
                    mime_type,
                    text: Some(text),
                    blob: None,
                },
            })
        }
        (None, Some(blob)) => {
            let bytes = raw_bytes(blob, "the resource blob")?;
            let all: Vec<&str> = RESOURCE_MIME_TYPES
                .iter()
                .chain(IMAGE_MIME_TYPES)
                .chain(AUDIO_MIME_TYPES)
                .copied()
                .collect();
            let mime_type = allowed_mime(
                mime_type.unwrap_or("application/octet-stream"),
                &all,
                "the resource",
            )?;
            Ok(Content {
                size: bytes.len(),
                block: ContentBlock::Resource {
                    uri,
                    mime_type,
                    text: None,
                    blob: Some(encode(&bytes)),
                },
            })
        }
        _ => Err(PyTypeError::new_err(
            "resource() takes exactly one of text= and blob=",
        )),
    }
}

fn exact_str(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    value
        .cast_exact::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str")))?
        .to_str()
        .map(str::to_owned)
}

/// When the last progress report left this worker (it runs one job, so one clock).
static LAST_PROGRESS: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// A number from a tool: an exact `int` or `float` (not `bool`), finite.
fn number(value: &Bound<'_, PyAny>, what: &str) -> PyResult<f64> {
    use pyo3::types::{PyFloat, PyInt};
    let x = if let Ok(i) = value.cast_exact::<PyInt>() {
        i.extract::<f64>()?
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        f.value()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int or a float"
        )));
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(PyValueError::new_err(format!("{what} must be finite")))
    }
}

/// `progress(done, total=None, message=None)`: reported to the caller (MCP clients that asked
/// get `notifications/progress`). At most one every `PROGRESS_INTERVAL_MS`; the final one
/// (`done == total`) always goes.
#[pyfunction]
#[pyo3(signature = (done, total = None, message = None))]
pub fn report_progress(
    done: &Bound<'_, PyAny>,
    total: Option<&Bound<'_, PyAny>>,
    message: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let done = number(done, "done")?;
    let total = total.map(|t| number(t, "total")).transpose()?;
    let message = message
        .map(|m| exact_str(m, "message"))
        .transpose()?
        .map(|m| {
            m.chars()
                .take(contract::sandbox::MAX_PROGRESS_MESSAGE_CHARS)
                .collect()
        });
    let now = std::time::Instant::now();
    {
        let mut last = LAST_PROGRESS.lock().unwrap_or_else(|p| p.into_inner());
        let interval = std::time::Duration::from_millis(contract::sandbox::PROGRESS_INTERVAL_MS);
        let due = last.is_none_or(|at| now.duration_since(at) >= interval);
        if !due && total != Some(done) {
            return Ok(());
        }
        *last = Some(now);
    }
    crate::python::send_to_supervisor(&crate::protocol::WorkerMessage::Progress(
        contract::sandbox::Progress {
            done,
            total,
            message,
        },
    ));
    Ok(())
}

/// Whether `value` is a rich result (for `write_json`, which refuses one in any other place).
pub fn is_content(value: &Bound<'_, PyAny>) -> bool {
    value.cast_exact::<Content>().is_ok()
}

/// `main`'s return value as result JSON plus its rich blocks: a `Content` alone, or as items of
/// a returned list, becomes a block and a marker; anything else is `write_json`'s. The blocks'
/// encoded size counts against `limit` with the text.
pub fn to_result(
    value: &Bound<'_, PyAny>,
    limit: usize,
) -> Result<(String, Vec<ContentBlock>), JsonError> {
    let mut out = String::new();
    let mut blocks = Blocks {
        blocks: Vec::new(),
        used: 0,
        limit,
    };
    if let Ok(content) = value.cast_exact::<Content>() {
        blocks.take(content.get(), &mut out)?;
    } else if let Ok(list) = value.cast_exact::<PyList>()
        && (0..list.len()).any(|i| list.get_item(i).is_ok_and(|item| is_content(&item)))
    {
        out.push('[');
        for index in 0..list.len() {
            if index > 0 {
                out.push(',');
            }
            let item = list
                .get_item(index)
                .map_err(|_| JsonError("the result list changed while being read".into()))?;
            match item.cast_exact::<Content>() {
                Ok(content) => blocks.take(content.get(), &mut out)?,
                Err(_) => write_json(&item, 1, limit.saturating_sub(blocks.used), &mut out)?,
            }
        }
        out.push(']');
    } else {
        write_json(value, 0, limit, &mut out)?;
    }
    if out.len() + blocks.used > limit {
        return Err(too_large(limit));
    }
    Ok((out, blocks.blocks))
}

fn too_large(limit: usize) -> JsonError {
    JsonError(format!(
        "the result is larger than the limit of {limit} bytes"
    ))
}

/// The blocks collected from one result, and their encoded size so far.
struct Blocks {
    blocks: Vec<ContentBlock>,
    used: usize,
    limit: usize,
}

impl Blocks {
    /// Adds `content` as a block and writes its marker into `out`.
    fn take(&mut self, content: &Content, out: &mut String) -> Result<(), JsonError> {
        self.used += block_len(&content.block);
        if self.used > self.limit {
            return Err(too_large(self.limit));
        }
        let (kind, mime_type) = kind_and_mime(&content.block);
        let mut marker = serde_json::json!({
            CONTENT_MARKER: self.blocks.len(),
            "type": kind,
            "mime_type": mime_type,
            "size_bytes": content.size,
        });
        if let ContentBlock::Resource { uri, .. } = &content.block {
            marker["uri"] = serde_json::Value::String(uri.clone());
        }
        out.push_str(&marker.to_string());
        self.blocks.push(content.block.clone());
        Ok(())
    }
}

fn block_len(block: &ContentBlock) -> usize {
    match block {
        ContentBlock::Image { data, .. } | ContentBlock::Audio { data, .. } => data.len(),
        ContentBlock::Resource { text, blob, .. } => {
            text.as_ref().map_or(0, String::len) + blob.as_ref().map_or(0, String::len)
        }
    }
}
