//! `tools/call`'s name → tool id → call-time check, with the id each public name had last time
//! remembered, so a call costs one round trip here instead of two.
//!
//! The memory needs no invalidation to stay right: `tools::runnable` reads the tool's current
//! server and tool name in the same query as everything it checks, and a remembered id is used
//! only when that name is still the one called. A renamed, moved or deleted tool, or any
//! refusal, sends the call down the uncached path (`visible::tool_id`), which is what every
//! call did before. A stale entry costs a round trip, never a wrong tool or a wrong refusal.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::db::Db;
use crate::error::Result;
use crate::tools::{self, Approved};

/// Names remembered at most; when full, the memory starts over (a bounded table a client
/// cannot grow: only names of tools that passed the call-time check are ever entered).
pub const CAPACITY: usize = 4096;

/// Public name → tool id (shared by the clones of one listener's `Gateway`).
#[derive(Clone, Default)]
pub struct ToolIds(Arc<Mutex<HashMap<String, String>>>);

/// A name's tool (its id, for the log of a refused call) and the call-time check of it.
pub type Resolved = Option<(String, Result<Approved>)>;

impl ToolIds {
    /// The tool `public_name` names now and `tools::runnable` of it; `lookup` is the uncached
    /// name → id query (`visible::tool_id` or `tool_id_in`). `None`: no such tool.
    pub async fn runnable(
        &self,
        db: &Db,
        public_name: &str,
        lookup: impl Future<Output = Result<Option<String>>>,
    ) -> Result<Resolved> {
        if let Some(id) = self.get(public_name) {
            match tools::runnable(db, &id).await {
                Ok(approved) if approved.public_name == public_name => {
                    return Ok(Some((id, Ok(approved))));
                }
                // Renamed, gone or refused: ask storage what the name means now.
                _ => self.forget(public_name),
            }
        }
        let Some(id) = lookup.await? else {
            return Ok(None);
        };
        let checked = tools::runnable(db, &id).await;
        if matches!(&checked, Ok(approved) if approved.public_name == public_name) {
            self.remember(public_name, &id);
        }
        Ok(Some((id, checked)))
    }

    fn get(&self, public_name: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(public_name)
            .cloned()
    }

    fn forget(&self, public_name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(public_name);
    }

    fn remember(&self, public_name: &str, id: &str) {
        let mut ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ids.len() >= CAPACITY && !ids.contains_key(public_name) {
            ids.clear();
        }
        ids.insert(public_name.to_owned(), id.to_owned());
    }
}
