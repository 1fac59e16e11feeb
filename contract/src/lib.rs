//! Wire contracts shared by MCPbox's deployables: the origin (`mcpbox`), the sandbox
//! (`mcpbox-sandbox`) and the edge worker (wasm).
//!
//! Everything here is a format other programs rely on, so changing a name or a field is a
//! breaking change between deployables. This crate does no I/O and depends on serde only, so it
//! compiles for wasm32 as well as natively.

pub mod edge;
pub mod error;
pub mod headers;
pub mod names;
pub mod network;
pub mod sandbox;

pub use error::{ErrorBody, ErrorDetail};
