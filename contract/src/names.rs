//! Server names as they appear in URLs (`/servers/{name}/mcp`): the origin serves them and the
//! edge worker checks them before forwarding, so both read the same rule. The origin's
//! `names::Name::server` is the authority (with its error messages); a test there keeps the two
//! in agreement.

/// The longest server name.
pub const SERVER_NAME_MAX: usize = 30;

/// Whether `text` is a server name: 1 to 30 lower-case letters and digits, starting with a
/// letter, in words joined by single underscores, and not `mcpbox` or `mcpbox_…` (reserved for
/// MCPbox's own tools).
pub fn is_server_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= SERVER_NAME_MAX
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.split('_').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && !format!("{text}__").starts_with("mcpbox_")
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
