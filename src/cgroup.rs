//! Control groups on cgroup v1 (hybrid hosts: v1 controllers, `name=systemd` and a
//! unified mount) and on pure cgroup v2. A container gets `rlxc/NAME.TAG` in every hierarchy;
//! its init joins them before it unshares its cgroup namespace, so inside the container
//! that directory is the root, writable for systemd to delegate below.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::config::Limits;
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

/// The `rlxc/NAME.TAG` cgroup of a container in every hierarchy (see `runtime::host_key`).
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// `NAME.TAG`: unique per installation and container.
    pub name: String,
    pub layout: Layout,
}

/// Parse /proc/self/mountinfo for cgroup and cgroup2 mounts.
pub fn parse_mountinfo(text: &str) -> Layout {
    let mut hierarchies = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split_whitespace().collect();
        let r: Vec<&str> = right.split_whitespace().collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        // Only hierarchies mounted at their root: a bind of a subtree is someone's view.
        if l[3] != "/" {
            continue;
        }
        let mountpoint = PathBuf::from(l[4].replace("\\040", " "));
        match r[0] {
            "cgroup2" => hierarchies.push(Hierarchy {
                mountpoint,
                controllers: Vec::new(),
                v2: true,
            }),
            "cgroup" => {
                let controllers = r[2]
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                        ) && !o.starts_with("release_agent")
                            && *o != "clone_children"
                            && *o != "xattr"
                            && *o != "noprefix"
                            && *o != "cpuset_v2_mode"
                    })
                    .map(String::from)
                    .collect();
                hierarchies.push(Hierarchy {
                    mountpoint,
                    controllers,
                    v2: false,
                })
            }
            _ => {}
        }
    }
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

    fn find(&self, pred: impl Fn(&Hierarchy) -> bool) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| pred(h))
    }

    /// Where a controller lives: its v1 hierarchy, else cgroup2 when that has it.
    pub fn controller(&self, c: &str) -> Option<&Hierarchy> {
        self.find(|h| !h.v2 && h.has(c)).or_else(|| {
            self.find(|h| h.v2).filter(|h| {
                std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
                    .is_ok_and(|s| s.split_whitespace().any(|x| x == c))
            })
        })
    }
}

const BASE: &str = "rlxc";

/// Standard device nodes a container may use (LXC's common.conf).
const DEVICES_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:229 rwm",
    "c 10:200 rwm",
];

impl Cgroup {
    pub fn new(layout: Layout, name: &str) -> Self {
        Cgroup {
            name: name.to_string(),
            layout,
        }
    }

    /// The container's own name, for messages (the key without its installation tag).
    fn container_name(&self) -> &str {
        self.name.rsplit_once('.').map_or(&self.name, |(n, _)| n)
    }

    pub fn path_in(&self, h: &Hierarchy) -> PathBuf {
        h.mountpoint.join(BASE).join(&self.name)
    }

    /// Does any hierarchy still hold this container's cgroup?
    pub fn exists(&self) -> bool {
        self.layout
            .hierarchies
            .iter()
            .any(|h| self.path_in(h).is_dir())
    }

    /// Create `rlxc/NAME.TAG` everywhere; on v2 enable the controllers down to it.
    pub fn create(&self) -> Result<()> {
        for h in &self.layout.hierarchies {
            let base = h.mountpoint.join(BASE);
            if h.v2 {
                let ctrls = std::fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
                    .unwrap_or_default();
                mkdir(&base)?;
                enable_controllers(&h.mountpoint, &ctrls)?;
                enable_controllers(&base, &ctrls)?;
            } else {
                mkdir(&base)?;
                if h.has("cpuset") {
                    // A new v1 cpuset is empty and refuses tasks: inherit the parent's.
                    copy_cpuset(&h.mountpoint, &base)?;
                }
            }
            let dir = self.path_in(h);
            if dir.exists() {
                return Err(Error::Busy {
                    name: self.container_name().to_string(),
                    what: format!(
                        "its cgroup {} exists: a previous run is still there",
                        dir.display()
                    ),
                });
            }
            mkdir(&dir)?;
            if !h.v2 && h.has("cpuset") {
                copy_cpuset(&base, &dir)?;
            }
        }
        Ok(())
    }

    /// Apply limits and the device allow-list. Returns a warning for the log when the
    /// cgroup2 device filter could not be attached on a host whose v1 controller covers it.
    pub fn configure(&self, limits: &Limits) -> Result<Option<String>> {
        let mut warning = None;
        let v1_devices = self.layout.controller("devices").filter(|h| !h.v2);
        if let Some(h) = v1_devices {
            let dir = self.path_in(h);
            write(&dir.join("devices.deny"), "a")?;
            for rule in DEVICES_ALLOW {
                write(&dir.join("devices.allow"), rule)?;
            }
        }
        // cgroup2 has no devices files: the kernel asks a BPF program attached to the
        // cgroup. On hybrid hosts it is attached too (the v2 tree holds the same
        // processes), so the same rules hold twice; only there may it fail.
        if let Some(h) = self.layout.find(|h| h.v2) {
            let dir = self.path_in(h);
            let rules: Vec<_> = DEVICES_ALLOW
                .iter()
                .filter_map(|r| crate::sys::bpf::DeviceRule::parse(r))
                .collect();
            if let Err(e) = crate::sys::bpf::restrict_devices(&dir, &rules) {
                if v1_devices.is_none() {
                    return Err(Error::Other(format!(
                        "cannot limit device access: attaching the device filter to {} failed: {e} \
                         (the kernel needs CONFIG_CGROUP_BPF and rlxc needs CAP_SYS_ADMIN)",
                        dir.display()
                    )));
                }
                warning = Some(format!(
                    "no cgroup2 device filter ({e}); the v1 devices controller still applies"
                ));
            }
        }
        if let Some(m) = limits.memory.as_ref().map(|m| m.bytes()) {
            let h = self.need("memory")?;
            let file = if h.v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            write(&self.path_in(h).join(file), &m.to_string())?;
        }
        if let Some(cpus) = limits.cpus {
            let h = self.need("cpu")?;
            let period = 100_000u64;
            let quota = (cpus * period as f64).round() as u64;
            if h.v2 {
                write(
                    &self.path_in(h).join("cpu.max"),
                    &format!("{quota} {period}"),
                )?;
            } else {
                write(
                    &self.path_in(h).join("cpu.cfs_period_us"),
                    &period.to_string(),
                )?;
                write(
                    &self.path_in(h).join("cpu.cfs_quota_us"),
                    &quota.to_string(),
                )?;
            }
        }
        if let Some(p) = limits.pids {
            let h = self.need("pids")?;
            write(&self.path_in(h).join("pids.max"), &p.to_string())?;
        }
        Ok(warning)
    }

    fn need(&self, c: &str) -> Result<&Hierarchy> {
        self.layout.controller(c).ok_or_else(|| {
            Error::Other(format!(
                "the {c} cgroup controller is not available on this host, but limits.{} asks for it",
                if c == "cpu" { "cpus" } else { c }
            ))
        })
    }

    /// How init joins this cgroup without being moved by pid. Writing a pid to
    /// `cgroup.procs` write-locks a host-wide semaphore whose first writer waits out an
    /// RCU grace period (5-16 ms, most of a start). Two ways avoid it:
    /// - cgroup2: clone3(CLONE_INTO_CGROUP) starts init in the directory;
    /// - v1: a single-threaded process writes "0" (itself) to each hierarchy's `tasks`,
    ///   which the kernel does without that lock.
    pub fn entry(&self) -> Result<Entry> {
        Entry::open(
            self.layout
                .hierarchies
                .iter()
                .map(|h| (self.path_in(h), h.v2)),
        )
    }

    /// PIDs (host view) in the container's cgroup tree.
    pub fn pids(&self) -> Vec<i32> {
        let Some(h) = self
            .layout
            .hierarchies
            .iter()
            .find(|h| self.path_in(h).is_dir())
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        collect_pids(&self.path_in(h), &mut out);
        out
    }

    /// Kill everything left and remove the cgroup directories, deepest first.
    pub fn destroy(&self) -> Result<()> {
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut last_err = None;
        for h in &self.layout.hierarchies {
            let dir = self.path_in(h);
            if let Err(e) = remove_tree(&dir) {
                last_err = Some(e);
            }
        }
        last_err.map_or(Ok(()), Err)
    }

    /// CPU time used, in nanoseconds.
    pub fn cpu_ns(&self) -> Option<u64> {
        if let Some(h) = self.layout.controller("cpuacct").filter(|h| !h.v2) {
            return read_u64(&self.path_in(h).join("cpuacct.usage"));
        }
        let h = self.layout.find(|h| h.v2)?;
        let stat = std::fs::read_to_string(self.path_in(h).join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    }

    /// Memory in use, in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        let h = self.layout.controller("memory")?;
        let file = if h.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        read_u64(&self.path_in(h).join(file))
    }
}

/// Open handles for joining a container's cgroup (see `Cgroup::entry`).
pub struct Entry {
    /// The cgroup2 directory (open, and its path), for clone3(CLONE_INTO_CGROUP).
    v2: Option<(OwnedFd, PathBuf)>,
    /// The v1 hierarchies' `tasks` files: the child writes "0" to each.
    v1_tasks: Vec<JoinFile>,
}

/// A cgroup membership file opened for writing, and its path for error messages.
pub struct JoinFile {
    fd: OwnedFd,
    path: PathBuf,
}

impl Entry {
    /// Handles for the cgroup directories `dirs` (path, is cgroup2).
    pub fn open(dirs: impl Iterator<Item = (PathBuf, bool)>) -> Result<Self> {
        let mut e = Entry {
            v2: None,
            v1_tasks: Vec::new(),
        };
        for (dir, v2) in dirs {
            if v2 {
                let fd = nix::fcntl::open(
                    &dir,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ctx("open cgroup", &dir)?;
                e.v2 = Some((fd, dir));
            } else {
                e.v1_tasks.push(JoinFile::open(dir.join("tasks"))?);
            }
        }
        Ok(e)
    }

    /// Start `child` (a process of its own, in new namespaces `flags`, SIGCHLD on exit)
    /// in this cgroup: born in the cgroup2 directory, and given the files it must write
    /// "0" to before anything else. A kernel without clone3(CLONE_INTO_CGROUP) gets the
    /// cgroup2 `cgroup.procs` among those files too; the errno that forced that fallback
    /// is returned with the pid, for the caller to log.
    pub fn spawn(
        self,
        flags: CloneFlags,
        child: impl Fn(&[JoinFile]) -> isize,
    ) -> Result<(Pid, Option<Errno>)> {
        let mut join = self.v1_tasks;
        let mut fell_back = None;
        if let Some((dir, path)) = self.v2 {
            match crate::sys::clone_into_cgroup(flags, dir.as_fd(), || child(&join)) {
                Ok(pid) => return Ok((pid, None)),
                // Before Linux 5.7, or clone3 filtered: the child joins by itself.
                Err(e @ (Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EPERM)) => {
                    join.push(JoinFile::open(path.join("cgroup.procs"))?);
                    fell_back = Some(e);
                }
                Err(e) => return Err(Error::io("start a process in cgroup", &path, e.into())),
            }
        }
        let pid = crate::sys::clone_child(flags, Box::new(|| child(&join)))
            .map_err(|e| Error::io("start a process in", "the container's cgroup", e.into()))?;
        Ok((pid, fell_back))
    }
}

impl JoinFile {
    fn open(path: PathBuf) -> Result<Self> {
        let fd = nix::fcntl::open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx("open cgroup file", &path)?;
        Ok(JoinFile { fd, path })
    }

    /// Move the calling process (single-threaded) into this cgroup.
    pub fn join_self(&self) -> Result<()> {
        nix::unistd::write(&self.fd, b"0")
            .map(|_| ())
            .ctx("join cgroup", &self.path)
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn mkdir(p: &Path) -> Result<()> {
    match std::fs::create_dir(p) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r.ctx("create cgroup", p),
    }
}

fn write(p: &Path, v: &str) -> Result<()> {
    std::fs::write(p, v).ctx("write cgroup file", p)
}

fn enable_controllers(dir: &Path, available: &str) -> Result<()> {
    let want: Vec<String> = available
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "memory" | "pids" | "io" | "cpuset"))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &want.join(" "))
}

fn copy_cpuset(from: &Path, to: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = std::fs::read_to_string(to.join(f)).unwrap_or_default();
        if cur.trim().is_empty() {
            let v = std::fs::read_to_string(from.join(f)).ctx("read", from.join(f))?;
            write(&to.join(f), v.trim())?;
        }
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// rmdir a cgroup tree bottom-up (cgroup directories cannot be removed with files in
/// them, and their files cannot be unlinked: only rmdir works).
fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while the last tasks are still exiting.
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(Error::io("remove cgroup", dir, e)),
        }
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
