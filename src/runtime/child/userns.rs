//! An unprivileged container's child takes its root: the monitor maps its ids and sends
//! the root as a detached idmapped mount; the child becomes the namespace's root and
//! attaches it where it will pivot.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, IoContext, Result};
use crate::ipc::{self, Stage, ToChild};
use crate::rootfs::Root;
use crate::store::backing::RootSource;
use crate::sys;

/// Wait for the ids and the root, become root of the user namespace, attach the root.
pub(super) fn enter_root(source: &RootSource, sync: BorrowedFd<'_>) -> Result<Root> {
    let at = match source {
        RootSource::Bind(dir) => dir,
        RootSource::Overlay { at, .. } => at,
    };
    // Opened before the ids change: until then this process is the host's uid 0 (with
    // no capability over the host's files), so the owner's permissions of root's
    // directories on the way (a 0700 lxcpath) still let it through; the namespace's
    // root cannot.
    let target = nix::fcntl::open(
        at,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open the rootfs mount point", at)?;
    let mnt = wait_for_root(sync)?;
    sys::creds::become_root()
        .map_err(|e| Error::io("become root in", "the container's user namespace", e))?;
    sys::mount::move_mount_onto(mnt.as_fd(), target.as_fd()).ctx("mount the root on", at)?;
    open_mounted(&mnt, at)
}

/// The root of the attached mount `mnt` (an O_PATH handle) as a readable directory.
fn open_mounted(mnt: &OwnedFd, at: &Path) -> Result<Root> {
    let fd = sys::mount::open_root(mnt.as_fd()).ctx("open the root mounted on", at)?;
    Ok(Root::from_fd(fd, at))
}

/// The monitor's `IdsMapped`, with the root attached to it.
fn wait_for_root(sync: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mapped = ToChild::Reached {
        stage: Stage::IdsMapped,
    };
    match ipc::recv_packet_with_fds::<ToChild>(sync) {
        Ok(Some((msg, mut fds))) if msg == mapped && fds.len() == 1 => fds
            .pop()
            .ok_or_else(|| Error::Other("no root came with the ids".into())),
        Ok(Some((other, fds))) => Err(Error::Other(format!(
            "the monitor sent {other:?} with {} descriptors where its ids and root were due",
            fds.len()
        ))),
        Ok(None) | Err(_) => Err(Error::Other(
            "the monitor went away before the start".into(),
        )),
    }
}
