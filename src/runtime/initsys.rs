//! What init a rootfs boots, read before anything of a start is made: its family (the
//! halt and reboot signals it understands) and, for systemd, its version (the cgroup
//! tree it can run on). The rootfs is hostile: every file is opened inside it
//! (`Root`), only regular files are read, and only so much of each. A lying rootfs
//! only picks another layout or signal for itself.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;

use crate::cgroup::Layout;
use crate::config::CgroupLayout;
use crate::error::{Error, Result};
use crate::rootfs::Root;

/// The most read of an init binary (CentOS 7's systemd is 1.5 MB) or a package list.
const READ_MAX: u64 = 32 << 20;

/// systemd from this version on refuses to run on cgroup v1 (258 dropped it).
pub const SYSTEMD_NEEDS_UNIFIED: u32 = 258;
/// systemd before this version cannot run on a pure cgroup2 tree.
pub const SYSTEMD_FIRST_UNIFIED: u32 = 230;
/// systemd from this version on sets up service credentials with the new mount API
/// only (fsopen/fsmount), which a privileged container's seccomp filter answers with
/// ENOSYS (`sys::seccomp::NewMountApi`).
pub const SYSTEMD_CREDENTIALS_NEED_FSMOUNT: u32 = 259;

/// What a start says when the init cannot run all its services in a privileged
/// container: None when it can.
pub fn privileged_warning(init: &InitInfo, unprivileged: bool) -> Option<String> {
    let v = init.systemd_version?;
    (!unprivileged && v >= SYSTEMD_CREDENTIALS_NEED_FSMOUNT).then(|| {
        format!(
            "systemd {v} sets up service credentials with the new mount API, which a \
             privileged container does not get: journald, networkd and other services with \
             credentials will fail. Make the container unprivileged (an [idmap] table in its \
             config) to boot it fully"
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Systemd,
    /// SysV init: SIGPWR runs inittab's powerfail entries, SIGINT its ctrlaltdel one.
    Sysvinit,
    /// busybox init: SIGPWR or SIGUSR1 halts, SIGTERM reboots.
    Busybox,
    /// Anything else (a shell, a custom init): treated as busybox's signals.
    Other,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Systemd => "systemd",
            Family::Sysvinit => "sysvinit",
            Family::Busybox => "busybox",
            Family::Other => "other",
        }
    }
}

/// What `inspect` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    pub family: Family,
    /// systemd's version (the number before any dot), where it could be read.
    pub systemd_version: Option<u32>,
    /// sysvinit: its inittab has a powerfail or powerwait entry, so SIGPWR halts it.
    pub powerfail: bool,
}

impl InitInfo {
    /// For messages: "systemd 262", "sysvinit", "busybox".
    pub fn describe(&self) -> String {
        match (self.family, self.systemd_version) {
            (Family::Systemd, Some(v)) => format!("systemd {v}"),
            (f, _) => f.as_str().to_string(),
        }
    }

    /// The default (halt, reboot) signals, as LXC has them per init.
    pub fn signals(&self) -> (i32, i32) {
        match self.family {
            Family::Systemd => (libc::SIGRTMIN() + 3, libc::SIGINT),
            // SIGINT runs inittab's ctrlaltdel entry: Debian's reboots.
            Family::Sysvinit => (libc::SIGPWR, libc::SIGINT),
            Family::Busybox | Family::Other => (libc::SIGPWR, libc::SIGTERM),
        }
    }

    /// Why the default halt signal may do nothing, for a stop that had to kill.
    pub fn halt_hint(&self) -> Option<String> {
        (self.family == Family::Sysvinit && !self.powerfail).then(|| {
            "sysvinit halts on SIGPWR only through a powerfail entry in /etc/inittab, and \
             this one has none: add `p0::powerfail:/sbin/init 0` to the container's \
             /etc/inittab (LXC's templates do), or set signals.halt in its config.toml"
                .to_string()
        })
    }
}

/// Look at the init `init` (a path inside the root, `/sbin/init` by default).
pub fn inspect(root: &Root, init: &str) -> InitInfo {
    let rel = init.trim_start_matches('/').as_bytes();
    let name = resolved_name(root, rel).unwrap_or_default();
    let binary = || read_regular(root, rel).unwrap_or_default();
    let (family, systemd_version) = if name == "systemd" {
        let v = version_in_binary(&binary()).or_else(|| systemd_in_dpkg(root));
        (Family::Systemd, v)
    } else if name == "busybox" || contains(&binary(), b"BusyBox v") {
        // A busybox copied over /sbin/init has an inittab too: it goes first.
        (Family::Busybox, None)
    } else if name == "init" && read_regular(root, b"etc/inittab").is_some() {
        (Family::Sysvinit, None)
    } else {
        (Family::Other, None)
    };
    let powerfail = family == Family::Sysvinit
        && read_regular(root, b"etc/inittab").is_some_and(|t| {
            has_powerfail(&t, |prog| {
                root.openat(prog.trim_start_matches('/').as_bytes(), OFlag::O_PATH, 0)
                    .is_ok()
            })
        });
    InitInfo {
        family,
        systemd_version,
        powerfail,
    }
}

/// The file name `rel` resolves to inside the root (symlinks followed, confined).
fn resolved_name(root: &Root, rel: &[u8]) -> Option<String> {
    let fd = root.openat(rel, OFlag::O_PATH, 0).ok()?;
    let p = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .ok()?;
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The first `READ_MAX` bytes of a regular file inside the root; None for anything else
/// (a FIFO planted there would block a plain read).
fn read_regular(root: &Root, rel: &[u8]) -> Option<Vec<u8>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd: OwnedFd = root.openat(rel, flags, 0).ok()?;
    let st = nix::sys::stat::fstat(fd.as_fd()).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(READ_MAX)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The leading number of `s` ("262" of "262.1-2", "219" of "219\n").
fn leading_number(s: &[u8]) -> Option<u32> {
    let digits: Vec<u8> = s
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// systemd's version from its binary: the library it links (`libsystemd-shared-262.so`,
/// since 231) or the version string it prints (`systemd 219`, older ones).
pub fn version_in_binary(bin: &[u8]) -> Option<u32> {
    for marker in [&b"libsystemd-shared-"[..], b"libsystemd-core-", b"systemd "] {
        let mut at = 0;
        while let Some(i) = find(&bin[at..], marker) {
            let after = &bin[at + i + marker.len()..];
            // Three digits and no more: "systemd 2019" or "systemd 5" are other text.
            if let Some(v) = leading_number(after).filter(|v| (100..1000).contains(v)) {
                if after.get(3).is_none_or(|c| !c.is_ascii_digit()) {
                    return Some(v);
                }
            }
            at += i + marker.len();
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The installed systemd's version in dpkg's database.
fn systemd_in_dpkg(root: &Root) -> Option<u32> {
    let status = read_regular(root, b"var/lib/dpkg/status")?;
    let text = String::from_utf8_lossy(&status);
    package_version(&text, "systemd")
}

/// The version of installed package `name` in a dpkg status file.
fn package_version(status: &str, name: &str) -> Option<u32> {
    status.split("\n\n").find_map(|para| {
        let field = |k: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        if field("Package:")? != name || !field("Status:")?.ends_with(" installed") {
            return None;
        }
        let v = field("Version:")?;
        // An epoch ("1:252") goes first.
        let v = v.split_once(':').map_or(v.as_str(), |(_, r)| r);
        leading_number(v.as_bytes())
    })
}

/// An uncommented inittab entry whose action SIGPWR triggers and whose program is
/// there (`exists`): Debian's stock inittab names /etc/init.d/powerfail, which no
/// package ships, so SIGPWR does nothing there.
fn has_powerfail(inittab: &[u8], exists: impl Fn(&str) -> bool) -> bool {
    String::from_utf8_lossy(inittab).lines().any(|l| {
        let l = l.trim();
        let mut f = l.splitn(4, ':');
        let (action, process) = (f.nth(2), f.next());
        !l.starts_with('#')
            && matches!(action, Some("powerfail" | "powerwait" | "powerfailnow"))
            && process
                .and_then(|p| p.trim_start_matches('+').split_whitespace().next())
                .is_some_and(&exists)
    })
}

/// The cgroup tree a start gives init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// cgroup2 only, at /sys/fs/cgroup.
    Unified,
    /// The v1 hierarchies, cgroup2 under `unified/`.
    Hybrid,
}

/// A view and why it was taken, for rlxc-info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub view: View,
    pub why: String,
}

impl Chosen {
    pub fn describe(&self) -> String {
        let v = match self.view {
            View::Unified => "unified",
            View::Hybrid => "hybrid",
        };
        format!("{v} ({})", self.why)
    }
}

/// The host's cgroup layout, as far as the choice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    PureV2,
    Hybrid,
    /// v1 only, no cgroup2 mounted.
    Legacy,
}

fn host_kind(l: &Layout) -> Host {
    if l.is_pure_v2() {
        Host::PureV2
    } else if l.hierarchies.iter().any(|h| h.v2) {
        Host::Hybrid
    } else {
        Host::Legacy
    }
}

/// Pick the view for `init` on a host with `layout`, as `wanted` asks; a view the host
/// cannot give, or an init that cannot run on the only one it has, is an error that
/// says what the host would need.
pub fn choose(wanted: CgroupLayout, layout: &Layout, init: &InitInfo) -> Result<Chosen> {
    let host = host_kind(layout);
    let v = init
        .systemd_version
        .filter(|_| init.family == Family::Systemd);
    let needs_v1 = v.is_some_and(|v| v < SYSTEMD_FIRST_UNIFIED);
    let needs_v2 = v.is_some_and(|v| v >= SYSTEMD_NEEDS_UNIFIED);
    let what = init.describe();
    let chosen = |view, why: String| Ok(Chosen { view, why });
    let no_v2 = || {
        Error::Other(format!(
            "this host mounts no cgroup2 hierarchy, and {}: mount cgroup2 (on \
             /sys/fs/cgroup/unified) or boot the host with systemd.unified_cgroup_hierarchy=1",
            if needs_v2 {
                format!("the container's init is {what}, which runs only on cgroup2")
            } else {
                "cgroup_layout = \"unified\" needs one".to_string()
            }
        ))
    };
    match (wanted, host) {
        (CgroupLayout::Hybrid, Host::PureV2) => Err(Error::Other(format!(
            "cgroup_layout = \"hybrid\" needs the cgroup v1 hierarchies, and this host mounts \
             only cgroup2{}: set cgroup_layout = \"auto\", or boot the host with \
             systemd.unified_cgroup_hierarchy=0",
            if needs_v1 {
                format!(" ({what} needs them)")
            } else {
                String::new()
            }
        ))),
        (CgroupLayout::Hybrid, _) => chosen(View::Hybrid, "cgroup_layout = \"hybrid\"".into()),
        (CgroupLayout::Unified, Host::Legacy) => Err(no_v2()),
        (CgroupLayout::Unified, _) => chosen(View::Unified, "cgroup_layout = \"unified\"".into()),
        (CgroupLayout::Auto, Host::PureV2) if needs_v1 => Err(Error::Other(format!(
            "the container's init is {what}, which needs cgroup v1 (systemd before \
             {SYSTEMD_FIRST_UNIFIED} cannot run on a pure cgroup2 tree), and this host mounts \
             only cgroup2: run it on a host booted with systemd.unified_cgroup_hierarchy=0 \
             (a hybrid layout), or give the container a newer systemd"
        ))),
        (CgroupLayout::Auto, Host::PureV2) => {
            chosen(View::Unified, "the host has only cgroup2".into())
        }
        (CgroupLayout::Auto, Host::Legacy) if needs_v2 => Err(no_v2()),
        (CgroupLayout::Auto, _) if needs_v2 => chosen(
            View::Unified,
            format!("{what} needs cgroup2 (systemd {SYSTEMD_NEEDS_UNIFIED} and newer)"),
        ),
        (CgroupLayout::Auto, _) => chosen(
            View::Hybrid,
            format!("{what} runs on the host's v1 hierarchies"),
        ),
    }
}

#[cfg(test)]
#[path = "initsys_tests.rs"]
mod tests;
