//! `rlxc-start -F`: the container under a service manager. This process starts it and
//! stays until its monitor (a child of this process, in the same cgroup: the unit's)
//! exits. SIGTERM and SIGINT become the container's clean halt, never signals to its
//! init (SIGINT would make systemd in the container reboot); `READY=1` goes to
//! `$NOTIFY_SOCKET` once init runs.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::{Container, StopMode};
use crate::config::SystemConfig;
use crate::error::{Error, IoContext, Result};

/// What a foreground run tells its caller as it goes.
pub enum Foreground {
    /// Init runs with this pid; `notified` when a service manager was told.
    Running { pid: i32, notified: bool },
    /// A halt was asked for by this signal (or could not be: why).
    Halting {
        signal: Signal,
        refused: Option<String>,
    },
}

impl Container {
    /// Start and serve until the container stops; the monitor's exit status.
    pub fn run_foreground(
        &self,
        sys: &SystemConfig,
        halt_timeout: Duration,
        tell: &dyn Fn(Foreground),
    ) -> Result<i32> {
        // Read, not handled, from before the monitor exists: unblocked, the SIGCHLD of a
        // monitor that ends before the start returns is discarded (its default action),
        // and the wait below never ends. A signal that came before the block set the
        // handler's flag instead.
        let mask = crate::sys::block_daemon_signals().ctx("block signals in", "rlxc-start")?;
        let started = self.start_with(sys, true)?;
        let mut end = Some(started.end);
        let notified = crate::sys::notify::sd_notify(&format!(
            "READY=1\nSTATUS={} running (init pid {})",
            self.name, started.pid
        ))
        .unwrap_or(false);
        tell(Foreground::Running {
            pid: started.pid,
            notified,
        });
        if crate::sys::interrupted() {
            self.halt_for(Signal::SIGTERM, halt_timeout, tell);
        }
        loop {
            let sig = mask.wait().ctx("wait for signals in", "rlxc-start")?;
            match sig {
                Signal::SIGTERM | Signal::SIGINT => self.halt_for(sig, halt_timeout, tell),
                Signal::SIGCHLD => match waitpid(started.monitor, Some(WaitPidFlag::WNOHANG)) {
                    // How the run ended: init ending by itself (not asked to halt) is a
                    // failure the service manager must see.
                    Ok(WaitStatus::Exited(_, 0)) => match end.take().and_then(|e| e.wait()) {
                        Some(failure) => {
                            eprintln!("{}: {failure}", self.name);
                            return Ok(1);
                        }
                        None => return Ok(0),
                    },
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, s, _)) => {
                        return Err(Error::Other(format!(
                            "{}'s monitor was killed by {s}; its processes may still run: \
                             rlxc-stop -k -n {}",
                            self.name, self.name
                        )))
                    }
                    _ => {}
                },
                // SIGHUP (a closed terminal) is no reason to stop.
                _ => {}
            }
        }
    }

    fn halt_for(&self, sig: Signal, timeout: Duration, tell: &dyn Fn(Foreground)) {
        let _ = crate::sys::notify::sd_notify("STOPPING=1");
        let asked = self.stop(StopMode::Halt { timeout }, false);
        tell(Foreground::Halting {
            signal: sig,
            refused: asked.err().map(|e| crate::error::flatten(&e)),
        });
    }
}
