//! rlxc-destroy: remove a container and everything of it.

use super::Common;
use crate::container::Container;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Destroy even if it is running (it is killed first).
    #[arg(short = 'f', long = "force")]
    force: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    c.destroy_forced(a.force)?;
    if !a.common.quiet {
        eprintln!("Destroyed container {}", c.name);
    }
    Ok(0)
}
