//! SIGINT, SIGTERM and SIGHUP become a flag that long-running steps poll, so they unwind
//! and undo their work instead of dying half-way. A second signal kills, as people expect
//! of a second Ctrl-C, except while a `CleanupGuard` is held by a step that leaves files
//! behind when killed (a create's staging directories): then the second only repeats
//! the request, the clean-up finishes, and it takes a third to kill.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);
static GUARDS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_interrupt(sig: libc::c_int) {
    // Atomics only, then at most signal() and raise(): all async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
    let n = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
    let kill_at = if GUARDS.load(Ordering::SeqCst) > 0 {
        3
    } else {
        2
    };
    if n >= kill_at {
        // SAFETY: signal(2) and raise(3) are async-signal-safe. The signal is blocked
        // while this handler runs, so the raised one is delivered on return, with the
        // default action: the process ends as if no handler had been installed.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Install the handler (for the whole process, once, early in main).
pub fn catch_interrupts() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    // No SA_RESETHAND: the handler itself decides when a repeated signal kills.
    let act = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls async-signal-safe
        // functions, and no other code in rlxc installs handlers for these signals.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// True once SIGINT/SIGTERM/SIGHUP arrived after `catch_interrupts`.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// While one is held, a second interrupt does not kill (a third does).
pub struct CleanupGuard(());

impl CleanupGuard {
    pub fn hold() -> Self {
        GUARDS.fetch_add(1, Ordering::SeqCst);
        CleanupGuard(())
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        GUARDS.fetch_sub(1, Ordering::SeqCst);
    }
}
