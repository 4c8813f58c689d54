//! Where monitors live: `rlxc/monitors-TAG` in every hierarchy, one per installation
//! (TAG as in `NAME.TAG`). A monitor forked by `rlxc-start -d` leaves the cgroup of
//! whoever started it (a login session's scope, `rlxc.service` at boot), so neither a
//! logout nor a restart of that unit takes its containers along. The name ends in no
//! `.` and eight hex digits, so no container's `NAME.TAG` cgroup can ever be called so.

use std::path::Path;

use super::files::{mkdir, put};
use super::{version, Layout, BASE};
use crate::error::Result;

const PREFIX: &str = "monitors-";

/// Move the calling process into its installation's monitors cgroup, in every hierarchy.
/// Empty monitors cgroups of other installations (a test's, long gone) are removed
/// when this installation's is made.
pub fn enter_monitors(layout: &Layout, tag: &str) -> Result<()> {
    let me = format!("{PREFIX}{tag}");
    for h in &layout.hierarchies {
        let v = version(h);
        let base = h.mountpoint.join(BASE);
        v.prepare_base(h, &base)?;
        let dir = base.join(&me);
        let made = mkdir(&dir)?;
        v.prepare_dir(h, &base, &dir)?;
        put(&dir.join("cgroup.procs"), "0")?;
        // A sweep reads all of `rlxc` (a cgroup per running container): when this
        // installation's own cgroup is made, not at each of a thousand starts.
        if made {
            sweep(&base, &me);
        }
    }
    Ok(())
}

/// rmdir fails on a cgroup with processes (EBUSY): only empty ones go.
fn sweep(base: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) && name != keep {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}
