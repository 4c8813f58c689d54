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

/// Several containers (--all: the running ones, a killed monitor's processes too). Every
/// monitor is asked first (`-W`'s request, answered on receipt), a few at a time, so all
/// halt at once whatever the pool's width; then each stop is waited for (asked again: a
/// stopping monitor answers when it is done; one done already is not running).
fn several(sys: &SystemConfig, a: &Args, mode: StopMode) -> Result<i32> {
    let names = a.targets.resolve(sys, |s| s.is_running())?;
    let ask = |n: &str, wait: bool| -> bulk::Outcome {
        let c = Container::new(sys, n).map_err(|e| crate::error::flatten(&e))?;
        match c.stop(mode, wait) {
            Ok(StopOutcome::NotRunning) => Err("not running".into()),
            Ok(o) => Ok(said(n, &o)),
            Err(e) => Err(crate::error::flatten(&e)),
        }
    };
    if a.nowait || mode == StopMode::Reboot {
        return Ok(bulk::run_all(
            "stop",
            &names,
            a.targets.jobs,
            &a.common,
            |n| ask(n, false),
        ));
    }
    let first: HashMap<&str, bulk::Outcome> = names
        .iter()
        .map(String::as_str)
        .zip(crate::par::map(&names, a.targets.jobs, |n| ask(n, false)))
        .collect();
    Ok(bulk::run_all(
        "stop",
        &names,
        bulk::WAIT_JOBS,
        &a.common,
        |n| {
            match first.get(n) {
                Some(Err(why)) => Err(why.clone()),
                _ => match ask(n, true) {
                    // Stopped between the two rounds.
                    Err(why) if why == "not running" => Ok(Some(format!("Stopped {n}"))),
                    o => o,
                },
            }
        },
    ))
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
