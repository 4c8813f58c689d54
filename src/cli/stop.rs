//! rlxc-stop: clean halt (the signal init understands), -t timeout then kill, -k kill,
//! -r reboot. Works when the monitor was killed, too.

use std::collections::HashMap;
use std::time::Duration;

use super::bulk::{self, Targets};
use super::Common;
use crate::config::SystemConfig;
use crate::container::{Container, StopMode, StopOutcome};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    targets: Targets,
    /// Seconds to wait for a clean halt before killing.
    #[arg(short = 't', long = "timeout", default_value_t = 60)]
    timeout: u64,
    /// Kill at once.
    #[arg(short = 'k', long = "kill")]
    kill: bool,
    /// Reboot instead.
    #[arg(short = 'r', long = "reboot", conflicts_with = "kill")]
    reboot: bool,
    /// Do not wait for the container to stop.
    #[arg(short = 'W', long = "nowait")]
    nowait: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let mode = if a.reboot {
        StopMode::Reboot
    } else if a.kill {
        StopMode::Kill
    } else {
        StopMode::Halt {
            timeout: Duration::from_secs(a.timeout),
        }
    };
    let Some(name) = a.targets.single() else {
        return several(&sys, &a, mode);
    };
    let c = Container::new(&sys, name)?;
    let outcome = c.stop(mode, !a.nowait)?;
    if let StopOutcome::KilledAfterTimeout { .. } = outcome {
        // Said even with -q: the halt was not clean.
        eprintln!("{}", said(&c.name, mode, &outcome).unwrap_or_default());
    } else if let Some(msg) = said(&c.name, mode, &outcome).filter(|_| !a.common.quiet) {
        eprintln!("{msg}");
    }
    Ok(if outcome == StopOutcome::NotRunning {
        2
    } else {
        0
    })
}

/// Several containers (--all: the running ones, a killed monitor's processes too). Every
/// monitor is asked first (`-W`'s request, answered on receipt), a few at a time, so all
/// halt at once whatever the pool's width; then each stop is waited for (asked again: a
/// stopping monitor answers when it is done; one done already is not running).
fn several(sys: &SystemConfig, a: &Args, mode: StopMode) -> Result<i32> {
    let names = a.targets.resolve(sys, |s| s.is_running())?;
    let ask =
        |n: &str, wait: bool| -> Result<StopOutcome> { Container::new(sys, n)?.stop(mode, wait) };
    if a.nowait || mode == StopMode::Reboot {
        return Ok(bulk::run_all(
            "stop",
            &names,
            a.targets.jobs,
            &a.common,
            |n| told(n, mode, ask(n, false), false),
        ));
    }
    let first: HashMap<&str, Result<StopOutcome>> = names
        .iter()
        .map(String::as_str)
        .zip(crate::par::map(&names, a.targets.jobs, |n| ask(n, false)))
        .collect();
    Ok(bulk::run_all(
        "stop",
        &names,
        bulk::WAIT_JOBS,
        &a.common,
        |n| waited(n, mode, first.get(n), || ask(n, true)),
    ))
}

/// One container's part of a bulk stop after the first round asked it (`first`): what
/// that round settled is told as it is (an orphan it killed would be only "stopped" by
/// now); else `wait` asks again, answered once it has stopped.
fn waited(
    name: &str,
    mode: StopMode,
    first: Option<&Result<StopOutcome>>,
    wait: impl FnOnce() -> Result<StopOutcome>,
) -> bulk::Outcome {
    match first {
        Some(Err(e)) => Err(crate::error::flatten(e)),
        Some(Ok(o @ (StopOutcome::NotRunning | StopOutcome::KilledOrphan { .. }))) => {
            told(name, mode, Ok(o.clone()), false)
        }
        _ => told(name, mode, wait(), true),
    }
}

/// One container's part of a bulk stop. Not running is no failure of a halt or a kill:
/// it is in the state asked for, so it is only said (`asked`: it was asked to stop
/// before, and has). A reboot of it is one: it was not rebooted.
fn told(name: &str, mode: StopMode, r: Result<StopOutcome>, asked: bool) -> bulk::Outcome {
    match r {
        Ok(StopOutcome::NotRunning) if asked => Ok(said(name, mode, &StopOutcome::Stopped)),
        Ok(StopOutcome::NotRunning) if mode == StopMode::Reboot => {
            Err("not running: rlxc-start starts it".into())
        }
        Ok(o) => Ok(said(name, mode, &o)),
        Err(e) => Err(crate::error::flatten(&e)),
    }
}

/// What to tell of a stop of `name`, if anything.
fn said(name: &str, mode: StopMode, outcome: &StopOutcome) -> Option<String> {
    Some(match outcome {
        StopOutcome::Stopped if mode == StopMode::Kill => format!("Killed {name}"),
        StopOutcome::Stopped => format!("Stopped {name}"),
        StopOutcome::KilledAfterTimeout {
            signal,
            waited_secs,
            hint,
        } => format!(
            "Killed {name}: its init did not halt within {waited_secs} s of {} (rlxc-stop -t \
             gives it longer){}",
            signal_name(*signal),
            hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
        ),
        StopOutcome::NotRunning => format!("{name} is not running"),
        StopOutcome::KilledOrphan { processes } => {
            format!("Killed {name} ({processes} processes) and removed its cgroup")
        }
        StopOutcome::Rebooting | StopOutcome::Requested => return None,
    })
}

/// "SIGPWR", "SIGRTMIN+3", or the number.
fn signal_name(sig: i32) -> String {
    let rtmin = libc::SIGRTMIN();
    if (rtmin..=libc::SIGRTMAX()).contains(&sig) {
        return format!("SIGRTMIN+{}", sig - rtmin);
    }
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    const HALT: StopMode = StopMode::Halt {
        timeout: Duration::from_secs(5),
    };

    #[test]
    fn a_kill_says_killed_in_bulk_and_alone() {
        let stopped = || Ok(StopOutcome::Stopped);
        assert_eq!(
            told("c1", StopMode::Kill, stopped(), false),
            Ok(Some("Killed c1".into()))
        );
        // Gone by the second round: killed by the first.
        let gone = Ok(StopOutcome::NotRunning);
        assert_eq!(
            told("c1", StopMode::Kill, gone, true),
            Ok(Some("Killed c1".into()))
        );
        assert_eq!(
            told("c1", HALT, stopped(), true),
            Ok(Some("Stopped c1".into()))
        );
        assert_eq!(
            said("c1", StopMode::Kill, &StopOutcome::Stopped).as_deref(),
            Some("Killed c1")
        );
    }

    #[test]
    fn in_bulk_one_not_running_is_said_and_no_failure_a_missing_one_fails() {
        for mode in [HALT, StopMode::Kill] {
            assert_eq!(
                told("c1", mode, Ok(StopOutcome::NotRunning), false),
                Ok(Some("c1 is not running".into()))
            );
        }
        // Not rebooted: a failure, as alone (exit 2), saying what would run it.
        assert_eq!(
            told("c1", StopMode::Reboot, Ok(StopOutcome::NotRunning), false),
            Err("not running: rlxc-start starts it".into())
        );
        let missing = Err(Error::NotFound {
            name: "c9".into(),
            lxcpath: "/var/lib/rlxc".into(),
        });
        assert_eq!(
            told("c9", HALT, missing, false),
            Err("container \"c9\" does not exist in /var/lib/rlxc".into())
        );
    }

    #[test]
    fn in_bulk_a_kill_tells_what_the_first_round_settled() {
        // The first round killed an orphan's processes; the second would find it stopped.
        let orphan = Ok(StopOutcome::KilledOrphan { processes: 3 });
        let gone = || Ok(StopOutcome::NotRunning);
        assert_eq!(
            waited("c1", StopMode::Kill, Some(&orphan), gone),
            Ok(Some(
                "Killed c1 (3 processes) and removed its cgroup".into()
            ))
        );
        let not_running = Ok(StopOutcome::NotRunning);
        assert_eq!(
            waited("c1", StopMode::Kill, Some(&not_running), gone),
            Ok(Some("c1 is not running".into()))
        );
        // Asked in the first round, stopped by the second.
        assert_eq!(
            waited("c1", HALT, Some(&Ok(StopOutcome::Requested)), gone),
            Ok(Some("Stopped c1".into()))
        );
    }
}
