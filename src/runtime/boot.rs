//! The monitor's boot helpers: reading the child's verdict off the sync socket, telling
//! a child that died before exec from one that exec'd, and undoing a half-done boot.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::ipc::{self, FromChild, Stage};
use crate::net::link as net;

/// The child's failure, if it already sent one (for an error on the monitor's side,
/// where the child's reason comes first).
/// Stages it reached before failing are passed over: a child that got its namespaces and
/// then failed a mount took its network namespace with it, and the monitor's netlink
/// error must not hide the mount's reason.
pub(super) fn child_failure(sync: &OwnedFd) -> Option<Error> {
    loop {
        match ipc::recv_packet(sync.as_fd(), false) {
            Ok(Some(FromChild::Failed { reason })) => return Some(Error::Other(reason)),
            Ok(Some(FromChild::Reached { .. })) => continue,
            _ => return None,
        }
    }
}

/// Wait until the child reached `stage`; its failure, a wrong message or its death
/// first is the error.
pub(super) fn child_reached(
    sync: &OwnedFd,
    stage: Stage,
    child: Pid,
    limits: &crate::config::Limits,
) -> Result<()> {
    match ipc::recv_packet(sync.as_fd(), true) {
        Ok(Some(FromChild::Reached { stage: s })) if s == stage => Ok(()),
        Ok(Some(FromChild::Failed { reason })) => Err(Error::Other(reason)),
        Ok(Some(other)) => Err(Error::Other(format!(
            "the container's first process sent {other:?} where {stage:?} was due"
        ))),
        Ok(None) => Err(died_before_exec(child, limits).unwrap_or_else(|| {
            Error::Other("the container's first process exec'd before its set-up".into())
        })),
        Err(e) => Err(Error::Other(format!(
            "cannot hear from the container's first process: {e}"
        ))),
    }
}

/// Both ends of each of the `count` ttys the child made (tty1 first), sent with its
/// `Ttys` stage.
pub(super) fn child_ttys(
    sync: &OwnedFd,
    child: Pid,
    limits: &crate::config::Limits,
    count: u32,
) -> Result<Vec<OwnedFd>> {
    match ipc::recv_packet_with_fds::<FromChild>(sync.as_fd()) {
        Ok(Some((FromChild::Reached { stage: Stage::Ttys }, fds))) => {
            if fds.len() == 2 * count as usize {
                Ok(fds)
            } else {
                Err(Error::Other(format!(
                    "the container's first process sent {} descriptors for {count} ttys",
                    fds.len()
                )))
            }
        }
        Ok(Some((FromChild::Failed { reason }, _))) => Err(Error::Other(reason)),
        Ok(Some((other, _))) => Err(Error::Other(format!(
            "the container's first process sent {other:?} where its ttys were due"
        ))),
        Ok(None) => Err(died_before_exec(child, limits).unwrap_or_else(|| {
            Error::Other("the container's first process exec'd before its set-up".into())
        })),
        Err(e) => Err(Error::Other(format!(
            "cannot hear from the container's first process: {e}"
        ))),
    }
}

/// Tell the child to go on (its network is there) and wait for its exec.
pub(super) fn go(sync: &OwnedFd, pid: Pid, limits: &crate::config::Limits) -> Result<()> {
    let told = ipc::send_packet(
        sync.as_fd(),
        &ipc::ToChild::Reached {
            stage: Stage::Network,
        },
    );
    if let Err(e) = told {
        // A child that failed meanwhile has closed its end: its reason is queued.
        return Err(child_failure(sync).unwrap_or_else(|| {
            Error::Other(format!("cannot tell the container's first process: {e}"))
        }));
    }
    child_exec(sync, pid, limits)
}

/// After the last stage: the socket closes at exec. A failure sent, or a death that
/// closed it instead, is the error.
pub(super) fn child_exec(sync: &OwnedFd, child: Pid, limits: &crate::config::Limits) -> Result<()> {
    match ipc::recv_packet::<FromChild>(sync.as_fd(), true) {
        Ok(None) => died_before_exec(child, limits).map_or(Ok(()), Err),
        // rlxc-execute's init does not exec: it says it is past its set-up instead (its
        // command may be over before this is read).
        Ok(Some(FromChild::Reached {
            stage: Stage::Network,
        })) => Ok(()),
        Ok(Some(FromChild::Failed { reason })) => Err(Error::Other(reason)),
        Ok(Some(other)) => Err(Error::Other(format!(
            "the container's first process sent {other:?} instead of executing init"
        ))),
        Err(e) => Err(Error::Other(format!(
            "cannot hear from the container's first process: {e}"
        ))),
    }
}

/// The sync socket closed: the child either exec'd init or died. A process that exits
/// drops its memory before its files, so a child whose socket closed and that has no
/// executable any more is dying, not exec'ing: how it ended is reported. It is waited
/// for without being reaped (WNOWAIT), so its pid stays its own until the boot guard
/// reaps it.
pub(super) fn died_before_exec(child: Pid, limits: &crate::config::Limits) -> Option<Error> {
    if std::fs::read_link(format!("/proc/{child}/exe")).is_ok() {
        return None;
    }
    let status = waitid(Id::Pid(child), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
    let oom_like = matches!(status, Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)));
    let how = match status {
        Ok(WaitStatus::Signaled(_, sig, _)) => {
            format!("was killed by {sig} before it could execute init")
        }
        // An exit (not a kill) may also be init's own, at once after its exec.
        Ok(WaitStatus::Exited(_, code)) => {
            format!("exited with status {code}, before init ran or as init at once")
        }
        Ok(other) => format!("ended ({other:?}) before it could execute init"),
        Err(e) => format!("could not be waited for ({e})"),
    };
    let hint = match &limits.memory {
        Some(m) if oom_like => format!(
            "; the memory limit limits.memory = \"{m}\" may be too low for it (the OOM \
             killer ends processes with SIGKILL)"
        ),
        _ => String::new(),
    };
    Some(Error::Other(format!(
        "the container's first process {how}{hint}"
    )))
}

/// A version 4 UUID, the format of /proc/sys/kernel/random/boot_id.
pub(super) fn random_uuid() -> String {
    let mut b = crate::config::random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Undoes a half-done boot: kills the child, removes veths and the cgroup.
pub(super) struct BootGuard {
    pub cgroup: Cgroup,
    pub veths: Vec<String>,
    pub child: Option<Pid>,
    pub armed: bool,
}

impl BootGuard {
    pub fn disarm(mut self) -> (Cgroup, Vec<String>) {
        self.armed = false;
        (self.cgroup.clone(), std::mem::take(&mut self.veths))
    }
}

impl Drop for BootGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        for v in &self.veths {
            net::remove_veth(v);
        }
        let _ = self.cgroup.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    /// A child reaped by hand (waitpid), as the monitor reaps init.
    #[allow(clippy::zombie_processes)]
    fn spawn(script: &str) -> Pid {
        let c = std::process::Command::new("sh")
            .args(["-c", script])
            .spawn()
            .expect("sh");
        Pid::from_raw(c.id() as i32)
    }

    #[test]
    fn a_child_killed_before_exec_is_no_start() {
        // Dead and unreaped, as a child the OOM killer ended looks to the monitor.
        let pid = spawn("kill -9 $$");
        while std::fs::read_link(format!("/proc/{pid}/exe")).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let limits = Limits {
            memory: "4M".parse().ok(),
            ..Limits::default()
        };
        let e = died_before_exec(pid, &limits)
            .expect("reported")
            .to_string();
        assert!(e.contains("SIGKILL") && e.contains("limits.memory"), "{e}");
    }

    #[test]
    fn a_child_that_runs_is_a_start() {
        let pid = spawn("exec sleep 5");
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(died_before_exec(pid, &Limits::default()).is_none());
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
}
