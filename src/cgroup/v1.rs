//! cgroup v1 hierarchies: one per controller (or a few combined), plus `name=systemd`.

use std::path::Path;

use super::files::{mkdir, put, Place, Row};
use super::layout::Hierarchy;
use super::Version;
use crate::error::{IoContext, Result};

pub(super) struct V1;

impl Version for V1 {
    fn prepare_base(&self, h: &Hierarchy, base: &Path) -> Result<()> {
        mkdir(base)?;
        if h.has("cpuset") {
            // A new v1 cpuset is empty and refuses tasks: inherit the parent's.
            copy_cpuset(&h.mountpoint, base)?;
        }
        Ok(())
    }

    fn prepare_dir(&self, h: &Hierarchy, base: &Path, dir: &Path) -> Result<()> {
        if h.has("cpuset") {
            copy_cpuset(base, dir)?;
        }
        Ok(())
    }

    fn place(&self, row: &'static Row) -> Option<&'static Place> {
        row.v1.as_ref()
    }

    fn serves(&self, h: &Hierarchy, controller: Option<&str>) -> bool {
        controller.is_some_and(|c| h.has(c))
    }
}

fn copy_cpuset(from: &Path, to: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = std::fs::read_to_string(to.join(f)).unwrap_or_default();
        if cur.trim().is_empty() {
            let v = std::fs::read_to_string(from.join(f)).ctx("read", from.join(f))?;
            put(&to.join(f), v.trim())?;
        }
    }
    Ok(())
}
