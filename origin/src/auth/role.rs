//! Roles, ordered by power: a viewer reads, an approver also reviews and approves, an admin does
//! everything (users, secrets, policy).

use std::fmt;
use std::str::FromStr;

/// In the OpenAPI document as its names (`as_str`): `viewer`, `approver`, `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(rename_all = "lowercase", as = auth::Role)]
pub enum Role {
    Viewer,
    Approver,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `required` may do.
    pub fn includes(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (expected admin, approver or viewer)")]
pub struct UnknownRole(String);

/// Parsing is exact: there is no default role, so anything unexpected (in a token, a row or a
/// request) is refused rather than mapped to some role.
impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_weaker_ones_only() {
        assert!(Role::Admin.includes(Role::Approver));
        assert!(Role::Approver.includes(Role::Viewer));
        assert!(Role::Approver.includes(Role::Approver));
        assert!(!Role::Viewer.includes(Role::Approver));
        assert!(!Role::Approver.includes(Role::Admin));
    }

    #[test]
    fn parsing_is_exact() {
        for role in [Role::Viewer, Role::Approver, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        for bad in ["", "Admin", "root", "admin ", "superuser"] {
            assert!(bad.parse::<Role>().is_err(), "{bad:?}");
        }
    }
}
