//! The container's first process, between clone and exec: it joins its cgroups, builds
//! its mount namespace inside the rootfs, pivots into it, sets hostname, console,
//! capabilities and seccomp while the monitor wires its network, then waits for the
//! monitor's go and execs init. Any failure is sent to the monitor as text over the sync
//! socket.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use crate::cgroup::{JoinFile, Layout};
use crate::error::{Error, IoContext, Result};
use crate::ipc::{self, FromChild, Stage, ToChild};
use crate::rootfs::Root;
use crate::store::backing::RootSource;
use crate::sys;

/// Everything the child needs, prepared by the monitor before clone.
pub struct ChildSpec {
    /// What becomes the root, from the backing store.
    pub root: RootSource,
    pub hostname: String,
    pub init: Vec<String>,
    pub env: Vec<String>,
    /// The console pty's slave, bound onto /dev/console.
    pub console: PathBuf,
    pub cgroups: Layout,
    pub mounts: Vec<crate::config::MountEntry>,
    /// A file holding this boot's id, bound over /proc/sys/kernel/random/boot_id so
    /// each start is a new boot for systemd and journald.
    pub boot_id: PathBuf,
    /// The AppArmor profile init runs under, where the host has AppArmor.
    pub apparmor: Option<String>,
    /// A network namespace of its own (not the host's, network type "none").
    pub own_net: bool,
}

/// ptys a container's devpts hands out (LXC's lxc.pty.max).
pub const PTY_MAX: u32 = 1024;

/// LXC's common.conf drops these: loading modules, raw I/O, the clock, MAC policy.
pub const CAPS_DROP: &[u32] = &[
    16, // sys_module
    17, // sys_rawio
    25, // sys_time
    32, // mac_override
    33, // mac_admin
];

/// Entry point in the cloned child: `join` are the cgroup files it writes "0" to (see
/// `cgroup::Entry::spawn`). Never returns on success (exec).
pub fn run(spec: &ChildSpec, join: &[JoinFile], sync: RawFd) -> isize {
    // The child's end of a socketpair the monitor keeps open until we exec or fail.
    let sync = sys::borrow_fd(sync);
    let err = match setup_and_exec(spec, join, sync) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let reason = crate::error::flatten(&err);
    let _ = ipc::send_packet(sync, &FromChild::Failed { reason });
    1
}

enum Never {}

fn setup_and_exec(spec: &ChildSpec, join: &[JoinFile], sync: BorrowedFd<'_>) -> Result<Never> {
    // Before the cgroup namespace is made: its root is the cgroup we are in.
    for f in join {
        f.join_self()?;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .ctx("unshare the cgroup namespace of", "the container")?;
    reached(sync, Stage::Namespaces)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx("make mounts private in", "/")?;
    let rootfs = mount_root(&spec.root)?;
    let root = Root::open(&rootfs)?;
    mount_proc(&root, &spec.boot_id, spec.own_net)?;
    mount_sys(&root, &spec.cgroups)?;
    mount_dev(&root, &spec.console)?;
    for m in &spec.mounts {
        mount_entry(&root, m)?;
    }
    pivot_into(&rootfs)?;
    nix::unistd::sethostname(&spec.hostname).ctx("set hostname", &spec.hostname)?;
    attach_console()?;
    if let Some(profile) = &spec.apparmor {
        crate::apparmor::confine_on_exec(profile)?;
    }
    sys::drop_bounding_caps(CAPS_DROP).map_err(|e| Error::io("drop capabilities of", "init", e))?;
    sys::seccomp::install().map_err(|e| Error::io("install the seccomp filter for", "init", e))?;
    sys::mark_fds_cloexec_from(3);
    // The network is in place once the monitor says go.
    wait_for(sync, Stage::Network)?;
    exec_init(spec)
}

/// Tell the monitor this side's part up to `stage` is done.
fn reached(sync: BorrowedFd<'_>, stage: Stage) -> Result<()> {
    ipc::send_packet(sync, &FromChild::Reached { stage })
        .map_err(|e| Error::Other(format!("cannot tell the monitor: {e}")))
}

/// Wait for the monitor's part up to `stage`.
fn wait_for(sync: BorrowedFd<'_>, stage: Stage) -> Result<()> {
    match ipc::recv_packet::<ToChild>(sync, true) {
        Ok(Some(ToChild::Reached { stage: s })) if s == stage => Ok(()),
        Ok(Some(other)) => Err(Error::Other(format!(
            "the monitor sent {other:?} where {stage:?} was due"
        ))),
        Ok(None) | Err(_) => Err(Error::Other(
            "the monitor went away before the start".into(),
        )),
    }
}

/// Mount what the backing store says is the root, where the child can pivot into it.
fn mount_root(source: &RootSource) -> Result<PathBuf> {
    match source {
        RootSource::Bind(dir) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx("bind-mount", dir)?;
            Ok(dir.clone())
        }
        RootSource::Overlay { at, .. } => {
            // In this mount namespace only: a tmpfs upper dies with it.
            let (lowers, upper, work) = source.overlay_layers_for_run()?;
            let layers = sys::mount::OverlayLayers {
                lowers: &lowers,
                upper: &upper,
                work: &work,
            };
            let mnt = sys::mount::overlay(&layers).ctx("mount an overlay on", at)?;
            sys::mount::move_mount_to(mnt.as_fd(), at).ctx("mount the overlay on", at)?;
            Ok(at.clone())
        }
    }
}

/// Open (creating if missing) a directory inside the root, resolved confined, and
/// return a path the kernel resolves to exactly that directory.
fn target(root: &Root, rel: &str, dir: bool) -> Result<(OwnedFd, String)> {
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

use std::os::unix::ffi::OsStrExt;

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
fn mount_proc(root: &Root, boot_id: &std::path::Path, own_net: bool) -> Result<()> {
    let fl = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(Some("proc"), root, "proc", Some("proc"), fl, None)?;
    bind_ro(root, "proc/sys", true)?;
    if own_net {
        // Writable under the read-only /proc/sys.
        rebind(root, "proc/sys/net", true, fl)?;
    }
    let (_fd, t) = target(root, "proc/sys/kernel/random/boot_id", false)?;
    mount(
        Some(boot_id),
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx("bind the boot id onto", "/proc/sys/kernel/random/boot_id")?;
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

/// /sys read-only, and under it a cgroup view: v1 controllers read-only (the container
/// must not raise its own limits), name=systemd and cgroup2 writable for systemd. The
/// cgroup namespace makes the container's own cgroup the root of each.
fn mount_sys(root: &Root, layout: &Layout) -> Result<()> {
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(Some("sysfs"), root, "sys", Some("sysfs"), ro, None)?;
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if layout.is_pure_v2() {
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
        let Some(dirname) = h
            .mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
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
        let Some(dirname) = h
            .mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
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

/// /dev as a tmpfs with the standard nodes, a private devpts, /dev/shm, /dev/mqueue and
/// /dev/console bound to the monitor's pty.
fn mount_dev(root: &Root, console: &std::path::Path) -> Result<()> {
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
    let res = make_dev_nodes(dev.as_fd());
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
            "newinstance,ptmxmode=0666,mode=0620,gid=5,max={PTY_MAX}"
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
    let (_fd, t) = target(root, "dev/console", false)?;
    mount(
        Some(console),
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx("bind the console onto", "/dev/console")
}

fn make_dev_nodes(dev: BorrowedFd<'_>) -> Result<()> {
    use nix::sys::stat::{makedev, mknodat, SFlag};
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknodat(
            dev,
            name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .ctx("create device node", format!("/dev/{name}"))?;
    }
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

/// A configured mount: source on the host (bind) or a file system, target inside.
fn mount_entry(root: &Root, m: &crate::config::MountEntry) -> Result<()> {
    let opts = m.options.clone().unwrap_or_default();
    let optional = opts.split(',').any(|o| o == "optional");
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "optional" | "defaults" | "create=dir" | "create=file" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other.to_string()),
        }
    }
    let is_file = opts.contains("create=file") || std::path::Path::new(&m.source).is_file();
    let fstype = m.fstype.as_deref().filter(|f| *f != "none");
    let what = format!("{} on {}", m.source, m.target);
    let res = (|| {
        // The kernel says only EINVAL or ENOENT for these: name the entry instead.
        if flags.contains(MsFlags::MS_BIND) && !std::path::Path::new(&m.source).exists() {
            return Err(Error::Other(format!(
                "mount {what}: the source {} does not exist on the host (fix this [[mount]] \
                 entry, or add \"optional\" to its options)",
                m.source
            )));
        }
        if !flags.contains(MsFlags::MS_BIND) && fstype.is_none() {
            return Err(Error::Other(format!(
                "mount {what}: neither an fstype nor the bind option is given \
                 (set fstype, or options = \"bind\")"
            )));
        }
        let (_fd, t) = target(root, &m.target, !is_file)?;
        let data = (!data.is_empty()).then(|| data.join(","));
        mount(
            Some(m.source.as_str()),
            t.as_str(),
            fstype,
            flags,
            data.as_deref(),
        )
        .ctx("mount", &what)?;
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
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
    })();
    match res {
        Err(_) if optional => Ok(()),
        r => r,
    }
}

/// pivot_root(".", ".") then detach the old root stacked underneath.
fn pivot_into(rootfs: &std::path::Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx("enter", rootfs)?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root into", rootfs)?;
    umount2(".", MntFlags::MNT_DETACH).ctx("detach the host root from", rootfs)?;
    nix::unistd::chdir("/").ctx("enter", "/")
}

/// A new session with /dev/console as controlling terminal and stdio.
fn attach_console() -> Result<()> {
    nix::unistd::setsid().ctx("start a session for", "init")?;
    let fd = nix::fcntl::open(
        "/dev/console",
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .ctx("open", "/dev/console")?;
    sys::set_controlling_tty(fd.as_fd())
        .map_err(|e| Error::io("take as controlling terminal", "/dev/console", e))?;
    for target in 0..3 {
        sys::dup_onto(fd.as_fd(), target)
            .map_err(|e| Error::io("attach stdio to", "/dev/console", e))?;
    }
    Ok(())
}

fn exec_init(spec: &ChildSpec) -> Result<Never> {
    let argv: Vec<CString> = spec
        .init
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other("init command contains a NUL byte".into()))?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .filter_map(|e| CString::new(e.as_bytes()).ok())
        .collect();
    let prog = argv
        .first()
        .ok_or_else(|| Error::Other("init command is empty".into()))?;
    // The monitor blocks the signals it waits for; init must not inherit that mask
    // (busybox init would pass SIGTERM/SIGHUP blocked on to every process it starts).
    nix::sys::signal::SigSet::all()
        .thread_unblock()
        .ctx("unblock signals for", "init")?;
    // Nor the ignored SIGPIPE of the Rust runtime (ignored dispositions survive exec).
    crate::sys::default_sigpipe();
    match nix::unistd::execve(prog, &argv, &env) {
        Ok(i) => match i {},
        Err(e) => Err(Error::io("execute init", spec.init[0].clone(), e.into())),
    }
}
