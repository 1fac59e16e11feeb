//! `mcpbox-sandbox serve`: the supervisor's unix socket for the origin.
//!
//! Only the origin may connect: the socket is created mode 0600, the peer must run as the same
//! user (or root), and its first frame must carry the shared key (compared in constant time).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use contract::sandbox::{Hello, MAX_FRAME_BYTES, Request, Response};
use subtle::ConstantTimeEq;
use tokio::net::{UnixListener, UnixStream};

use crate::error::Error;
use crate::frame::{self, FrameError};
use crate::supervisor::Supervisor;

pub async fn serve(supervisor: Supervisor, path: &Path, key: String) -> Result<(), Error> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(Error::Io(std::io::Error::other(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ))));
        }
    }
    // Created with a tight umask, then set explicitly: never a moment when others can connect.
    let old_umask = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(old_umask) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    println!("mcpbox-sandbox listening on {}", path.display());
    let key = std::sync::Arc::new(key);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let supervisor = supervisor.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    if let Err(err) = handle(stream, supervisor, &key).await {
                        tracing::debug!(error = %err, "connection ended");
                    }
                });
            }
            () = shutdown_signal() => {
                let _ = std::fs::remove_file(path);
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

async fn handle(
    mut stream: UnixStream,
    supervisor: Supervisor,
    key: &str,
) -> Result<(), FrameError> {
    let peer = stream.peer_cred()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if peer.uid() != me && peer.uid() != 0 {
        tracing::warn!(uid = peer.uid(), "refused a connection from another user");
        return Ok(());
    }
    let hello = tokio::time::timeout(
        Duration::from_secs(5),
        frame::read_async::<Hello>(&mut stream, 4096),
    )
    .await;
    let authorised =
        matches!(&hello, Ok(Ok(hello)) if bool::from(hello.key.as_bytes().ct_eq(key.as_bytes())));
    if !authorised {
        tracing::warn!("refused a connection with a missing or wrong key");
        let refusal = Response::Error {
            message: "wrong or missing key".into(),
        };
        let _ = frame::write_async(&mut stream, &refusal).await;
        return Ok(());
    }
    loop {
        let request = match frame::read_async::<Request>(&mut stream, MAX_FRAME_BYTES).await {
            Ok(request) => request,
            Err(FrameError::Malformed(err)) => {
                frame::write_async(
                    &mut stream,
                    &Response::Error {
                        message: format!("malformed request: {err}"),
                    },
                )
                .await?;
                continue;
            }
            Err(other) => return Err(other),
        };
        let response = match request {
            Request::Execute(execute) => {
                match run_execute(&mut stream, &supervisor, execute, false).await? {
                    Some(response) => response,
                    None => return Ok(()),
                }
            }
            Request::ExecuteStreaming(execute) => {
                match run_execute(&mut stream, &supervisor, execute, true).await? {
                    Some(response) => response,
                    None => return Ok(()),
                }
            }
            Request::Validate(validate) => match supervisor.validate(validate).await {
                Ok(validated) => Response::Validate(validated),
                Err(err) => Response::Error {
                    message: err.to_string(),
                },
            },
            Request::Health => Response::Health(supervisor.health()),
        };
        frame::write_async(&mut stream, &response).await?;
    }
}

/// Progress reports held for a slow origin before newer ones are dropped.
const PROGRESS_BUFFER: usize = 16;

/// Runs one execute while watching the connection: progress reports go out as
/// `Response::Progress` frames when `streaming`, and the origin closing the connection (its
/// caller cancelled or went away) drops the call, which kills the worker. `None`: cancelled.
async fn run_execute(
    stream: &mut UnixStream,
    supervisor: &Supervisor,
    execute: contract::sandbox::ExecuteRequest,
    streaming: bool,
) -> Result<Option<Response>, FrameError> {
    use tokio::io::AsyncReadExt;
    let (sender, mut reports) = tokio::sync::mpsc::channel(PROGRESS_BUFFER);
    let call = supervisor.execute_observed(execute, streaming.then_some(sender));
    let mut call = std::pin::pin!(call);
    let (mut reader, mut writer) = stream.split();
    let mut byte = [0u8; 1];
    loop {
        tokio::select! {
            response = &mut call => {
                // Reports still queued go first (the last one, `done == total`, among them).
                while let Ok(report) = reports.try_recv() {
                    frame::write_async(&mut writer, &Response::Progress(report)).await?;
                }
                return Ok(Some(Response::Execute(response)));
            }
            Some(report) = reports.recv() => {
                frame::write_async(&mut writer, &Response::Progress(report)).await?;
            }
            // The origin sends nothing while a call runs: a read that ends is a closed
            // connection (anything else is a broken peer).
            _ = reader.read(&mut byte) => {
                tracing::info!("the origin closed the connection: call cancelled");
                return Ok(None);
            }
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
