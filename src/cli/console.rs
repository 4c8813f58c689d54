//! rlxc-console: attach to a running container's console (Ctrl-a q detaches).

use super::Common;
use crate::console::{self, Ended};
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    if !c.exists() {
        return Err(Error::NotFound {
            name: c.name,
            lxcpath: c.lxcpath,
        });
    }
    // Only a live monitor has the console; an orphan needs another way out.
    c.running_pid()?;
    match console::attach(&c.run_dir, &c.name, a.common.quiet)? {
        Ended::Detached => eprintln!("\r\nDetached from {}.", c.name),
        Ended::ContainerStopped => eprintln!("\r\n{} stopped.", c.name),
    }
    Ok(0)
}
