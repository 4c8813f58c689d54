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
