//! The container's ttys, as LXC makes them: ptys of the container's own devpts, each
//! slave bound onto /dev/ttyN. Both ends go to the monitor, which holds them for its
//! lifetime (`rlxc-console -t N`); inside, /dev/ttyN is pts/K of /dev/pts, which is
//! what systemd's container gettys are told to use (`container_ttys`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;

use super::mounts::{bind_host, HostBind};
use crate::error::{Error, IoContext, Result};
use crate::rootfs::Root;
use crate::sys;

/// The ttys made: master and slave of each (tty1 first), and the slaves' names in the
/// container's devpts (`pts/0`).
pub(super) struct Ttys {
    pub ends: Vec<(OwnedFd, OwnedFd)>,
    pub names: Vec<String>,
}

impl Ttys {
    /// `container_ttys` for init's environment: systemd starts a getty on each.
    pub fn env(&self) -> Option<String> {
        (!self.names.is_empty()).then(|| format!("container_ttys={}", self.names.join(" ")))
    }
}

/// Make `count` ttys in the devpts mounted at /dev/pts inside `root`.
pub(super) fn make(root: &Root, count: u32) -> Result<Ttys> {
    let mut t = Ttys {
        ends: Vec::new(),
        names: Vec::new(),
    };
    for i in 1..=count {
        let tty = format!("/dev/tty{i}");
        let master = match root.openat(b"dev/pts/ptmx", OFlag::O_RDWR | OFlag::O_NOCTTY, 0) {
            Err(nix::errno::Errno::ENOSPC) => return Err(Error::Other(host_ptys_used_up(&tty))),
            r => r.ctx("open a pty for", &tty)?,
        };
        let slave = sys::pty::open_peer(master.as_fd())
            .map_err(|e| Error::io("open the pty of", &tty, e))?;
        let n = sys::pty::pty_number(master.as_fd())
            .map_err(|e| Error::io("number the pty of", &tty, e))?;
        let src = HostBind::Path(format!("/proc/self/fd/{}", slave.as_raw_fd()).into());
        bind_host(root, &tty[1..], &src, false)?;
        t.ends.push((master, slave));
        t.names.push(format!("pts/{n}"));
    }
    Ok(t)
}

/// The host's ptys are counted across every devpts instance (kernel.pty.max, less the
/// kernel.pty.reserve kept for the host's own): each container takes 1 + tty_max.
fn host_ptys_used_up(tty: &str) -> String {
    let read = |k: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/pty/{k}"))
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "cannot open a pty for {tty}: the host's ptys are used up (kernel.pty.max = {}, \
         {} reserved for the host, {} in use; each container takes its console and tty_max \
         ttys): raise kernel.pty.max (rlxc-checkconfig --containers N says how far), or \
         lower tty_max in the container's config",
        read("max"),
        read("reserve"),
        read("nr")
    )
}
