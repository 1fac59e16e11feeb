//! The MCPbox sandbox (`mcpbox-sandbox`): runs untrusted, LLM-written Python tools.
//!
//! Processes: the **supervisor** (tokio, never embeds Python: `supervisor`, `broker`, `server`)
//! starts the **zygote** (`zygote`: Python and the allowed modules loaded once, no threads),
//! which pre-forks single-use **workers** (`worker`) that harden themselves (`isolation`)
//! before receiving one job, run it (`python`, with `regex_module` as `re`), report and exit.
//!
//! Layers, each tested by attack in `tests/escapes.rs`: static check and restricted runtime
//! (`python/runtime.py`), OS isolation per worker (`isolation`), network only through the
//! broker (`broker`). Wire types to the origin are in `contract::sandbox`; the internal ones in
//! `protocol`; framing in `frame`.

pub mod broker;
pub mod cli;
pub mod content;
pub mod error;
pub mod frame;
pub mod isolation;
pub mod packages;
pub mod protocol;
pub mod python;
pub mod regex_module;
pub mod server;
pub mod supervisor;
pub mod worker;
pub mod zygote;

pub use error::Error;
