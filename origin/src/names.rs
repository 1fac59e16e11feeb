//! Server and tool names. MCP clients see tools as `{server}__{tool}` (at most 64 characters),
//! so names are built to make that unambiguous: lower-case letters and digits in words joined by
//! single underscores (no `__`, no leading or trailing `_`). Splitting a public name at its only
//! `__` always gives back the server and the tool, so two tools can never share a public name.
//! Public names starting with `mcpbox_` belong to the management tools, so no server may be
//! named `mcpbox` or `mcpbox_…` (its tools could be listed but never called).

use crate::error::{Error, Result};
use contract::names::{is_reserved_server, is_well_formed};

pub use contract::names::{MANAGEMENT_PREFIX, SERVER_NAME_MAX};
/// The longest public name, `{server}__{tool}`: what clients accept (several refuse longer
/// tool names), and what the MCP spec's SEP-986 recommends staying under.
pub const PUBLIC_NAME_MAX: usize = 64;
/// The longest tool name on its own (under a one-letter server). A tool's name is also bounded
/// by its server's (`fits`): the per-server endpoint serves it under this name alone, but `/mcp`
/// under `{server}__{tool}`, which must stay within `PUBLIC_NAME_MAX`. So a short server name
/// leaves room for a long, descriptive tool name, and the old fixed 32 (30 + 2 + 32 = 64) is no
/// longer the limit.
pub const TOOL_NAME_MAX: usize = PUBLIC_NAME_MAX - 3;

/// The longest tool name a server so named can hold.
pub fn tool_name_max(server: &str) -> usize {
    PUBLIC_NAME_MAX.saturating_sub(server.len() + 2)
}

/// Whether `{server}__{tool}` stays within `PUBLIC_NAME_MAX`, with the error a person reads.
/// The writes that put a server and a tool name together (a tool created or renamed, a server
/// renamed) also make their SQL conditional on the same sum, so a rename of the other half that
/// landed after this check cannot make the statement write a name that no longer fits.
pub fn fits(server: &str, tool: &str) -> Result<()> {
    let length = public_name(server, tool).len();
    if length <= PUBLIC_NAME_MAX {
        return Ok(());
    }
    Err(Error::Validation(format!(
        "the tool's MCP name {:?} would be {length} characters, and clients accept at most \
         {PUBLIC_NAME_MAX}: with the server named {server:?}, a tool name has at most {} \
         characters (shorten the tool's or the server's name)",
        public_name(server, tool),
        tool_name_max(server)
    )))
}

/// A validated server or tool name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn server(text: &str) -> Result<Name> {
        let name = Name::parse(text, "server", SERVER_NAME_MAX)?;
        if is_reserved_server(text) {
            return Err(Error::Validation(format!(
                "invalid server name {text:?}: names starting with \"mcpbox\" are reserved for \
                 MCPbox's own tools (its tools' MCP names would start with {MANAGEMENT_PREFIX:?})"
            )));
        }
        Ok(name)
    }

    pub fn tool(text: &str) -> Result<Name> {
        Name::parse(text, "tool", TOOL_NAME_MAX)
    }

    fn parse(text: &str, what: &str, max: usize) -> Result<Name> {
        if is_well_formed(text, max) {
            Ok(Name(text.to_owned()))
        } else {
            Err(Error::Validation(format!(
                "invalid {what} name {text:?}: use 1 to {max} lower-case letters and digits, \
                 starting with a letter, words joined by single underscores (like weather_report)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name MCP clients call a tool by.
pub fn public_name(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in ["a", "weather", "get_forecast", "v2_api", &"a".repeat(30)] {
            assert!(Name::server(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "A",
            "1a",
            "_a",
            "a_",
            "a__b",
            "a-b",
            "a b",
            "é",
            &"a".repeat(31),
        ] {
            assert!(Name::server(bad).is_err(), "{bad:?}");
        }
        assert!(Name::tool(&"a".repeat(61)).is_ok());
        assert!(Name::tool(&"a".repeat(62)).is_err());
    }

    #[test]
    fn a_public_name_stays_within_64_characters() {
        assert!(fits(&"s".repeat(30), &"t".repeat(32)).is_ok());
        assert!(fits(&"s".repeat(30), &"t".repeat(33)).is_err());
        assert!(fits("conformance", "test_input_required_result_multiple_inputs").is_ok());
        assert!(fits("s", &"t".repeat(61)).is_ok());
        assert!(fits("s", &"t".repeat(62)).is_err());
        assert_eq!(tool_name_max("conformance"), 51);
        let refusal = fits("weather", &"t".repeat(60)).unwrap_err().to_string();
        assert!(refusal.contains("at most 55"), "{refusal}");
    }

    #[test]
    fn server_names_cannot_enter_the_management_namespace() {
        for reserved in ["mcpbox", "mcpbox_x", "mcpbox_tools_2"] {
            assert!(Name::server(reserved).is_err(), "{reserved}");
            assert!(public_name(reserved, "t").starts_with(MANAGEMENT_PREFIX));
        }
        for fine in ["mcpboxes", "my_mcpbox", "mcp", "box"] {
            assert!(Name::server(fine).is_ok(), "{fine}");
            assert!(!public_name(fine, "t").starts_with(MANAGEMENT_PREFIX));
        }
        // Tool names come second, so they never reach the prefix.
        assert!(Name::tool("mcpbox_x").is_ok());
    }

    #[test]
    fn public_names_cannot_collide_and_fit_in_64() {
        // The looser reference rule allowed server "a__b" + tool "c" and server "a" + tool
        // "b__c" to meet as "a__b__c"; here both spellings are refused.
        assert!(Name::server("a__b").is_err() && Name::tool("b__c").is_err());
        let server = "s".repeat(SERVER_NAME_MAX);
        let longest = public_name(&server, &"t".repeat(tool_name_max(&server)));
        assert_eq!(longest.len(), 64);
        assert!(fits(&server, &"t".repeat(tool_name_max(&server))).is_ok());
        assert_eq!(longest.matches("__").count(), 1);
    }
}
