//! Any controller file of a container's cgroup, named as the kernel names it
//! (`memory.max`, `memory.limit_in_bytes`, `pids.max`, `cpuset.cpus`, …), read or written
//! while it runs: rlxc-cgroup. On v1 the name's prefix picks the hierarchy (`memory.*` is
//! in the memory hierarchy); otherwise, and on a pure cgroup2 host, the file is in the
//! cgroup2 tree.
//!
//! Only a plain file name of the container's own cgroup is taken: no paths (`../x`,
//! `a/b`, `/etc/passwd`), nothing below it (what the container's systemd made there is
//! its own), no directory. Read-only are the files that would move processes in
//! (`cgroup.procs`, `cgroup.threads`, `tasks`), those other rlxc commands own
//! (`cgroup.freeze` and `freezer.state`: rlxc-freeze; `cgroup.kill`: rlxc-stop -k) and
//! those that would break the container's own tree (`cgroup.subtree_control`,
//! `cgroup.type`).

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use nix::errno::Errno;

use super::Cgroup;
use crate::error::{Error, Result};

/// Files rlxc-cgroup reads but never writes, and what to do instead.
const NOT_WRITTEN: &[(&str, &str)] = &[
    (
        "cgroup.procs",
        "it would move a process into the container; run commands in it with rlxc-attach",
    ),
    (
        "cgroup.threads",
        "it would move a thread into the container; run commands in it with rlxc-attach",
    ),
    (
        "tasks",
        "it would move a process into the container; run commands in it with rlxc-attach",
    ),
    (
        "cgroup.subtree_control",
        "which controllers the container's own init hands down is the container's business",
    ),
    (
        "cgroup.type",
        "a threaded cgroup cannot hold a container's processes",
    ),
    ("cgroup.freeze", "use rlxc-freeze and rlxc-unfreeze"),
    ("freezer.state", "use rlxc-freeze and rlxc-unfreeze"),
    ("cgroup.kill", "use rlxc-stop -k"),
];

/// The same setting's file on the other cgroup version, for when a name is not there.
const COUNTERPARTS: &[(&str, &str)] = &[
    ("memory.max", "memory.limit_in_bytes"),
    ("memory.swap.max", "memory.memsw.limit_in_bytes"),
    ("memory.current", "memory.usage_in_bytes"),
    ("memory.swap.current", "memory.memsw.usage_in_bytes"),
    ("cpu.max", "cpu.cfs_quota_us"),
    ("cpu.weight", "cpu.shares"),
    ("cpu.stat", "cpuacct.usage"),
    ("io.weight", "blkio.bfq.weight"),
    ("io.stat", "blkio.throttle.io_service_bytes_recursive"),
    ("cgroup.freeze", "freezer.state"),
];

/// A controller file of a container's cgroup, found by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFile {
    /// The name, as given (`memory.max`).
    pub key: String,
    pub path: PathBuf,
}

/// Why `key` is not a plain controller file name: `CONTROLLER.FILE` of letters, digits,
/// `.`, `_` and `-` (`hugetlb.2MB.max` has capitals), at most 255 bytes.
pub fn check_key(key: &str) -> Result<()> {
    let plain = !key.is_empty()
        && key.len() <= 255
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !key.starts_with('.')
        && !key.contains("..");
    if !plain {
        return Err(Error::Cgroup {
            msg: format!("{key:?} is not a file name of the container's cgroup"),
            fix: Some(
                "name one controller file, as the kernel names it: memory.max, pids.max, \
                 cpu.max (cgroup v1: memory.limit_in_bytes, cpu.cfs_quota_us); no paths"
                    .into(),
            ),
        });
    }
    if !key.contains('.') {
        return Err(Error::Cgroup {
            msg: format!("{key:?} is not a controller file name (CONTROLLER.FILE)"),
            fix: Some("for instance memory.max, pids.max or cpuset.cpus".into()),
        });
    }
    Ok(())
}

impl Cgroup {
    /// The file `key` names in this container's cgroup: on v1 in the hierarchy of the
    /// controller its prefix names, else in the cgroup2 tree.
    pub fn control_file(&self, key: &str) -> Result<ControlFile> {
        check_key(key)?;
        let prefix = key.split('.').next().unwrap_or(key);
        let h = self
            .layout
            .hierarchies
            .iter()
            .find(|h| !h.v2 && h.has(prefix))
            .or_else(|| self.layout.find(|h| h.v2))
            .ok_or_else(|| Error::Cgroup {
                msg: format!(
                    "no cgroup hierarchy of this host has the {prefix} controller, so {} has \
                     no {key}",
                    self.container_name()
                ),
                fix: Some(format!("this host mounts: {}", self.mounted())),
            })?;
        let dir = self.path_in(h);
        let path = dir.join(key);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(ControlFile {
                key: key.to_string(),
                path,
            }),
            Ok(_) => Err(Error::Cgroup {
                msg: format!(
                    "{key} in {}'s cgroup is not a controller file (a cgroup below it, made \
                     by the container)",
                    self.container_name()
                ),
                fix: None,
            }),
            Err(_) if !dir.is_dir() => Err(Error::Cgroup {
                msg: format!(
                    "{} has no cgroup {}: it stopped, or started before that hierarchy was \
                     mounted",
                    self.container_name(),
                    dir.display()
                ),
                fix: None,
            }),
            Err(_) => Err(Error::Cgroup {
                msg: format!(
                    "{}'s cgroup {} has no file {key}",
                    self.container_name(),
                    dir.display()
                ),
                fix: Some(counterpart(key).map_or_else(
                    || format!("ls {} lists the files there are", dir.display()),
                    |other| {
                        format!(
                            "this host's {} has {other} instead",
                            if h.v2 { "cgroup2" } else { "cgroup v1" }
                        )
                    },
                )),
            }),
        }
    }

    /// What `key` reads now.
    pub fn read_control(&self, key: &str) -> Result<String> {
        let f = self.control_file(key)?;
        if !mode_allows(&f, 0o444) {
            return Err(Error::Cgroup {
                msg: format!("{key} can only be written, not read"),
                fix: None,
            });
        }
        let mut text = String::new();
        std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&f.path)
            .and_then(|mut file| file.read_to_string(&mut text))
            .map_err(|e| Error::io("read", &f.path, e))?;
        Ok(text)
    }

    /// Write `value` to `key` in one write(2), as the kernel takes a controller value.
    pub fn write_control(&self, key: &str, value: &str) -> Result<()> {
        if let Some((_, why)) = NOT_WRITTEN.iter().find(|(k, _)| *k == key) {
            return Err(Error::Cgroup {
                msg: format!("rlxc-cgroup does not write {key}: {why}"),
                fix: None,
            });
        }
        let f = self.control_file(key)?;
        if !mode_allows(&f, 0o222) {
            return Err(Error::Cgroup {
                msg: format!("{key} is read-only: the kernel reports it, nobody sets it"),
                fix: None,
            });
        }
        put_value(&f.path, key, value)
    }

    /// The hierarchies, for a message: "cpu, memory, …, cgroup2".
    fn mounted(&self) -> String {
        let names: Vec<String> = self
            .layout
            .hierarchies
            .iter()
            .map(|h| {
                if h.v2 {
                    "cgroup2".to_string()
                } else {
                    h.controllers.join(",")
                }
            })
            .collect();
        names.join(", ")
    }
}

/// Write `value` to the controller file `path` (named `key`); a refusal says the
/// kernel's reason.
fn put_value(path: &std::path::Path, key: &str, value: &str) -> Result<()> {
    let res = std::fs::File::options()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut file| match file.write(value.as_bytes()) {
            Ok(n) if n == value.len() => Ok(()),
            Ok(n) => Err(std::io::Error::other(format!(
                "the kernel took {n} of {} bytes",
                value.len()
            ))),
            Err(e) => Err(e),
        });
    match res {
        Ok(()) => Ok(()),
        Err(e) => match e.raw_os_error() {
            Some(errno) => Err(refused(key, value, Errno::from_raw(errno))),
            None => Err(Error::io("write", path, e)),
        },
    }
}

/// The kernel refused `value` for `key` with `errno`.
pub fn refused(key: &str, value: &str, errno: Errno) -> Error {
    let fix = match errno {
        Errno::EINVAL | Errno::ERANGE => Some(
            "the kernel's cgroup documentation (admin-guide/cgroup-v2.rst, cgroup-v1/) says \
             what each file takes: sizes as bytes or with K/M/G, \"max\" for no limit on \
             cgroup2, -1 on v1"
                .to_string(),
        ),
        Errno::EBUSY => Some(
            "the container uses more than that now (memory), or its processes hold what \
             the value takes away; free it first or choose a higher value"
                .to_string(),
        ),
        _ => None,
    };
    Error::Cgroup {
        msg: format!("the kernel refused {value} for {key}: {}", errno.desc()),
        fix,
    }
}

/// The file's mode has one of `bits` (cgroup files say which way they go).
fn mode_allows(f: &ControlFile, bits: u32) -> bool {
    std::fs::metadata(&f.path).is_ok_and(|m| m.permissions().mode() & bits != 0)
}

fn counterpart(key: &str) -> Option<&'static str> {
    COUNTERPARTS.iter().find_map(|(a, b)| match key {
        k if k == *a => Some(*b),
        k if k == *b => Some(*a),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_controller_file_names_pass() {
        for ok in [
            "memory.max",
            "memory.limit_in_bytes",
            "hugetlb.2MB.max",
            "cgroup.procs",
            "io.bfq.weight",
        ] {
            check_key(ok).unwrap();
        }
        for bad in [
            "",
            "../cgroup.procs",
            "memory.max/../x",
            "/etc/passwd",
            "a/b",
            "..",
            ".hidden",
            "memory..max",
            "memory max",
            "memory.max\n",
            "nodot",
            "tasks",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&format!("a.{}", "b".repeat(300))).is_err());
    }

    #[test]
    fn the_kernels_reason_is_said() {
        let e = refused("pids.max", "abc", Errno::EINVAL);
        assert_eq!(
            e.to_string(),
            "the kernel refused abc for pids.max: Invalid argument"
        );
        assert!(e.hint().is_some());
    }

    #[test]
    fn counterparts_go_both_ways() {
        assert_eq!(counterpart("memory.max"), Some("memory.limit_in_bytes"));
        assert_eq!(counterpart("cpu.shares"), Some("cpu.weight"));
        assert_eq!(counterpart("pids.max"), None);
    }
}
