//! rlxc-stop: clean halt (the signal init understands), -t timeout then kill, -k kill,
//! -r reboot. Works when the monitor was killed, too.

use std::time::Duration;

use super::bulk::{self, Targets};
use super::Common;
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
        // --all: the running ones (a killed monitor's processes too).
        let names = a.targets.resolve(&sys, |s| s.is_running())?;
        return Ok(bulk::run_all(
            "stop",
            &names,
            a.targets.jobs,
            &a.common,
            |n| {
                let c = Container::new(&sys, n).map_err(|e| crate::error::flatten(&e))?;
                match c.stop(mode, !a.nowait) {
                    Ok(StopOutcome::NotRunning) => Err("not running".into()),
                    Ok(o) => Ok(said(&c.name, &o)),
                    Err(e) => Err(crate::error::flatten(&e)),
                }
            },
        ));
    };
    let c = Container::new(&sys, name)?;
    let outcome = c.stop(mode, !a.nowait)?;
    if let StopOutcome::KilledAfterTimeout { .. } = outcome {
        // Said even with -q: the halt was not clean.
        eprintln!("{}", said(&c.name, &outcome).unwrap_or_default());
    } else if let Some(msg) = said(&c.name, &outcome).filter(|_| !a.common.quiet) {
        eprintln!("{msg}");
    }
    Ok(if outcome == StopOutcome::NotRunning {
        2
    } else {
        0
    })
}

/// What to tell of a stop of `name`, if anything.
fn said(name: &str, outcome: &StopOutcome) -> Option<String> {
    Some(match outcome {
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
