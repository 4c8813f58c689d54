//! Children that work inside a tree rlxc holds open (a detached mount has no path).

use std::io;
use std::os::fd::BorrowedFd;

/// Run `cmd`'s child in the directory `dir` (its working directory, so a detached mount
/// needs no path), killed if this process dies first. `dir` must stay open until the
/// spawn.
pub fn exec_in_dir(cmd: &mut std::process::Command, dir: BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = dir.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls fchdir,
    // which is async-signal-safe; the descriptor is open in the parent at the spawn (the
    // caller's promise), so in the child until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fchdir(fd) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    super::die_with_parent(cmd);
}

/// Fork a process that does nothing but wait until the returned pipe end is closed
/// (or this process dies), then exits: a placeholder for a cgroup that must hold a
/// process before the real one exists. The caller reaps it.
pub fn fork_waiter() -> io::Result<(nix::unistd::Pid, std::os::fd::OwnedFd)> {
    use std::os::fd::AsRawFd;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    match super::fork()? {
        super::Forked::Child => {
            let mut b = [0u8; 1];
            // SAFETY: only async-signal-safe calls: the child closes its copy of the
            // write end, reads until the parent's copy closes, and exits without running
            // any destructor or atexit handler of the parent's.
            unsafe {
                libc::close(w.as_raw_fd());
                while libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) > 0 {}
                libc::_exit(0)
            }
        }
        super::Forked::Parent(pid) => Ok((pid, w)),
    }
}
