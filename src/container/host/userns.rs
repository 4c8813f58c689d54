//! What unprivileged containers need of the host: user namespaces, host ids for root in
//! /etc/subuid and /etc/subgid, file systems that can be idmapped under the lxcpath (and
//! the cachepath, where overlay lowers are). A lack is a problem only when the defaults
//! make new containers unprivileged; otherwise it is reported as a fact.

use std::path::Path;

use super::{Check, Section, Verdict};
use crate::config::SystemConfig;
use crate::error::Result;
use crate::idmap::{self, Room};

pub(super) fn section(sys: &SystemConfig) -> Section {
    let defaults = sys.container_defaults().ok().and_then(|d| d.idmap);
    let needed = defaults.is_some();
    let count = defaults.unwrap_or_default().count;
    let proc = |f: &str| std::fs::read_to_string(Path::new("/proc/sys").join(f)).ok();
    let mut checks = vec![userns_check(
        proc("user/max_user_namespaces").as_deref(),
        needed,
    )];
    if let Some(v) = proc("kernel/unprivileged_userns_clone") {
        checks.push(Check {
            what: "kernel.unprivileged_userns_clone".into(),
            verdict: Verdict::Info(format!(
                "{}: it limits users other than root only, and rlxc runs as root",
                v.trim()
            )),
        });
    }
    checks.extend(room_checks(idmap::room(sys, count), count, needed));
    checks.push(mount_check("lxcpath", &sys.lxcpath, needed));
    if !same_file_system(&sys.lxcpath, &sys.cachepath) {
        checks.push(mount_check("cachepath", &sys.cachepath, needed));
    }
    checks.push(Check {
        what: "newuidmap".into(),
        verdict: Verdict::Info(
            "not needed: rlxc writes uid_map and gid_map itself, as root".into(),
        ),
    });
    Section {
        title: "User namespaces (unprivileged containers)",
        checks,
    }
}

/// A lack: a problem when unprivileged containers are the default, else a fact.
fn lack(what: impl Into<String>, detail: String, needed: bool) -> Check {
    Check {
        what: what.into(),
        verdict: if needed {
            Verdict::Missing(detail)
        } else {
            Verdict::Info(format!("{detail} (needed for unprivileged containers)"))
        },
    }
}

/// `max`: /proc/sys/user/max_user_namespaces.
fn userns_check(max: Option<&str>, needed: bool) -> Check {
    let what = "User namespaces for containers";
    match max.map(|t| t.trim().parse::<u64>()) {
        Some(Ok(0)) => lack(
            what,
            "user.max_user_namespaces = 0: sysctl -w user.max_user_namespaces=15000 (and \
             set it in /etc/sysctl.d)"
                .into(),
            needed,
        ),
        Some(Ok(n)) => Check::ok(what, format!("up to {n} (user.max_user_namespaces)")),
        _ => lack(
            what,
            "this kernel has none (no /proc/sys/user/max_user_namespaces; CONFIG_USER_NS)".into(),
            needed,
        ),
    }
}

/// Root's ranges in each file, and how many more containers of `count` ids fit.
fn room_checks(room: Result<[Room; 2]>, count: u32, needed: bool) -> Vec<Check> {
    let rooms = match room {
        Ok(r) => r,
        Err(e) => return vec![lack("Host ids for root", crate::error::flatten(&e), needed)],
    };
    rooms
        .into_iter()
        .map(|r| {
            let what = format!("Root's ids in {}", r.file.display());
            let users = match r.holders {
                0 => String::new(),
                1 => " (1 container here maps ids there)".into(),
                n => format!(" ({n} containers here map ids there)"),
            };
            let add = match &r.suggest {
                Some(line) => format!("add the line `{line}` (rlxc-create --allocate adds it)"),
                None => "add a range for root that no other line overlaps".into(),
            };
            let ranges: Vec<String> = r.ranges.iter().map(|s| s.to_string()).collect();
            match (ranges.is_empty(), r.fit) {
                (true, _) => lack(what, format!("none: {add}"), needed),
                (false, 0) => lack(
                    what,
                    format!(
                        "{}: no room for another container of {count} ids{users}: {add}",
                        ranges.join(", ")
                    ),
                    needed,
                ),
                (false, n) => Check::ok(
                    what,
                    format!(
                        "{}: room for {n} more containers of {count} ids{users}",
                        ranges.join(", ")
                    ),
                ),
            }
        })
        .collect()
}

/// Whether the file system under `dir` (`key` of rlxc.toml) can be idmapped, tried for
/// real; a directory not made yet is probed at its nearest existing parent.
fn mount_check(key: &str, dir: &Path, needed: bool) -> Check {
    let at = dir
        .ancestors()
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("/"));
    mount_verdict(key, at, &fs_name(at), crate::sys::idmap::probe(at), needed)
}

fn mount_verdict(
    key: &str,
    at: &Path,
    fs: &str,
    probe: std::io::Result<()>,
    needed: bool,
) -> Check {
    let what = format!("Idmapped mounts ({key})");
    let at = at.display();
    match probe {
        Ok(()) => Check::ok(what, format!("{fs} at {at}")),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => lack(
            what,
            "this kernel has no idmapped mounts (Linux 5.12 or later has them)".into(),
            needed,
        ),
        Err(e) => lack(
            what,
            format!(
                "{fs} at {at} cannot be idmapped ({e}): unprivileged containers cannot start \
                 from it; give {key} a directory on ext4, xfs, btrfs or tmpfs"
            ),
            needed,
        ),
    }
}

/// The file system type's name, from its magic number.
fn fs_name(dir: &Path) -> String {
    use nix::sys::statfs::*;
    let Ok(s) = statfs(dir) else {
        return "the file system".into();
    };
    let t = s.filesystem_type();
    let known = [
        (EXT4_SUPER_MAGIC, "ext4"),
        (XFS_SUPER_MAGIC, "xfs"),
        (BTRFS_SUPER_MAGIC, "btrfs"),
        (TMPFS_MAGIC, "tmpfs"),
        (OVERLAYFS_SUPER_MAGIC, "overlayfs"),
        (NFS_SUPER_MAGIC, "nfs"),
    ];
    match known.iter().find(|(m, _)| *m == t) {
        Some((_, name)) => (*name).into(),
        None => format!("a file system of type {:#x}", t.0),
    }
}

fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| {
        p.ancestors()
            .find_map(|d| std::fs::metadata(d).ok())
            .map(|m| m.dev())
    };
    dev(a).is_some() && dev(a) == dev(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::Span;

    #[test]
    fn user_namespaces_count_only_when_unprivileged_is_the_default() {
        let c = userns_check(Some("96367\n"), true);
        assert_eq!(
            c.verdict,
            Verdict::Ok("up to 96367 (user.max_user_namespaces)".into())
        );
        assert!(
            matches!(userns_check(Some("0\n"), true).verdict, Verdict::Missing(d) if d.contains("sysctl -w"))
        );
        assert!(matches!(
            userns_check(None, false).verdict,
            Verdict::Info(d) if d.contains("CONFIG_USER_NS") && d.ends_with("(needed for unprivileged containers)")
        ));
    }

    fn room(ranges: &[Span], fit: u64, holders: usize) -> Room {
        Room {
            file: "/etc/subuid".into(),
            ranges: ranges.to_vec(),
            fit,
            holders,
            suggest: Some("root:1000000:1000000000".into()),
        }
    }

    #[test]
    fn root_ranges_say_how_many_more_containers_fit_or_what_to_add() {
        let r = Span::new(1_000_000, 1_000_000_000);
        let gid = room(&[], 0, 0);
        let checks = room_checks(Ok([room(&[r], 15256, 2), gid]), 65536, true);
        assert_eq!(checks[0].what, "Root's ids in /etc/subuid");
        assert_eq!(
            checks[0].verdict,
            Verdict::Ok(
                "1000000-1000999999: room for 15256 more containers of 65536 ids (2 containers \
                 here map ids there)"
                    .into()
            )
        );
        assert_eq!(
            checks[1].verdict,
            Verdict::Missing(
                "none: add the line `root:1000000:1000000000` (rlxc-create --allocate adds it)"
                    .into()
            )
        );
        let full = room_checks(
            Ok([room(&[Span::new(5, 10)], 0, 1), room(&[r], 1, 0)]),
            10,
            false,
        );
        assert!(
            matches!(&full[0].verdict, Verdict::Info(d) if d.starts_with("5-14: no room for another container of 10 ids (1 container here maps ids there): add the line")),
            "{:?}",
            full[0]
        );
        let e = crate::error::Error::Other("bad file".into());
        assert!(
            matches!(&room_checks(Err(e), 1, true)[0].verdict, Verdict::Missing(d) if d == "bad file")
        );
    }

    #[test]
    fn idmapped_mounts_are_probed_for_real() {
        let d = tempfile::tempdir().unwrap();
        // Not made yet: its parent is probed.
        let c = mount_check("lxcpath", &d.path().join("lib/rlxc"), true);
        let fs = fs_name(d.path());
        if ["ext4", "xfs", "btrfs", "tmpfs"].contains(&fs.as_str()) {
            assert_eq!(
                c.verdict,
                Verdict::Ok(format!("{fs} at {}", d.path().display()))
            );
        }
        let proc = mount_check("cachepath", Path::new("/proc/sys"), true);
        assert!(
            matches!(&proc.verdict, Verdict::Missing(d) if d.contains("cannot be idmapped") && d.ends_with("give cachepath a directory on ext4, xfs, btrfs or tmpfs")),
            "{proc:?}"
        );
        let old = std::io::Error::from_raw_os_error(libc::ENOSYS);
        let c = mount_verdict("lxcpath", Path::new("/x"), "ext4", Err(old), false);
        assert!(matches!(c.verdict, Verdict::Info(d) if d.contains("5.12")));
    }
}
