//! lxcfs's container views: where an lxcfs runs on the host (a `fuse.lxcfs` mount), its
//! /proc files and the cpu online list are bound over the container's own, so `free`,
//! `top`, `nproc` and `uptime` inside describe the container's cgroup (lxcfs answers
//! each read by the reader's cgroup) instead of the host. Without lxcfs nothing is bound
//! and nothing said: the views are an extra, and rlxc-info tells whether they are on.

use std::path::PathBuf;

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

/// The mountpoint of the first lxcfs in `mountinfo` (a /proc/PID/mountinfo text).
fn mountpoint_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == FSTYPE)
            .then(|| left.split_whitespace().nth(4).map(unescape))
            .flatten()
    })
}

/// mountinfo's octal escapes (`\040` for a blank) undone.
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

/// The views this host's lxcfs offers: (path in the container, file on the host).
/// Empty when no lxcfs runs.
pub fn views() -> Vec<(&'static str, PathBuf)> {
    let Some(mnt) = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| mountpoint_in(&m))
    else {
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
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .ok()
        .and_then(|m| mountpoint_in(&m))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_lxcfs_mount() {
        let mi = "22 1 0:21 / /proc rw - proc proc rw\n\
                  90 22 0:50 / /var/lib/lxc\\040fs rw,nosuid - fuse.lxcfs lxcfs rw,user_id=0\n";
        assert_eq!(mountpoint_in(mi), Some(PathBuf::from("/var/lib/lxc fs")));
        assert_eq!(mountpoint_in("22 1 0:21 / /proc rw - proc proc rw\n"), None);
        // A source named like the type is not the type.
        assert_eq!(
            mountpoint_in("5 1 0:9 / /x rw - tmpfs fuse.lxcfs rw\n"),
            None
        );
    }
}
