//! The child's mounts inside the container's root: /proc, /sys with its cgroup view,
//! /dev, and the configured `[[mount]]` entries. Host files bound in come by path (a
//! privileged child reaches every path) or as detached mounts the monitor made (an
//! unprivileged child's root cannot reach the host's paths, nor make device nodes).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use super::PTY_MAX;
use crate::cgroup::Layout;
use crate::error::{Error, IoContext, Result};
use crate::rootfs::Root;
use crate::sys;

/// A host file or tree bound into the container.
pub enum HostBind {
    /// Bound by path (privileged: the child can reach it).
    Path(PathBuf),
    /// A detached mount the monitor made of it, moved into place.
    Detached(OwnedFd),
}

/// The standard character devices of /dev: name, major, minor.
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// How /dev gets its nodes.
pub enum DevNodes<'a> {
    /// mknod (privileged).
    Make,
    /// The host's nodes, bound in (a user namespace may not make device nodes; LXC
    /// binds them too): each of `DEVICES` by name.
    Bind(&'a [(&'static str, OwnedFd)]),
}

/// Bind `src` onto `rel` inside the root (a directory, or a file when `dir` is false).
pub(super) fn bind_host(root: &Root, rel: &str, src: &HostBind, dir: bool) -> Result<()> {
    let (fd, t) = target(root, rel, dir)?;
    let shown = root.display(rel.as_bytes());
    match src {
        HostBind::Path(p) => mount(
            Some(p.as_path()),
            t.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx("bind a host file onto", shown),
        HostBind::Detached(m) => {
            sys::mount::move_mount_onto(m.as_fd(), fd.as_fd()).ctx("bind a host file onto", shown)
        }
    }
}

/// Open (creating if missing) a directory inside the root, resolved confined, and
/// return a path the kernel resolves to exactly that directory.
pub(super) fn target(root: &Root, rel: &str, dir: bool) -> Result<(OwnedFd, String)> {
    let comps = crate::rootfs::components(rel.as_bytes(), "mount target")?;
    let fd = if dir {
        root.dir(&comps)?
    } else {
        let (leaf, parent) = comps
            .split_last()
            .ok_or_else(|| Error::Other(format!("mount target {rel:?} is the root")))?;
        let pfd = root.dir(parent)?;
        let _ = nix::fcntl::openat(
            pfd.as_fd(),
            std::ffi::OsStr::from_bytes(leaf),
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        );
        root.openat(
            &crate::rootfs::join(&comps),
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            0,
        )
        .ctx("open mount target", root.display(rel.as_bytes()))?
    };
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok((fd, p))
}

fn mnt(
    src: Option<&str>,
    rel_root: &Root,
    rel: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let (_fd, t) = target(rel_root, rel, true)?;
    mount(src, t.as_str(), fstype, flags, data).ctx("mount", rel_root.display(rel.as_bytes()))
}

fn bind_ro(root: &Root, rel: &str, dir: bool) -> Result<()> {
    let fl = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    rebind(root, rel, dir, fl)
}

/// Bind `rel` onto itself, then remount that bind with `flags` (read-only, or writable
/// under a read-only parent).
fn rebind(root: &Root, rel: &str, dir: bool, flags: MsFlags) -> Result<()> {
    let (_fd, t) = target(root, rel, dir)?;
    mount(
        Some(t.as_str()),
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx("bind", root.display(rel.as_bytes()))?;
    // The old handle points below the new mount: reopen to reach the bind itself.
    let (_fd, t) = target(root, rel, dir)?;
    mount(
        None::<&str>,
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .ctx("remount", root.display(rel.as_bytes()))
}

/// /proc, with /proc/sys and /proc/sysrq-trigger read-only but /proc/sys/net writable
/// when the network namespace is the container's own (LXC's proc:mixed); with the
/// host's network (type "none") it stays read-only: those knobs are the host's.
pub(super) fn mount_proc(root: &Root, boot_id: &HostBind, own_net: bool) -> Result<()> {
    let fl = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(Some("proc"), root, "proc", Some("proc"), fl, None)?;
    bind_ro(root, "proc/sys", true)?;
    if own_net {
        // Writable under the read-only /proc/sys.
        rebind(root, "proc/sys/net", true, fl)?;
    }
    bind_host(root, "proc/sys/kernel/random/boot_id", boot_id, false)?;
    let (_fd, t) = target(root, "proc/sys/kernel/random/boot_id", false)?;
    mount(
        None::<&str>,
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | fl,
        None::<&str>,
    )
    .ctx("make read-only", "/proc/sys/kernel/random/boot_id")?;
    // Kernels without CONFIG_MAGIC_SYSRQ have no sysrq-trigger to protect.
    if root.openat(b"proc/sysrq-trigger", OFlag::O_PATH, 0).is_ok() {
        bind_ro(root, "proc/sysrq-trigger", false)?;
    }
    Ok(())
}

/// lxcfs's views over /proc's and /sys's files (after both are mounted).
pub(super) fn bind_lxcfs(root: &Root, views: &[(&'static str, HostBind)]) -> Result<()> {
    for (rel, src) in views {
        bind_host(root, rel, src, false).map_err(|e| {
            Error::Other(format!(
                "cannot bind lxcfs's view onto /{rel} ({e}); is the host's lxcfs \
                 working? (stop it and containers start without its views)"
            ))
        })?;
    }
    Ok(())
}

/// /sys read-only, and under it a cgroup view: `unified`, cgroup2 alone (on a hybrid
/// host too: systemd 258 and newer run on nothing else, as under LXC, which leaves the
/// mount to them there); else the v1 controllers read-only (the container must not
/// raise its own limits), name=systemd and cgroup2 writable for systemd. The cgroup
/// namespace makes the container's own cgroup the root of each; init is in its v1
/// cgroups too, so their limits hold either way. `fresh_sysfs` false: the host's /sys
/// is bound read-only instead (a user namespace may mount sysfs only for a network
/// namespace it owns, and with the host's network it owns none).
pub(super) fn mount_sys(
    root: &Root,
    layout: &Layout,
    unified: bool,
    fresh_sysfs: bool,
) -> Result<()> {
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if fresh_sysfs {
        mnt(Some("sysfs"), root, "sys", Some("sysfs"), ro, None)?;
    } else {
        let (_fd, t) = target(root, "sys", true)?;
        let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(Some("/sys"), t.as_str(), None::<&str>, rbind, None::<&str>)
            .ctx("bind the host's /sys onto", root.display(b"sys"))?;
        let (_fd, t) = target(root, "sys", true)?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ro;
        mount(None::<&str>, t.as_str(), None::<&str>, flags, None::<&str>)
            .ctx("make read-only", root.display(b"sys"))?;
    }
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if unified || layout.is_pure_v2() {
        return mnt(
            Some("cgroup2"),
            root,
            "sys/fs/cgroup",
            Some("cgroup2"),
            base,
            None,
        );
    }
    mnt(
        Some("tmpfs"),
        root,
        "sys/fs/cgroup",
        Some("tmpfs"),
        base,
        Some("mode=755,size=64k"),
    )?;
    for h in &layout.hierarchies {
        let Some(dirname) = dirname(h) else {
            continue;
        };
        let rel = format!("sys/fs/cgroup/{dirname}");
        if h.v2 {
            mnt(Some("cgroup2"), root, &rel, Some("cgroup2"), base, None)?;
        } else {
            let writable = h.has("name=systemd");
            let flags = if writable {
                base
            } else {
                base | MsFlags::MS_RDONLY
            };
            mnt(
                Some("cgroup"),
                root,
                &rel,
                Some("cgroup"),
                flags,
                Some(&h.controllers.join(",")),
            )?;
        }
    }
    // Combined hierarchies are reached by each controller's name too (cpu -> cpu,cpuacct).
    for h in layout
        .hierarchies
        .iter()
        .filter(|h| !h.v2 && h.controllers.len() > 1)
    {
        let Some(dirname) = dirname(h) else {
            continue;
        };
        let (dir, _) = target(root, "sys/fs/cgroup", true)?;
        for c in h.controllers.iter().filter(|c| !c.contains('=')) {
            // Only where no hierarchy of that name exists already.
            let _ = nix::unistd::symlinkat(dirname.as_str(), dir.as_fd(), c.as_str());
        }
    }
    let (_fd, t) = target(root, "sys/fs/cgroup", true)?;
    mount(
        None::<&str>,
        t.as_str(),
        None::<&str>,
        MsFlags::MS_REMOUNT | base | MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .ctx("make read-only", "/sys/fs/cgroup")
}

/// The name of hierarchy `h`'s directory under /sys/fs/cgroup.
fn dirname(h: &crate::cgroup::Hierarchy) -> Option<String> {
    h.mountpoint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// /dev as a tmpfs with the standard nodes, a private devpts, /dev/shm, /dev/mqueue and
/// /dev/console bound to the monitor's pty. `tty_gid`: devpts' group for new ptys (the
/// container's tty group, 5, where it is mapped); `ttys`: how many of its ptys the
/// container's ttys take, on top of the `PTY_MAX` it may open (as LXC counts).
pub(super) fn mount_dev(
    root: &Root,
    console: &HostBind,
    nodes: DevNodes<'_>,
    tty_gid: Option<u32>,
    ttys: u32,
) -> Result<()> {
    mnt(
        Some("tmpfs"),
        root,
        "dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    let (dev, _) = target(root, "dev", true)?;
    let dev = nix::fcntl::openat(
        dev.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", "/dev")?;
    let old = sys::umask(0);
    let res = match nodes {
        DevNodes::Make => make_dev_nodes(dev.as_fd()),
        DevNodes::Bind(nodes) => bind_dev_nodes(root, nodes),
    }
    .and_then(|_| dev_links(dev.as_fd()));
    sys::umask(old);
    res?;
    // max=: ptys come from one host-wide pool (kernel.pty.max); without a cap one
    // container can take them all and no other (nor the host's sshd) gets a terminal.
    mnt(
        Some("devpts"),
        root,
        "dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&format!(
            "newinstance,ptmxmode=0666,mode=0620{},max={}",
            tty_gid.map(|g| format!(",gid={g}")).unwrap_or_default(),
            PTY_MAX + ttys
        )),
    )?;
    mnt(
        Some("tmpfs"),
        root,
        "dev/shm",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mnt(
        Some("mqueue"),
        root,
        "dev/mqueue",
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    bind_host(root, "dev/console", console, false)
}

fn make_dev_nodes(dev: BorrowedFd<'_>) -> Result<()> {
    use nix::sys::stat::{makedev, mknodat, SFlag};
    for &(name, major, minor) in DEVICES {
        mknodat(
            dev,
            name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .ctx("create device node", format!("/dev/{name}"))?;
    }
    Ok(())
}

fn bind_dev_nodes(root: &Root, nodes: &[(&'static str, OwnedFd)]) -> Result<()> {
    for (name, fd) in nodes {
        let node = HostBind::Detached(fd.try_clone().ctx("bind", format!("/dev/{name}"))?);
        bind_host(root, &format!("dev/{name}"), &node, false)?;
    }
    Ok(())
}

fn dev_links(dev: BorrowedFd<'_>) -> Result<()> {
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        nix::unistd::symlinkat(target, dev, name).ctx("create symlink", format!("/dev/{name}"))?;
    }
    Ok(())
}

/// A `[[mount]]` entry's options, parsed.
struct EntryOptions {
    flags: MsFlags,
    data: Vec<String>,
    optional: bool,
}

impl EntryOptions {
    fn parse(m: &crate::config::MountEntry) -> Self {
        let opts = m.options.clone().unwrap_or_default();
        let mut e = EntryOptions {
            flags: MsFlags::empty(),
            data: Vec::new(),
            optional: false,
        };
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "bind" => e.flags |= MsFlags::MS_BIND,
                "rbind" => e.flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "ro" => e.flags |= MsFlags::MS_RDONLY,
                "optional" => e.optional = true,
                "rw" | "defaults" | "create=dir" | "create=file" => {}
                "nosuid" => e.flags |= MsFlags::MS_NOSUID,
                "nodev" => e.flags |= MsFlags::MS_NODEV,
                "noexec" => e.flags |= MsFlags::MS_NOEXEC,
                other => e.data.push(other.to_string()),
            }
        }
        e
    }

    fn bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// What the monitor made of a `[[mount]]` entry for an unprivileged child.
pub enum Detached {
    /// The bind, a detached mount to move in place.
    Bind(OwnedFd),
    /// The bind's source is missing, and the entry optional.
    Missing,
    /// A file system mount: the child makes it.
    NotABind,
}

fn what(m: &crate::config::MountEntry) -> String {
    format!("{} on {}", m.source, m.target)
}

/// The bind source of `m` must exist on the host: the kernel says only EINVAL or ENOENT
/// for that, so the entry is named instead.
fn bind_source_exists(m: &crate::config::MountEntry) -> Result<()> {
    if std::path::Path::new(&m.source).exists() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "mount {}: the source {} does not exist on the host (fix this [[mount]] entry, or \
         add \"optional\" to its options)",
        what(m),
        m.source
    )))
}

/// In the monitor, for an unprivileged container: the bind of entry `m` as a detached
/// mount of its host source with its flags set (the container's root cannot reach host
/// paths).
pub fn detach_entry(m: &crate::config::MountEntry) -> Result<Detached> {
    let opts = EntryOptions::parse(m);
    if !opts.bind() {
        return Ok(Detached::NotABind);
    }
    let made = (|| {
        bind_source_exists(m)?;
        let recursive = opts.flags.contains(MsFlags::MS_REC);
        let src = std::path::Path::new(&m.source);
        let fd = sys::mount::clone_tree(src, recursive).ctx("bind", what(m))?;
        let attrs = sys::mount::Attributes {
            read_only: opts.flags.contains(MsFlags::MS_RDONLY),
            nosuid: opts.flags.contains(MsFlags::MS_NOSUID),
            nodev: opts.flags.contains(MsFlags::MS_NODEV),
            noexec: opts.flags.contains(MsFlags::MS_NOEXEC),
        };
        sys::mount::set_attributes(fd.as_fd(), attrs, recursive)
            .ctx("set the flags of", what(m))?;
        Ok(fd)
    })();
    match made {
        Ok(fd) => Ok(Detached::Bind(fd)),
        Err(_) if opts.optional => Ok(Detached::Missing),
        Err(e) => Err(e),
    }
}

/// A configured mount: source on the host (bind) or a file system, target inside.
/// `prepared`: what the monitor made of it (unprivileged); None: made here.
pub(super) fn mount_entry(
    root: &Root,
    m: &crate::config::MountEntry,
    prepared: Option<&Detached>,
) -> Result<()> {
    let opts = EntryOptions::parse(m);
    let res = match prepared {
        Some(Detached::Bind(fd)) => attach_entry(root, m, fd),
        Some(Detached::Missing) => return Ok(()),
        Some(Detached::NotABind) | None => mount_entry_here(root, m, &opts),
    };
    match res {
        Err(_) if opts.optional => Ok(()),
        r => r,
    }
}

/// Move the monitor's detached bind of `m` onto its target.
fn attach_entry(root: &Root, m: &crate::config::MountEntry, fd: &OwnedFd) -> Result<()> {
    let st = nix::sys::stat::fstat(fd.as_fd()).ctx("inspect the source of", what(m))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let (target_fd, _) = target(root, &m.target, is_dir)?;
    sys::mount::move_mount_onto(fd.as_fd(), target_fd.as_fd()).ctx("mount", what(m))
}

fn mount_entry_here(root: &Root, m: &crate::config::MountEntry, opts: &EntryOptions) -> Result<()> {
    let flags = opts.flags;
    let raw = m.options.as_deref().unwrap_or_default();
    let is_file = raw.contains("create=file") || std::path::Path::new(&m.source).is_file();
    let fstype = m.fstype.as_deref().filter(|f| *f != "none");
    let what = what(m);
    if opts.bind() {
        bind_source_exists(m)?;
    }
    if !opts.bind() && fstype.is_none() {
        return Err(Error::Other(format!(
            "mount {what}: neither an fstype nor the bind option is given \
             (set fstype, or options = \"bind\")"
        )));
    }
    let (_fd, t) = target(root, &m.target, !is_file)?;
    let data = (!opts.data.is_empty()).then(|| opts.data.join(","));
    mount(
        Some(m.source.as_str()),
        t.as_str(),
        fstype,
        flags,
        data.as_deref(),
    )
    .ctx("mount", &what)?;
    if opts.bind() && flags.contains(MsFlags::MS_RDONLY) {
        let (_fd, t) = target(root, &m.target, !is_file)?;
        mount(
            None::<&str>,
            t.as_str(),
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .ctx("make read-only", &m.target)?;
    }
    Ok(())
}
