//! OS isolation, applied to each worker before it receives any untrusted byte (and, for the
//! network namespace, once to the zygote that all workers are forked from).
//!
//! Order matters: close inherited fds first (nothing leaks in); create what Python's event loop
//! needs (an epoll fd and a socketpair); then rlimits, the uid drop (needs root), no_new_privs,
//! Landlock (no filesystem writes, reads only under Python's own directories, no TCP), and
//! seccomp last (it forbids the calls the steps before it make).
//!
//! Each layer reports whether it took effect. A host that cannot apply one (no Landlock in the
//! kernel, not root) degrades, and the supervisor says so loudly; nothing silently pretends.

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use contract::sandbox::Layers;
use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::error::Error;

/// The fd number every worker's supervisor socket ends up on.
pub const WORKER_SOCKET_FD: RawFd = 3;
/// The uid/gid workers drop to when started as root ("nobody").
pub const UNPRIVILEGED_ID: libc::uid_t = 65534;
pub const CPU_SECONDS: u64 = 60;
pub const DEFAULT_DATA_BYTES: u64 = 256 * 1024 * 1024;
pub const MAX_OPEN_FILES: u64 = 256;

/// Moves the zygote into a new, empty network namespace: no interfaces but a down loopback.
/// Needs CAP_SYS_ADMIN (root); elsewhere it fails and seccomp + Landlock still deny sockets.
pub fn enter_network_namespace() -> bool {
    // SAFETY: unshare affects only the calling (single-threaded) process.
    unsafe { libc::unshare(libc::CLONE_NEWNET) == 0 }
}

/// Keeps only `keep` (moved to fd 3); fds 0–2 become /dev/null; every other fd is closed.
pub fn isolate_fds(keep: RawFd) -> Result<(), Error> {
    // SAFETY: plain fd syscalls on fds this single-threaded process owns.
    unsafe {
        let moved = libc::fcntl(keep, libc::F_DUPFD_CLOEXEC, 10);
        if moved < 0 {
            return Err(Error::Isolation("could not move the worker socket".into()));
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null < 0 {
            return Err(Error::Isolation("could not open /dev/null".into()));
        }
        for target in 0..3 {
            libc::dup2(null, target);
        }
        if libc::dup2(moved, WORKER_SOCKET_FD) < 0 {
            return Err(Error::Isolation("could not place the worker socket".into()));
        }
        let closed = libc::syscall(
            libc::SYS_close_range,
            WORKER_SOCKET_FD as u32 + 1,
            u32::MAX,
            0u32,
        );
        if closed != 0 {
            for fd in (WORKER_SOCKET_FD + 1)..4096 {
                libc::close(fd);
            }
        }
    }
    Ok(())
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> bool {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass.
    unsafe { libc::setrlimit(resource, &limit) == 0 }
}

/// Lowers the data-segment limit for one call (allowed after seccomp: only lowering works).
pub fn limit_memory(bytes: u64) -> bool {
    set_limit(libc::RLIMIT_DATA, bytes, bytes)
}

/// What `lock_down` achieved in this worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerLayers {
    pub rlimits: bool,
    pub unprivileged_uid: bool,
    pub landlock: bool,
    pub seccomp: bool,
}

impl WorkerLayers {
    pub fn into_layers(self) -> Layers {
        Layers {
            rlimits: self.rlimits,
            closed_fds: true,
            unprivileged_uid: self.unprivileged_uid,
            landlock: self.landlock,
            seccomp: self.seccomp,
            ..Layers::default()
        }
    }
}

/// rlimits, uid drop, no_new_privs, Landlock, seccomp — in that order.
pub fn lock_down(readable_dirs: &[String], filter: Option<&BpfProgram>) -> WorkerLayers {
    let mut layers = WorkerLayers {
        rlimits: [
            set_limit(libc::RLIMIT_CPU, CPU_SECONDS, CPU_SECONDS + 1),
            set_limit(libc::RLIMIT_DATA, DEFAULT_DATA_BYTES, DEFAULT_DATA_BYTES),
            set_limit(libc::RLIMIT_NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES),
            set_limit(libc::RLIMIT_CORE, 0, 0),
            set_limit(libc::RLIMIT_FSIZE, 0, 0),
        ]
        .iter()
        .all(|ok| *ok),
        ..WorkerLayers::default()
    };
    layers.unprivileged_uid = drop_privileges();
    // Not enforced for root, hence after the uid drop; seccomp forbids forking anyway.
    layers.rlimits &= set_limit(libc::RLIMIT_NPROC, 0, 0);
    // SAFETY: prctl with constant arguments.
    let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 };
    layers.landlock = no_new_privs && apply_landlock(readable_dirs);
    layers.seccomp = match filter {
        Some(program) if no_new_privs => seccompiler::apply_filter(program).is_ok(),
        _ => false,
    };
    layers
}

/// Drops to nobody when root. Already unprivileged counts as done.
fn drop_privileges() -> bool {
    // SAFETY: credential syscalls on this process only.
    unsafe {
        if libc::geteuid() != 0 {
            return true;
        }
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID) == 0
            && libc::setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID) == 0
            && libc::geteuid() == UNPRIVILEGED_ID
    }
}

/// No filesystem access except reading Python's own directories; no TCP bind or connect.
fn apply_landlock(readable_dirs: &[String]) -> bool {
    let abi = ABI::V5;
    let ruleset = || -> Result<RulesetStatus, landlock::RulesetError> {
        let status = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))?
            .handle_access(AccessNet::from_all(abi))?
            .create()?
            .add_rules(path_beneath_rules(readable_dirs, AccessFs::from_read(abi)))?
            .restrict_self()?;
        Ok(status.ruleset)
    };
    matches!(
        ruleset(),
        Ok(RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced)
    )
}

/// The seccomp allowlist for a worker running CPython on already-open fds. Built once in the
/// zygote and inherited. Anything else fails with EPERM (Python raises PermissionError or
/// RuntimeError), so an escape attempt gets an error rather than a crash: no socket, connect,
/// clone/fork, execve, kill, ptrace, mount, unshare, bpf, io_uring…
pub fn worker_filter() -> Result<BpfProgram, Error> {
    let allowed: &[i64] = &[
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_close,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_lseek,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_futex,
        libc::SYS_getrandom,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettimeofday,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_getppid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_ctl,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        libc::SYS_getdents64,
        libc::SYS_readlink,
        libc::SYS_fcntl,
        libc::SYS_getcwd,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_yield,
        libc::SYS_prlimit64,
        libc::SYS_setrlimit,
        libc::SYS_getrlimit,
        libc::SYS_getrusage,
        libc::SYS_uname,
        libc::SYS_dup,
        libc::SYS_access,
        libc::SYS_faccessat,
        libc::SYS_rseq,
        libc::SYS_set_robust_list,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed.iter().map(|sys| (*sys, Vec::new())).collect();
    // openat only for reading (imports of modules the zygote did not preload); Landlock limits
    // where. Any write, create or truncate flag fails.
    let write_flags = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
    let read_only = SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(write_flags),
        0,
    )
    .and_then(|condition| SeccompRule::new(vec![condition]))
    .map_err(|err| Error::Isolation(format!("seccomp rule: {err}")))?;
    rules.insert(libc::SYS_openat, vec![read_only]);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|err| Error::Isolation(format!("seccomp: unsupported architecture: {err:?}")))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|err| Error::Isolation(format!("seccomp filter: {err}")))?;
    filter
        .try_into()
        .map_err(|err| Error::Isolation(format!("seccomp program: {err:?}")))
}
