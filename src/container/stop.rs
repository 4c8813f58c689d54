//! Stop: a clean halt (the signal init understands, then a kill at the timeout), a
//! kill, a reboot; also when the monitor is gone and only the cgroup knows what runs.

use std::time::Duration;

use super::{Container, State};
use crate::error::{Error, IpcFault, Result};
use crate::ipc::{client, IpcError, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Halt cleanly, killing after the timeout.
    Halt {
        timeout: Duration,
    },
    Kill,
    Reboot,
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The container stopped (by this request or another one at the same time).
    Stopped,
    /// init did not halt on `signal` within `waited_secs` and was killed; `hint` says
    /// why it may not have, where that is known.
    KilledAfterTimeout {
        signal: i32,
        waited_secs: u64,
        hint: Option<String>,
    },
    /// It was not running.
    NotRunning,
    /// Its init was asked to reboot.
    Rebooting,
    /// Its monitor was gone: these many processes were killed and its cgroup removed.
    KilledOrphan { processes: usize },
    /// The request went to the monitor; nobody waits for the outcome.
    Requested,
}

/// How long `rlxc-stop -W` waits for the monitor to take its request: it reads requests
/// one at a time, each within 2 s, so a long queue of other clients is the worst case.
const NOWAIT_ANSWER: Duration = Duration::from_secs(30);

impl StopMode {
    fn request(self) -> Request {
        match self {
            StopMode::Halt { timeout } => Request::Stop {
                timeout_secs: timeout.as_secs(),
            },
            StopMode::Kill => Request::Kill,
            StopMode::Reboot => Request::Reboot,
        }
    }
}

impl Container {
    /// Stop (or reboot) the container; with `wait` false, only ask its monitor to.
    pub fn stop(&self, mode: StopMode, wait: bool) -> Result<StopOutcome> {
        // A live monitor gets the request at once; the state is worked out only without.
        let monitor = match client::connect(&self.run_dir) {
            Ok(s) => s,
            Err(_) => match self.state() {
                State::Stopped => {
                    self.must_exist()?;
                    self.sweep_run_dir();
                    return Ok(StopOutcome::NotRunning);
                }
                State::Orphaned { pids } => return self.stop_orphan(pids, mode),
                // It listened a moment ago: ask it below, as if connected.
                State::Unreachable { .. } => client::connect(&self.run_dir).map_err(|e| {
                    Error::io(
                        "connect to the monitor at",
                        client::socket_path(&self.run_dir),
                        e,
                    )
                })?,
                // Its monitor came up meanwhile.
                State::Running { .. } => client::connect(&self.run_dir).map_err(|e| {
                    Error::io(
                        "connect to the monitor at",
                        client::socket_path(&self.run_dir),
                        e,
                    )
                })?,
            },
        };
        let req = mode.request();
        if !wait {
            // Done when the monitor has it, not when the container is stopped.
            let req = Request::NoWait {
                then: Box::new(req),
            };
            return match client::exchange(&monitor, &self.run_dir, &req, Some(NOWAIT_ANSWER)) {
                Ok(Response::Stopped) => Ok(StopOutcome::Stopped),
                Ok(_) => Ok(StopOutcome::Requested),
                // It stopped as we asked.
                Err(Error::Ipc {
                    fault: IpcFault::Lost,
                    ..
                }) if self.state() == State::Stopped => Ok(StopOutcome::Stopped),
                Err(e) => Err(e),
            };
        }
        match client::exchange(&monitor, &self.run_dir, &req, None) {
            Ok(Response::Stopped) => Ok(StopOutcome::Stopped),
            Ok(Response::KilledAfterTimeout {
                signal,
                waited_secs,
                hint,
            }) => Ok(StopOutcome::KilledAfterTimeout {
                signal,
                waited_secs,
                hint,
            }),
            Ok(_) if mode == StopMode::Reboot => Ok(StopOutcome::Rebooting),
            Ok(other) => Err(IpcError::Malformed(
                "not an answer to a stop".into(),
                format!("{other:?}"),
            )
            .at(client::socket_path(&self.run_dir))),
            // A monitor of another rlxc version cannot be asked; a kill needs no monitor.
            // Its container is in its cgroup, or (an rlxc before installation keys) the
            // old `rlxc/NAME`.
            Err(Error::Ipc {
                fault: IpcFault::Foreign,
                ..
            }) if mode == StopMode::Kill => {
                self.legacy_cgroup()?.destroy()?;
                self.kill_cgroup()
            }
            // A monitor that exits as it answers someone else's stop may leave this
            // connection unanswered: what counts is that the container is gone.
            Err(Error::Ipc {
                fault: IpcFault::Lost,
                ..
            }) if mode != StopMode::Reboot && self.state() == State::Stopped => {
                Ok(StopOutcome::Stopped)
            }
            Err(e) => Err(e),
        }
    }

    /// Kill it at once.
    pub fn kill(&self) -> Result<StopOutcome> {
        self.stop(StopMode::Kill, true)
    }

    /// The monitor is gone: init and its processes are still in the cgroup. Without a
    /// monitor there is nobody to watch a clean halt, so only a kill is offered.
    fn stop_orphan(&self, pids: Vec<i32>, mode: StopMode) -> Result<StopOutcome> {
        if mode != StopMode::Kill {
            return Err(Error::Other(format!(
                "{}'s monitor is gone (killed?) while {} of its processes still run; \
                 stop them with: rlxc-stop -k -n {}",
                self.name,
                pids.len(),
                self.name
            )));
        }
        self.kill_cgroup()?;
        Ok(StopOutcome::KilledOrphan {
            processes: pids.len(),
        })
    }

    fn kill_cgroup(&self) -> Result<StopOutcome> {
        self.cgroup()?.destroy()?;
        // Its monitor, killed, could not say so.
        self.announce(super::events::Change::Stopped, None);
        // Under the container's lock, and only with no monitor left listening.
        self.sweep_run_dir();
        Ok(StopOutcome::Stopped)
    }
}
