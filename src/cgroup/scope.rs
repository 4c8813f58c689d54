//! On a systemd host with cgroup2 alone, a container's cgroup is a systemd unit of its
//! own: the delegated transient scope `machine.slice/rlxc-NAME.TAG.scope`, the container
//! in its `payload` subdirectory. systemd-machined registers only processes that are in
//! a unit (RegisterMachine looks up the leader's unit), and a cgroup below a delegated
//! unit is one systemd never writes to, so rlxc's limits, freezer and device filter work
//! there as in `rlxc/NAME.TAG`. The scope is made with a holder process in it (systemd
//! makes no empty scope); the holder moves to `payload`, where init is born by clone3,
//! and exits. The scope ends when its last process does.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::files::{mkdir, put};
use super::{Cgroup, Layout};
use crate::error::{Error, Result};
use crate::sys::dbus;

const SLICE: &str = "machine.slice";
/// The subdirectory the container lives in: systemd keeps the scope's own files.
const PAYLOAD: &str = "payload";
/// How long systemd may take to start the scope, or to forget a previous run's.
const WAIT: Duration = Duration::from_secs(3);

/// Whether containers here get a scope: systemd is PID 1 and cgroup2 is the only tree.
pub fn usable(layout: &Layout) -> bool {
    matches!(layout.hierarchies.as_slice(), [h] if h.v2) && dbus::systemd_booted()
}

/// The unit of the container keyed `key` (`NAME.TAG`: letters, digits, `-_.` only,
/// all valid in a unit name).
pub fn unit_name(key: &str) -> String {
    format!("rlxc-{key}.scope")
}

/// Where the container's cgroup is, relative to the cgroup2 mount, when in its scope.
pub(super) fn rel(key: &str) -> PathBuf {
    Path::new(SLICE).join(unit_name(key)).join(PAYLOAD)
}

/// A forked process that only waits for its pipe to close: the scope's first process.
pub struct Holder {
    pid: Pid,
    pipe: Option<OwnedFd>,
}

impl Holder {
    fn fork() -> Result<Self> {
        let (pid, w) = crate::sys::fork_waiter()
            .map_err(|e| Error::io("fork", "the scope's first process", e))?;
        Ok(Holder { pid, pipe: Some(w) })
    }

    /// Let the holder exit and reap it: init is in the cgroup now (or never will be).
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if self.pipe.take().is_some() {
            // Killed, not left to see its pipe close: init, cloned without an exec
            // yet, holds a copy of the write end until it execs.
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.end();
    }
}

impl Cgroup {
    /// The container's cgroup made as its scope (see the module): the cgroup, and the
    /// holder to release once init was cloned into it. `container` names it in the
    /// unit's description; `before` are units to stop only after it (the ones that halt
    /// containers at shutdown).
    pub fn in_scope(
        layout: Layout,
        key: &str,
        container: &str,
        before: &[String],
    ) -> Result<(Cgroup, Holder)> {
        let holder = Holder::fork()?;
        let unit = unit_name(key);
        start_scope(&unit, container, holder.pid, before)?;
        let h = &layout.hierarchies[0];
        let scope = h.mountpoint.join(SLICE).join(&unit);
        wait_in(holder.pid, &format!("0::/{SLICE}/{unit}"))?;
        let payload = scope.join(PAYLOAD);
        mkdir(&payload)?;
        put(&payload.join("cgroup.procs"), &holder.pid.to_string())?;
        // The scope holds no process now: its controllers can be enabled below it.
        let offered = std::fs::read_to_string(scope.join("cgroup.controllers"))
            .map_err(|e| Error::io("read", scope.join("cgroup.controllers"), e))?;
        super::v2::enable_controllers(&scope, &offered)?;
        let cg = Cgroup {
            name: key.to_string(),
            layout,
            rel: rel(key),
            scope: Some(unit),
        };
        Ok((cg, holder))
    }
}

/// systemd's StartTransientUnit for the scope. A previous run's scope of the same name
/// may still be there for a moment (systemd collects it once empty): tried again then.
fn start_scope(unit: &str, container: &str, holder: Pid, before: &[String]) -> Result<()> {
    let mut args: Vec<String> = vec![unit.into(), "fail".into(), "6".into()];
    for (k, sig, v) in [
        ("Description", "s", format!("rlxc container {container}")),
        ("Slice", "s", SLICE.to_string()),
        ("Delegate", "b", "true".to_string()),
        ("CollectMode", "s", "inactive-or-failed".to_string()),
    ] {
        args.extend([k.to_string(), sig.to_string(), v]);
    }
    args.extend(["PIDs", "au", "1"].map(String::from));
    args.push(holder.to_string());
    args.extend(["Before", "as"].map(String::from));
    args.push(before.len().to_string());
    args.extend(before.iter().cloned());
    args.push("0".into());
    let deadline = Instant::now() + WAIT;
    loop {
        match dbus::call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            &args,
        ) {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("already") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(Error::Other(format!(
                    "systemd did not start the scope {unit}: {e}"
                )))
            }
        }
    }
}

/// Wait until systemd moved `pid` into the cgroup `want` (a /proc/PID/cgroup line).
fn wait_in(pid: Pid, want: &str) -> Result<()> {
    let file = format!("/proc/{pid}/cgroup");
    let deadline = Instant::now() + WAIT;
    loop {
        let now = std::fs::read_to_string(&file).unwrap_or_default();
        if now.lines().any(|l| l == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Other(format!(
                "systemd started the scope but did not move its first process there ({})",
                now.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The unit the calling process runs in, when it is a service (`rlxc-start -F` under
/// `rlxc@NAME.service`): a container's scope stops only after it.
pub fn own_service() -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = s.lines().find_map(|l| l.strip_prefix("0::"))?;
    path.rsplit('/')
        .find(|c| c.ends_with(".service"))
        .map(str::to_string)
}
