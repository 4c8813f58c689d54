//! Freezing a container's tasks: the v1 `freezer` controller where the host mounts one
//! (`freezer.state`, FREEZING until the last task is frozen), else cgroup2's core
//! `cgroup.freeze`, whose completion `cgroup.events` reports (`frozen 1`). Either way the
//! whole subtree freezes, so what systemd made below the container's cgroup goes too.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::files::{apply, row, Io, Place, Setting, Value, Write};
use super::Cgroup;
use crate::error::{Error, Result};

/// How long a freeze may take before it is undone. Tasks freeze at their next return to
/// user space or interruptible sleep; one stuck in the kernel (a hung NFS server, a
/// device) keeps the freeze incomplete for as long.
pub const FREEZE_WAIT: Duration = Duration::from_secs(10);

impl Cgroup {
    /// The freezer's directory and files for this container; why there is none.
    fn freezer(&self) -> Result<(PathBuf, &'static Place)> {
        let (h, place) = self.layout.locate(row(Setting::Freeze)).ok_or_else(|| {
            Error::Other(format!(
                "cannot freeze {}: this host mounts neither the v1 freezer controller nor \
                 cgroup2 (mount one: mount -t cgroup -o freezer freezer /sys/fs/cgroup/freezer)",
                self.container_name()
            ))
        })?;
        let dir = self.path_in(h);
        let file = place.files.iter().find_map(|f| match f.io {
            Io::Write(_) => Some(f.name),
            Io::Read(_) | Io::Less(_) => None,
        });
        match file {
            _ if !dir.is_dir() => Err(Error::Other(format!(
                "{} has no cgroup {} to freeze: it is not running, or it started before \
                 that hierarchy was mounted (restart it)",
                self.container_name(),
                dir.display()
            ))),
            Some(f) if dir.join(f).exists() => Ok((dir, place)),
            _ => Err(Error::Other(format!(
                "cannot freeze {}: {} has no freezer file (cgroup2's cgroup.freeze needs \
                 Linux 5.2 or later; on a v1 host, mount the freezer controller)",
                self.container_name(),
                dir.display()
            ))),
        }
    }

    /// Every task of the container is frozen (not merely being frozen).
    pub fn frozen(&self) -> bool {
        self.read(Setting::Freeze) == Some(1)
    }

    /// Freeze every task and wait until the kernel says all are; a freeze that does not
    /// complete within `FREEZE_WAIT` is undone and reported.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true, FREEZE_WAIT)
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false, FREEZE_WAIT)
    }

    pub(super) fn set_frozen(&self, on: bool, wait: Duration) -> Result<()> {
        let (dir, place) = self.freezer()?;
        apply(&place.writes(&dir, &Value::Frozen(on)))?;
        let t0 = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            match place.read(&dir) {
                Some(v) if v == u64::from(on) => return Ok(()),
                None if !dir.is_dir() => {
                    return Err(Error::Other(format!(
                        "{} stopped while being {}",
                        self.container_name(),
                        if on { "frozen" } else { "thawed" }
                    )))
                }
                _ => {}
            }
            if t0.elapsed() >= wait {
                let what = if on {
                    // Half frozen is of no use to anybody: back to running.
                    let undone = apply(&place.writes(&dir, &Value::Frozen(false))).is_ok();
                    format!(
                        "not all of its processes froze within {} s (one is stuck in the \
                         kernel: a hung network file system, a device); {}",
                        wait.as_secs_f32(),
                        if undone {
                            "it was thawed again"
                        } else {
                            "thawing it again failed too: try rlxc-unfreeze"
                        }
                    )
                } else {
                    format!("it did not thaw within {} s", wait.as_secs_f32())
                };
                return Err(Error::Busy {
                    name: self.container_name().to_string(),
                    what,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Freeze for a step of this process (a snapshot's copy): thawed when the hold is
    /// dropped, and by a small watcher process if this one dies first (SIGKILL, a third
    /// Ctrl-C), so an rlxc that is gone never leaves a container frozen.
    /// The caller is single-threaded (it forks).
    pub fn hold_frozen(&self) -> Result<FreezeHold> {
        let (dir, place) = self.freezer()?;
        let thaw = place.writes(&dir, &Value::Frozen(false));
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("make a pipe for", "the freeze watcher", e.into()))?;
        let watcher = match crate::sys::fork() {
            Ok(crate::sys::Forked::Child) => {
                drop(wr);
                watch(rd, &thaw)
            }
            Ok(crate::sys::Forked::Parent(pid)) => pid,
            Err(e) => return Err(Error::io("fork", "the freeze watcher", e.into())),
        };
        drop(rd);
        let hold = FreezeHold {
            cgroup: self.clone(),
            tell: Some(wr),
            watcher,
        };
        // On failure the hold goes: thawed (again), the watcher told and reaped.
        self.freeze()?;
        Ok(hold)
    }
}

/// A freeze held by this process (see `Cgroup::hold_frozen`).
pub struct FreezeHold {
    cgroup: Cgroup,
    /// The watcher reads its end: a byte means "thawed already", EOF "thaw it".
    tell: Option<OwnedFd>,
    watcher: Pid,
}

impl Drop for FreezeHold {
    fn drop(&mut self) {
        let thawed = self.cgroup.thaw().is_ok();
        if let Some(tell) = self.tell.take() {
            // Not told, the watcher tries the thaw itself.
            if thawed {
                let _ = nix::unistd::write(&tell, b"t");
            }
        }
        let _ = nix::sys::wait::waitpid(self.watcher, None);
    }
}

/// The watcher: waits for its parent's word or end, thaws unless told it is done.
fn watch(rd: OwnedFd, thaw: &[Write]) -> ! {
    // A Ctrl-C reaches the whole process group; this must outlive its parent's unwinding.
    crate::sys::ignore_interrupts();
    crate::sys::set_comm("rlxc-thaw");
    let mut b = [0u8; 1];
    let told = loop {
        match nix::unistd::read(&rd, &mut b) {
            Ok(n) => break n == 1,
            Err(Errno::EINTR) => continue,
            Err(_) => break false,
        }
    };
    if !told {
        let _ = apply(thaw);
    }
    crate::sys::exit_child(0)
}
