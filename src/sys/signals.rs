//! Signal dispositions for a PID namespace's init run by rlxc (rlxc-execute's): the
//! kernel drops a signal sent to such an init from outside its namespace while the
//! disposition is the default, even a blocked one, so init gives the signals it takes
//! through a signalfd a handler that does nothing.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

extern "C" fn ignore_here(_: libc::c_int) {}

/// A do-nothing handler for each of `sigs` (they are blocked and read from a signalfd;
/// the handler only makes the kernel deliver them to a namespace's init).
pub fn deliverable(sigs: &[Signal]) -> nix::Result<()> {
    let act = SigAction::new(
        SigHandler::Handler(ignore_here),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in sigs {
        // SAFETY: the handler does nothing at all, so it is async-signal-safe.
        unsafe { sigaction(*s, &act) }?;
    }
    Ok(())
}

/// Every signal back to its default disposition (a child of that init, before its exec:
/// handlers would be reset by exec anyway, ignored signals would not), the real-time
/// ones too. 32 and 33 are glibc's own (below SIGRTMIN; it refuses them with EINVAL).
pub fn reset_all() -> nix::Result<()> {
    // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an empty mask.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    let reserved = libc::SIGSYS + 1..libc::SIGRTMIN();
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || reserved.contains(&sig) {
            continue;
        }
        // SAFETY: installing the default disposition runs no code of ours; `dfl` is a
        // valid sigaction and the old one is not asked for.
        let r = unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
        nix::errno::Errno::result(r)?;
    }
    Ok(())
}

/// Take ownership of an inherited descriptor number (handed to a forked process at a
/// fixed number, as stdio is).
pub fn own_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller names a descriptor it inherited at that number and that nothing
    // else in the process owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}
