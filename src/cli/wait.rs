//! rlxc-wait: wait until a container reaches a state, woken by its state changes
//! (`container::events`), not by polling.

use std::time::{Duration, Instant};

use super::Common;
use crate::container::events::{Change, Watch};
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// State to wait for: RUNNING, FROZEN, STOPPED, STARTING, STOPPING or ABORTING
    /// (several with '|').
    #[arg(short = 's', long = "state")]
    state: String,
    /// Give up after this many seconds (exit 1); default: wait forever.
    #[arg(short = 't', long = "timeout")]
    timeout: Option<u64>,
    #[command(flatten)]
    common: Common,
}

fn wanted(states: &str) -> Result<Vec<Change>> {
    states
        .split('|')
        .map(|s| s.trim().to_ascii_uppercase())
        .map(|s| {
            Change::ALL
                .into_iter()
                .find(|c| c.as_str() == s)
                .ok_or_else(|| {
                    let all: Vec<&str> = Change::ALL.iter().map(|c| c.as_str()).collect();
                    Error::Usage(format!("unknown state {s:?}: use {}", all.join(", ")))
                })
        })
        .collect()
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let wanted = wanted(&a.state)?;
    let deadline = a.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let name = c.name.clone();
    // Listening before the state is read: a change in between is not missed.
    let mut watch = Watch::new(&sys, move |n| n == name)?;
    let now = c.state().to_string();
    if wanted.iter().any(|w| w.as_str() == now) {
        return Ok(0);
    }
    while let Some(ev) = watch.next(deadline)? {
        if wanted.contains(&ev.state) {
            return Ok(0);
        }
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn states_are_lxcs_and_a_wrong_one_lists_them() {
        use super::Change;
        let w = super::wanted("running|Frozen").unwrap();
        assert_eq!(w, [Change::Running, Change::Frozen]);
        let e = super::wanted("RUNNING|UP").unwrap_err().to_string();
        assert!(e.contains("\"UP\"") && e.contains("ABORTING"), "{e}");
    }
}
