//! rlxc-attach: run a command inside a running container: its cgroup, all of its
//! namespaces, its root, with the same capability bounding set and seccomp filter
//! as init. The environment is a known set unless asked to keep the caller's or to
//! clear it (LXC's --keep-env and --clear-env); the command runs as the container's root
//! unless given ids (-u/-g), in `/` unless given a directory.
//!
//! Nothing of the caller's crosses into the container but the relay. When this side is
//! a terminal the command gets a new pty from the container's own devpts (as lxc-attach
//! does), so what it does to its terminal (TIOCSTI keystrokes, job control) reaches
//! that pty, never the sysadmin's; otherwise it gets pipes. Either way it runs in a new
//! session and every other descriptor is closed before exec.

mod relay;

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::cgroup::{Entry, JoinFile};
use crate::error::{Error, IoContext, Result};

pub struct Options {
    pub cmd: Vec<String>,
    pub env: EnvPolicy,
    /// `VAR=VALUE` entries set last, over whatever the policy gave.
    pub set_env: Vec<String>,
    /// The command's user and group ids inside the container; None: root's (0), as
    /// init's. Supplementary groups are always dropped (lxc-attach does too).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The command's working directory inside the container; None: `/`.
    pub cwd: Option<String>,
}

/// Which environment the command starts from (before `Options::set_env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPolicy {
    /// A known set: PATH, TERM, HOME and container=lxc.
    Clean,
    /// The caller's own, and container=lxc.
    Keep,
    /// container=lxc alone, and these of the caller's variables (--keep-var).
    Clear { keep: Vec<String> },
}

/// In the order they are entered: the user namespace first (an unprivileged
/// container's owns the others, and entering them takes its capabilities).
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// The command's end of its stdio.
enum ChildStdio {
    /// A pty opened inside the container, sized like this side's terminal.
    Pty { winsize: Option<(u16, u16)> },
    /// Pipe ends that become its fds 0, 1 and 2.
    Pipes([OwnedFd; 3]),
}

/// Run `opts.cmd` in the container whose init is `init`; returns its exit code.
pub fn run(init: i32, opts: &Options) -> Result<i32> {
    let ns = open_namespaces(init)?;
    let cgroups = init_cgroups(init)?;
    let cmd = Payload::of(opts)?;
    let (ours, theirs) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .ctx("create", "the attach socket")?;
    // Held to what init is held to.
    let apparmor = crate::apparmor::profile_of(init);
    let terminal = relay::terminal();
    let (stdio, relay_ends) = match terminal {
        Some(tty) => (
            ChildStdio::Pty {
                winsize: crate::sys::get_winsize(tty),
            },
            None,
        ),
        None => {
            let (theirs, ours) = relay::pipes()?;
            (ChildStdio::Pipes(theirs), Some(ours))
        }
    };
    // The first child joins init's cgroups, then its namespaces, and forks the command.
    let child = |join: &[JoinFile]| -> isize {
        match enter_and_exec(join, &ns, &cmd, &stdio, theirs.as_fd(), apparmor.as_deref()) {
            Ok(code) => code as isize,
            Err(e) => {
                eprintln!("rlxc-attach: error: {e}");
                126
            }
        }
    };
    // Born in init's cgroup2 directory, as init was.
    let (pid, _) = cgroups.spawn(CloneFlags::empty(), child)?;
    drop((theirs, stdio));
    relay::run(pid, ours, relay_ends)
}

/// init's namespaces, opened; one the container shares with the host (network type
/// "none", the user namespace of a privileged container) is left out.
fn open_namespaces(init: i32) -> Result<Vec<(OwnedFd, CloneFlags)>> {
    let mut ns = Vec::new();
    for (name, flag) in NAMESPACES {
        let p = format!("/proc/{init}/ns/{name}");
        if std::fs::read_link(&p).ok() == std::fs::read_link(format!("/proc/self/ns/{name}")).ok() {
            continue;
        }
        let fd = nix::fcntl::open(
            p.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open", &p)?;
        ns.push((fd, *flag));
    }
    Ok(ns)
}

fn wait_code(pid: nix::unistd::Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("wait for", "the attached command", e.into())),
        }
    }
}

/// init's cgroup in every hierarchy (host paths), opened for joining.
fn init_cgroups(init: i32) -> Result<Entry> {
    let layout = crate::cgroup::Layout::detect()?;
    let text = std::fs::read_to_string(format!("/proc/{init}/cgroup"))
        .ctx("read", format!("/proc/{init}/cgroup"))?;
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let h = layout.hierarchies.iter().find(|h| {
            if ctrls.is_empty() {
                h.v2
            } else {
                !h.v2 && ctrls.split(',').all(|c| h.has(c))
            }
        });
        if let Some(h) = h {
            dirs.push((h.mountpoint.join(path.trim_start_matches('/')), h.v2));
        }
    }
    Entry::open(dirs.into_iter())
}

/// The command, its environment, who it runs as and where: made (and checked) before
/// anything is entered.
struct Payload {
    argv: Vec<CString>,
    env: Vec<CString>,
    uid: u32,
    gid: u32,
    /// Asked for (-u or -g): the pty is handed to them and the ids switched.
    switch: bool,
    cwd: CString,
}

impl Payload {
    fn of(opts: &Options) -> Result<Self> {
        let argv = opts
            .cmd
            .iter()
            .map(|a| {
                CString::new(a.as_bytes())
                    .map_err(|_| Error::Usage(format!("argument {a:?} contains a NUL byte")))
            })
            .collect::<Result<_>>()?;
        let cwd = opts.cwd.as_deref().unwrap_or("/");
        let cwd = CString::new(cwd)
            .map_err(|_| Error::Usage(format!("--cwd {cwd:?} contains a NUL byte")))?;
        Ok(Payload {
            argv,
            env: environment(opts),
            uid: opts.uid.unwrap_or(0),
            gid: opts.gid.unwrap_or(0),
            switch: opts.uid.is_some() || opts.gid.is_some(),
            cwd,
        })
    }
}

/// The command's environment: the policy's, then `set_env` over it (a later entry of a
/// name replaces an earlier one, as setenv would).
fn environment(opts: &Options) -> Vec<CString> {
    let container = "container=lxc".to_string();
    let mut env: Vec<String> = match &opts.env {
        EnvPolicy::Keep => std::env::vars()
            .filter(|(k, _)| k != "container")
            .map(|(k, v)| format!("{k}={v}"))
            .chain([container])
            .collect(),
        EnvPolicy::Clean => {
            let term = std::env::var("TERM").unwrap_or_else(|_| "linux".into());
            vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                format!("TERM={term}"),
                "HOME=/root".into(),
                container,
            ]
        }
        EnvPolicy::Clear { keep } => keep
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
            .chain([container])
            .collect(),
    };
    for set in &opts.set_env {
        let name = set.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(name));
        env.push(set.clone());
    }
    env.into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect()
}

/// In the forked child: join cgroups and namespaces, open the pty inside and hand its
/// master over, take the command's stdio as its own and close everything else, then
/// fork once more (a new PID namespace applies to children) and wait for the command,
/// passing on the signals rlxc-attach passes to it. The grandchild execs.
///
/// Nothing of the host is open in the grandchild, even between fork and exec, when a
/// process of the container could already reach its descriptors through /proc.
fn enter_and_exec(
    join: &[JoinFile],
    ns: &[(OwnedFd, CloneFlags)],
    cmd: &Payload,
    stdio: &ChildStdio,
    sock: BorrowedFd<'_>,
    apparmor: Option<&str>,
) -> Result<i32> {
    // Until the exec this is rlxc's code in the container's PID namespace: not dumpable,
    // so a process of the container can neither ptrace it nor open its /proc files
    // (exe: the host's rlxc binary) unless it is root of the host's user namespace.
    // The exec makes the command dumpable again.
    nix::sys::prctl::set_dumpable(false).ctx("make non-dumpable", "rlxc-attach's child")?;
    for f in join {
        f.join_self()?;
    }
    // The AppArmor label for the command's exec, set through the host's /proc while this
    // process is not yet in the container's mount namespace (the container's /proc is
    // the container root's to rearrange); the fork below passes it on.
    if let Some(profile) = apparmor {
        crate::apparmor::confine_on_exec(profile)?;
    }
    for (fd, flag) in ns {
        nix::sched::setns(fd.as_fd(), *flag).ctx("enter a namespace of", "the container")?;
    }
    // In an unprivileged container's user namespace the host's root is nobody: become
    // the container's root, as its init is.
    if ns.iter().any(|(_, f)| *f == CloneFlags::CLONE_NEWUSER) {
        crate::sys::creds::become_root()
            .map_err(|e| Error::io("become root in", "the container's user namespace", e))?;
    }
    nix::unistd::chdir("/").ctx("enter", "/")?;
    let pty = matches!(stdio, ChildStdio::Pty { .. });
    match stdio {
        ChildStdio::Pty { winsize } => {
            let slave = open_container_pty(*winsize, sock)?;
            if cmd.switch {
                // Its terminal is the user's, as a login's would be.
                nix::unistd::fchown(slave.as_fd(), Some(cmd.uid.into()), Some(cmd.gid.into()))
                    .ctx("give the pty to", format!("uid {}", cmd.uid))?;
            }
            take_stdio([slave.as_fd(); 3])?;
        }
        ChildStdio::Pipes([i, o, e]) => take_stdio([i.as_fd(), o.as_fd(), e.as_fd()])?,
    }
    // From here this process holds only the command's stdio (its errors go there too).
    crate::sys::close_fds_from(3).ctx("close the descriptors of", "rlxc-attach")?;
    // The container's limits before the fork: the command exists in the container's
    // PID namespace from then on, and is never there without them.
    crate::sys::drop_bounding_caps(crate::runtime::child::CAPS_DROP)
        .map_err(|e| Error::io("drop capabilities of", "the command", e))?;
    let userns = ns.iter().any(|(_, f)| *f == CloneFlags::CLONE_NEWUSER);
    crate::sys::seccomp::install(crate::sys::seccomp::NewMountApi::for_userns(userns))
        .map_err(|e| Error::io("install the seccomp filter for", "the command", e))?;
    let forwarded = relay::forwarded_signals();
    forwarded
        .thread_block()
        .ctx("block signals in", "the attach child")?;
    match crate::sys::fork().ctx("fork", "into the container")? {
        crate::sys::Forked::Parent(pid) => relay::wait_forwarding(pid, &forwarded),
        crate::sys::Forked::Child => exec_command(pty, cmd),
    }
}

fn take_stdio(fds: [BorrowedFd<'_>; 3]) -> Result<()> {
    for (n, fd) in fds.iter().enumerate() {
        crate::sys::dup_onto(*fd, n as i32).ctx("set up the stdio of", "the command")?;
    }
    Ok(())
}

/// A new pty from the container's devpts: its master goes to rlxc-attach over `sock`,
/// its slave is returned for the command. The ptmx is checked to be one (a container
/// could have put anything at that path), and opened without following links.
fn open_container_pty(winsize: Option<(u16, u16)>, sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let ptmx = "/dev/pts/ptmx";
    let master = nix::fcntl::open(
        ptmx,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open the container's", ptmx)?;
    let st = nix::sys::stat::fstat(master.as_fd()).ctx("inspect the container's", ptmx)?;
    let is_ptmx = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
        && nix::sys::stat::major(st.st_rdev) == 5
        && nix::sys::stat::minor(st.st_rdev) == 2;
    if !is_ptmx {
        return Err(Error::Other(format!(
            "the container's {ptmx} is not a pty multiplexer; attach without a terminal \
             (redirect stdin and stdout) to get pipes instead"
        )));
    }
    let slave = crate::sys::pty::open_peer(master.as_fd())
        .map_err(|e| Error::io("open a pty in", "the container", e))?;
    if let Some((rows, cols)) = winsize {
        let _ = crate::sys::set_winsize(master.as_fd(), rows, cols);
    }
    crate::sys::pty::send_fd(sock, b"pty", master.as_fd())
        .map_err(|e| Error::io("hand over", "the container's pty", e))?;
    Ok(slave)
}

/// In the grandchild: a new session (the pty its controlling terminal), every signal
/// unblocked, then exec (the container's limits hold since before the fork). Its
/// directory is entered as its user: one it may not enter is refused as it would be.
fn exec_command(pty: bool, cmd: &Payload) -> ! {
    let e = crate::sys::exec::Exec {
        argv: &cmd.argv,
        env: &cmd.env,
        session: crate::sys::exec::Session::New { ctty: pty },
        ids: cmd.switch.then_some(crate::sys::exec::Ids {
            uid: cmd.uid,
            gid: cmd.gid,
            groups: &[],
        }),
        cwd: Some(&cmd.cwd),
        cwd_as_user: true,
    }
    .exec();
    eprintln!("rlxc-attach: error: {e}");
    crate::sys::exit_child(e.exit_code())
}
