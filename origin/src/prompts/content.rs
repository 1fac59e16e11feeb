//! What a prompt's or a resource's version holds: the one definition of its shape, its bounds
//! and (for prompts) its rendering. Stored as pretty-printed JSON in the version's
//! `python_code` column, so a reviewer's diff is line by line and the hash covers all of it.

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
}

/// A resource version's content: static text, or the tool of the same server that produces it
/// (whose arguments are the URI's `params`, making it a resource template).
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
    /// The resource's text (at most 64 KiB). Exactly one of `text` and `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
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
        )
    }

    /// The template with each `{argument}` replaced by its value (a missing optional argument
    /// by nothing), in one pass: a value is never itself searched for placeholders. The errors
    /// are the JSON-RPC invalid-params messages `prompts/get` answers with.
    pub fn render(&self, given: &JsonObject) -> std::result::Result<String, String> {
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
        let mut values = std::collections::HashMap::new();
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
        let mut out = String::with_capacity(self.template.len());
        let mut rest = self.template.as_str();
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
}

impl ResourceContent {
    pub fn check(&self) -> Result<()> {
        let mime_ok = self.mime_type.len() <= MIME_TYPE_MAX
            && self.mime_type.split_once('/').is_some_and(|(kind, sub)| {
                let token = |s: &str| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
                };
                token(kind) && token(sub)
            });
        if !mime_ok {
            return Err(Error::Validation(format!(
                "the MIME type {:?} is not of the form type/subtype (at most {MIME_TYPE_MAX} \
                 characters)",
                self.mime_type
            )));
        }
        match (&self.text, &self.tool) {
            (Some(text), None) => {
                if text.len() > TEXT_MAX_BYTES {
                    return Err(Error::Validation(format!(
                        "the text is larger than {} KiB",
                        TEXT_MAX_BYTES / 1024
                    )));
                }
                if !self.params.is_empty() {
                    return Err(Error::Validation(
                        "params belong to a tool-backed resource: static text takes none".into(),
                    ));
                }
            }
            (None, Some(tool)) => {
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
                    "a resource has either text or a tool that produces it, exactly one".into(),
                ));
            }
        }
        Ok(())
    }
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
            text: Some("z".repeat(n)),
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
            text: Some("a".into()),
            tool: None,
            params: vec![],
        };
        assert!(bad_mime.check().is_err());
        let both = ResourceContent {
            mime_type: "text/plain".into(),
            text: Some("a".into()),
            tool: Some("t".into()),
            params: vec![],
        };
        assert!(both.check().is_err());
        let dup = ResourceContent {
            mime_type: "text/plain".into(),
            text: None,
            tool: Some("weather".into()),
            params: vec!["city".into(), "city".into()],
        };
        assert!(dup.check().is_err());
        assert!(prompt("t", &[("1x", false)]).check().is_err());
        assert!(parse::<PromptContent>("prompt", r#"{"template":"t","extra":1}"#).is_err());
    }
}
