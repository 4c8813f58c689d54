//! Templates that are programs, run with LXC's template protocol so LXC's stock
//! templates and a sysadmin's own scripts work unchanged: a shadow LXC `config` in the
//! container's directory (`lxc.rootfs.path`, `lxc.uts.name`) for the template to append
//! to, then `TEMPLATE --path DIR --name NAME --rootfs ROOTFS [ARGS]`, as lxc-create
//! runs it (no LXC_* variables). rlxc adds `RLXC_CACHE_PATH` for its own templates.
//!
//! The template runs as the first process of a new PID namespace in a private mount
//! namespace: its mounts (debootstrap's /proc in the target, say) vanish with it, and
//! when it ends, or is killed, so does everything it started, so nothing goes on
//! writing into a container directory that create is removing.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::os::fd::{AsFd, OwnedFd};

use nix::mount::{mount, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{Filled, LxcConfig, Prepared, Target, Template};
use crate::error::{Error, Result};
use crate::image::fetch::Progress;

pub struct Script {
    /// As the sysadmin named it (`busybox`, or the file's name for `-t PATH`).
    name: String,
    path: PathBuf,
    args: Vec<String>,
    cachepath: PathBuf,
}

impl Script {
    pub fn new(name: &str, path: PathBuf, args: Vec<String>, cachepath: &Path) -> Self {
        Script {
            name: name.to_string(),
            path,
            args,
            cachepath: cachepath.to_path_buf(),
        }
    }

    fn fail(&self, msg: String) -> Error {
        Error::Template {
            template: format!("{} ({})", self.name, self.path.display()),
            msg,
        }
    }

    /// The argument vector, LXC's order: the protocol's options, then the template's.
    fn argv(&self, t: &Target) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            self.path.clone().into(),
            "--path".into(),
            t.dir.into(),
            "--name".into(),
            t.name.into(),
            "--rootfs".into(),
            t.rootfs.into(),
        ];
        v.extend(self.args.iter().map(OsString::from));
        v
    }

    /// The caller's environment, a PATH that has the sbin directories templates call
    /// into, and where rlxc caches images.
    fn envp(&self) -> Vec<OsString> {
        let mut env: Vec<OsString> = std::env::vars_os()
            .filter(|(k, _)| k != "PATH" && k != "RLXC_CACHE_PATH")
            .map(|(mut k, v)| {
                k.push("=");
                k.push(v);
                k
            })
            .collect();
        let path = std::env::var("PATH").unwrap_or_default();
        let mut dirs: Vec<&str> = path.split(':').filter(|d| !d.is_empty()).collect();
        for d in [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ] {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        env.push(format!("PATH={}", dirs.join(":")).into());
        let mut cache = OsString::from("RLXC_CACHE_PATH=");
        cache.push(&self.cachepath);
        env.push(cache);
        env
    }

    /// Run the template to its end; its exit code, or why it did not finish.
    fn run(&self, t: &Target) -> Result<i32> {
        let argv = cstrings(self.argv(t))?;
        let envp = cstrings(self.envp())?;
        let prog = argv[0].clone();
        // Lets the template's init tell whether rlxc died before its parent-death
        // signal was armed.
        let rlxc = crate::sys::pidfd_open(nix::unistd::getpid()).ok();
        let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
        let pid =
            crate::sys::clone_child(flags, Box::new(|| init(&prog, &argv, &envp, rlxc.as_ref())))
                .map_err(|e| self.fail(format!("cannot start it in its own namespaces: {e}")))?;
        wait_or_kill(pid)
    }
}

fn cstrings(v: Vec<OsString>) -> Result<Vec<CString>> {
    v.into_iter()
        .map(|s| {
            CString::new(s.into_vec())
                .map_err(|_| Error::Usage("a template argument holds a NUL byte".into()))
        })
        .collect()
}

/// The template's PID namespace's first process: a private mount namespace with a
/// /proc of its own, then the template as its child, reaped with whatever else ends
/// up there. SIGTERM, SIGINT and SIGHUP are passed on to the template, so its own
/// clean-up runs (a pid 1 gets no signal it has no handler for). Its exit code is the
/// template's (128+signal when killed).
fn init(prog: &CString, argv: &[CString], envp: &[CString], rlxc: Option<&OwnedFd>) -> isize {
    // rlxc gone (killed outright): take the namespace, and so the template, with it.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if rlxc.is_some_and(exited) {
        return 126;
    }
    if let Err(e) = private_mounts() {
        eprintln!("rlxc: cannot set up the template's mount namespace: {e}");
        return 126;
    }
    // The same signals as rlxc's daemons: child exits, and the requests to stop.
    let (signals, mask) = match crate::sys::block_daemon_signals()
        .and_then(|mask| Ok((SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?, mask)))
    {
        Ok(both) => both,
        Err(e) => {
            eprintln!("rlxc: cannot set up the template's signals: {e}");
            return 126;
        }
    };
    let child = match crate::sys::fork() {
        Ok(crate::sys::Forked::Child) => {
            let _ = mask.thread_unblock();
            crate::sys::default_sigpipe();
            crate::sys::default_interrupts();
            let e = nix::unistd::execve(prog, argv, envp).unwrap_err();
            eprintln!("rlxc: cannot run {}: {e}", prog.to_string_lossy());
            crate::sys::exit_child(127)
        }
        Ok(crate::sys::Forked::Parent(pid)) => pid,
        Err(e) => {
            eprintln!("rlxc: cannot fork the template: {e}");
            return 126;
        }
    };
    loop {
        if let Some(code) = reap(child) {
            return code;
        }
        match signals.read_signal() {
            Ok(Some(info)) if info.ssi_signo != Signal::SIGCHLD as u32 => {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    let _ = nix::sys::signal::kill(child, sig);
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 126,
        }
    }
}

/// Reap every process that has ended; the template's exit code once it is among them.
fn reap(template: Pid) -> Option<isize> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == template => return Some(code as isize),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == template => {
                return Some(128 + sig as isize)
            }
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Some(126),
        }
    }
}

/// A pidfd's process has exited (it polls readable).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// Nothing the template mounts propagates to the host; /proc shows its own namespace.
fn private_mounts() -> nix::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
}

/// How long a template may take to clean up after it was asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Wait for the template's namespace to end. On Ctrl-C (or SIGTERM/SIGHUP) ask the
/// template to stop (its init passes SIGTERM on) and give it `STOP_GRACE` to clean up
/// (a debootstrap's staging directory), then kill the namespace, which ends everything
/// the template started. The pidfd wakes the wait the moment it ends (a busybox
/// template takes 25 ms: a sleeping poll would add to that).
fn wait_or_kill(pid: Pid) -> Result<i32> {
    let pidfd = crate::sys::pidfd_open(pid).ok();
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && crate::sys::interrupted() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            deadline = Some(Instant::now() + STOP_GRACE);
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            // Interrupted: however the template ended, that is what happened.
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) if deadline.is_some() => {
                return Err(Error::Interrupted)
            }
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Other(format!("cannot wait for the template: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(Error::Interrupted);
        }
        match &pidfd {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                // EINTR (a Ctrl-C) and the timeout both lead back to the checks above.
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// What an exit code says, for the error.
fn ended(code: i32) -> String {
    match code {
        126 | 127 => format!("could not be run (exit code {code}; see the message above)"),
        c if c > 128 => match Signal::try_from(c - 128) {
            Ok(sig) => format!("was killed by {sig}"),
            Err(_) => format!("failed with exit code {c}"),
        },
        c => format!("failed with exit code {c}"),
    }
}

impl Template for Script {
    fn prepare(&mut self, _progress: &dyn Progress) -> Result<Prepared> {
        Ok(Prepared::default())
    }

    fn fill(&mut self, t: &Target, progress: &dyn Progress) -> Result<Filled> {
        let config = t.dir.join("config");
        let shadow = format!(
            "lxc.rootfs.path = dir:{}\nlxc.uts.name = {}\n",
            t.rootfs.display(),
            t.name
        );
        crate::config::write_atomic(&config, shadow.as_bytes(), 0o644)?;
        progress.message(&format!(
            "running template {} ({})",
            self.name,
            self.path.display()
        ));
        let code = self.run(t)?;
        if code != 0 {
            return Err(self.fail(format!("{}; nothing was created", ended(code))));
        }
        let text = crate::config::read_text(&config)
            .map_err(|e| self.fail(format!("left no usable LXC config: {e}")))?;
        Ok(Filled {
            stats: None,
            lxc_config: Some(LxcConfig { text, file: config }),
        })
    }
}

/// `s` with every occurrence of the path `from` replaced by `to`: the template saw the
/// container's directory while it was built, and paths it wrote must name the final one.
pub fn relocate(s: &str, from: &Path, to: &Path) -> String {
    let (from, to) = (from.as_os_str(), to.as_os_str());
    match (from.to_str(), to.to_str()) {
        (Some(f), Some(t)) if !f.is_empty() => s.replace(f, t),
        _ => s.to_string(),
    }
}
