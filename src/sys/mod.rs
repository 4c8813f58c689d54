//! Thin wrappers over system calls nix does not cover. The only module with `unsafe`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A libc or syscall return value where 0 is success and anything else means errno says why.
fn check(r: impl Into<i64>) -> io::Result<()> {
    if r.into() == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

mod interrupt;
mod trim;
mod xattr;
pub use interrupt::{catch_interrupts, interrupted, CleanupGuard};
pub use spawn::{exec_in_dir, fork_waiter};
pub use trim::trim_idle;
pub use xattr::{fsetxattr, has_xattrs, lsetxattr_at};

/// Set the process umask, returning the old one.
pub fn umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

/// Is a process with this pid alive (or at least present)?
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
    }
}

pub mod bpf;
pub mod btrfs;
pub mod creds;
pub mod dbus;
pub mod exec;
pub mod idmap;
pub mod memfd;
pub mod mount;
pub mod mountinfo;
pub mod notify;
pub mod pty;
pub mod seccomp;
pub mod signals;
pub use signals::{block_daemon_signals, sigwait_for};
mod spawn;

/// clone3's flag for starting the child in a cgroup2 directory (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like `clone_child`, but the child is born in the cgroup2 directory `cgroup` (clone3
/// with CLONE_INTO_CGROUP), which costs nothing, where moving it there afterwards waits
/// out an RCU grace period. ENOSYS, E2BIG or EINVAL: the kernel cannot; use `clone_child`.
pub fn clone_into_cgroup(
    flags: nix::sched::CloneFlags,
    cgroup: BorrowedFd<'_>,
    cb: impl FnOnce() -> isize,
) -> nix::Result<nix::unistd::Pid> {
    let args = libc::clone_args {
        flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: `args` is a valid clone_args of the size passed. Without CLONE_VM and with
    // no stack given this is fork(2): the child continues here on its own copy of the
    // address space, so it shares no memory with the parent. The caller is
    // single-threaded at this point (no lock can be held by a vanished thread), and the
    // child leaves only through _exit or exec.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match r {
        -1 => Err(nix::errno::Errno::last()),
        0 => {
            let code = cb();
            // SAFETY: _exit ends the child without running the parent's atexit handlers
            // or destructors of state that belongs to the parent.
            unsafe { libc::_exit(code as i32) }
        }
        pid => Ok(nix::unistd::Pid::from_raw(pid as i32)),
    }
}

/// Start `cb` as a child in new namespaces (clone(2) with `flags`), SIGCHLD on exit.
pub fn clone_child(
    flags: nix::sched::CloneFlags,
    cb: Box<dyn FnMut() -> isize + '_>,
) -> nix::Result<nix::unistd::Pid> {
    // The child runs `cb` on this stack until it execs; 1 MiB is plenty for the setup.
    let mut stack = vec![0u8; 1 << 20];
    // SAFETY: the child gets its own copy of the address space (no CLONE_VM), so it
    // cannot race the parent on any memory; `stack` outlives the call in the parent and
    // is a private copy in the child. Callers are single-threaded when they clone (the
    // monitor, attach, rlxc-create running a template), so no lock (malloc's, stdio's)
    // can be held by a thread the child lacks: the callback may allocate, print and
    // fork (a template's init does) before it execs or _exits.
    unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }
}

/// A pidfd for `pid` (pidfd_open(2), Linux 5.3): readable once the process has exited,
/// so a wait can poll it with a timeout instead of sleeping in steps.
pub fn pidfd_open(pid: nix::unistd::Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; the
    // descriptor is ours alone, so wrapping it in an OwnedFd is sound.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: r is a descriptor the kernel just opened for us and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Make `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument; `fd` is a live descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    check(r)
}

/// Window size of a terminal, as (rows, cols).
pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointed-to, properly sized struct.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointed-to struct.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    check(r)
}

/// Remove capabilities from the bounding set: no process below can ever regain them.
pub fn drop_bounding_caps(caps: &[u32]) -> io::Result<()> {
    for &cap in caps {
        // SAFETY: PR_CAPBSET_DROP takes the capability number; no pointers involved.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if let Err(e) = check(r) {
            // A capability this kernel does not know cannot be held either.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Borrow a descriptor this process keeps open for the rest of its life (inherited
/// sync sockets, stdio).
pub fn borrow_fd(fd: std::os::fd::RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers pass descriptors that stay open until the process execs or exits;
    // the 'static borrow never outlives that.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// dup2 `fd` onto the descriptor number `target` (stdio set-up before exec).
pub fn dup_onto(fd: BorrowedFd<'_>, target: std::os::fd::RawFd) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        return Ok(());
    }
    // SAFETY: dup2 on two integers; the target number is replaced atomically, which is
    // the point (0, 1, 2 become the console).
    let r = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    // dup2 returns the new descriptor on success.
    check(r.min(0))
}

/// Mark every descriptor from `first` up close-on-exec, so nothing of the monitor leaks
/// into the container's init.
pub fn mark_fds_cloexec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; no memory involved.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        // Old kernels: mark the ones that are open, one by one.
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = rd
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
                let _ = nix::fcntl::fcntl(
                    borrow_fd(fd),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                );
            }
        }
    }
}

/// Send a signal by number (real-time signals such as SIGRTMIN+3 have no nix name).
pub fn kill_raw(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) on two integers.
    let r = unsafe { libc::kill(pid, sig) };
    check(r)
}

pub enum Forked {
    Parent(nix::unistd::Pid),
    Child,
}

/// fork(2). Only called from single-threaded processes (attach, start, the monitor):
/// rlxc runs tokio only as a current-thread runtime, dropped after each batch.
pub fn fork() -> nix::Result<Forked> {
    // SAFETY: the caller has no other thread when it forks, so the child inherits no
    // lock held by a thread it lacks and may go on running ordinary code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Restore the default SIGPIPE action (Rust ignores it), for commands whose output
/// may go to a pipe that closes early.
pub fn default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installing SIG_DFL involves no handler code at all.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Ignore SIGPIPE again (the monitor: a client that vanished must not kill it).
pub fn ignore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installing SIG_IGN involves no handler code at all.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Put back the default action of the signals `catch_interrupts` handles.
pub fn default_interrupts() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: installing SIG_DFL involves no handler code at all.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}

/// Ignore the signals `catch_interrupts` handles (a helper that must outlive its
/// parent's Ctrl-C, which reaches the whole process group).
pub fn ignore_interrupts() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: installing SIG_IGN involves no handler code at all.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

/// Close every descriptor from `first` up.
pub fn close_fds_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers. The caller (a freshly forked child) owns
    // no Rust object it will use again that wraps one of these descriptors.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    check(r)
}

/// The kernel's `struct prctl_mm_map` (linux/prctl.h), for PR_SET_MM_MAP.
#[repr(C)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

const PR_SET_MM_MAP: libc::c_int = 14;

/// Show `title` as this process's command line (ps, pgrep -f): a forked process would
/// otherwise keep its parent's. PR_SET_MM_MAP, which needs no capability (the kernel
/// offers it for checkpoint/restore), else PR_SET_MM_ARG_START/END (CAP_SYS_RESOURCE).
pub fn set_cmdline(title: &str) -> io::Result<()> {
    let buf: &'static [u8] = Box::leak(format!("{title}\0").into_bytes().into_boxed_slice());
    let start = buf.as_ptr() as u64;
    let end = start + buf.len() as u64;
    match mm_map_with_args(start, end) {
        Ok(()) => Ok(()),
        Err(_) => set_arg_bounds(start, end),
    }
}

/// Replace the argument bounds through PR_SET_MM_MAP, which sets the whole map at once:
/// every other field is this process's own, from /proc/self/stat.
fn mm_map_with_args(arg_start: u64, arg_end: u64) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/self/stat");
    // Fields after the command name; field N (1-based, proc(5)) is f[N - 3].
    let rest = stat.rsplit_once(") ").ok_or_else(bad)?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| f.get(n - 3).copied().ok_or_else(bad);
    // SAFETY: brk(0) only reports the current program break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    let map = PrctlMmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk,
        start_stack: field(28)?,
        arg_start,
        arg_end,
        env_start: field(50)?,
        env_end: field(51)?,
        auxv: 0,
        auxv_size: 0,
        exe_fd: u32::MAX,
    };
    // SAFETY: `map` is a valid prctl_mm_map of the size passed; the kernel only reads it.
    // With auxv_size 0 and exe_fd -1 it keeps the auxiliary vector and /proc/self/exe.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            PR_SET_MM_MAP,
            &map as *const PrctlMmMap,
            std::mem::size_of::<PrctlMmMap>(),
            0,
        )
    };
    check(r)
}

fn set_arg_bounds(start: u64, end: u64) -> io::Result<()> {
    let set = |opt: libc::c_int, addr: u64| {
        // SAFETY: PR_SET_MM only records the address in the kernel; the caller's buffer
        // is leaked, so it stays valid and unchanged for the rest of the process's life.
        let r = unsafe { libc::prctl(libc::PR_SET_MM, opt, addr as libc::c_ulong, 0, 0) };
        check(r)
    };
    // The kernel wants start <= end after each call: the order depends on where the
    // new buffer lies relative to the old arguments.
    if set(libc::PR_SET_MM_ARG_START, start).is_ok() {
        set(libc::PR_SET_MM_ARG_END, end)
    } else {
        set(libc::PR_SET_MM_ARG_END, end)?;
        set(libc::PR_SET_MM_ARG_START, start)
    }
}

/// Set this thread's name (comm, at most 15 bytes), as `ps` and `top` show it.
pub fn set_comm(name: &str) {
    if let Ok(c) = CString::new(name) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of which the kernel copies
        // at most 16 bytes; `c` outlives the call.
        let _ = unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) };
    }
}

/// Unblock every signal in the child of `cmd` before it execs: a blocked mask is
/// inherited across exec, and the monitor and supervisors block the signals they wait for.
pub fn exec_with_clean_sigmask(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // pthread_sigmask, which is async-signal-safe; it touches no locks or allocations.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// The child of `cmd` is killed when this process dies, however it dies: a `cp` or `tar`
/// writing into a staging directory must not outlive an rlxc killed with SIGKILL and go
/// on writing into the directory the next command sweeps and rebuilds.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // async-signal-safe calls prctl and getppid; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// End a forked child at once: no atexit handlers, no destructors of the parent's state,
/// no stdio flush of buffers it shares with its parent.
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit(2) only ends the process; it cannot leave memory in a bad state.
    unsafe { libc::_exit(code) }
}
