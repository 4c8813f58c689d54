//! rlxc-console: attach to a running container's console (Ctrl-a q detaches).

use super::Named as Args;
use crate::container::{Container, Ended};
use crate::error::Result;

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    match c.console(a.common.quiet)? {
        Ended::Detached => eprintln!("\r\nDetached from {}.", c.name),
        Ended::ContainerStopped => eprintln!("\r\n{} stopped.", c.name),
    }
    Ok(0)
}
