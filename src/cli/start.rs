//! rlxc-start: boot a container. In the foreground (the default) this terminal becomes
//! its console until Ctrl-a q; with -d it returns once init runs; with -F (for systemd's
//! rlxc@.service) the monitor stays in the foreground without a console. Several names
//! (or --all) start in the background, a few at a time (`bulk`).

use std::time::Duration;

use super::bulk::{self, Targets};
use super::Common;
use crate::container::{Container, Ended, Foreground};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    targets: Targets,
    /// Daemonize: return once init runs.
    #[arg(short = 'd', long = "daemon", conflicts_with = "foreground")]
    daemon: bool,
    /// For service managers: stay until the container stops, without a console;
    /// SIGTERM/SIGINT halt it cleanly; READY=1 to $NOTIFY_SOCKET once init runs.
    #[arg(short = 'F', long = "foreground")]
    foreground: bool,
    /// With -F: seconds a halt asked for by a signal may take before the kill.
    #[arg(long = "halt-timeout", default_value_t = 60, requires = "foreground")]
    halt_timeout: u64,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let Some(name) = a.targets.single() else {
        return several(&sys, &a);
    };
    let c = Container::new(&sys, name)?;
    if a.foreground {
        return foreground(&sys, &c, &a);
    }
    let (pid, end) = c.start(&sys)?;
    if a.daemon {
        if !a.common.quiet {
            eprintln!("Started {} (init pid {pid})", c.name);
        }
        return Ok(0);
    }
    // An init that ended at once may be gone before the console connects: how the run
    // ended says what happened either way.
    let console = c.console_now(a.common.quiet);
    if let Ok(Ended::Detached) = console {
        eprintln!(
            "\r\nDetached from {}; it keeps running (rlxc-console -n {} to come back).",
            c.name, c.name
        );
        return Ok(0);
    }
    match end.wait() {
        None => {
            console?;
            eprintln!("\r\n{} stopped.", c.name);
            Ok(0)
        }
        Some(failure) => {
            eprintln!("\r\n{}: {failure}", c.name);
            Ok(1)
        }
    }
}

fn foreground(sys: &crate::config::SystemConfig, c: &Container, a: &Args) -> Result<i32> {
    let quiet = a.common.quiet;
    let tell = |f: Foreground| match f {
        Foreground::Running { pid, notified } if !quiet => eprintln!(
            "Started {} (init pid {pid}{}); SIGTERM halts it",
            c.name,
            if notified { ", READY=1 sent" } else { "" }
        ),
        Foreground::Halting { signal, refused } => match refused {
            None if !quiet => eprintln!("{signal}: halting {}", c.name),
            Some(why) => eprintln!("{signal}: cannot ask {} to halt: {why}", c.name),
            None => {}
        },
        Foreground::Running { .. } => {}
    };
    let code = c.run_foreground(sys, Duration::from_secs(a.halt_timeout), &tell)?;
    if !quiet {
        eprintln!("{} stopped", c.name);
    }
    Ok(code)
}

/// Several containers (or --all: every stopped one), each started as `-d` would.
fn several(sys: &crate::config::SystemConfig, a: &Args) -> Result<i32> {
    if a.foreground {
        return Err(crate::error::Error::Usage(
            "-F runs one container: name only one".into(),
        ));
    }
    let names = a.targets.resolve(sys, |s| !s.is_running())?;
    Ok(bulk::run_all(
        "start",
        &names,
        a.targets.jobs,
        &a.common,
        |n| bulk::start_one(sys, n),
    ))
}
