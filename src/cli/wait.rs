//! rlxc-wait: wait until a container reaches a state.

use std::time::{Duration, Instant};

use super::Common;
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// State to wait for: RUNNING, FROZEN or STOPPED (several with '|').
    #[arg(short = 's', long = "state")]
    state: String,
    /// Give up after this many seconds (exit 1); default: wait forever.
    #[arg(short = 't', long = "timeout")]
    timeout: Option<u64>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let wanted: Vec<String> = a
        .state
        .split('|')
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    if let Some(bad) = wanted
        .iter()
        .find(|s| !matches!(s.as_str(), "RUNNING" | "FROZEN" | "STOPPED"))
    {
        return Err(Error::Usage(format!(
            "unknown state {bad:?}: use RUNNING, FROZEN or STOPPED"
        )));
    }
    let t0 = Instant::now();
    loop {
        if wanted.contains(&c.state().to_string()) {
            return Ok(0);
        }
        if a.timeout
            .is_some_and(|t| t0.elapsed() >= Duration::from_secs(t))
        {
            return Ok(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
