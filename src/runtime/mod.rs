//! Running containers: the start (spawn the monitor, hear how it went), the monitor
//! process, the child's staged set-up. It takes a `StartPlan` computed by
//! `Container::start`, never the Container: it knows nothing of container directories,
//! locks or other containers.

mod boot;
pub mod child;
pub mod initsys;
pub mod lxcfs;
pub mod monitor;
pub mod nodes;
pub mod sealed;

use std::os::fd::AsFd;
use std::path::PathBuf;

use crate::config::{ContainerConfig, NetworkSettings};
use crate::error::{Error, IoContext, Result};
use crate::ipc::Status;

/// What a start needs.
pub struct StartPlan {
    pub name: String,
    /// `NAME.TAG`: its cgroups' name.
    pub key: String,
    /// Shown in the monitor's title.
    pub lxcpath: PathBuf,
    /// `RUNPATH/NAME.TAG`: the monitor's socket, log, init's pid, the boot id.
    pub run_dir: PathBuf,
    pub runpath: PathBuf,
    /// What init's root is (from the backing store).
    pub root: crate::store::backing::RootSource,
    pub config: ContainerConfig,
    /// The init in the rootfs, as the start found it.
    pub init: initsys::InitInfo,
    /// The cgroup tree init sees, and why.
    pub cgroup_view: initsys::Chosen,
    /// The managed bridge's settings (the gateway of fixed addresses on it).
    pub network: NetworkSettings,
    /// The AppArmor profile init runs under, where the host has AppArmor.
    pub apparmor: Option<String>,
    /// A command the monitor runs once everything of the run is gone, before anyone
    /// waiting for the stop hears of it (an ephemeral container's destroy); empty: none.
    pub after_stop: Vec<std::ffi::OsString>,
    /// rlxc-execute's run, or an application container's (`init.app`): `config.init.cmd`
    /// is the command, under rlxc's own init.
    pub app: Option<App>,
    /// Where the monitor keeps an application's exit status when the run ends.
    pub exit_status: Option<PathBuf>,
    /// The monitor stays in the starter's cgroup (`rlxc-start -F` under a service
    /// manager, whose unit it belongs to); otherwise it moves to rlxc's own (see
    /// `cgroup::enter_monitors`).
    pub foreground: bool,
}

/// What rlxc-execute hands its command.
pub struct App {
    /// rlxc-execute's stdin, stdout and stderr, passed on; None: the console pty (on a
    /// terminal, relayed as rlxc-start's console is, so the container never holds the
    /// caller's terminal).
    pub stdio: Option<[std::os::fd::OwnedFd; 3]>,
}

impl RunEnd {
    /// Pass signals on to `init` until the status pipe has something to say.
    fn forward_until_done(&mut self, init: i32) -> Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mask = child::forwarded();
        mask.thread_block()
            .ctx("block signals in", "rlxc-execute")?;
        let sfd = nix::sys::signalfd::SignalFd::with_flags(
            &mask,
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
        )
        .ctx("watch signals in", "rlxc-execute")?;
        while self.0.buffer().is_empty() {
            let mut fds = [
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.0.get_ref().as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::io("wait for", "the command", e.into())),
            }
            let done = fds[1].revents().is_some_and(|r| !r.is_empty());
            while let Ok(Some(info)) = sfd.read_signal() {
                let _ = crate::sys::kill_raw(init, info.ssi_signo as i32);
            }
            if done {
                break;
            }
        }
        Ok(())
    }
}

/// The descriptor numbers rlxc-execute's stdio has in the monitor.
pub const APP_STDIO: [std::os::fd::RawFd; 3] = [3, 4, 5];

impl RunEnd {
    /// rlxc-execute's: wait for the command's exit status (128 + N: killed by signal
    /// N), passing the signals a caller sends rlxc-execute on to the container's init
    /// `forward_to`.
    pub fn wait_app(mut self, forward_to: Option<i32>) -> Result<i32> {
        if let Some(init) = forward_to {
            self.forward_until_done(init)?;
        }
        match crate::ipc::read_msg(&mut self.0) {
            Ok(Status::Exited { code }) => Ok(code),
            Ok(other) => Err(Error::Other(format!(
                "the monitor sent {other:?} where the command's exit status was due"
            ))),
            Err(e) => Err(Error::Other(format!(
                "the monitor ended without the command's exit status ({e}); see its log"
            ))),
        }
    }
}

/// A start that went well: init's pid and the monitor's (a child of this process).
pub struct Started {
    pub pid: i32,
    pub monitor: nix::unistd::Pid,
    /// Where the run's end (or rlxc-execute's command's) is heard.
    pub end: RunEnd,
}

pub fn init_command(cfg: &ContainerConfig) -> Vec<String> {
    if cfg.init.cmd.is_empty() {
        vec!["/sbin/init".to_string()]
    } else {
        cfg.init.cmd.clone()
    }
}

/// Where a started run's end is heard: the monitor's status pipe, on which its last
/// message says how init ended.
pub struct RunEnd(std::io::BufReader<std::fs::File>);

impl RunEnd {
    /// Wait for the run to end: None when init halted or rebooted cleanly (or was
    /// stopped), else what went wrong. A monitor that died without a word is reported.
    pub fn wait(mut self) -> Option<String> {
        match crate::ipc::read_msg::<Status>(&mut self.0) {
            Ok(Status::Ended { failure }) => failure,
            // An application container's command ended: its status is kept for rlxc-info.
            Ok(Status::Exited { .. }) => None,
            Ok(other) => Some(format!("its monitor said {other:?} at the end")),
            Err(e) => Some(format!(
                "its monitor ended without saying how init did ({e})"
            )),
        }
    }
}

/// Start the monitor for `plan` and wait until init runs (its pid) or the start failed
/// (the real reason, from the monitor). The caller holds the container's lock and
/// found no monitor before, so what is left in the run directory is this start's.
pub fn start(plan: &StartPlan) -> Result<Started> {
    let dir = &plan.run_dir;
    // RUNPATH itself stays searchable (the bridge's unprivileged dnsmasq reads below it);
    // each container's directory is private.
    crate::store::mkdir_p(&plan.runpath, 0o755)?;
    let made_dir = !dir.exists();
    crate::store::mkdir_p(dir, 0o700)?;
    let log = dir.join("monitor.log");
    let logf = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log)
        .ctx("open", &log)?;
    let (monitor, status) = spawn_monitor(plan, logf)?;
    let mut status = std::io::BufReader::new(status);
    let why = match crate::ipc::read_msg(&mut status) {
        Ok(Status::Started { pid }) => {
            // The monitor lives on (it setsid()s); init reaps it when this process is gone.
            return Ok(Started {
                pid,
                monitor,
                end: RunEnd(status),
            });
        }
        Ok(Status::Failed { reason }) => reason,
        Ok(Status::Exited { code }) => format!("the command ended ({code}) before the start"),
        Ok(Status::Ended { failure }) => failure.unwrap_or_else(|| "init ended at once".into()),
        Err(e) => {
            let _ = nix::sys::wait::waitpid(monitor, None);
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            return Err(Error::Other(format!(
                "the monitor died during the start ({e}); its log {} ends with: {}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
    };
    let _ = nix::sys::wait::waitpid(monitor, None);
    // The monitor said why and undid its work. Under the lock, with no monitor found
    // before it, what is left in the run directory is this start's.
    let _ = std::fs::remove_file(crate::ipc::client::socket_path(dir));
    if made_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Err(Error::Other(format!(
        "{} failed to start: {why}",
        plan.name
    )))
}

/// In the forked monitor: rlxc-execute's stdio at `APP_STDIO` (first lifted above those
/// numbers, so that none is overwritten before it is copied), or nothing there. Returns
/// how many descriptors from 3 up it put in place.
fn keep_app_stdio(plan: &StartPlan) -> std::io::Result<u32> {
    let Some(fds) = plan.app.as_ref().and_then(|a| a.stdio.as_ref()) else {
        return Ok(0);
    };
    let mut lifted = Vec::new();
    for fd in fds {
        lifted.push(nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10),
        )?);
    }
    for (fd, at) in lifted.iter().zip(APP_STDIO) {
        crate::sys::dup_onto(crate::sys::borrow_fd(*fd), at)?;
    }
    Ok(APP_STDIO.len() as u32)
}

/// Fork the monitor, as LXC does: it already has the parsed configuration, where
/// exec'ing rlxc again would load and parse everything anew (about 2 ms of each start).
/// Its stdout is the returned status pipe ("ok PID" or "err WHY"), its stderr `log`.
fn spawn_monitor(
    plan: &StartPlan,
    log: std::fs::File,
) -> Result<(nix::unistd::Pid, std::fs::File)> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .ctx("create", "the monitor's status pipe")?;
    let null = std::fs::File::options()
        .read(true)
        .open("/dev/null")
        .ctx("open", "/dev/null")?;
    // Whatever rlxc-start buffered must not be written again by the child.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match crate::sys::fork().ctx("fork", "the monitor")? {
        crate::sys::Forked::Child => {
            let ready = crate::sys::dup_onto(null.as_fd(), 0)
                .and_then(|_| crate::sys::dup_onto(wr.as_fd(), 1))
                .and_then(|_| crate::sys::dup_onto(log.as_fd(), 2))
                .and_then(|_| keep_app_stdio(plan))
                // Nothing else of rlxc-start's: no lock or socket may outlive it here
                // (3-5 stay only when they are rlxc-execute's stdio).
                .and_then(|kept| crate::sys::close_fds_from(3 + kept));
            if let Err(e) = ready {
                eprintln!("monitor set-up: {e}");
                crate::sys::exit_child(1);
            }
            crate::sys::ignore_sigpipe();
            crate::sys::default_interrupts();
            crate::sys::set_comm("rlxc-monitor");
            if let Err(e) = crate::sys::set_cmdline(&format!(
                "[rlxc monitor] {} {}",
                plan.name,
                plan.lxcpath.display()
            )) {
                eprintln!("{}: cannot set the monitor's command line: {e}", plan.name);
            }
            crate::sys::exit_child(monitor::main(plan))
        }
        crate::sys::Forked::Parent(child) => {
            drop(wr);
            Ok((child, std::fs::File::from(rd)))
        }
    }
}

/// Out of the cgroup of whoever started it (see `cgroup::enter_monitors`) into the
/// monitors cgroup of the installation `tag`, unless the plan keeps it there; where that
/// fails the monitor still runs, as before, and its log says why.
fn leave_starters_cgroup(plan: &StartPlan, layout: &crate::cgroup::Layout, tag: &str) {
    if plan.foreground {
        return;
    }
    if let Err(e) = crate::cgroup::enter_monitors(layout, tag) {
        eprintln!(
            "{}: warning: the monitor stays in its starter's cgroup: {e}",
            plan.name
        );
    }
}
