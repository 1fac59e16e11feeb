//! `sandbox::Error`: failures of the sandbox itself (not of a tool, which are `ToolError`s).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("python: {0}")]
    Python(String),
    #[error("isolation: {0}")]
    Isolation(String),
    #[error("the zygote is not available: {0}")]
    Zygote(String),
    #[error("no worker became available in time")]
    NoWorker,
    #[error(transparent)]
    Frame(#[from] crate::frame::FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
