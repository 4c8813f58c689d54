//! rlxc-console: attach to a running container's console, or with -t N to its
//! /dev/ttyN (Ctrl-a q detaches).

use super::Common;
use crate::container::{Container, Ended};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The tty to attach to: N is /dev/ttyN (1 to tty_max), 0 the console.
    #[arg(short = 't', long = "tty", default_value_t = 0)]
    tty: u32,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    match c.console(a.common.quiet, a.tty)? {
        Ended::Detached => eprintln!("\r\nDetached from {}.", c.name),
        Ended::ContainerStopped => eprintln!("\r\n{} stopped.", c.name),
    }
    Ok(0)
}
