//! Which cgroup hierarchies are mounted, and where a controller lives among them.

use std::path::PathBuf;

use super::files::{Place, Row};
use super::version;
use crate::error::{Error, IoContext, Result};

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// v1 controllers or names (`cpu`, `memory`, `name=systemd`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

impl Hierarchy {
    pub fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

/// Mount options of a v1 cgroup mount that are not controllers or names.
fn is_mount_option(o: &str) -> bool {
    matches!(
        o,
        "rw" | "ro"
            | "relatime"
            | "noatime"
            | "nosuid"
            | "nodev"
            | "noexec"
            | "clone_children"
            | "xattr"
            | "noprefix"
            | "cpuset_v2_mode"
    ) || o.starts_with("release_agent")
}

/// The cgroup and cgroup2 mounts of a mountinfo text.
pub fn parse_mountinfo(text: &str) -> Layout {
    let hierarchies = crate::sys::mountinfo::parse(text)
        .into_iter()
        // Only hierarchies mounted at their root: a bind of a subtree is someone's view.
        .filter(|m| m.root.as_os_str() == "/")
        .filter_map(|m| match m.fstype.as_str() {
            "cgroup2" => Some(Hierarchy {
                mountpoint: m.mountpoint,
                controllers: Vec::new(),
                v2: true,
            }),
            "cgroup" => Some(Hierarchy {
                controllers: m
                    .super_options
                    .split(',')
                    .filter(|o| !is_mount_option(o))
                    .map(String::from)
                    .collect(),
                mountpoint: m.mountpoint,
                v2: false,
            }),
            _ => None,
        })
        .collect();
    Layout { hierarchies }
}

impl Layout {
    pub fn detect() -> Result<Self> {
        let text =
            std::fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
        let l = parse_mountinfo(&text);
        if l.hierarchies.is_empty() {
            return Err(Error::Other(
                "no cgroup file system is mounted; mount cgroup2 on /sys/fs/cgroup (or the v1 hierarchies)".into(),
            ));
        }
        Ok(l)
    }

    /// Only cgroup2 (a "unified" host).
    pub fn is_pure_v2(&self) -> bool {
        self.hierarchies.iter().all(|h| h.v2)
    }

    pub(super) fn find(&self, pred: impl Fn(&Hierarchy) -> bool) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| pred(h))
    }

    /// The hierarchies a controller is looked for in, in order: every v1 one, then the
    /// (first) cgroup2 one. A v1 controller takes precedence, as on hybrid hosts the
    /// kernel gives a controller to one hierarchy only and v1 claims it first.
    fn candidates(&self) -> impl Iterator<Item = &Hierarchy> {
        self.hierarchies
            .iter()
            .filter(|h| !h.v2)
            .chain(self.find(|h| h.v2))
    }

    /// Where a controller lives: its v1 hierarchy, else cgroup2 when that has it.
    pub fn controller(&self, c: &str) -> Option<&Hierarchy> {
        self.candidates().find(|h| version(h).serves(h, Some(c)))
    }

    /// Where a setting of the controller-file table is, and its files there.
    pub(super) fn locate(&self, row: &'static Row) -> Option<(&Hierarchy, &'static Place)> {
        self.candidates().find_map(|h| {
            let v = version(h);
            v.place(row)
                .filter(|p| v.serves(h, p.controller))
                .map(|p| (h, p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 22 0:26 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime shared:12 - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime shared:13 - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
36 22 0:32 /lxc/x /mnt/view rw,relatime - cgroup cgroup rw,pids
";

    #[test]
    fn parses_hybrid_layout() {
        let l = parse_mountinfo(HYBRID);
        assert_eq!(l.hierarchies.len(), 5, "{l:?}");
        assert!(!l.is_pure_v2());
        let sd = l
            .hierarchies
            .iter()
            .find(|h| h.has("name=systemd"))
            .unwrap();
        assert_eq!(sd.controllers, ["name=systemd"]);
        assert_eq!(
            l.controller("memory").unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert!(l.hierarchies.iter().any(|h| h.v2));
        assert!(l
            .hierarchies
            .iter()
            .any(|h| h.has("cpu") && h.has("cpuacct")));
    }

    #[test]
    fn parses_pure_v2() {
        let l = parse_mountinfo(
            "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert!(l.is_pure_v2());
        assert_eq!(l.hierarchies[0].mountpoint, PathBuf::from("/sys/fs/cgroup"));
    }
}
