//! rlxc-snapshot: take (`-c` a comment), list (`-L`), restore (`-r SNAP [-N NEW]`) and
//! destroy (`-d SNAP`) snapshots, with LXC's flags. A running container is frozen for
//! the copy.

use super::Common;
use crate::config::format_utc;
use crate::container::Container;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// A comment kept with the new snapshot.
    #[arg(short = 'c', long = "comment", conflicts_with_all = ["list", "restore", "destroy"])]
    comment: Option<String>,
    /// List the snapshots (with their comments).
    #[arg(short = 'L', long = "list", conflicts_with_all = ["restore", "destroy"])]
    list: bool,
    /// Put the container back as this snapshot was (it must be stopped).
    #[arg(
        short = 'r',
        long = "restore",
        value_name = "SNAP",
        conflicts_with = "destroy"
    )]
    restore: Option<String>,
    /// With -r: make a new container of the snapshot instead.
    #[arg(short = 'N', long = "newname", requires = "restore")]
    newname: Option<String>,
    /// Remove this snapshot.
    #[arg(short = 'd', long = "destroy", value_name = "SNAP")]
    destroy: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let say = |msg: String| {
        if !a.common.quiet {
            eprintln!("{msg}");
        }
    };
    if a.list {
        let snaps = c.snapshots()?;
        let rows: Vec<[String; 3]> = snaps
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    format_utc(s.taken),
                    super::shown(&s.comment),
                ]
            })
            .collect();
        let rows: Vec<[&str; 3]> = rows
            .iter()
            .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str()])
            .collect();
        if rows.is_empty() {
            say(format!("{} has no snapshots", c.name));
        } else {
            super::table::print(&["SNAPSHOT", "TAKEN (UTC)", "COMMENT"], &rows, "  ");
        }
        return Ok(0);
    }
    match (&a.restore, &a.newname, &a.destroy) {
        (Some(s), Some(new), _) => {
            c.restore_as(&sys, s, new)?;
            say(format!(
                "Created container {new} from {}'s snapshot {s}",
                c.name
            ));
        }
        (Some(s), None, _) => {
            c.restore(s)?;
            say(format!("Restored {} to snapshot {s}", c.name));
        }
        (None, _, Some(s)) => {
            c.destroy_snapshot(s)?;
            say(format!("Removed snapshot {s} of {}", c.name));
        }
        (None, _, None) => {
            let live = c.state().is_running();
            let s = c.snapshot(a.comment.as_deref())?;
            say(format!("Took snapshot {s} of {}", c.name));
            if live {
                say(format!(
                    "{} was running: it was frozen for the copy, so the snapshot's files are \
                     as after a power cut (crash-consistent)",
                    c.name
                ));
            }
        }
    }
    Ok(0)
}
