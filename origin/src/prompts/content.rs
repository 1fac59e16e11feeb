//! What a prompt's or a resource's version holds: the one definition of its shape, its bounds
//! and (for prompts) its rendering. Stored as pretty-printed JSON in the version's
//! `python_code` column, so a reviewer's diff is line by line and the hash covers all of it.

use std::collections::HashMap;

use rmcp::model::JsonObject;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest prompt template (bytes): a long system prompt fits; a document does not (that is a
/// resource).
pub const TEMPLATE_MAX_BYTES: usize = 32 * 1024;
/// Largest static resource text (bytes).
pub const TEXT_MAX_BYTES: usize = 64 * 1024;
/// Largest rendered prompt (bytes): a template repeating a long argument cannot make the
/// answer grow without bound.
pub const RENDERED_MAX_BYTES: usize = 256 * 1024;
/// Most arguments of a prompt, or URI parameters of a resource template.
pub const ARGUMENTS_MAX: usize = 16;
/// Longest argument name (an identifier: `[A-Za-z_][A-Za-z0-9_]*`).
pub const ARGUMENT_NAME_MAX: usize = 64;
/// Longest argument description and MIME type.
pub const ARGUMENT_DESCRIPTION_MAX: usize = 500;
pub const MIME_TYPE_MAX: usize = 100;
/// Largest static binary resource (decoded bytes): an icon or a small image, not a file store.
pub const BLOB_MAX_BYTES: usize = 64 * 1024;
/// Longest declared resource URI (characters).
pub const URI_MAX: usize = 512;

/// One declared argument of a prompt.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::Argument)]
pub struct PromptArgument {
    /// An identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters); `{name}` in the template
    /// is replaced by its value.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
}

/// Most attachments of a prompt.
pub const ATTACHMENTS_MAX: usize = 4;

/// A message a prompt sends before its text: an image, or an embedded text resource whose
/// `uri` and `text` have `{argument}` placeholders as the template does. (Its OpenAPI schema is
/// written out below: utoipa's derive gives an enum's variants no `additionalProperties: false`,
/// and serde refuses unknown fields.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Attachment {
    /// Base64 bytes (at most 64 KiB decoded) of `image/png`, `image/jpeg`, `image/gif` or
    /// `image/webp`.
    Image { mime_type: String, data: String },
    /// Text (at most 64 KiB) at an absolute URI (at most 512 characters once rendered).
    Resource {
        uri: String,
        #[serde(default = "default_mime_type")]
        mime_type: String,
        text: String,
    },
}

/// Standard padded base64, as the handlers decode it.
const BASE64_PATTERN: &str = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";
/// The longest base64 of `BLOB_MAX_BYTES` bytes.
const BASE64_MAX_LEN: usize = BLOB_MAX_BYTES.div_ceil(3) * 4;

impl utoipa::PartialSchema for Attachment {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let closed = |object: ObjectBuilder| {
            object.additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let image = closed(
            ObjectBuilder::new()
                .description(Some(
                    "An image: base64 bytes (at most 64 KiB decoded) of image/png, image/jpeg, \
                     image/gif or image/webp.",
                ))
                .property("type", string().enum_values(Some(["image"])))
                .required("type")
                .property(
                    "mime_type",
                    string().pattern(Some("^image/(png|jpeg|gif|webp)$")),
                )
                .required("mime_type")
                .property(
                    "data",
                    string()
                        .max_length(Some(BASE64_MAX_LEN))
                        .pattern(Some(BASE64_PATTERN)),
                )
                .required("data"),
        );
        let resource = closed(
            ObjectBuilder::new()
                .description(Some(
                    "An embedded text resource (at most 64 KiB of text); `uri` and `text` take \
                     {argument} placeholders, and the rendered uri must be absolute.",
                ))
                .property("type", string().enum_values(Some(["resource"])))
                .required("type")
                .property(
                    "uri",
                    string().min_length(Some(1)).max_length(Some(URI_MAX)),
                )
                .required("uri")
                .property(
                    "mime_type",
                    string()
                        .max_length(Some(MIME_TYPE_MAX))
                        .pattern(Some(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")),
                )
                .property("text", string())
                .required("text"),
        );
        OneOfBuilder::new().item(image).item(resource).into()
    }
}

impl utoipa::ToSchema for Attachment {
    fn name() -> std::borrow::Cow<'static, str> {
        "prompts.Attachment".into()
    }
}

/// A prompt version's content: a template and its declared arguments.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::PromptContent)]
pub struct PromptContent {
    /// Text with `{argument}` placeholders (at most 32 KiB). Nothing else is special: braces
    /// around anything but a declared argument's name stay as they are, and no code runs.
    #[schema(min_length = 1, pattern = r"\S")]
    pub template: String,
    #[serde(default)]
    pub arguments: Vec<PromptArgument>,
    /// Messages sent before the template's text (at most 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 4)]
    pub attachments: Vec<Attachment>,
}

/// A resource version's content: static text or bytes, or the tool of the same server that
/// produces it (whose arguments are the URI's `params`, making it a resource template).
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::ResourceContent)]
pub struct ResourceContent {
    /// `type/subtype`, `text/plain` when not given.
    #[serde(default = "default_mime_type")]
    #[schema(
        max_length = 100,
        pattern = r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$"
    )]
    pub mime_type: String,
    /// The resource's own absolute URI (`scheme:rest`, at most 512 characters, no spaces, not
    /// `mcpbox:`), unique among the server's resources; with `params`, a URI template holding
    /// each `{param}` once, with text between two of them. It is served on the server's own
    /// endpoint (`/servers/{name}/mcp`); `/mcp`, where two servers may declare one URI, keeps
    /// `mcpbox://{server}/{name}`. Without it, both use that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 512, pattern = r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")]
    pub uri: Option<String>,
    /// The resource's text (at most 64 KiB). Exactly one of `text`, `blob` and `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The resource's bytes, base64 (at most 64 KiB decoded), of a MIME type a tool may return
    /// as a blob (images, audio, PDF, JSON, plain text, `application/octet-stream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 87384,
        pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    )]
    pub blob: Option<String>,
    /// The name of a tool of the same server whose result is the resource's text; it runs like
    /// a `tools/call` (approved version only, logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// With `tool` only: the URI template's parameters, in order, passed to the tool as string
    /// arguments of the same names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

fn default_mime_type() -> String {
    "text/plain".to_owned()
}

fn check_identifier(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || name.len() > ARGUMENT_NAME_MAX
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::Validation(format!(
            "{what} {name:?} is not an identifier: letters, digits and _, not starting with a \
             digit, at most {ARGUMENT_NAME_MAX} characters"
        )));
    }
    Ok(())
}

fn check_unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(Error::Validation(format!(
                "{what} {name:?} is declared twice"
            )));
        }
    }
    Ok(())
}

impl PromptContent {
    pub fn check(&self) -> Result<()> {
        if self.template.trim().is_empty() {
            return Err(Error::Validation("the template is empty".into()));
        }
        if self.template.len() > TEMPLATE_MAX_BYTES {
            return Err(Error::Validation(format!(
                "the template is larger than {} KiB",
                TEMPLATE_MAX_BYTES / 1024
            )));
        }
        if self.arguments.len() > ARGUMENTS_MAX {
            return Err(Error::Validation(format!(
                "a prompt takes at most {ARGUMENTS_MAX} arguments"
            )));
        }
        for argument in &self.arguments {
            check_identifier("the argument name", &argument.name)?;
            if argument.description.chars().count() > ARGUMENT_DESCRIPTION_MAX {
                return Err(Error::Validation(format!(
                    "the description of argument {:?} is longer than {ARGUMENT_DESCRIPTION_MAX} \
                     characters",
                    argument.name
                )));
            }
        }
        check_unique(
            "the argument",
            self.arguments.iter().map(|a| a.name.as_str()),
        )?;
        if self.attachments.len() > ATTACHMENTS_MAX {
            return Err(Error::Validation(format!(
                "a prompt has at most {ATTACHMENTS_MAX} attachments"
            )));
        }
        for attachment in &self.attachments {
            match attachment {
                Attachment::Image { mime_type, data } => {
                    let image = contract::sandbox::IMAGE_MIME_TYPES.contains(&mime_type.as_str());
                    if !image {
                        return Err(Error::Validation(format!(
                            "an image attachment is one of {}; {mime_type:?} is not",
                            contract::sandbox::IMAGE_MIME_TYPES.join(", ")
                        )));
                    }
                    check_blob(data, mime_type)?;
                }
                Attachment::Resource {
                    uri,
                    mime_type,
                    text,
                } => {
                    check_mime(mime_type)?;
                    if text.len() > TEXT_MAX_BYTES {
                        return Err(Error::Validation(format!(
                            "an attachment's text is larger than {} KiB",
                            TEXT_MAX_BYTES / 1024
                        )));
                    }
                    // With its placeholders: the rendered URI is checked again at get time.
                    if uri.is_empty() || uri.chars().count() > URI_MAX {
                        return Err(Error::Validation(format!(
                            "an attachment's uri is 1 to {URI_MAX} characters"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The attachments with their placeholders replaced, as `render` does the template. A
    /// resource's rendered URI must be absolute (`scheme:rest`, no spaces, at most 512
    /// characters): an argument cannot make it anything else.
    pub fn render_attachments(
        &self,
        given: &JsonObject,
    ) -> std::result::Result<Vec<Attachment>, String> {
        let values = self.values(given)?;
        let mut out = Vec::with_capacity(self.attachments.len());
        for attachment in &self.attachments {
            out.push(match attachment {
                // Canonical base64 out, whatever padding bits came in.
                Attachment::Image { mime_type, data } => Attachment::Image {
                    mime_type: mime_type.clone(),
                    data: {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .encode(decode(data).unwrap_or_default())
                    },
                },
                Attachment::Resource {
                    uri,
                    mime_type,
                    text,
                } => {
                    let uri = substitute(uri, &values)?;
                    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
                        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                            && scheme
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                            && !rest.is_empty()
                    });
                    if !scheme_ok
                        || uri.chars().count() > URI_MAX
                        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(format!(
                            "the attachment's uri {uri:?} is not an absolute URI (scheme:rest, \
                             at most {URI_MAX} characters without spaces)"
                        ));
                    }
                    Attachment::Resource {
                        uri,
                        mime_type: mime_type.clone(),
                        text: substitute(text, &values)?,
                    }
                }
            });
        }
        Ok(out)
    }

    /// The template with each `{argument}` replaced by its value (a missing optional argument
    /// by nothing), in one pass: a value is never itself searched for placeholders. The errors
    /// are the JSON-RPC invalid-params messages `prompts/get` answers with.
    pub fn render(&self, given: &JsonObject) -> std::result::Result<String, String> {
        let values = self.values(given)?;
        substitute(&self.template, &values)
    }

    /// Each declared argument's value (a missing optional one is empty), or the error.
    fn values<'a>(
        &'a self,
        given: &'a JsonObject,
    ) -> std::result::Result<HashMap<&'a str, &'a str>, String> {
        let declared: Vec<&str> = self.arguments.iter().map(|a| a.name.as_str()).collect();
        for name in given.keys() {
            if !declared.contains(&name.as_str()) {
                return Err(if declared.is_empty() {
                    format!("unknown argument {name:?}: this prompt takes no arguments")
                } else {
                    format!(
                        "unknown argument {name:?}: this prompt takes {}",
                        declared.join(", ")
                    )
                });
            }
        }
        let mut values = HashMap::new();
        for argument in &self.arguments {
            match given.get(&argument.name) {
                Some(serde_json::Value::String(value)) => {
                    values.insert(argument.name.as_str(), value.as_str());
                }
                Some(_) => {
                    return Err(format!("argument {:?} must be a string", argument.name));
                }
                None if argument.required => {
                    return Err(format!("missing required argument {:?}", argument.name));
                }
                None => {
                    values.insert(argument.name.as_str(), "");
                }
            }
        }
        Ok(values)
    }
}

/// `text` with each `{argument}` replaced by its value in one pass (a value is never itself
/// searched for placeholders), at most `RENDERED_MAX_BYTES`.
fn substitute(text: &str, values: &HashMap<&str, &str>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if values.contains_key(name) => {
                out.push_str(values[name]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
        if out.len() > RENDERED_MAX_BYTES {
            break;
        }
    }
    out.push_str(rest);
    if out.len() > RENDERED_MAX_BYTES {
        return Err(format!(
            "the rendered prompt would be larger than {} KiB; pass shorter arguments",
            RENDERED_MAX_BYTES / 1024
        ));
    }
    Ok(out)
}

impl ResourceContent {
    pub fn check(&self) -> Result<()> {
        check_mime(&self.mime_type)?;
        match (&self.text, &self.blob, &self.tool) {
            (Some(text), None, None) => {
                if text.len() > TEXT_MAX_BYTES {
                    return Err(Error::Validation(format!(
                        "the text is larger than {} KiB",
                        TEXT_MAX_BYTES / 1024
                    )));
                }
            }
            (None, Some(blob), None) => check_blob(blob, &self.mime_type)?,
            (None, None, Some(tool)) => {
                crate::names::Name::tool(tool)?;
                if self.params.len() > ARGUMENTS_MAX {
                    return Err(Error::Validation(format!(
                        "a resource template takes at most {ARGUMENTS_MAX} params"
                    )));
                }
                for param in &self.params {
                    check_identifier("the param", param)?;
                }
                check_unique("the param", self.params.iter().map(String::as_str))?;
            }
            _ => {
                return Err(Error::Validation(
                    "a resource has text, a blob or a tool that produces it, exactly one".into(),
                ));
            }
        }
        if self.tool.is_none() && !self.params.is_empty() {
            return Err(Error::Validation(
                "params belong to a tool-backed resource: static content takes none".into(),
            ));
        }
        if let Some(uri) = &self.uri {
            check_uri(uri, &self.params)?;
        }
        Ok(())
    }

    /// The bytes of a blob resource (checked content decodes; `None` for the other kinds).
    pub fn blob_bytes(&self) -> Option<Vec<u8>> {
        decode(self.blob.as_ref()?)
    }
}

fn check_mime(mime_type: &str) -> Result<()> {
    let mime_ok = mime_type.len() <= MIME_TYPE_MAX
        && mime_type.split_once('/').is_some_and(|(kind, sub)| {
            let token = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
            };
            token(kind) && token(sub)
        });
    if !mime_ok {
        return Err(Error::Validation(format!(
            "the MIME type {mime_type:?} is not of the form type/subtype (at most \
             {MIME_TYPE_MAX} characters)"
        )));
    }
    Ok(())
}

/// Standard base64 with padding, accepting nonzero trailing bits (`AB==`): what the OpenAPI
/// pattern describes. What is served is re-encoded canonically.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The bytes of checked base64 (`None` if it does not decode).
pub fn decode(base64_text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    BASE64.decode(base64_text).ok()
}

/// The decoded size of checked base64 (0 if it does not decode).
pub fn decoded_len(base64_text: &str) -> usize {
    decode(base64_text).map_or(0, |bytes| bytes.len())
}

fn check_blob(blob: &str, mime_type: &str) -> Result<()> {
    use base64::Engine;
    use contract::sandbox::{AUDIO_MIME_TYPES, IMAGE_MIME_TYPES, RESOURCE_MIME_TYPES};
    let too_large = || {
        Error::Validation(format!(
            "the blob is larger than {} KiB",
            BLOB_MAX_BYTES / 1024
        ))
    };
    // Refused before decoding: the encoded form of BLOB_MAX_BYTES is at most this long.
    if blob.len() > BLOB_MAX_BYTES.div_ceil(3) * 4 {
        return Err(too_large());
    }
    let bytes = BASE64
        .decode(blob)
        .map_err(|e| Error::Validation(format!("the blob is not standard base64: {e}")))?;
    if bytes.len() > BLOB_MAX_BYTES {
        return Err(too_large());
    }
    // The allowlist of a tool's blob results: no type a client would run as active content.
    let allowed = RESOURCE_MIME_TYPES
        .iter()
        .chain(IMAGE_MIME_TYPES)
        .chain(AUDIO_MIME_TYPES)
        .any(|allowed| *allowed == mime_type);
    if !allowed {
        return Err(Error::Validation(format!(
            "a blob resource's MIME type is one of {}; {mime_type:?} is not",
            RESOURCE_MIME_TYPES
                .iter()
                .chain(IMAGE_MIME_TYPES)
                .chain(AUDIO_MIME_TYPES)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// One piece of a declared URI template.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Literal(&'a str),
    Param(&'a str),
}

/// A URI template's pieces; `None` when a brace is unmatched.
fn pieces(uri: &str) -> Option<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = uri;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return None;
        }
        if open > 0 {
            out.push(Piece::Literal(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        if name.contains('{') {
            return None;
        }
        out.push(Piece::Param(name));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Some(out)
}

fn check_uri(uri: &str, params: &[String]) -> Result<()> {
    let invalid = |why: &str| {
        Error::Validation(format!(
            "the uri {uri:?} is not usable: {why} (an absolute URI, scheme:rest, of at most \
             {URI_MAX} characters without spaces)"
        ))
    };
    if uri.chars().count() > URI_MAX {
        return Err(invalid("too long"));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it has a space or a control character"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(invalid("it has no scheme"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !scheme_ok || rest.is_empty() {
        return Err(invalid("it has no scheme"));
    }
    if scheme.eq_ignore_ascii_case(super::URI_SCHEME.trim_end_matches("://")) {
        return Err(invalid(
            "mcpbox: URIs are MCPbox's own (every resource has one already)",
        ));
    }
    let Some(pieces) = pieces(uri) else {
        return Err(invalid("a brace is unmatched"));
    };
    let placed: Vec<&str> = pieces
        .iter()
        .filter_map(|piece| match piece {
            Piece::Param(name) => Some(*name),
            Piece::Literal(_) => None,
        })
        .collect();
    let declared: Vec<&str> = params.iter().map(String::as_str).collect();
    if placed != declared {
        return Err(invalid(&format!(
            "its {{placeholders}} ({}) must be the params ({}), each once and in order",
            placed.join(", "),
            declared.join(", ")
        )));
    }
    if pieces
        .windows(2)
        .any(|pair| matches!(pair, [Piece::Param(_), Piece::Param(_)]))
    {
        return Err(invalid("two {placeholders} need text between them"));
    }
    Ok(())
}

/// The parameter values when `requested` matches the declared `template` (each value one or
/// more characters other than `/`, percent-decoded); `None` when it does not match.
pub fn match_template(template: &str, requested: &str) -> Option<Vec<String>> {
    let pieces = pieces(template)?;
    let mut values = Vec::new();
    let mut rest = requested;
    for (index, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Literal(literal) => rest = rest.strip_prefix(literal)?,
            Piece::Param(_) => {
                // The value ends at the next literal (checked templates have one between two
                // params) within this segment, or at the end.
                let end = match pieces.get(index + 1) {
                    Some(Piece::Literal(next)) => rest.find(next)?,
                    _ => rest.len(),
                };
                let value = &rest[..end];
                if value.is_empty() || value.contains('/') {
                    return None;
                }
                values.push(super::percent_decode(value)?);
                rest = &rest[end..];
            }
        }
    }
    rest.is_empty().then_some(values)
}

/// Pretty JSON: the stored form (one field per line, so the review diff shows what changed).
pub fn stored<T: Serialize>(content: &T) -> Result<String> {
    serde_json::to_string_pretty(content).map_err(|e| Error::Internal(e.into()))
}

/// Reads stored or submitted content of kind `T` (unknown fields refused), with a message a
/// person can act on.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|err| Error::Validation(format!("the {what} content is not valid: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(template: &str, arguments: &[(&str, bool)]) -> PromptContent {
        PromptContent {
            template: template.to_owned(),
            arguments: arguments
                .iter()
                .map(|(name, required)| PromptArgument {
                    name: (*name).to_owned(),
                    description: String::new(),
                    required: *required,
                })
                .collect(),
            attachments: Vec::new(),
        }
    }

    fn args(pairs: &[(&str, serde_json::Value)]) -> JsonObject {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn renders_declared_placeholders_once_and_leaves_other_braces() {
        let p = prompt(
            "Hi {name}, {unknown} {} {{name}} {opt}.",
            &[("name", true), ("opt", false)],
        );
        let out = p.render(&args(&[("name", "{opt}".into())])).unwrap();
        // The value `{opt}` is not searched again; `{{name}}` keeps its outer braces.
        assert_eq!(out, "Hi {opt}, {unknown} {} {{opt}} .");
    }

    #[test]
    fn readable_argument_errors() {
        let p = prompt("{a}", &[("a", true)]);
        assert_eq!(
            p.render(&args(&[])).unwrap_err(),
            "missing required argument \"a\""
        );
        assert_eq!(
            p.render(&args(&[("a", "x".into()), ("b", "y".into())]))
                .unwrap_err(),
            "unknown argument \"b\": this prompt takes a"
        );
        assert_eq!(
            p.render(&args(&[("a", 3.into())])).unwrap_err(),
            "argument \"a\" must be a string"
        );
    }

    #[test]
    fn bounds_at_their_limit() {
        let at = prompt(&"x".repeat(TEMPLATE_MAX_BYTES), &[]);
        assert!(at.check().is_ok());
        let over = prompt(&"x".repeat(TEMPLATE_MAX_BYTES + 1), &[]);
        assert!(over.check().is_err());
        // Rendering: 8 placeholders of a 32 KiB value is exactly 256 KiB; one byte more is refused.
        let p = prompt(&"{a}".repeat(8), &[("a", true)]);
        let value = "y".repeat(RENDERED_MAX_BYTES / 8);
        assert_eq!(
            p.render(&args(&[("a", value.clone().into())]))
                .unwrap()
                .len(),
            RENDERED_MAX_BYTES
        );
        let longer = format!("{value}y");
        assert!(p.render(&args(&[("a", longer.into())])).is_err());
        let names: Vec<(String, bool)> = (0..=ARGUMENTS_MAX)
            .map(|i| (format!("a{i}"), false))
            .collect();
        let refs: Vec<(&str, bool)> = names.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        assert!(prompt("t", &refs[..ARGUMENTS_MAX]).check().is_ok());
        assert!(prompt("t", &refs).check().is_err());
        let text = |n: usize| ResourceContent {
            mime_type: "text/markdown".into(),
            uri: None,
            text: Some("z".repeat(n)),
            blob: None,
            tool: None,
            params: vec![],
        };
        assert!(text(TEXT_MAX_BYTES).check().is_ok());
        assert!(text(TEXT_MAX_BYTES + 1).check().is_err());
    }

    #[test]
    fn resource_shapes() {
        let bad_mime = ResourceContent {
            mime_type: "text".into(),
            uri: None,
            blob: None,
            text: Some("a".into()),
            tool: None,
            params: vec![],
        };
        assert!(bad_mime.check().is_err());
        let both = ResourceContent {
            mime_type: "text/plain".into(),
            uri: None,
            blob: None,
            text: Some("a".into()),
            tool: Some("t".into()),
            params: vec![],
        };
        assert!(both.check().is_err());
        let dup = ResourceContent {
            mime_type: "text/plain".into(),
            uri: None,
            blob: None,
            text: None,
            tool: Some("weather".into()),
            params: vec!["city".into(), "city".into()],
        };
        assert!(dup.check().is_err());
        assert!(prompt("t", &[("1x", false)]).check().is_err());
        assert!(parse::<PromptContent>("prompt", r#"{"template":"t","extra":1}"#).is_err());
    }

    fn template(uri: &str, params: &[&str]) -> ResourceContent {
        ResourceContent {
            mime_type: "application/json".into(),
            uri: Some(uri.into()),
            text: None,
            blob: None,
            tool: Some("produce".into()),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn declared_templates_hold_their_params_once_in_order() {
        assert!(template("test://t/{item}/data", &["item"]).check().is_ok());
        assert!(template("test://t/{a}-{b}", &["a", "b"]).check().is_ok());
        // Missing, repeated, out of order, undeclared, adjacent, unmatched.
        assert!(template("test://t/data", &["item"]).check().is_err());
        assert!(
            template("test://t/{item}/{item}", &["item"])
                .check()
                .is_err()
        );
        assert!(template("test://t/{b}-{a}", &["a", "b"]).check().is_err());
        assert!(template("test://t/{other}", &["item"]).check().is_err());
        assert!(template("test://t/{a}{b}", &["a", "b"]).check().is_err());
        assert!(template("test://t/{item", &["item"]).check().is_err());
        assert!(template("test://t/{{item}}", &["item"]).check().is_err());
    }

    #[test]
    fn a_request_matches_a_template_one_segment_per_param() {
        let t = "test://template/{item}/data";
        assert_eq!(
            match_template(t, "test://template/123/data"),
            Some(vec!["123".to_owned()])
        );
        assert_eq!(
            match_template(t, "test://template/S%C3%A3o/data"),
            Some(vec!["São".to_owned()])
        );
        for miss in [
            "test://template//data",
            "test://template/a/b/data",
            "test://template/123/data/",
            "test://template/123",
            "test://other/123/data",
            "test://template/%zz/data",
        ] {
            assert_eq!(match_template(t, miss), None, "{miss}");
        }
        assert_eq!(
            match_template("test://t/{a}-{b}", "test://t/x-y-z"),
            Some(vec!["x".to_owned(), "y-z".to_owned()])
        );
        assert_eq!(
            match_template("x:{a}", "x:all"),
            Some(vec!["all".to_owned()])
        );
    }
}
