//! rlxc-copy: a stopped container copied under a new name, with its own identity
//! (LXC's `lxc-copy -n NAME -N NEWNAME [-s] [-e]`): whole, or as a copy-on-write clone,
//! or as an ephemeral clone started at once and destroyed when it stops.

use super::Common;
use crate::config::Backend;
use crate::container::{Bdev, Container};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container to copy (stopped).
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The new container's name (with -e, by default NAME-XXXXXX).
    #[arg(short = 'N', long = "newname")]
    newname: Option<String>,
    /// A copy-on-write clone (overlay): made at once, the source's tree is frozen as
    /// the layer both stack their own writes on.
    #[arg(short = 's', long = "snapshot")]
    snapshot: bool,
    /// Ephemeral: a clone whose writes go to a tmpfs, started at once and destroyed
    /// when it stops.
    #[arg(short = 'e', long = "ephemeral")]
    ephemeral: bool,
    /// Backing store of the copy: `dir` (a full copy), `btrfs` (a subvolume: a snapshot of
    /// a btrfs source, else its files copied) or `overlay` (the same as -s). Default: the
    /// source's.
    #[arg(short = 'B', long = "backingstorage")]
    bdev: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let bdev: Option<Bdev> = a.bdev.as_deref().map(str::parse).transpose()?;
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    // A copy of a btrfs container is a subvolume snapshot already: -s asks nothing more.
    // Read once, here: the copy or clone is made of it.
    let src_cfg = c.config()?;
    let btrfs = src_cfg.rootfs.backend == Backend::Btrfs;
    let snapshot = a.snapshot && !(btrfs && matches!(bdev, None | Some(Bdev::Btrfs)));
    let clone = snapshot || bdev == Some(Bdev::Overlay);
    let newname = match (&a.newname, a.ephemeral) {
        (Some(n), _) => n.clone(),
        (None, true) => crate::name::ephemeral_for(&a.name),
        (None, false) => {
            return Err(Error::Usage(
                "name the copy with -N NEWNAME (only an ephemeral copy, -e, is named for you)"
                    .into(),
            ))
        }
    };
    let t0 = std::time::Instant::now();
    let report = if a.ephemeral || clone {
        c.clone_to(&sys, src_cfg, &newname, a.ephemeral)?
    } else {
        c.copy_to(&sys, src_cfg, &newname, bdev)?
    };
    if a.ephemeral {
        return start_ephemeral(&sys, &newname, a.common.quiet);
    }
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
                "note: the copy has no SSH host keys; make its own with: rlxc-attach -n {newname} -- ssh-keygen -A"
            );
        }
        eprintln!(
            "{} {} to {newname} in {:.2} s (new MAC, host name and machine-id)\n  rootfs: {}",
            if clone { "Cloned" } else { "Copied" },
            c.name,
            t0.elapsed().as_secs_f64(),
            report.rootfs
        );
        if clone {
            eprintln!(
                "  {} and {newname} now share {}'s tree as a frozen layer; each writes its own upper",
                c.name, c.name
            );
        }
    }
    Ok(0)
}

/// Start the ephemeral clone just made; if it cannot start, it goes again.
fn start_ephemeral(sys: &crate::config::SystemConfig, name: &str, quiet: bool) -> Result<i32> {
    let c = Container::new(sys, name)?;
    match c.start(sys) {
        Ok((pid, _)) => {
            if !quiet {
                eprintln!(
                    "Started ephemeral {name} (init pid {pid}); it is destroyed when it stops.\n  \
                     console: rlxc-console -n {name}   shell: rlxc-attach -n {name}"
                );
            }
            // Its name, for scripts (it may have been made up).
            println!("{name}");
            Ok(0)
        }
        Err(e) => {
            if let Err(d) = c.destroy() {
                eprintln!(
                    "{name}: could not remove the ephemeral clone after its failed start: {d}"
                );
            }
            Err(e)
        }
    }
}
