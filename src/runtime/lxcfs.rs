//! lxcfs's container views: where an lxcfs runs on the host (a `fuse.lxcfs` mount), its
//! /proc files and the cpu online list are bound over the container's own, so `free`,
//! `top`, `nproc` and `uptime` inside describe the container's cgroup (lxcfs answers
//! each read by the reader's cgroup) instead of the host. Without lxcfs nothing is bound
//! and nothing said: the views are an extra, and rlxc-info tells whether they are on.

use std::path::{Path, PathBuf};

use crate::sys::mountinfo::{self, Mount};

/// The views, as paths below lxcfs's mountpoint and below the container's root.
pub const VIEWS: &[&str] = &[
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/uptime",
    "proc/loadavg",
    "proc/diskstats",
    "proc/swaps",
    "sys/devices/system/cpu/online",
];

const FSTYPE: &str = "fuse.lxcfs";

/// The mountpoint of the first lxcfs among `mounts`.
fn mountpoint_in(mounts: Vec<Mount>) -> Option<PathBuf> {
    mounts
        .into_iter()
        .find(|m| m.fstype == FSTYPE)
        .map(|m| m.mountpoint)
}

/// The views this host's lxcfs offers: (path in the container, file on the host).
/// Empty when no lxcfs runs.
pub fn views() -> Vec<(&'static str, PathBuf)> {
    let Some(mnt) = mountinfo::read_self().ok().and_then(mountpoint_in) else {
        return Vec::new();
    };
    VIEWS
        .iter()
        .map(|v| (*v, mnt.join(v)))
        .filter(|(_, p)| p.is_file())
        .collect()
}

/// The views as a container's child binds them: by path, or (`detached`, for an
/// unprivileged child, whose root cannot reach the host's paths) as detached mounts. One
/// that cannot be had is left out, said in the monitor's log.
pub fn child_binds(name: &str, detached: bool) -> Vec<(&'static str, super::child::HostBind)> {
    use super::child::HostBind;
    let mut out = Vec::new();
    for (rel, path) in views() {
        if !detached {
            out.push((rel, HostBind::Path(path)));
            continue;
        }
        match crate::sys::mount::clone_tree(&path, false) {
            Ok(fd) => out.push((rel, HostBind::Detached(fd))),
            Err(e) => eprintln!("{name}: warning: lxcfs's {} left out: {e}", path.display()),
        }
    }
    out
}

/// Whether the running container whose init is `pid` has the views.
pub fn in_use(pid: i32) -> bool {
    mountinfo::read(Path::new(&format!("/proc/{pid}/mountinfo")))
        .ok()
        .and_then(mountpoint_in)
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_lxcfs_mount() {
        let mi = "22 1 0:21 / /proc rw - proc proc rw\n\
                  90 22 0:50 / /var/lib/lxc\\040fs rw,nosuid - fuse.lxcfs lxcfs rw,user_id=0\n";
        let found = |text: &str| mountpoint_in(mountinfo::parse(text));
        assert_eq!(found(mi), Some(PathBuf::from("/var/lib/lxc fs")));
        assert_eq!(found("22 1 0:21 / /proc rw - proc proc rw\n"), None);
        // A source named like the type is not the type.
        assert_eq!(found("5 1 0:9 / /x rw - tmpfs fuse.lxcfs rw\n"), None);
    }
}
