//! rlxc-cgroup: read or set a controller file of a running container's cgroup, as
//! LXC's lxc-cgroup; `--persist` keeps a limit for the next start too.

use super::Common;
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The controller file, as the kernel names it: memory.max, pids.max, cpu.max,
    /// cpuset.cpus, … (cgroup v1: memory.limit_in_bytes, cpu.cfs_quota_us, …).
    #[arg(value_name = "KEY")]
    key: String,
    /// The value to write (one write, as the kernel takes it); without it, KEY is read.
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    value: Option<String>,
    /// Also keep VALUE as the container's [limits] key in config.toml, for its next
    /// start (memory, swap, CPU quota and weight, cpuset, pids, I/O weight).
    #[arg(long)]
    persist: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let c = Container::new(&a.common.system()?, &a.name)?;
    let Some(value) = a.value else {
        if a.persist {
            return Err(Error::Usage(format!(
                "--persist keeps a value written: give one (rlxc-cgroup -n {} --persist {} VALUE)",
                a.name, a.key
            )));
        }
        let text = c.cgroup_read(&a.key)?;
        print!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
        return Ok(0);
    };
    if let Some(kept) = c.cgroup_write(&a.key, &value, a.persist)? {
        if !a.common.quiet {
            eprintln!("Kept {kept} in {}'s config.toml", c.name);
        }
    }
    Ok(0)
}
