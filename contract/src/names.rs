//! The name rule for servers and tools, in one place: the origin's `names::Name` builds on it
//! (adding its error messages), and the edge worker checks `/servers/{name}/mcp` with
//! `is_server_name` before forwarding.

/// The longest server name.
pub const SERVER_NAME_MAX: usize = 30;

/// The public names of MCPbox's own management tools begin with this; no other tool's may.
pub const MANAGEMENT_PREFIX: &str = "mcpbox_";

/// Whether `text` is 1 to `max` lower-case letters and digits, starting with a letter, in words
/// joined by single underscores (so `{server}__{tool}` splits at its only `__`).
pub fn is_well_formed(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.split('_').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// Whether the tools of a server so named would have public names in the management tools'
/// namespace (`{server}__…` starting with `mcpbox_`): `mcpbox` and `mcpbox_…`.
pub fn is_reserved_server(server: &str) -> bool {
    format!("{server}__").starts_with(MANAGEMENT_PREFIX)
}

/// Whether `text` is a server name: well formed, at most 30 characters, and not `mcpbox` or
/// `mcpbox_…` (reserved for MCPbox's own tools).
pub fn is_server_name(text: &str) -> bool {
    is_well_formed(text, SERVER_NAME_MAX) && !is_reserved_server(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_follow_the_rule() {
        for good in [
            "a",
            "weather",
            "get_forecast",
            "v2_api",
            "mcpboxes",
            "my_mcpbox",
        ] {
            assert!(is_server_name(good), "{good}");
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
            "a/b",
            "é",
            "mcpbox",
            "mcpbox_x",
            &"a".repeat(31),
        ] {
            assert!(!is_server_name(bad), "{bad:?}");
        }
        assert!(is_server_name(&"a".repeat(30)));
    }
}
