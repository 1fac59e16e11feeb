//! A worker: forked from the zygote, hardened before it reads anything, runs exactly one job,
//! reports, and exits. Nothing survives between calls because nothing is reused.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::isolation::{self, WORKER_SOCKET_FD};
use crate::protocol::{Job, WorkerMessage};
use crate::{frame, python};

const MAX_JOB_FRAME: u32 = contract::sandbox::MAX_FRAME_BYTES;

pub fn run(
    py: Python<'_>,
    runtime: &Bound<'_, PyModule>,
    socket: RawFd,
    readable: &[String],
    loop_fds: isolation::LoopFds,
    seccomp: isolation::WorkerSeccomp<'_>,
    unguarded: bool,
) -> ! {
    // SAFETY: prctl on this process; if the zygote dies, so does this worker.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if isolation::isolate_fds(socket).is_err() {
        exit(3);
    }
    python::set_supervisor_fd(WORKER_SOCKET_FD);
    // The event loop was built once in the zygote and copied by the fork (only an async tool
    // touches it); its fds are made this worker's own now, while the syscalls are allowed.
    if !isolation::renew_loop_fds(loop_fds) {
        exit(4);
    }
    let layers = isolation::lock_down(readable, seccomp).into_layers();
    python::warm_up(py, runtime);
    // SAFETY: fd 3 is ours for the worker's life; ManuallyDrop never closes it.
    let mut socket = ManuallyDrop::new(unsafe { File::from_raw_fd(WORKER_SOCKET_FD) });
    if frame::write_sync(&mut *socket, &WorkerMessage::Ready { layers }).is_err() {
        exit(5);
    }
    let job: Job = match frame::read_sync(&mut *socket, MAX_JOB_FRAME) {
        Ok(job) => job,
        Err(_) => exit(0), // the supervisor shut down without using this worker
    };
    let outcome = match job {
        Job::Execute {
            code,
            arguments,
            modules,
            secrets,
            memory_mb,
            stdout_bytes,
            result_bytes,
            checked,
            package_paths,
            input,
        } => {
            isolation::limit_memory(memory_mb.saturating_mul(1024 * 1024));
            python::execute(
                py,
                runtime,
                python::ExecuteJob {
                    code: &code,
                    arguments: &arguments,
                    modules: &modules,
                    secrets: &secrets,
                    stdout_bytes,
                    result_bytes,
                    checked,
                    unguarded,
                    package_paths: &package_paths,
                    input: input.as_ref(),
                },
            )
        }
        Job::Validate { code, modules } => python::validate(runtime, &code, &modules),
    };
    let _ = frame::write_sync(&mut *socket, &WorkerMessage::Done(outcome));
    exit(0)
}

/// Leaves without running Python's finalisers (they could run tool-defined code) or atexit.
fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process immediately.
    unsafe { libc::_exit(code) }
}
