//! rlxc-copy: a stopped container copied whole under a new name, with its own identity
//! (LXC's `lxc-copy -n NAME -N NEWNAME`).

use super::Common;
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container to copy (stopped).
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The new container's name.
    #[arg(short = 'N', long = "newname")]
    newname: String,
    /// Backing store of the copy: `dir` (a full copy).
    #[arg(short = 'B', long = "backingstorage", default_value = "dir")]
    bdev: String,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    if a.bdev != "dir" {
        return Err(Error::Usage(format!(
            "backing store {:?} is not supported for a copy yet; use -B dir",
            a.bdev
        )));
    }
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let t0 = std::time::Instant::now();
    let report = c.copy_to(&sys, &a.newname)?;
    if !a.common.quiet {
        for f in &report.removed {
            eprintln!(
                "note: removed {f} from the copy (it belonged to {})",
                c.name
            );
        }
        if report
            .removed
            .iter()
            .any(|f| f.starts_with("/etc/ssh/ssh_host_"))
        {
            eprintln!(
                "note: the copy has no SSH host keys; make its own with: rlxc-attach -n {} -- ssh-keygen -A",
                a.newname
            );
        }
        eprintln!(
            "Copied {} to {} in {:.2} s (new MAC, host name and machine-id)\n  rootfs: {}",
            c.name,
            a.newname,
            t0.elapsed().as_secs_f64(),
            report.dir.join("rootfs").display()
        );
    }
    Ok(0)
}
