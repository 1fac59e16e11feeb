//! The zygote: a single-threaded process that loads Python and the allowed modules once, then
//! forks single-use workers on request. It never runs tool code itself.
//!
//! It talks to the supervisor over a SOCK_SEQPACKET socket on fd 3 (one JSON message per
//! packet); each new worker's socket is passed along with `Spawned` as SCM_RIGHTS. Workers are
//! reaped here (their parent) and reported with their exit status and resource usage.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use contract::sandbox::Usage;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use pyo3::prelude::*;

use crate::error::Error;
use crate::protocol::{ExitInfo, ZygoteCommand, ZygoteMessage};
use crate::{isolation, python, worker};

/// The control socket's fd in the zygote (placed there by the supervisor).
pub const CONTROL_FD: RawFd = 3;

/// Entry point of `mcpbox-sandbox zygote`. Must run before any thread exists. `unguarded`
/// (layer tests only) makes workers skip the Python-level guards; the OS layers stay.
pub fn run(unguarded: bool, packages_dir: Option<std::path::PathBuf>) -> ! {
    match serve(unguarded, packages_dir) {
        Ok(()) => unsafe { libc::_exit(0) },
        Err(err) => {
            eprintln!("mcpbox-sandbox zygote: {err}");
            unsafe { libc::_exit(1) }
        }
    }
}

fn serve(unguarded: bool, packages_dir: Option<std::path::PathBuf>) -> Result<(), Error> {
    // SAFETY: single-threaded process start-up; these calls touch only this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::clearenv();
    }
    let clean_environment = std::env::vars_os().next().is_none();
    let network_namespace = isolation::enter_network_namespace();
    python::initialize()?;
    let (runtime, mut readable, loop_fds) = Python::attach(python::preload)?;
    // Packages are not preloaded (one server's packages are not every server's): workers
    // import a call's granted ones from here, so they must be able to read it.
    // A missing directory is left out: Landlock refuses a rule on a path that does not exist.
    if let Some(dir) = packages_dir
        .filter(|dir| dir.is_dir())
        .and_then(|dir| dir.to_str().map(str::to_owned))
    {
        crate::packages::preload_system_libraries();
        readable.push(dir);
    }
    // Built once here; which one a worker attaches depends on whether the zygote could take
    // its own filter (below).
    let narrowing = isolation::narrowing_filter().ok();
    let full = isolation::worker_filter().ok();
    let zygote_filter = isolation::zygote_filter().ok();
    send(
        &ZygoteMessage::Ready {
            network_namespace,
            clean_environment,
        },
        None,
    )?;

    let sigchld = child_signal_fd()?;
    // From here on the zygote only forks, reaps and passes sockets: put it under the worker
    // allowlist plus what that takes, so workers inherit the long filter instead of each
    // attaching it (see `isolation::zygote_filter`).
    let seccomp = match (&zygote_filter, &narrowing, &full) {
        (Some(own), Some(narrowing), _) if isolation::enter_zygote_filter(own) => {
            isolation::WorkerSeccomp::Narrow(narrowing)
        }
        (_, _, Some(full)) => isolation::WorkerSeccomp::Full(full),
        _ => isolation::WorkerSeccomp::None,
    };
    loop {
        let mut fds = [
            libc::pollfd {
                fd: CONTROL_FD,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigchld.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two fds we own.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready < 0 {
            continue; // EINTR
        }
        if fds[1].revents != 0 {
            drain(&sigchld);
            reap()?;
        }
        if fds[0].revents != 0 {
            let mut buf = [0u8; 4096];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let received = recvmsg::<()>(CONTROL_FD, &mut iov, None, MsgFlags::empty())
                .map_err(|err| Error::Zygote(err.to_string()))?;
            if received.bytes == 0 {
                return Ok(()); // the supervisor is gone
            }
            let bytes = received.bytes;
            match serde_json::from_slice::<ZygoteCommand>(&buf[..bytes]) {
                Ok(ZygoteCommand::Spawn) => {
                    spawn(&runtime, &readable, loop_fds, seccomp, unguarded)?
                }
                Err(err) => eprintln!("mcpbox-sandbox zygote: bad command: {err}"),
            }
        }
    }
}

fn send(message: &ZygoteMessage, fd: Option<RawFd>) -> Result<(), Error> {
    let bytes = serde_json::to_vec(message).map_err(|err| Error::Zygote(err.to_string()))?;
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(fd) => {
            fds = [fd];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    sendmsg::<()>(
        CONTROL_FD,
        &[IoSlice::new(&bytes)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map_err(|err| Error::Zygote(format!("control socket: {err}")))?;
    Ok(())
}

/// A signalfd for SIGCHLD, so the poll loop wakes as soon as a worker exits.
fn child_signal_fd() -> Result<OwnedFd, Error> {
    // SAFETY: standard signalfd set-up on this single-threaded process.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(Error::Zygote("signalfd failed".into()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 128 * 4];
    // SAFETY: non-blocking reads into our buffer until empty.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

fn reap() -> Result<(), Error> {
    loop {
        let mut status = 0;
        // SAFETY: wait4 fills the status and rusage we own.
        let (pid, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let pid = libc::wait4(-1, &mut status, libc::WNOHANG, &mut usage);
            (pid, usage)
        };
        if pid <= 0 {
            return Ok(());
        }
        let ms = |tv: libc::timeval| (tv.tv_sec as u64) * 1000 + (tv.tv_usec as u64) / 1000;
        let exit = ExitInfo {
            code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            usage: Usage {
                cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
                max_rss_kb: usage.ru_maxrss as u64,
            },
        };
        send(&ZygoteMessage::Exited { pid, exit }, None)?;
    }
}

fn spawn(
    runtime: &Py<pyo3::types::PyModule>,
    readable: &[String],
    loop_fds: isolation::LoopFds,
    seccomp: isolation::WorkerSeccomp<'_>,
    unguarded: bool,
) -> Result<(), Error> {
    let (supervisor_end, worker_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|err| Error::Zygote(format!("socketpair: {err}")))?;
    let pid = Python::attach(|py| {
        // SAFETY: the CPython fork protocol, in a process with no other threads.
        let pid = unsafe {
            pyo3::ffi::PyOS_BeforeFork();
            libc::fork()
        };
        if pid == 0 {
            unsafe {
                pyo3::ffi::PyOS_AfterFork_Child();
                let mut mask: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut mask);
                libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
            }
            worker::run(
                py,
                runtime.bind(py),
                worker_end.as_raw_fd(),
                readable,
                loop_fds,
                seccomp,
                unguarded,
            );
        }
        unsafe { pyo3::ffi::PyOS_AfterFork_Parent() };
        pid
    });
    drop(worker_end);
    if pid < 0 {
        return send(
            &ZygoteMessage::SpawnFailed {
                message: "fork failed".into(),
            },
            None,
        );
    }
    send(
        &ZygoteMessage::Spawned { pid },
        Some(supervisor_end.as_raw_fd()),
    )
}
