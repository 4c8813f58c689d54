//! rlxc-stop: clean halt (the signal init understands), -t timeout then kill, -k kill,
//! -r reboot. Works when the monitor was killed, too.

use std::time::Duration;

use super::Common;
use crate::container::{Container, StopMode, StopOutcome};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
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
    let c = Container::new(&sys, &a.name)?;
    let mode = if a.reboot {
        StopMode::Reboot
    } else if a.kill {
        StopMode::Kill
    } else {
        StopMode::Halt {
            timeout: Duration::from_secs(a.timeout),
        }
    };
    let say = |msg: String| {
        if !a.common.quiet {
            eprintln!("{msg}");
        }
    };
    match c.stop(mode, !a.nowait)? {
        StopOutcome::Stopped => say(format!("Stopped {}", c.name)),
        StopOutcome::KilledAfterTimeout {
            signal,
            waited_secs,
            hint,
        } => {
            // Said even with -q: the halt was not clean.
            eprintln!(
                "Killed {}: its init did not halt within {waited_secs} s of {} (rlxc-stop -t \
                 gives it longer){}",
                c.name,
                signal_name(signal),
                hint.map(|h| format!("; {h}")).unwrap_or_default()
            );
        }
        StopOutcome::NotRunning => {
            say(format!("{} is not running", c.name));
            return Ok(2);
        }
        StopOutcome::KilledOrphan { processes } => say(format!(
            "Killed {} ({processes} processes) and removed its cgroup",
            c.name
        )),
        StopOutcome::Rebooting | StopOutcome::Requested => {}
    }
    Ok(0)
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
