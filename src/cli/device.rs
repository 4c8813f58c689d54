//! rlxc-device: give a running container a host device node or network interface, or
//! take it back (lxc-device's add and del).

use super::Common;
use crate::container::{Container, DeviceChange};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// add: a host device node (/dev/fuse) or network interface (eth1) into the
    /// container (an interface comes back at the stop); del: take it back.
    action: Action,
    /// add: a device node's host path or a host interface's name; del: the node's path
    /// or the interface's name inside the container.
    source: String,
    /// add: its path (node) or name (interface) inside; default: the same.
    target: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Action {
    Add,
    Del,
}

pub fn run(a: Args) -> Result<i32> {
    let c = Container::new(&a.common.system()?, &a.name)?;
    let (verb, change) = match a.action {
        Action::Add => ("Gave", c.device_add(&a.source, a.target.as_deref())?),
        Action::Del => {
            if let Some(t) = &a.target {
                return Err(Error::Usage(format!(
                    "del takes one path or interface name inside the container, not also {t:?}"
                )));
            }
            ("Took back", c.device_del(&a.source)?)
        }
    };
    if !a.common.quiet {
        match change {
            DeviceChange::Node { target, rule } => {
                eprintln!("{verb} {target} ({rule}) in {}", c.name)
            }
            DeviceChange::Nic { host, inside } if host == inside => {
                eprintln!("{verb} interface {host} in {}", c.name)
            }
            DeviceChange::Nic { host, inside } => {
                eprintln!("{verb} interface {host} ({inside} in {})", c.name)
            }
        }
    }
    Ok(0)
}
