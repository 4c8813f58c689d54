//! rlxc-attach: run a command inside a running container: its cgroup, all of its
//! namespaces, its root, with the same capability bounding set and seccomp filter
//! as init. The environment is cleared to a known set unless asked to keep it.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::cgroup::{Entry, JoinFile};
use crate::error::{Error, IoContext, Result};

pub struct Options {
    pub cmd: Vec<String>,
    pub keep_env: bool,
    pub set_env: Vec<String>,
}

const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Run `opts.cmd` in the container whose init is `init`; returns its exit code.
pub fn run(init: i32, opts: &Options) -> Result<i32> {
    let mut ns: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    for (name, flag) in NAMESPACES {
        let p = format!("/proc/{init}/ns/{name}");
        // A namespace the container shares with the host (network type "none") is skipped.
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
    let cgroups = init_cgroups(init)?;
    let env = environment(opts);
    let argv: Vec<CString> = opts
        .cmd
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| Error::Usage(format!("argument {a:?} contains a NUL byte")))
        })
        .collect::<Result<_>>()?;
    // The first child joins init's cgroups, then its namespaces, and forks the command.
    let child = |join: &[JoinFile]| -> isize {
        match enter_and_exec(join, &ns, &argv, &env) {
            Ok(code) => code as isize,
            Err(e) => {
                eprintln!("rlxc-attach: error: {e}");
                126
            }
        }
    };
    // Born in init's cgroup2 directory, as init was.
    let (pid, _) = cgroups.spawn(CloneFlags::empty(), child)?;
    wait_code(pid)
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

fn environment(opts: &Options) -> Vec<CString> {
    let mut env: Vec<String> = if opts.keep_env {
        std::env::vars().map(|(k, v)| format!("{k}={v}")).collect()
    } else {
        let term = std::env::var("TERM").unwrap_or_else(|_| "linux".into());
        vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            format!("TERM={term}"),
            "HOME=/root".into(),
            "container=lxc".into(),
        ]
    };
    env.extend(opts.set_env.iter().cloned());
    env.into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect()
}

/// In the forked child: join cgroups and namespaces, fork once more (a new PID namespace
/// applies to children), and exec in the grandchild.
fn enter_and_exec(
    join: &[JoinFile],
    ns: &[(OwnedFd, CloneFlags)],
    argv: &[CString],
    env: &[CString],
) -> Result<i32> {
    for f in join {
        f.join_self()?;
    }
    for (fd, flag) in ns {
        nix::sched::setns(fd.as_fd(), *flag).ctx("enter a namespace of", "the container")?;
    }
    nix::unistd::chdir("/").ctx("enter", "/")?;
    match crate::sys::fork().ctx("fork", "into the container")? {
        crate::sys::Forked::Parent(pid) => wait_code(pid),
        crate::sys::Forked::Child => {
            let _ = crate::sys::drop_bounding_caps(crate::runtime::child::CAPS_DROP);
            let _ = crate::sys::seccomp::install();
            let prog = argv
                .first()
                .cloned()
                .unwrap_or_else(|| CString::from(c"/bin/sh"));
            let path = resolve_in_path(&prog, env);
            let err = nix::unistd::execve(&path, argv, env).err();
            eprintln!(
                "rlxc-attach: error: cannot execute {} in the container: {}",
                prog.to_string_lossy(),
                err.map(|e| e.desc()).unwrap_or("unknown error")
            );
            std::process::exit(127);
        }
    }
}

/// Find `prog` in the PATH of the environment the command gets, inside the container
/// (execvpe would search rlxc's own PATH, which describes the host).
fn resolve_in_path(prog: &CString, env: &[CString]) -> CString {
    let bytes = prog.as_bytes();
    if bytes.contains(&b'/') {
        return prog.clone();
    }
    let path = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(|b| *b == b':').filter(|d| !d.is_empty()) {
        let mut cand = dir.to_vec();
        cand.push(b'/');
        cand.extend_from_slice(bytes);
        if let Ok(c) = CString::new(cand) {
            if nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::X_OK).is_ok() {
                return c;
            }
        }
    }
    prog.clone()
}
