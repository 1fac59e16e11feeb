//! Who may flip the switches that decide what runs: the rules every front (REST, UI, the MCP
//! management tools) reaches through the domain functions that apply them.
//!
//! A person (a signed-in admin or approver, through the REST API or the UI) is in charge; an LLM
//! (any MCP caller, local or remote) may only make things less live than a person left them:
//! - an admin's stop beats an LLM's start: a server an admin stopped is started again only by an
//!   admin (`servers::set_running_recorded`); one an LLM stopped, the LLM may start again;
//! - an LLM may disable a tool but never enable one (`tools::update`);
//! - an LLM may not rename a tool a person has approved or is reviewing: the name is the public
//!   name clients call, and it is not part of a version (`tools::update`);
//! - an LLM's test run honours a disabled tool and a stopped server exactly like a call does
//!   (`execution::test_run`); a person's test run may try a stopped server or a disabled tool
//!   before going live. Either runs only approved code, or under `tool_approval_mode =
//!   auto_approve` the newest version.

use crate::error::{Error, Result};
use crate::tools::Purpose;

/// What kind of principal asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in account (REST API, UI); its role is checked by the route.
    Person,
    /// An MCP client, local or remote (the management tools).
    Llm,
}

/// May `by` start a server whose last stop was (`stopped_by_admin`) a person's?
pub fn may_start(by: Principal, stopped_by_admin: bool) -> Result<()> {
    if by == Principal::Llm && stopped_by_admin {
        return Err(Error::Forbidden(
            "an admin stopped this server: only an admin can start it again (in MCPbox's UI or \
             REST API)",
        ));
    }
    Ok(())
}

/// May `by` set a tool's `enabled` from `was` to `wanted`? Disabling is always allowed.
pub fn may_set_enabled(by: Principal, was: bool, wanted: Option<bool>) -> Result<()> {
    if by == Principal::Llm && wanted == Some(true) && !was {
        return Err(Error::Forbidden(
            "only an admin can enable a disabled tool again (in MCPbox's UI or REST API); over \
             MCP a tool can only be disabled",
        ));
    }
    Ok(())
}

/// May `by` rename a tool that has (`reviewed`) a version approved or pending review?
pub fn may_rename(by: Principal, reviewed: bool) -> Result<()> {
    if by == Principal::Llm && reviewed {
        return Err(Error::Forbidden(
            "this tool has a version that is approved or waiting for review, so its name is \
             what a person checked and what clients call: only an admin can rename it (in \
             MCPbox's UI or REST API)",
        ));
    }
    Ok(())
}

/// What a test run by `by` must pass (see `tools::runnable_for`).
pub fn test_purpose(by: Principal, auto_approve_tools: bool) -> Purpose {
    Purpose::Test {
        live_only: by == Principal::Llm,
        newest: auto_approve_tools,
    }
}
