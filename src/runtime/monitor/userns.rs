//! An unprivileged container's boot, the host's side: the monitor (the host's root)
//! hands the cgroup and the console to the container's root, prepares the host files
//! its child binds (that child's root cannot reach host paths), writes the child's id
//! maps and makes its root an idmapped mount. Nothing on disk is chowned: the ids are
//! shifted by the mount, so an image, an overlay lower and a container's files are the
//! same for privileged and unprivileged runs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid};

use crate::config::{ContainerConfig, IdRange, MountEntry};
use crate::error::{Error, IoContext, Result};
use crate::runtime::child::{self, HostBind, DEVICES, TTY_GID};
use crate::store::backing::RootSource;
use crate::sys;

/// The host ids an unprivileged container's ids 0.. are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ids {
    pub uid: IdRange,
    pub gid: IdRange,
}

impl Ids {
    /// From the container's `[idmap]`; None: a privileged container.
    pub fn of(cfg: &ContainerConfig) -> Result<Option<Ids>> {
        let Some(map) = &cfg.idmap else {
            return Ok(None);
        };
        let (uid, gid) = map.ranges().ok_or_else(|| {
            Error::Other(
                "[idmap] in its config.toml has no host ids: set uid and gid (a range of \
                 root's /etc/subuid and /etc/subgid), or remove [idmap] to run it privileged"
                    .into(),
            )
        })?;
        Ok(Some(Ids { uid, gid }))
    }

    /// The host gid of the container's group `gid`, where it is mapped.
    fn host_gid(&self, gid: u32) -> Option<u32> {
        (gid < self.gid.count).then(|| self.gid.host + gid)
    }
}

/// The console and the cgroup, the container's root's: init opens /dev/console, and
/// systemd makes its own cgroups below its root.
pub(super) fn hand_over(
    ids: &Ids,
    cgroup: &crate::cgroup::Cgroup,
    pty_slave: BorrowedFd<'_>,
    console: &Path,
) -> Result<()> {
    cgroup.delegate(ids.uid.host, ids.gid.host)?;
    let tty = ids.host_gid(TTY_GID).unwrap_or(ids.gid.host);
    nix::unistd::fchown(
        pty_slave,
        Some(Uid::from_raw(ids.uid.host)),
        Some(Gid::from_raw(tty)),
    )
    .ctx("hand over to the container's root", console)
}

/// Before the clone: what the child binds from the host, as detached mounts (the
/// console's pty, the boot id, the device nodes, the `[[mount]]` binds).
pub(super) fn host_binds(
    ids: &Ids,
    console: &Path,
    boot_id: &Path,
    mounts: &[MountEntry],
) -> Result<(HostBind, HostBind, child::Userns)> {
    let detach = |p: &Path| sys::mount::clone_tree(p, false).ctx("bind", p);
    let mut devices = Vec::new();
    for (name, ..) in DEVICES {
        devices.push((*name, detach(&Path::new("/dev").join(name))?));
    }
    let mounts = mounts
        .iter()
        .map(child::detach_entry)
        .collect::<Result<Vec<_>>>()?;
    Ok((
        HostBind::Detached(detach(console)?),
        HostBind::Detached(detach(boot_id)?),
        child::Userns {
            devices,
            mounts,
            count: ids.uid.count.min(ids.gid.count),
        },
    ))
}

/// The child's maps: its ids 0.. are the host's ranges. Written by the host's root, so
/// any range is allowed and setgroups stays allowed inside.
pub(super) fn map_ids(pid: Pid, ids: &Ids) -> Result<()> {
    for (file, r) in [("uid_map", ids.uid), ("gid_map", ids.gid)] {
        let p = format!("/proc/{pid}/{file}");
        let line = format!("0 {} {}\n", r.host, r.count);
        std::fs::write(&p, &line).map_err(|e| {
            Error::Other(format!(
                "cannot map the container's ids: writing \"{}\" ([idmap]) to {p} failed: {e}",
                line.trim_end()
            ))
        })?;
    }
    Ok(())
}

/// The root as a detached mount whose ids are shifted through the child's user namespace
/// (its maps written): on-disk owner N is the container's N.
pub(super) fn idmapped_root(source: &RootSource, pid: Pid, ids: &Ids) -> Result<OwnedFd> {
    let ns = format!("/proc/{pid}/ns/user");
    let userns = nix::fcntl::open(
        ns.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", &ns)?;
    match source {
        // A btrfs store is a plain tree too.
        RootSource::Bind(dir) => mapped_clone(dir, userns.as_fd(), true),
        RootSource::Overlay {
            lowers,
            upper,
            work,
            tmpfs,
            ..
        } => {
            let run = RunLayers {
                lowers,
                upper,
                work,
                tmpfs: *tmpfs,
            };
            idmapped_overlay(&run, userns.as_fd(), ids)
        }
    }
}

/// A detached copy of `path` (with the mounts below it when `recursive`), its ids
/// shifted by `userns`.
fn mapped_clone(path: &Path, userns: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd> {
    let fd = sys::mount::clone_tree(path, recursive).ctx("open a mount of", path)?;
    sys::mount::idmap(fd.as_fd(), userns, recursive).map_err(|e| not_idmappable(path, e))?;
    Ok(fd)
}

fn not_idmappable(path: &Path, e: std::io::Error) -> Error {
    Error::Other(format!(
        "cannot shift the ids of {} for the container's user namespace: it is on {}, and an \
         idmapped mount of it failed ({e}). An unprivileged container needs its files on a \
         file system with idmapped mounts (ext4, xfs, btrfs, tmpfs): move it there, or \
         remove [idmap] from its config.toml to run it privileged",
        path.display(),
        crate::store::btrfs::fs_type(path)
    ))
}

/// An overlay root's layers for one run.
struct RunLayers<'a> {
    lowers: &'a [PathBuf],
    upper: &'a Path,
    work: &'a Path,
    /// The upper is read-only this run and the writes go to a new tmpfs.
    tmpfs: bool,
}

/// The overlay of an unprivileged container. Measured on Linux 6.18:
/// - an idmapped mount of an overlay is refused (EINVAL): overlayfs cannot be idmapped;
/// - idmapped lowers under a plain upper mount, but the upper then takes host ids: what
///   the container makes is owned by its host range on disk, and what a create or a
///   privileged run wrote there is nobody's inside;
/// - an idmapped upper works when the overlay's creator, whose credentials it uses for
///   its own work in the upper (its work directory, copy-up, whiteouts), has the
///   container root's file-system ids. Made by the host's root it cannot create its work
///   directory (EOVERFLOW: uid 0 has no place in the map) and falls back to read-only,
///   which is what "an idmapped upper makes the overlay read-only" saw.
///
/// So every layer is idmapped and the overlay is made with the container root's fsuid
/// and fsgid but the host root's capabilities (its trusted.overlay.* attributes need
/// CAP_SYS_ADMIN): on disk the lower and the upper hold the container's own ids, as a
/// dir store does, and privileged and unprivileged runs see the same files.
fn idmapped_overlay(run: &RunLayers, userns: BorrowedFd<'_>, ids: &Ids) -> Result<OwnedFd> {
    // Each layer is named by its mount's /proc/self/fd path; the overlay keeps its own
    // references to them once made, so these descriptors may go afterwards.
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut lowers = Vec::new();
    let read_only = run.tmpfs.then_some(run.upper);
    for l in read_only
        .into_iter()
        .chain(run.lowers.iter().map(|l| l.as_path()))
    {
        let fd = mapped_clone(l, userns, false)?;
        lowers.push(sys::mount::fd_path(fd.as_fd()));
        held.push(fd);
    }
    let (upper, work) = if run.tmpfs {
        let t = run_tmpfs(run.upper, userns)?;
        let base = sys::mount::fd_path(t.as_fd());
        held.push(t);
        (base.join("upper"), base.join("work"))
    } else {
        // Upper and work must be on one mount: the directory holding both is mapped.
        let base = common_dir(run.upper, run.work);
        let fd = mapped_clone(&base, userns, false)?;
        let at = sys::mount::fd_path(fd.as_fd());
        held.push(fd);
        let under = |p: &Path| at.join(p.strip_prefix(&base).unwrap_or(p));
        (under(run.upper), under(run.work))
    };
    let layers = sys::mount::OverlayLayers {
        lowers: &lowers,
        upper: &upper,
        work: &work,
    };
    let made = sys::creds::with_fs_ids(ids.uid.host, ids.gid.host, || sys::mount::overlay(&layers));
    made.and_then(|r| r)
        .ctx("mount an overlay with the ids of", run.upper)
}

/// The deepest directory holding both `a` and `b`.
fn common_dir(a: &Path, b: &Path) -> PathBuf {
    let mut base = a.to_path_buf();
    while !b.starts_with(&base) {
        if !base.pop() {
            break;
        }
    }
    base
}

/// A tmpfs for one run's writes, holding `upper` (owned and moded as the container's
/// upper, which the merged root shows) and `work`, its ids shifted by `userns`.
fn run_tmpfs(upper: &Path, userns: BorrowedFd<'_>) -> Result<OwnedFd> {
    let t = sys::mount::tmpfs(&[("mode", "0700")]).ctx("mount a tmpfs for the writes of", upper)?;
    let dir = sys::mount::open_root(t.as_fd()).ctx("open the tmpfs for", upper)?;
    crate::store::backing::make_run_layers(&sys::mount::fd_path(dir.as_fd()), upper)?;
    drop(dir);
    sys::mount::idmap(t.as_fd(), userns, false).map_err(|e| not_idmappable(upper, e))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_and_work_share_the_deepest_directory() {
        let d = common_dir(Path::new("/c/x/upper"), Path::new("/c/x/work"));
        assert_eq!(d, Path::new("/c/x"));
        let d = common_dir(Path::new("/c/x/data/upper"), Path::new("/c/x/work"));
        assert_eq!(d, Path::new("/c/x"));
    }
}
