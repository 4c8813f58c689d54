//! `rlxc __monitor`: the per-container monitor process, started by rlxc-start.

use super::Common;
use crate::container::Container;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short = 'n', long = "name")]
    name: String,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    Ok(crate::runtime::monitor::main(&sys, &c))
}
