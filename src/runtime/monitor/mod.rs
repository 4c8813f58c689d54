//! The monitor: one per running container (`[rlxc monitor] NAME`). It owns the cgroup,
//! the console pty, the veths and the command socket; it clones init, loops on signals,
//! console and socket, and cleans up everything when init exits.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::boot::{child_failure, child_reached, child_ttys, go, random_uuid, BootGuard};
use super::child::{self, ChildSpec, HostBind};
use super::initsys::{Chosen, Family, InitInfo, View};
use super::StartPlan;
use crate::ipc::client::socket_path;
use crate::ipc::events::{Change, Event};
use crate::ipc::{Stage, ToChild};

mod commands;
mod devices;
mod ending;
mod machined;
mod terms;
mod userns;
use crate::cgroup::{Cgroup, Layout};
use crate::config::ContainerConfig;
use crate::error::{Error, IoContext, Result};
use crate::name::installation_tag;
use crate::net::link as net;
use terms::Term;

struct Stopping {
    signal: i32,
    /// As asked (`rlxc-stop -t`), for the answer.
    timeout: Duration,
    deadline: Instant,
    next_resend: Instant,
    /// SIGKILL sent: from here on only init's exit is awaited.
    killed: bool,
    /// The halt signal was not heeded in time (`killed` by the deadline, not by `-k`):
    /// the seconds it was given.
    timed_out: Option<u64>,
    waiters: Vec<UnixStream>,
}

/// What ran once init was started, undone in reverse when it exits.
struct Running {
    init: Pid,
    cgroup: Cgroup,
    veths: Vec<String>,
    /// Device nodes granted beyond the standard ones.
    devices: crate::cgroup::DeviceAccess,
    /// The container's own network namespace (None: the host's), held so that lent
    /// interfaces can be given back after init is gone.
    netns: Option<OwnedFd>,
    /// Host interfaces lent to it, given back at the end of the run.
    nics: Vec<crate::net::nic::LentNic>,
    /// The name it is registered by with systemd-machined: unregistered at the end.
    registered: Option<String>,
}

pub struct Monitor {
    name: String,
    /// `NAME.TAG` (see `runtime::host_key`): its cgroup's name.
    key: String,
    dir: PathBuf,
    root: crate::store::backing::RootSource,
    cfg: ContainerConfig,
    /// The managed bridge's settings (gateway of fixed addresses on it).
    network: crate::config::NetworkSettings,
    layout: Layout,
    /// What init the rootfs has (its signals) and the cgroup tree it sees.
    init: InitInfo,
    cgroup_view: Chosen,
    listener: UnixListener,
    signals: SignalFd,
    /// The console (0) and the ttys (1..N).
    terms: Vec<Term>,
    stopping: Option<Stopping>,
    reboot_requested: bool,
    init_asked_reboot: bool,
    run: Option<Running>,
    /// When to unmap the code pages a burst of work faulted in (see `sys::trim_idle`).
    trim_at: Option<Instant>,
    /// Trim just before the next sleep in poll: what runs between the trim and the sleep
    /// is all that faults back in (each 64 KiB block of code it touches).
    trim_before_sleep: bool,
    /// Veth deletes out of the host's view whose calls have not returned yet.
    removing: Vec<net::VethRemoval>,
    /// The AppArmor profile init is confined by, at every boot of this run.
    apparmor: Option<String>,
    /// Run at the end (see `StartPlan::after_stop`).
    after_stop: Vec<std::ffi::OsString>,
    /// Where its state changes are announced (`ipc::events`).
    lxcpath: PathBuf,
    runpath: PathBuf,
    /// STOPPING was announced for this run.
    said_stopping: bool,
    /// rlxc-execute's run: how the command's stdio is set up. None: a system container.
    app: Option<child::AppStdio>,
    /// rlxc-execute's stdio, given to the child, then closed here.
    app_stdio: Vec<OwnedFd>,
    /// init's exit status (128 + N for signal N), once reaped.
    exit_code: Option<i32>,
    /// The status pipe to rlxc-start, for the last word: how the run ended.
    report: Option<std::fs::File>,
    /// How init ended when nobody asked it to: what the last word says.
    failure: Option<String>,
    /// When the current boot began (for how long init ran).
    booted_at: Instant,
    /// Where an application's exit status is kept (`StartPlan::exit_status`).
    exit_status: Option<PathBuf>,
}

/// Idle time after activity before the monitor trims its resident code again.
const TRIM_AFTER: Duration = Duration::from_secs(2);

/// The forked monitor's life: report how the start went on stdout, then serve until init
/// exits.
pub fn main(plan: &StartPlan) -> i32 {
    let _ = nix::unistd::setsid();
    let said = |change| {
        let ev = Event::new(&plan.lxcpath, &plan.name, change, None);
        crate::ipc::events::announce(&plan.runpath, &ev);
    };
    said(Change::Starting);
    let mut m = match Monitor::new(plan).and_then(|mut m| m.boot().map(|_| m)) {
        Ok(m) => m,
        Err(e) => {
            let reason = crate::error::flatten(&e);
            report_status(&crate::ipc::Status::Failed { reason });
            said(Change::Aborting);
            said(Change::Stopped);
            return 1;
        }
    };
    let pid = m.run.as_ref().map_or(0, |r| r.init.as_raw());
    report_status(&crate::ipc::Status::Started { pid });
    m.register_machine();
    m.announce(Change::Running);
    // Stdout was the status pipe: kept (close-on-exec, so no child inherits it) for the
    // last word, and nothing else goes there.
    m.report = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from);
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = crate::sys::dup_onto(null.as_fd(), 1);
    }
    // Start-up code (argument parsing, config, cgroup and mount set-up) will not run
    // again in this process: unmap its pages before the first sleep.
    m.trim_before_sleep = true;
    m.serve();
    m.shutdown();
    0
}

/// Tell rlxc-start how the start went, on the status pipe (stdout). rlxc-start may be
/// gone (killed, or its terminal closed): that is no reason for the monitor to stop, so
/// a failed write is ignored (SIGPIPE is ignored here; `println!` would panic).
fn report_status(status: &crate::ipc::Status) {
    if let Err(e) = crate::ipc::write_msg(std::io::stdout().lock(), status) {
        eprintln!("rlxc-start went away before the status {status:?} ({e}); carrying on");
    }
}

impl Monitor {
    fn new(plan: &StartPlan) -> Result<Self> {
        let dir = plan.run_dir.clone();
        // rlxc-start holds the container's lock and found no monitor listening: a socket
        // left here is a dead monitor's.
        let sock = socket_path(&dir);
        let _ = std::fs::remove_file(&sock);
        let (_d, short) = crate::ipc::client::short_socket_path(&dir).ctx("open", &dir)?;
        let listener = UnixListener::bind(&short).ctx("listen on", &sock)?;
        let mask = crate::sys::block_daemon_signals().ctx("block signals in", "the monitor")?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .ctx("create a signalfd in", "the monitor")?;
        let layout = Layout::detect()?;
        super::leave_starters_cgroup(plan, &layout, &installation_tag(&plan.lxcpath));
        Ok(Monitor {
            name: plan.name.clone(),
            key: plan.key.clone(),
            dir,
            root: plan.root.clone(),
            cfg: plan.config.clone(),
            network: plan.network.clone(),
            layout,
            init: plan.init.clone(),
            cgroup_view: plan.cgroup_view.clone(),
            listener,
            signals,
            terms: vec![Term::console()],
            stopping: None,
            reboot_requested: false,
            init_asked_reboot: false,
            run: None,
            trim_at: None,
            trim_before_sleep: false,
            apparmor: plan.apparmor.clone(),
            removing: Vec::new(),
            after_stop: plan.after_stop.clone(),
            lxcpath: plan.lxcpath.clone(),
            runpath: plan.runpath.clone(),
            said_stopping: false,
            app: plan.app.as_ref().map(|a| match a.stdio {
                Some(_) => child::AppStdio::Fds(super::APP_STDIO),
                None => child::AppStdio::Console,
            }),
            app_stdio: match plan.app.as_ref().and_then(|a| a.stdio.as_ref()) {
                Some(_) => super::APP_STDIO.map(crate::sys::signals::own_fd).into(),
                None => Vec::new(),
            },
            exit_code: None,
            report: None,
            failure: None,
            booted_at: Instant::now(),
            exit_status: plan.exit_status.clone(),
        })
    }

    /// Create the cgroup, pty, child and network; hand over to init.
    fn boot(&mut self) -> Result<()> {
        // A reboot: the last run's veth deletes must be done before this process forks.
        self.finish_removals();
        self.booted_at = Instant::now();
        self.failure = None;
        let ids = userns::Ids::of(&self.cfg)?;
        let boot_devices = devices::BootDevices::resolve(&self.cfg.devices)?;
        let cgroup = Cgroup::new(self.layout.clone(), &self.key);
        if cgroup.exists() {
            // Left by a monitor that was killed: only safe to reuse if nothing runs in it.
            if !cgroup.pids().is_empty() {
                return Err(Error::Busy {
                    name: self.name.clone(),
                    what: "processes of a previous run are still alive (its monitor was killed): \
                           stop them with rlxc-stop -k first"
                        .into(),
                });
            }
            cgroup.destroy()?;
        }
        let (cgroup, holder) = machined::make_cgroup(&self.layout, &self.key, &self.name)?;
        let mut guard = BootGuard {
            cgroup: cgroup.clone(),
            veths: Vec::new(),
            child: None,
            armed: true,
        };
        // Before the child exists: its device nodes and console must find the device
        // rules complete (v1 applies them as a deny-all followed by allows).
        let (warning, devices) = cgroup.configure(&self.cfg.limits, &boot_devices.rules())?;
        if let Some(w) = warning {
            eprintln!("{}: warning: {w}", self.name);
        }
        let pty = nix::pty::openpty(None, None).ctx("allocate", "the console pty")?;
        let console = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
            .ctx("find", "the console pty")?;
        nix::fcntl::fcntl(
            pty.master.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .ctx("configure", &console)?;
        let boot_id = self.dir.join("boot_id");
        std::fs::write(&boot_id, format!("{}\n", random_uuid())).ctx("write", &boot_id)?;
        let (console_bind, boot_id_bind, userns) = match &ids {
            None => (HostBind::Path(console), HostBind::Path(boot_id), None),
            Some(ids) => {
                userns::hand_over(ids, &cgroup, pty.slave.as_fd(), &console)?;
                let (c, b, u) = userns::host_binds(ids, &console, &boot_id, &self.cfg.mounts)?;
                (c, b, Some(u))
            }
        };
        let entry = cgroup.entry()?;
        let own_net = !self
            .cfg
            .networks
            .iter()
            .any(|n| n.kind == crate::config::NetKind::None);
        let spec = ChildSpec {
            root: self.root.clone(),
            hostname: self.cfg.host_name(&self.name),
            init: super::init_command(&self.cfg),
            env: self.init_env(),
            console: console_bind,
            ttys: self.cfg.ttys(),
            cgroups: self.layout.clone(),
            unified: self.cgroup_view.view == View::Unified,
            mounts: self.cfg.mounts.clone(),
            boot_id: boot_id_bind,
            apparmor: self.apparmor.clone(),
            own_net,
            userns,
            app: self.app.map(|stdio| child::AppSpec {
                stdio,
                cwd: self.cfg.init.cwd.clone(),
                user: self.cfg.init.user,
                stop: self
                    .cfg
                    .signals
                    .halt
                    .as_ref()
                    .map(crate::config::Signal::number),
            }),
            lxcfs: super::lxcfs::child_binds(&self.name, ids.is_some()),
            sealed_init: self
                .app
                .map(|_| super::sealed::SealedInit::copy())
                .transpose()?,
        };
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .ctx("create", "the start sync socket")?;
        let mut flags = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC;
        if own_net {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        if ids.is_some() {
            flags |= CloneFlags::CLONE_NEWUSER;
        }
        let theirs_raw = theirs.as_raw_fd();
        let (pid, fell_back) = entry.spawn(flags, |join| child::run(&spec, join, theirs_raw))?;
        // init holds the scope now.
        if let Some(h) = holder {
            h.release();
        }
        if let Some(e) = fell_back {
            eprintln!(
                "{}: clone3 cannot start init in its cgroup ({e}); it joins afterwards, \
                 which takes longer",
                self.name
            );
        }
        drop(theirs);
        // The child has its copies of the detached mounts; the monitor's go with them,
        // and rlxc-execute's stdio (only the command holds it open from here).
        drop(spec);
        self.app_stdio.clear();
        guard.child = Some(pid);
        // The child sets up its mounts meanwhile; if it failed, its reason comes first.
        match net::setup_all(&self.cfg.networks, pid.as_raw(), &self.network) {
            Ok(v) => guard.veths = v,
            Err(e) => return Err(child_failure(&ours).unwrap_or(e)),
        }
        if !self.cfg.publish.is_empty() {
            crate::net::ports::hairpin(&guard.veths)?;
        }
        // The child made its namespaces and joined its cgroups long ago (it said so
        // before its mounts); it goes on to exec once the network is there.
        let limits = &self.cfg.limits;
        child_reached(&ours, Stage::Namespaces, pid, limits)?;
        // Held for interfaces lent later (see `Running::netns`); before the go. A child
        // that failed its mounts meanwhile took the namespace with it: its reason first.
        let netns = own_net.then(|| devices::hold_netns(pid)).transpose();
        let netns = netns.map_err(|e| child_failure(&ours).unwrap_or(e))?;
        if let Some(ids) = &ids {
            self.give_ids(&ours, pid, ids)?;
        }
        let ttys = child_ttys(&ours, pid, limits, self.cfg.ttys())?;
        child_reached(&ours, Stage::Root, pid, limits)?;
        let nics = boot_devices.give(pid, netns.as_ref().map(|n| n.as_fd()))?;
        if let Err(e) = go(&ours, pid, limits) {
            devices::give_back(&self.name, &nics, netns.as_ref());
            return Err(e);
        }
        // Before Started is reported (tests/scheduler.rs holds a start here, on a FIFO).
        let _ = std::fs::write(self.dir.join("init.pid"), format!("{pid}\n"));
        let (cgroup, veths) = guard.disarm();
        self.set_terms((pty.master, pty.slave), ttys);
        self.run = Some(Running {
            init: pid,
            cgroup,
            veths,
            devices,
            netns,
            nics,
            registered: None,
        });
        Ok(())
    }

    /// An unprivileged child's ids and root: its maps written, its root idmapped through
    /// its user namespace and sent to it.
    fn give_ids(&self, sync: &OwnedFd, pid: Pid, ids: &userns::Ids) -> Result<()> {
        let given = userns::map_ids(pid, ids)
            .and_then(|_| userns::idmapped_root(&self.root, pid, ids))
            .and_then(|root| {
                let msg = ToChild::Reached {
                    stage: Stage::IdsMapped,
                };
                crate::ipc::send_packet_with_fds(sync.as_fd(), &msg, &[root.as_fd()]).map_err(|e| {
                    Error::Other(format!("cannot tell the container's first process: {e}"))
                })
            });
        // A child that failed meanwhile has its reason queued.
        given.map_err(|e| child_failure(sync).unwrap_or(e))
    }

    fn init_env(&self) -> Vec<String> {
        let mut env = vec![
            "container=lxc".to_string(),
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "TERM=linux".to_string(),
            "HOME=/".to_string(),
        ];
        env.extend(self.cfg.init.env.iter().cloned());
        env
    }

    /// The event loop, until init is gone (and not rebooting).
    fn serve(&mut self) {
        loop {
            if self.run.is_none() {
                return;
            }
            let timeout = self.poll_timeout();
            let set = self.poll_set();
            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(set.poll_fds());
            if std::mem::take(&mut self.trim_before_sleep) {
                crate::sys::trim_idle();
            }
            if nix::poll::poll(&mut fds, timeout).is_err() {
                continue;
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready.iter().any(|r| *r) {
                self.trim_at = Some(Instant::now() + TRIM_AFTER);
            } else if self.trim_at.is_some_and(|t| Instant::now() >= t) {
                self.trim_at = None;
                self.trim_before_sleep = true;
            }
            for (src, _) in set.sources().iter().zip(&ready[2..]).filter(|(_, r)| **r) {
                self.on_ready(*src);
            }
            if ready[1] {
                if let Ok((s, _)) = self.listener.accept() {
                    self.client(s);
                }
            }
            self.tick_stop();
            if ready[0] && self.reap_init() {
                let rebooting =
                    std::mem::take(&mut self.reboot_requested) || self.init_asked_reboot;
                self.announce(Change::Stopping);
                self.teardown();
                if !rebooting || self.stopping.is_some() {
                    return;
                }
                self.init_asked_reboot = false;
                self.announce(Change::Starting);
                if let Err(e) = self.boot() {
                    eprintln!("{}: reboot failed: {e}", self.name);
                    self.announce(Change::Aborting);
                    self.failure =
                        Some(format!("the reboot failed: {}", crate::error::flatten(&e)));
                    return;
                }
                self.register_machine();
                self.announce(Change::Running);
            }
        }
    }

    fn poll_timeout(&self) -> PollTimeout {
        // Once killed, init's exit arrives as SIGCHLD on the signalfd: no timer.
        let stop = self
            .stopping
            .as_ref()
            .filter(|s| !s.killed)
            .map(|s| s.deadline.min(s.next_resend));
        let next = match (stop, self.trim_at) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return PollTimeout::NONE,
        };
        let ms = next
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(60_000) as u16;
        PollTimeout::from(ms.max(1))
    }

    /// The signal init understands for `what` (halt or reboot).
    fn signal_for(&self, what: &str) -> i32 {
        let configured = match what {
            "halt" => self.cfg.signals.halt.as_ref(),
            _ => self.cfg.signals.reboot.as_ref(),
        };
        if let Some(sig) = configured.map(crate::config::Signal::number) {
            return sig;
        }
        // A custom init.cmd that turns out to be systemd (a wrapper exec'ing it).
        let mut init = self.init.clone();
        if init.family == Family::Other
            && self.run.as_ref().is_some_and(|r| init_is_systemd(r.init))
        {
            init.family = Family::Systemd;
        }
        let (halt, reboot) = init.signals();
        if what == "halt" {
            halt
        } else {
            reboot
        }
    }

    fn begin_stop(&mut self, waiter: UnixStream, timeout: Duration, kill: bool) {
        let Some(init) = self.run.as_ref().map(|r| r.init) else {
            return;
        };
        let now = Instant::now();
        let kill = kill || timeout.is_zero();
        if kill {
            let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
            self.begin_removals();
        }
        let signal = self.signal_for("halt");
        match &mut self.stopping {
            Some(st) => {
                st.waiters.push(waiter);
                st.killed |= kill;
            }
            None => {
                self.announce(Change::Stopping);
                if !kill {
                    send_raw(init, signal);
                }
                self.stopping = Some(Stopping {
                    signal,
                    timeout,
                    deadline: now + timeout,
                    // A halt sent before systemd installed its handler is ignored by the
                    // kernel (init is immune to unhandled signals): send it again.
                    next_resend: now + Duration::from_millis(500),
                    killed: kill,
                    timed_out: None,
                    waiters: vec![waiter],
                });
            }
        }
        self.thaw_for_stop();
    }

    fn tick_stop(&mut self) {
        let Some(init) = self.run.as_ref().map(|r| r.init) else {
            return;
        };
        let Some(st) = self.stopping.as_mut().filter(|st| !st.killed) else {
            return;
        };
        let now = Instant::now();
        if now >= st.deadline {
            let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
            st.killed = true;
            st.timed_out = Some(st.timeout.as_secs());
            self.begin_removals();
            self.thaw_for_stop();
        } else if now >= st.next_resend {
            send_raw(init, st.signal);
            st.next_resend = now + Duration::from_millis(500);
        }
    }
}

fn send_raw(pid: Pid, sig: i32) {
    let _ = crate::sys::kill_raw(pid.as_raw(), sig);
}

/// systemd is recognised by its executable, which is stable from exec on (its signal
/// handlers are not, during early boot).
fn init_is_systemd(pid: Pid) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().contains("systemd"))
        .unwrap_or(false)
}
