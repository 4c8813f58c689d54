//! rlxc-monitor: state changes of the matching containers, one line (or JSON object)
//! each, as they happen, until interrupted.

use super::Common;
use crate::container::events::{Event, Watch};
use crate::error::{Error, Result};
use crate::pattern::Pattern;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Containers whose whole name matches this regular expression (as lxc-monitor:
    /// `web.*`, `web1|db1`); default: every container, also those created later.
    #[arg(short = 'n', long = "name", value_name = "REGEX")]
    name: Option<String>,
    /// One JSON object per line: name, state, lxcpath, pid (with RUNNING), time (unix
    /// seconds).
    #[arg(long = "json")]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let pattern = Pattern::new(a.name.as_deref().unwrap_or(".*"))
        .map_err(|e| Error::Usage(format!("-n: {e}")))?;
    let mut watch = Watch::new(&sys, move |n| pattern.matches_all(n))?;
    loop {
        match watch.next(None) {
            Ok(Some(ev)) => print(&ev, a.json)?,
            Ok(None) => {}
            // Ctrl-C is how a monitor ends.
            Err(Error::Interrupted) => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

fn print(ev: &Event, json: bool) -> Result<()> {
    if json {
        let line = serde_json::to_string(ev)
            .map_err(|e| Error::Other(format!("cannot format an event: {e}")))?;
        println!("{line}");
    } else {
        println!("'{}' changed state to [{}]", ev.name, ev.state);
    }
    Ok(())
}
