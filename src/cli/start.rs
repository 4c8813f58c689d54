//! rlxc-start: boot a container. In the foreground (the default) this terminal becomes
//! its console until Ctrl-a q; with -d it returns once init runs. Several names (or
//! --all) start in the background, a few at a time (`bulk`).

use super::bulk::{self, Targets};
use super::Common;
use crate::container::{Container, Ended};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    targets: Targets,
    /// Daemonize: return once init runs.
    #[arg(short = 'd', long = "daemon", conflicts_with = "foreground")]
    daemon: bool,
    /// Stay attached to the console (the default).
    #[arg(short = 'F', long = "foreground")]
    foreground: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let Some(name) = a.targets.single() else {
        return several(&sys, &a);
    };
    let c = Container::new(&sys, name)?;
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
