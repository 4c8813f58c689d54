//! Control groups on cgroup v1 (hybrid hosts: v1 controllers, `name=systemd` and a
//! unified mount) and on pure cgroup v2. A container gets `rlxc/NAME.TAG` in every hierarchy;
//! its init joins them before it unshares its cgroup namespace, so inside the container
//! that directory is the root, writable for systemd to delegate below.
//!
//! `layout` finds the hierarchies, `files` is the one table of controller files, `v1` and
//! `v2` hold what differs per version behind [`Version`], `entry` joins a cgroup,
//! `freezer` freezes and thaws it.

mod devices;
mod entry;
mod files;
mod freezer;
mod layout;
mod live;
mod monitors;
mod persist;
mod scope;
mod stats;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::path::{Path, PathBuf};

pub use devices::{node_rule, DeviceAccess};
pub use entry::{Entry, JoinFile};
pub use freezer::FreezeHold;
/// `sys::bpf`'s kernel test finds the cgroup2 mount with it; elsewhere `Layout::detect`.
#[cfg(test)]
pub use layout::parse_mountinfo;
pub use layout::{Hierarchy, Layout};
pub use monitors::enter_monitors;
pub use scope::{own_service, usable as scopes_usable, Holder};
pub use stats::UsagePlan;

use crate::config::Limits;
use crate::error::{Error, Result};
use files::{mkdir, row, Place, Row, Setting, Value, Write};

/// The `rlxc/NAME.TAG` cgroup of a container in every hierarchy (see `runtime::host_key`),
/// or on a systemd host its scope's `payload` (see `scope`).
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// `NAME.TAG`: unique per installation and container.
    pub name: String,
    pub layout: Layout,
    /// The directory below each hierarchy's mountpoint.
    rel: PathBuf,
    /// The systemd scope unit it is in, if any.
    scope: Option<String>,
}

/// What differs between a v1 hierarchy and cgroup2.
trait Version {
    /// Make `base` (`rlxc/` under the mountpoint) ready to hold container cgroups.
    fn prepare_base(&self, h: &Hierarchy, base: &Path) -> Result<()>;
    /// Make the container's new directory `dir` (below `base`) ready for tasks.
    fn prepare_dir(&self, h: &Hierarchy, base: &Path, dir: &Path) -> Result<()>;
    /// This version's files for a row of the table, if it has any.
    fn place(&self, row: &'static Row) -> Option<&'static Place>;
    /// Whether `h` offers `controller` (None: core files, always there).
    fn serves(&self, h: &Hierarchy, controller: Option<&str>) -> bool;
}

/// The one place that picks v1 or v2 behaviour for a hierarchy.
fn version(h: &Hierarchy) -> &'static dyn Version {
    if h.v2 {
        &v2::V2
    } else {
        &v1::V1
    }
}

const BASE: &str = "rlxc";

/// CFS period for `limits.cpus`, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

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

/// The only code that reads `Limits`: each limit asked for, as the config key it came
/// from, the setting and the value to write.
fn requested(limits: &Limits) -> Vec<(&'static str, Setting, Value<'_>)> {
    let mut out = Vec::new();
    let memory = limits.memory.as_ref().map(|m| m.bytes());
    if let Some(m) = memory {
        out.push(("memory", Setting::MemoryLimit, Value::Number(m)));
    }
    // After the memory limit: v1 wants memory and swap at least as high as memory.
    if let (Some(memory), Some(s)) = (memory, &limits.memory_swap) {
        let swap = s.bytes();
        out.push((
            "memory_swap",
            Setting::SwapLimit,
            Value::Swap { memory, swap },
        ));
    }
    if let Some(cpus) = limits.cpus {
        let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
        let period = CPU_PERIOD_US;
        out.push(("cpus", Setting::CpuQuota, Value::Cpu { quota, period }));
    }
    if let Some(w) = limits.cpu_weight {
        out.push(("cpu_weight", Setting::CpuWeight, Value::Weight(w.get())));
    }
    if let Some(c) = &limits.cpuset {
        out.push(("cpuset", Setting::Cpuset, Value::List(c.as_str())));
    }
    if let Some(p) = limits.pids {
        out.push(("pids", Setting::PidsMax, Value::Number(p)));
    }
    if let Some(w) = limits.io_weight {
        out.push(("io_weight", Setting::IoWeight, Value::Weight(w.get())));
    }
    out
}

impl Cgroup {
    /// The cgroup of the container keyed `name` where it is: in its systemd scope when
    /// that exists, else (and on every host without systemd) `rlxc/NAME.TAG`.
    pub fn new(layout: Layout, name: &str) -> Self {
        let in_scope = scope::usable(&layout)
            && layout.hierarchies[0]
                .mountpoint
                .join(scope::rel(name))
                .is_dir();
        let (rel, scope) = if in_scope {
            (scope::rel(name), Some(scope::unit_name(name)))
        } else {
            (Path::new(BASE).join(name), None)
        };
        Cgroup {
            name: name.to_string(),
            layout,
            rel,
            scope,
        }
    }

    /// The systemd scope the container is in, if it is in one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The container's own name, for messages (the key without its installation tag).
    fn container_name(&self) -> &str {
        self.name.rsplit_once('.').map_or(&self.name, |(n, _)| n)
    }

    pub fn path_in(&self, h: &Hierarchy) -> PathBuf {
        h.mountpoint.join(&self.rel)
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
            let v = version(h);
            let base = h.mountpoint.join(BASE);
            v.prepare_base(h, &base)?;
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
            v.prepare_dir(h, &base, &dir)?;
        }
        Ok(())
    }

    /// Apply limits and the device allow-list (the standard nodes and `devices`, rules
    /// from `node_rule`). Returns a warning for the log when the cgroup2 device filter
    /// could not be attached on a host whose v1 controller covers it, and what a device
    /// added later changes.
    pub fn configure(
        &self,
        limits: &Limits,
        devices: &[String],
    ) -> Result<(Option<String>, DeviceAccess)> {
        let configured = self.configure_devices(devices)?;
        self.apply_limits(limits)?;
        Ok(configured)
    }

    fn apply_limits(&self, limits: &Limits) -> Result<()> {
        for (key, s, value) in requested(limits) {
            let row = row(s);
            let (h, place) = self.layout.locate(row).ok_or_else(|| {
                Error::Other(format!(
                    "the {} cgroup controller is not available on this host, but limits.{key} asks for it",
                    row.controller
                ))
            })?;
            let controller = place.controller.unwrap_or(row.controller);
            for w in place.writes(&self.path_in(h), &value) {
                set_limit(key, controller, &w)?;
            }
        }
        Ok(())
    }

    /// Hand the cgroup to an unprivileged container's root (host ids `uid`, `gid`), as
    /// systemd delegates a subtree: the directory and the files that move processes and
    /// enable controllers below it, on cgroup2 and on the `name=systemd` hierarchy
    /// (systemd's own on hybrid hosts). The limits in the directory stay root's: the
    /// container may divide what it has, never raise it. Other v1 hierarchies are
    /// mounted read-only inside and stay root's.
    pub fn delegate(&self, uid: u32, gid: u32) -> Result<()> {
        let (uid, gid) = (
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        );
        for h in &self.layout.hierarchies {
            let files: &[&str] = if h.v2 {
                &[
                    "",
                    "cgroup.procs",
                    "cgroup.threads",
                    "cgroup.subtree_control",
                ]
            } else if h.has("name=systemd") {
                &["", "cgroup.procs", "tasks", "cgroup.clone_children"]
            } else {
                continue;
            };
            let dir = self.path_in(h);
            for f in files {
                let p = if f.is_empty() {
                    dir.clone()
                } else {
                    dir.join(f)
                };
                // Files a kernel does not have (cgroup.threads before 4.14) are skipped.
                match nix::unistd::chown(&p, uid, gid) {
                    Ok(()) | Err(nix::errno::Errno::ENOENT) if !f.is_empty() => {}
                    Ok(()) => {}
                    Err(e) => {
                        return Err(Error::io("hand over to the container's root", &p, e.into()))
                    }
                }
            }
        }
        Ok(())
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
            // A frozen v1 task dies only once thawed; killed first, it runs nothing more.
            if self.frozen() {
                let _ = self.thaw();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut last_err = None;
        for h in &self.layout.hierarchies {
            let dir = self.path_in(h);
            if let Err(e) = remove_tree(&dir) {
                last_err = Some(e);
            }
            // The empty scope: systemd would remove it too, a moment later; gone now,
            // a reboot's new scope of the same name need not wait for it.
            if let (Some(_), Some(scope)) = (&self.scope, dir.parent()) {
                let _ = std::fs::remove_dir(scope);
            }
        }
        last_err.map_or(Ok(()), Err)
    }

    /// CPU time used, in nanoseconds.
    pub fn cpu_ns(&self) -> Option<u64> {
        self.read(Setting::CpuUsageNs)
    }

    /// Memory in use, in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.read(Setting::MemoryUsage)
    }

    fn read(&self, s: Setting) -> Option<u64> {
        let (h, place) = self.layout.locate(row(s))?;
        place.read(&self.path_in(h))
    }
}

/// One write of limit `key`: a failure names the key and says why.
fn set_limit(key: &str, controller: &str, w: &Write) -> Result<()> {
    let Err(e) = std::fs::write(&w.path, &w.content) else {
        return Ok(());
    };
    let file = w
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !w.path.exists() {
        let needs = match file.as_str() {
            "memory.memsw.limit_in_bytes" => " (swap accounting: boot with swapaccount=1)",
            "blkio.bfq.weight" => " (the BFQ I/O scheduler has it)",
            "io.weight" => " (the kernel's blk-iocost has it)",
            _ => "",
        };
        return Err(Error::Cgroup {
            msg: format!(
                "limits.{key} cannot be set: this host's {controller} controller has no {file}{needs}"
            ),
            fix: Some(format!(
                "remove limits.{key} from the container's config.toml on this host"
            )),
        });
    }
    Err(match e.raw_os_error() {
        Some(n) => match live::refused(&file, &w.content, nix::errno::Errno::from_raw(n)) {
            Error::Cgroup { msg, fix } => Error::Cgroup {
                msg: format!("limits.{key} cannot be set in the container's cgroup: {msg}"),
                fix,
            },
            other => other,
        },
        None => Error::io("write cgroup file", &w.path, e),
    })
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
