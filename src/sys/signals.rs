//! Signals taken synchronously by rlxc's daemons (the monitor, the dnsmasq supervisor),
//! and dispositions for a PID namespace's init run by rlxc (rlxc-execute's): the kernel
//! drops a signal sent to such an init from outside its namespace while the disposition
//! is the default, even a blocked one, so init gives the signals it takes through a
//! signalfd a handler that does nothing.

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

/// Block the signals a daemon (monitor, dnsmasq supervisor) takes synchronously:
/// child exits and the requests to stop or reload. Returns the blocked set.
pub fn block_daemon_signals() -> nix::Result<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    mask.thread_block()?;
    Ok(mask)
}

/// Wait for one of the blocked signals of `mask`, at most `timeout` (None: for ever);
/// Ok(None) when the time ran out or the wait was interrupted.
pub fn sigwait_for(
    mask: &nix::sys::signal::SigSet,
    timeout: Option<std::time::Duration>,
) -> nix::Result<Option<nix::sys::signal::Signal>> {
    let Some(t) = timeout else {
        return mask.wait().map(Some);
    };
    let ts = libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos().into(),
    };
    // SAFETY: the set and the timespec are valid for the call; no siginfo is asked for.
    let n = unsafe { libc::sigtimedwait(mask.as_ref(), std::ptr::null_mut(), &ts) };
    match nix::errno::Errno::result(n) {
        Ok(sig) => nix::sys::signal::Signal::try_from(sig).map(Some),
        // EINTR: a stop and continue, a ptrace attach or a cgroup freeze woke it; the
        // caller looks again, as glibc's sigwait does.
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Take ownership of an inherited descriptor number (handed to a forked process at a
/// fixed number, as stdio is).
pub fn own_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller names a descriptor it inherited at that number and that nothing
    // else in the process owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use nix::sys::signal::{kill, SigSet, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use std::time::{Duration, Instant};

    #[test]
    fn a_timed_signal_wait_returns_the_signal_or_none_when_time_runs_out() {
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR2);
        // Blocked in this test's thread only; raise() sends it to this thread.
        set.thread_block().unwrap();
        let waited = super::sigwait_for(&set, Some(Duration::from_millis(20)));
        assert_eq!(waited, Ok(None));
        // SAFETY: raising a signal this thread blocks only makes it pending here.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        let got = super::sigwait_for(&set, Some(Duration::from_secs(5)));
        assert_eq!(got, Ok(Some(Signal::SIGUSR2)));
        set.thread_unblock().unwrap();
    }

    /// A stop and continue makes sigtimedwait fail with EINTR (signal(7)); the monitor
    /// and the dnsmasq supervisor must take that as "look again", not as an error (the
    /// supervisor once stopped dnsmasq on it).
    #[test]
    fn a_timed_signal_wait_survives_a_stop_and_continue() {
        // SAFETY: the child calls only async-signal-safe functions (pthread_sigmask,
        // sigtimedwait, clock_gettime, _exit) before it exits, so the test harness's
        // other threads, which it lacks, hold nothing it needs.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut mask = SigSet::empty();
                mask.add(Signal::SIGUSR1);
                let code = match mask.thread_block() {
                    Err(_) => 3,
                    Ok(()) => {
                        let t0 = Instant::now();
                        match super::sigwait_for(&mask, Some(Duration::from_secs(20))) {
                            Ok(None) if t0.elapsed() < Duration::from_secs(10) => 0,
                            Ok(None) => 4,
                            Ok(Some(_)) => 2,
                            Err(_) => 1,
                        }
                    }
                };
                // SAFETY: _exit ends the child without running the harness's atexit code.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                std::thread::sleep(Duration::from_millis(200));
                kill(child, Signal::SIGSTOP).unwrap();
                let st = waitpid(child, Some(WaitPidFlag::WUNTRACED)).unwrap();
                assert!(matches!(st, WaitStatus::Stopped(..)), "{st:?}");
                kill(child, Signal::SIGCONT).unwrap();
                let st = waitpid(child, None).unwrap();
                assert_eq!(
                    st,
                    WaitStatus::Exited(child, 0),
                    "1: the wait failed; 2: a signal nobody sent; 4: it slept through"
                );
            }
        }
    }
}
