//! `--run-cloudflared`: the origin runs cloudflared as its child, so a single `mcpbox serve`
//! is the whole origin side of remote access.
//!
//! It waits until the wizard has a connector token (step 2), then runs
//! `cloudflared tunnel --no-autoupdate run` with the token in `TUNNEL_TOKEN` (never on the
//! command line, where `ps` shows it). The child is restarted 5 s after it exits and whenever
//! the token changes (a new tunnel, a teardown), and killed when the origin stops (the task is
//! aborted and `kill_on_drop` ends the child).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::store;
use crate::app::AppState;

const POLL: Duration = Duration::from_secs(5);

/// `cloudflared` on `PATH`, if there is one.
pub fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("cloudflared"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

async fn token(state: &AppState) -> Option<String> {
    match store::secret(&state.db, &state.keys, "tunnel_token").await {
        Ok(token) => token,
        Err(err) => {
            tracing::warn!(error = %err.public_message(), "cannot read the tunnel's connector token");
            None
        }
    }
}

/// Runs until aborted.
pub async fn run(state: AppState, binary: PathBuf) {
    let mut announced = false;
    loop {
        let Some(current) = token(&state).await else {
            if !announced {
                tracing::info!("cloudflared starts once Remote set-up has created the tunnel");
                announced = true;
            }
            tokio::time::sleep(POLL).await;
            continue;
        };
        let spawned = Command::new(&binary)
            .args(["tunnel", "--no-autoupdate", "run"])
            .env("TUNNEL_TOKEN", &current)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                tracing::warn!(binary = %binary.display(), error = %err, "cannot start cloudflared");
                tokio::time::sleep(POLL * 6).await;
                continue;
            }
        };
        tracing::info!(pid = child.id(), "cloudflared started");
        loop {
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(?status, "cloudflared exited; starting it again in 5 s");
                    tokio::time::sleep(POLL).await;
                    break;
                }
                () = tokio::time::sleep(POLL) => {
                    if token(&state).await.as_deref() != Some(current.as_str()) {
                        tracing::info!("the connector token changed; restarting cloudflared");
                        let _ = child.kill().await;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::crypto::Keyring;
    use crate::db::Db;
    use crate::dispatch::Sandbox;

    /// A stand-in cloudflared: records its arguments, its token and its pid, then waits.
    fn fake_cloudflared(dir: &Path) -> PathBuf {
        let path = dir.join("cloudflared");
        let out = dir.join("out");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$$ $TUNNEL_TOKEN $*\" >> {}\nexec sleep 60\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn lines(dir: &Path, n: usize) -> Vec<String> {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(dir.join("out"))
                && text.lines().count() >= n
            {
                return text.lines().map(str::to_owned).collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cloudflared was not started {n} times");
    }

    /// Running (a zombie waiting to be reaped has ended).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }

    #[tokio::test]
    async fn cloudflared_runs_with_the_token_in_its_environment_and_stops_with_us() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(&dir.path().join("t.db"));
        let db = Db::connect(&url).await.unwrap();
        let state = AppState::new(
            db,
            Keyring::new([9; 32], None),
            Sandbox::unavailable("test"),
        );
        let binary = fake_cloudflared(dir.path());
        store::set_secret(&state.db, &state.keys, "tunnel_token", "connector-one")
            .await
            .unwrap();
        let task = tokio::spawn(run(state.clone(), binary));
        let first = lines(dir.path(), 1).await;
        let (pid, rest) = first[0].split_once(' ').unwrap();
        assert_eq!(rest, "connector-one tunnel --no-autoupdate run");
        assert!(alive(pid));
        // A new token (a new tunnel): the old child goes, a new one has the new token.
        store::set_secret(&state.db, &state.keys, "tunnel_token", "connector-two")
            .await
            .unwrap();
        let both = lines(dir.path(), 2).await;
        let (new_pid, rest) = both[1].split_once(' ').unwrap();
        assert_eq!(rest, "connector-two tunnel --no-autoupdate run");
        // Stopping the origin stops the child.
        task.abort();
        let _ = task.await;
        for _ in 0..100 {
            if !alive(new_pid) && !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cloudflared outlived the origin");
    }
}
