//! cgroup2: one tree; controllers are enabled down to the container's directory, and
//! device access is a BPF program attached to it instead of files.

use std::os::fd::OwnedFd;
use std::path::Path;

use super::files::{mkdir, put, Place, Row};
use super::layout::Hierarchy;
use super::Version;
use crate::error::{Error, Result};
use crate::sys::bpf::{replace_devices, restrict_devices, DeviceRule};

pub(super) struct V2;

/// Controllers rlxc enables for containers when the host offers them.
const DELEGATED: &[&str] = &["cpu", "memory", "pids", "io", "cpuset"];

impl Version for V2 {
    fn prepare_base(&self, h: &Hierarchy, base: &Path) -> Result<()> {
        let ctrls = available(h);
        mkdir(base)?;
        enable_controllers(&h.mountpoint, &ctrls)?;
        enable_controllers(base, &ctrls)
    }

    fn prepare_dir(&self, _: &Hierarchy, _: &Path, _: &Path) -> Result<()> {
        Ok(())
    }

    fn place(&self, row: &'static Row) -> Option<&'static Place> {
        row.v2.as_ref()
    }

    fn serves(&self, h: &Hierarchy, controller: Option<&str>) -> bool {
        controller.is_none_or(|c| available(h).split_whitespace().any(|x| x == c))
    }
}

/// The root's `cgroup.controllers`: what this tree can enable.
fn available(h: &Hierarchy) -> String {
    std::fs::read_to_string(h.mountpoint.join("cgroup.controllers")).unwrap_or_default()
}

pub(super) fn enable_controllers(dir: &Path, available: &str) -> Result<()> {
    let want: Vec<String> = available
        .split_whitespace()
        .filter(|c| DELEGATED.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    put(&dir.join("cgroup.subtree_control"), &want.join(" "))
}

/// Attach the device filter allowing `rules` to the cgroup2 directory `dir`. cgroup2 has
/// no devices files: the kernel asks a BPF program attached to the cgroup. On hybrid
/// hosts it is attached too (the v2 tree holds the same processes), so the same rules
/// hold twice; only there (`v1_covers`) may it fail, with a warning for the log.
/// The program attached, for a later replacement (`replace_device_filter`).
pub(super) fn attach_device_filter(
    dir: &Path,
    rules: &[String],
    v1_covers: bool,
) -> Result<(Option<String>, Option<OwnedFd>)> {
    match restrict_devices(dir, &parse(rules)) {
        Ok(prog) => Ok((None, Some(prog))),
        Err(e) if v1_covers => Ok((
            Some(format!(
                "no cgroup2 device filter ({e}); the v1 devices controller still applies"
            )),
            None,
        )),
        Err(e) => Err(Error::Other(format!(
            "cannot limit device access: attaching the device filter to {} failed: {e} \
             (the kernel needs CONFIG_CGROUP_BPF and rlxc needs CAP_SYS_ADMIN)",
            dir.display()
        ))),
    }
}

/// The filter `old` on `dir` replaced by one allowing `rules`: the new program.
pub(super) fn replace_device_filter(
    dir: &Path,
    old: &OwnedFd,
    rules: &[String],
) -> Result<OwnedFd> {
    replace_devices(dir, old, &parse(rules)).map_err(|e| {
        Error::Other(format!(
            "cannot change the device filter of {}: {e} (replacing an attached program \
             needs Linux 5.6)",
            dir.display()
        ))
    })
}

fn parse(rules: &[String]) -> Vec<DeviceRule> {
    rules.iter().filter_map(|r| DeviceRule::parse(r)).collect()
}
