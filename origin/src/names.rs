//! Server and tool names. MCP clients see tools as `{server}__{tool}` (at most 64 characters),
//! so names are built to make that unambiguous: lower-case letters and digits in words joined by
//! single underscores (no `__`, no leading or trailing `_`). Splitting a public name at its only
//! `__` always gives back the server and the tool, so two tools can never share a public name.
//! Public names starting with `mcpbox_` belong to the management tools, so no server may be
//! named `mcpbox` or `mcpbox_…` (its tools could be listed but never called).

use crate::error::{Error, Result};
use contract::names::{is_reserved_server, is_well_formed};

pub use contract::names::{MANAGEMENT_PREFIX, SERVER_NAME_MAX};
pub const TOOL_NAME_MAX: usize = 32;

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
        assert!(Name::tool(&"a".repeat(32)).is_ok());
        assert!(Name::tool(&"a".repeat(33)).is_err());
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
        let longest = public_name(&"s".repeat(SERVER_NAME_MAX), &"t".repeat(TOOL_NAME_MAX));
        assert_eq!(longest.len(), 64);
        assert_eq!(longest.matches("__").count(), 1);
    }
}
