//! OS isolation, applied to each worker before it receives any untrusted byte (and, for the
//! network namespace, once to the zygote that all workers are forked from).
//!
//! Order matters: close inherited fds first (nothing leaks in); create what Python's event loop
//! needs (an epoll fd and a socketpair); then rlimits, the uid drop (needs root), no_new_privs,
//! Landlock (no filesystem writes, reads only under Python's own directories, no TCP), and
//! seccomp last (it forbids the calls the steps before it make). The seccomp policy comes in two
//! filters: the zygote's (the worker allowlist plus what the zygote and these steps need),
//! inherited, and a short one each worker attaches that denies the zygote's extras again.
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

/// The fds of an event loop (`runtime.PreparedLoop`): an epoll fd and a non-blocking unix
/// socketpair for asyncio's self-pipe. (epoll fd, self-pipe read end, write end).
pub type LoopFds = (RawFd, RawFd, RawFd);

/// New loop fds (`LoopFds`).
pub fn loop_fds() -> Option<LoopFds> {
    // SAFETY: plain fd-creating syscalls; the fds are this worker's for its whole life.
    unsafe {
        let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        let mut pair = [-1; 2];
        let paired = libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        );
        (epoll >= 0 && paired == 0).then_some((epoll, pair[0], pair[1]))
    }
}

/// In a worker, after `isolate_fds` and before `lock_down` (which takes these syscalls away):
/// makes the fd numbers of the zygote's template loop (`runtime.make_loop`, copied into every
/// worker by the fork) name a new epoll and socketpair of this worker's own, so the loop it
/// inherited shares no kernel object with the zygote or any other worker. (`isolate_fds` has
/// closed the inherited ones already.)
pub fn renew_loop_fds(template: LoopFds) -> bool {
    let Some(fresh) = loop_fds() else {
        return false;
    };
    let (template, fresh) = (
        [template.0, template.1, template.2],
        [fresh.0, fresh.1, fresh.2],
    );
    // Moved above every template number first, so placing one cannot close another.
    let above = template.iter().copied().max().unwrap_or(0) + 1;
    // SAFETY: fd syscalls on fds this single-threaded worker owns.
    unsafe {
        let mut moved = [-1; 3];
        for (slot, fd) in moved.iter_mut().zip(fresh) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
            libc::close(fd);
        }
        let mut placed = true;
        for (from, to) in moved.iter().zip(template) {
            placed &= *from >= 0 && libc::dup2(*from, to) == to;
            libc::close(*from);
        }
        placed
    }
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
pub fn lock_down(readable_dirs: &[String], seccomp: WorkerSeccomp<'_>) -> WorkerLayers {
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
    layers.seccomp = match seccomp {
        WorkerSeccomp::Narrow(program) | WorkerSeccomp::Full(program) => {
            no_new_privs && seccompiler::apply_filter(program).is_ok()
        }
        WorkerSeccomp::None => false,
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

/// The syscalls a worker may make: CPython on already-open fds. Anything else fails with EPERM
/// (Python raises PermissionError or RuntimeError), so an escape attempt gets an error rather
/// than a crash: no socket, connect, clone/fork, execve, kill, ptrace, mount, unshare, bpf,
/// io_uring… `openat` is allowed separately, for reading only.
const WORKER_SYSCALLS: &[i64] = &[
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

/// What the zygote needs on top of [`WORKER_SYSCALLS`] once it serves: forking and reaping
/// workers, handing their sockets over, and — in a fresh worker, before it reads anything — the
/// steps of `isolate_fds`, the event loop's epoll and self-pipe, and `lock_down` (uid drop,
/// `prctl`, Landlock, the narrowing filter). Every one of these is denied again in the worker by
/// [`narrowing_filter`]; none may be in `WORKER_SYSCALLS` (a test checks).
const ZYGOTE_ONLY_SYSCALLS: &[i64] = &[
    libc::SYS_clone,
    libc::SYS_wait4,
    libc::SYS_socketpair,
    libc::SYS_getsockname,
    libc::SYS_ioctl,
    libc::SYS_epoll_create1,
    libc::SYS_dup2,
    libc::SYS_close_range,
    libc::SYS_prctl,
    libc::SYS_setgroups,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_restrict_self,
    libc::SYS_seccomp,
];

/// `openat` flags that would write, create or truncate.
const OPEN_WRITE_FLAGS: u64 =
    (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;

fn seccomp_err(what: &str, err: impl std::fmt::Debug) -> Error {
    Error::Isolation(format!("seccomp {what}: {err:?}"))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, Error> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|err| seccomp_err("unsupported architecture", err))?;
    SeccompFilter::new(rules, mismatch, matched, arch)
        .map_err(|err| seccomp_err("filter", err))?
        .try_into()
        .map_err(|err| seccomp_err("program", err))
}

/// `openat` for reading only (imports of modules the zygote did not preload); Landlock limits
/// where. Any write, create or truncate flag fails.
fn read_only_open() -> Result<SeccompRule, Error> {
    SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(OPEN_WRITE_FLAGS),
        0,
    )
    .and_then(|condition| SeccompRule::new(vec![condition]))
    .map_err(|err| seccomp_err("rule", err))
}

/// The whole worker policy as one filter: what a worker applies itself when the zygote could not
/// take its own filter (see [`zygote_filter`]).
pub fn worker_filter() -> Result<BpfProgram, Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = WORKER_SYSCALLS
        .iter()
        .map(|sys| (*sys, Vec::new()))
        .collect();
    rules.insert(libc::SYS_openat, vec![read_only_open()?]);
    compile(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )
}

/// The zygote's own filter: the worker allowlist plus [`ZYGOTE_ONLY_SYSCALLS`], `openat` with
/// any flags (a worker opens /dev/null read-write). Applied once in the zygote when it starts
/// serving and inherited by every worker it forks, so a worker never pays for building and
/// attaching the long allowlist (the kernel emulates a new filter for every syscall number when
/// it is attached; measured on a 2-core VM, a worker's whole `lock_down` took ~340 µs of CPU
/// with the long filter and ~180 µs with the short one); each worker then only attaches the short
/// [`narrowing_filter`]. Seccomp runs every filter of the stack and the strictest answer wins,
/// so a worker under both has exactly the policy of [`worker_filter`].
pub fn zygote_filter() -> Result<BpfProgram, Error> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = WORKER_SYSCALLS
        .iter()
        .chain(ZYGOTE_ONLY_SYSCALLS)
        .chain(&[libc::SYS_openat])
        .map(|sys| (*sys, Vec::new()))
        .collect();
    compile(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )
}

/// What a worker forked under [`zygote_filter`] adds last: every zygote-only syscall fails, and
/// so does an `openat` with any write, create or truncate flag (the complement of
/// [`read_only_open`], one rule per flag; rules of a syscall match if any does).
pub fn narrowing_filter() -> Result<BpfProgram, Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ZYGOTE_ONLY_SYSCALLS
        .iter()
        .map(|sys| (*sys, Vec::new()))
        .collect();
    let flags = [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_CREAT,
        libc::O_TRUNC,
        libc::O_APPEND,
    ];
    let writes = flags
        .iter()
        .map(|flag| {
            let flag = *flag as u64;
            SeccompCondition::new(
                2,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|condition| SeccompRule::new(vec![condition]))
            .map_err(|err| seccomp_err("rule", err))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_openat, writes);
    compile(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
    )
}

/// Puts the zygote under [`zygote_filter`] (no_new_privs first: the zygote never execs). False if
/// this host cannot; workers then apply [`worker_filter`] themselves.
pub fn enter_zygote_filter(program: &BpfProgram) -> bool {
    // SAFETY: prctl with constant arguments on this single-threaded process.
    let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 };
    no_new_privs && seccompiler::apply_filter(program).is_ok()
}

/// Which seccomp filter a worker attaches last.
#[derive(Clone, Copy)]
pub enum WorkerSeccomp<'a> {
    /// The zygote is under [`zygote_filter`]: attach [`narrowing_filter`].
    Narrow(&'a BpfProgram),
    /// The zygote has no filter: attach [`worker_filter`].
    Full(&'a BpfProgram),
    /// No filter could be built: the layer is reported off.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zygote_only_syscalls_are_not_worker_syscalls() {
        for sys in ZYGOTE_ONLY_SYSCALLS {
            assert!(
                !WORKER_SYSCALLS.contains(sys),
                "syscall {sys} is in both lists"
            );
        }
        assert!(!WORKER_SYSCALLS.contains(&libc::SYS_openat));
        assert!(!ZYGOTE_ONLY_SYSCALLS.contains(&libc::SYS_openat));
    }

    #[test]
    fn every_filter_compiles() {
        assert!(worker_filter().is_ok());
        assert!(zygote_filter().is_ok());
        assert!(narrowing_filter().is_ok());
    }

    /// The narrowing rule for `openat` must deny exactly what the worker rule does not allow.
    #[test]
    fn narrowing_open_rule_is_the_complement_of_read_only() {
        let flags = [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_CREAT,
            libc::O_TRUNC,
            libc::O_APPEND,
        ];
        let denied = flags.iter().fold(0, |all, flag| all | *flag) as u64;
        assert_eq!(denied, OPEN_WRITE_FLAGS);
    }
}
