//! rlxc-stop: clean halt (the signal init understands), -t timeout then kill, -k kill,
//! -r reboot. Works when the monitor was killed, too.

use std::time::Duration;

use super::Common;
use crate::container::{Container, State};
use crate::error::{Error, Result};
use crate::runtime::proto;

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
    let req = if a.reboot {
        "reboot".to_string()
    } else if a.kill {
        "kill".to_string()
    } else {
        format!("stop {}", a.timeout)
    };
    // A live monitor gets the request at once; the state is worked out only without one.
    let monitor = match proto::connect(&c.run_dir) {
        Ok(s) => s,
        Err(_) => match c.state() {
            State::Stopped => {
                if !c.exists() {
                    return Err(Error::NotFound {
                        name: c.name,
                        lxcpath: c.lxcpath,
                    });
                }
                crate::runtime::sweep_run_dir(&c);
                if !a.common.quiet {
                    eprintln!("{} is not running", c.name);
                }
                return Ok(2);
            }
            State::Orphaned { pids } => return stop_orphan(&c, pids, a.kill),
            // Its monitor came up meanwhile.
            State::Running { .. } => proto::connect(&c.run_dir).map_err(|e| {
                Error::io(
                    "connect to the monitor at",
                    crate::runtime::socket_path(&c.run_dir),
                    e,
                )
            })?,
        },
    };
    if a.nowait {
        std::thread::spawn({
            let dir = c.run_dir.clone();
            move || proto::exchange(monitor, &dir, &req, None)
        });
        std::thread::sleep(Duration::from_millis(100));
        return Ok(0);
    }
    let reply = match proto::exchange(monitor, &c.run_dir, &req, None) {
        // A monitor that exits as it answers someone else's stop may leave this
        // connection unanswered: what counts is that the container is gone.
        Err(_) if !a.reboot && c.state() == State::Stopped => "STOPPED".to_string(),
        r => r?,
    };
    if !a.common.quiet && reply == "STOPPED" {
        eprintln!("Stopped {}", c.name);
    }
    Ok(0)
}

/// The monitor is gone: init and its processes are still in the cgroup. Without a
/// monitor there is nobody to watch a clean halt, so only -k is offered.
fn stop_orphan(c: &Container, pids: Vec<i32>, kill: bool) -> Result<i32> {
    if !kill {
        return Err(Error::Other(format!(
            "{}'s monitor is gone (killed?) while {} of its processes still run; \
             stop them with: rlxc-stop -k -n {}",
            c.name,
            pids.len(),
            c.name
        )));
    }
    let cg = c.cgroup()?;
    cg.destroy()?;
    let _ = std::fs::remove_dir_all(&c.run_dir);
    eprintln!(
        "Killed {} ({} processes) and removed its cgroup",
        c.name,
        pids.len()
    );
    Ok(0)
}
