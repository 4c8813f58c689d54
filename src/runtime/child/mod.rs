//! The container's first process, between clone and exec: it joins its cgroups, builds
//! its mount namespace inside the rootfs, pivots into it, sets hostname, console,
//! capabilities and seccomp while the monitor wires its network, then waits for the
//! monitor's go and execs init. Any failure is sent to the monitor as text over the sync
//! socket. An unprivileged container's child is in a user namespace of its own too: it
//! waits for the monitor to map its ids and hand it its root (`userns`).

mod app;
mod mounts;
mod ttys;
mod userns;

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
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
pub use app::forwarded;
use mounts::DevNodes;
pub use mounts::{detach_entry, Detached, HostBind, DEVICES};

/// Everything the child needs, prepared by the monitor before clone.
pub struct ChildSpec {
    /// What becomes the root, from the backing store.
    pub root: RootSource,
    pub hostname: String,
    pub init: Vec<String>,
    pub env: Vec<String>,
    /// The console pty's slave, bound onto /dev/console.
    pub console: HostBind,
    /// How many /dev/ttyN to make (`tty_max`).
    pub ttys: u32,
    pub cgroups: Layout,
    /// Only the container's cgroup2 directory at /sys/fs/cgroup (not the v1 hierarchies).
    pub unified: bool,
    pub mounts: Vec<crate::config::MountEntry>,
    /// A file holding this boot's id, bound over /proc/sys/kernel/random/boot_id so
    /// each start is a new boot for systemd and journald.
    pub boot_id: HostBind,
    /// The AppArmor profile init runs under, where the host has AppArmor.
    pub apparmor: Option<String>,
    /// A network namespace of its own (not the host's, network type "none").
    pub own_net: bool,
    /// An unprivileged container's (a user namespace of its own): what the monitor
    /// prepared for it. None: privileged.
    pub userns: Option<Userns>,
    /// rlxc-execute's or an application container's: `init` is the command, run under
    /// rlxc's own init. None: exec init.
    pub app: Option<AppSpec>,
    /// lxcfs's views (see `runtime::lxcfs`): the path inside each is bound over.
    pub lxcfs: Vec<(&'static str, HostBind)>,
    /// rlxc-execute's: the sealed copies its init is executed from.
    pub sealed_init: Option<super::sealed::SealedInit>,
}

/// How the application runs under rlxc's init.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub stdio: AppStdio,
    /// Its working directory (default `/`).
    pub cwd: Option<String>,
    /// Its ids (default root).
    pub user: Option<crate::config::AppUser>,
    /// The signal a stop sends (forwarded to it, as SIGPWR is, as SIGTERM when None).
    pub stop: Option<i32>,
}

/// The stdio of rlxc-execute's command.
#[derive(Debug, Clone, Copy)]
pub enum AppStdio {
    /// The console pty (rlxc-execute on a terminal relays it).
    Console,
    /// rlxc-execute's own stdin, stdout and stderr, at these numbers in the monitor.
    Fds([RawFd; 3]),
}

/// What the monitor prepares for an unprivileged container's child, whose root cannot
/// reach the host's paths nor make device nodes.
pub struct Userns {
    /// The host's nodes of `DEVICES`, as detached mounts, by name.
    pub devices: Vec<(&'static str, OwnedFd)>,
    /// Each `[[mount]]` entry's bind, in the order of `ChildSpec::mounts`.
    pub mounts: Vec<Detached>,
    /// How many ids are mapped.
    pub count: u32,
}

/// ptys a container's processes may open in its devpts (LXC's lxc.pty.max), besides
/// those of its ttys.
pub const PTY_MAX: u32 = 1024;

/// The `tty` group of distributions: new ptys' group.
pub const TTY_GID: u32 = 5;

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
    let root = match &spec.userns {
        None => Root::open(&mount_root(&spec.root)?)?,
        Some(_) => userns::enter_root(&spec.root, sync)?,
    };
    mounts::mount_proc(&root, &spec.boot_id, spec.own_net)?;
    // A user namespace may mount sysfs only for a network namespace it owns.
    let fresh_sysfs = spec.own_net || spec.userns.is_none();
    mounts::mount_sys(&root, &spec.cgroups, spec.unified, fresh_sysfs)?;
    let (nodes, tty_gid) = match &spec.userns {
        None => (DevNodes::Make, Some(TTY_GID)),
        Some(u) => (
            DevNodes::Bind(&u.devices),
            (u.count > TTY_GID).then_some(TTY_GID),
        ),
    };
    mounts::bind_lxcfs(&root, &spec.lxcfs)?;
    mounts::mount_dev(&root, &spec.console, nodes, tty_gid, spec.ttys)?;
    let ttys = ttys::make(&root, spec.ttys)?;
    send_ttys(sync, &ttys)?;
    for (i, m) in spec.mounts.iter().enumerate() {
        let prepared = spec.userns.as_ref().and_then(|u| u.mounts.get(i));
        mounts::mount_entry(&root, m, prepared)?;
    }
    pivot_into(&root)?;
    nix::unistd::sethostname(&spec.hostname).ctx("set hostname", &spec.hostname)?;
    // A user namespace's root may not take a terminal that is another session's
    // (stealing it needs CAP_SYS_ADMIN on the host): an unprivileged init leaves the
    // console free for the getty that takes it, as LXC's does.
    attach_console(spec.userns.is_none())?;
    if let Some(AppStdio::Fds(fds)) = spec.app.as_ref().map(|a| a.stdio) {
        for (n, fd) in fds.into_iter().enumerate() {
            sys::dup_onto(sys::borrow_fd(fd), n as RawFd)
                .map_err(|e| Error::io("pass on", "rlxc-execute's stdio", e))?;
        }
    }
    if let Some(profile) = &spec.apparmor {
        crate::apparmor::confine_on_exec(profile)?;
    }
    sys::drop_bounding_caps(CAPS_DROP).map_err(|e| Error::io("drop capabilities of", "init", e))?;
    sys::seccomp::install(sys::seccomp::NewMountApi::for_userns(spec.userns.is_some()))
        .map_err(|e| Error::io("install the seccomp filter for", "init", e))?;
    sys::mark_fds_cloexec_from(3);
    // The monitor makes `[[device]]` nodes in this root, then says go once the network
    // is in place too.
    reached(sync, Stage::Root)?;
    wait_for(sync, Stage::Network)?;
    if let Some(a) = &spec.app {
        let argv = c_strings(&spec.init)?;
        let env = c_strings(&spec.env)?;
        let init = spec.sealed_init.as_ref().ok_or_else(|| {
            Error::Other("rlxc-execute's init has no sealed copy to run from".into())
        })?;
        drop(ttys);
        match init.exec(sync, &argv, &env, a)? {}
    }
    exec_init(spec, ttys.env())
}

/// Both ends of each tty to the monitor; the child's copies close at exec.
fn send_ttys(sync: BorrowedFd<'_>, ttys: &ttys::Ttys) -> Result<()> {
    let fds: Vec<BorrowedFd<'_>> = ttys
        .ends
        .iter()
        .flat_map(|(m, s)| [m.as_fd(), s.as_fd()])
        .collect();
    let msg = FromChild::Reached { stage: Stage::Ttys };
    ipc::send_packet_with_fds(sync, &msg, &fds)
        .map_err(|e| Error::Other(format!("cannot hand the ttys to the monitor: {e}")))
}

/// rlxc-execute's init (in the process `sealed::SealedInit::exec` started).
pub fn app_init(argv: &[CString], env: &[CString], app: &AppSpec) -> ! {
    app::run(argv, env, app)
}

fn c_strings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other(format!("{v:?} contains a NUL byte")))
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

/// pivot_root(".", ".") then detach the old root stacked underneath.
fn pivot_into(root: &Root) -> Result<()> {
    let rootfs = root.display(b"");
    nix::unistd::fchdir(root.as_fd()).ctx("enter", &rootfs)?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root into", &rootfs)?;
    umount2(".", MntFlags::MNT_DETACH).ctx("detach the host root from", &rootfs)?;
    nix::unistd::chdir("/").ctx("enter", "/")
}

/// A new session with /dev/console as stdio, and as controlling terminal if `ctty`.
fn attach_console(ctty: bool) -> Result<()> {
    nix::unistd::setsid().ctx("start a session for", "init")?;
    let fd = nix::fcntl::open(
        "/dev/console",
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .ctx("open", "/dev/console")?;
    if ctty {
        sys::set_controlling_tty(fd.as_fd())
            .map_err(|e| Error::io("take as controlling terminal", "/dev/console", e))?;
    }
    for target in 0..3 {
        sys::dup_onto(fd.as_fd(), target)
            .map_err(|e| Error::io("attach stdio to", "/dev/console", e))?;
    }
    Ok(())
}

fn exec_init(spec: &ChildSpec, extra_env: Option<String>) -> Result<Never> {
    let argv: Vec<CString> = spec
        .init
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other("init command contains a NUL byte".into()))?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .chain(extra_env.as_ref())
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
