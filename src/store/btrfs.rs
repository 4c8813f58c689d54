//! The `btrfs` backing store: the rootfs is a subvolume (`DIR/rootfs`), so a copy or a
//! snapshot of it is a subvolume snapshot: instant, copy-on-write, and independent of its
//! origin from then on. Also what any removal on btrfs needs: subvolumes under the tree
//! (the container's own, and those its processes made inside it, as systemd does with
//! /var/lib/machines, read-only ones included) go by ioctl, nested ones first, which
//! plain unlinking could not do. As root, with ioctls only: no btrfs-progs at run time.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::backing::{BackingStore, Dir, RootSource};
use crate::config::Backend;
use crate::error::{Error, IoContext, Result};
use crate::sys::btrfs as sys;

/// A subvolume where `dir` would have its directory: the same tree, made and copied
/// another way.
pub struct Btrfs(pub(super) Dir);

impl BackingStore for Btrfs {
    fn kind(&self) -> Backend {
        Backend::Btrfs
    }

    fn path(&self, dir: &Path) -> PathBuf {
        self.0.path(dir)
    }

    fn create(&self, staging: &Path) -> Result<PathBuf> {
        let p = self.path(staging);
        if let Some(parent) = p.parent() {
            super::mkdir_p(parent, 0o755)?;
        }
        create_subvolume(&p)?;
        Ok(p)
    }

    fn open_tree(&self, dir: &Path) -> Result<super::backing::OpenTree> {
        self.0.open_tree(dir)
    }

    fn root(&self, dir: &Path) -> RootSource {
        self.0.root(dir)
    }

    /// `store::remove_tree` deletes the subvolume and those nested in it.
    fn destroy(&self, dir: &Path) -> Result<()> {
        self.0.destroy(dir)
    }

    fn clone_into(&self, dir: &Path, to: &Path) -> Result<bool> {
        snapshot(&self.path(dir), to)
    }
}

fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn fd_on_btrfs(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC)
}

/// Whether `path` is on a btrfs file system.
pub fn is_btrfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC)
}

/// The type of the file system `path` is on, as /proc/self/mountinfo names it.
pub fn fs_type(path: &Path) -> String {
    let from_mountinfo = || -> Option<String> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
        let id = sys::entry_at(fd.as_fd(), OsStr::new("")).ok()?.mnt_id;
        let mounts = crate::sys::mountinfo::read_self().ok()?;
        mounts.into_iter().find(|m| m.id == id).map(|m| m.fstype)
    };
    from_mountinfo().unwrap_or_else(|| match nix::sys::statfs::statfs(path) {
        Ok(s) => format!("file system type {:#x}", s.filesystem_type().0),
        Err(e) => format!("an unknown file system ({e})"),
    })
}

/// `what` (like "-B btrfs") needs the lxcpath on btrfs: refused, naming it and what it
/// is on, before anything is made.
pub fn require(lxcpath: &Path, what: &str) -> Result<()> {
    if is_btrfs(lxcpath) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{what}: the lxcpath {} is on {}, not btrfs; nothing was created. Use -B dir, or an \
         lxcpath on a btrfs file system (lxcpath in rlxc.toml, or -P)",
        lxcpath.display(),
        fs_type(lxcpath)
    )))
}

/// `path`'s directory, open, and its last component.
fn parent_and_name(path: &Path) -> Result<(OwnedFd, &OsStr)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Other(format!(
            "{} names no directory entry",
            path.display()
        )));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let fd = open_dir(parent).ctx("open", parent)?;
    Ok((fd, name))
}

/// A new empty subvolume at `path` (its directory exists).
pub fn create_subvolume(path: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(path)?;
    if !fd_on_btrfs(parent.as_fd()) {
        let dir = path.parent().unwrap_or(path);
        return Err(Error::Usage(format!(
            "cannot make the btrfs subvolume {}: {} is on {}, not btrfs (backend = \"btrfs\" \
             needs the lxcpath on btrfs); nothing was created",
            path.display(),
            dir.display(),
            fs_type(dir)
        )));
    }
    sys::subvol_create(parent.as_fd(), name).ctx("create the btrfs subvolume", path)
}

/// `to` (absent, its directory existing) made a writable snapshot of the subvolume
/// `from`, with the subvolumes nested in it snapshotted into their places (a snapshot
/// holds only an empty directory where a nested subvolume was), read-only ones kept
/// read-only. False, with nothing made, when `from` is not a subvolume or `to` is not on
/// the same btrfs: the caller copies files instead.
pub fn snapshot(from: &Path, to: &Path) -> Result<bool> {
    let src = open_dir(from).ctx("open", from)?;
    let e = sys::entry_at(src.as_fd(), OsStr::new("")).ctx("inspect", from)?;
    if !fd_on_btrfs(src.as_fd()) || e.ino != sys::SUBVOL_ROOT_INO || e.mount_root {
        return Ok(false);
    }
    let (parent, name) = parent_and_name(to)?;
    match sys::snap_create(src.as_fd(), parent.as_fd(), name) {
        Ok(()) => {}
        // Another file system (EXDEV), or not btrfs at all (ENOTTY, EINVAL).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::ENOTTY | libc::EINVAL | libc::EOPNOTSUPP)
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(Error::io("snapshot the btrfs subvolume", from, e)),
    }
    let dst = open_dir(to).ctx("open", to)?;
    let nested = snapshot_nested(&src, &dst, from, to);
    drop(dst);
    match nested {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = super::remove_tree(to);
            match e {
                // A subvolume nested deeper than a lookup can name: files are copied.
                Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                    Ok(false)
                }
                e => Err(e),
            }
        }
    }
}

/// Open `rel` (a path the kernel gave: real directories, no symlinks) below `root`,
/// refusing anything else.
fn open_beneath(root: BorrowedFd<'_>, rel: &[u8]) -> nix::Result<OwnedFd> {
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    loop {
        match nix::fcntl::openat2(root, OsStr::from_bytes(rel), how) {
            Err(Errno::EAGAIN) => continue,
            r => return r,
        }
    }
}

/// After `dst` was snapshotted from `src`: each subvolume nested in `src` (at any depth)
/// snapshotted in place of the empty directory the snapshot has for it.
fn snapshot_nested(src: &OwnedFd, dst: &OwnedFd, from: &Path, to: &Path) -> Result<()> {
    let (src_id, _) = sys::ino_path(src.as_fd(), 0, sys::SUBVOL_ROOT_INO)
        .ctx("look up the btrfs subvolume", from)?;
    // (source subvolume id, its path below `from` and `to`), parents before children,
    // without recursion: a container decides how deep its subvolumes nest.
    let mut pending: Vec<(u64, Vec<u8>)> = vec![(src_id, Vec::new())];
    let mut read_only: Vec<Vec<u8>> = Vec::new();
    while let Some((id, base)) = pending.pop() {
        let children = sys::child_subvolumes(src.as_fd(), id).ctx(
            "list the subvolumes in",
            from.join(OsStr::from_bytes(&base)),
        )?;
        for child in children {
            let (_, dir) = sys::ino_path(src.as_fd(), id, child.dirid).ctx(
                "look up a subvolume in",
                from.join(OsStr::from_bytes(&base)),
            )?;
            let dir = [base.as_slice(), dir.as_slice()].concat();
            let rel = [dir.as_slice(), child.name.as_slice()].concat();
            let name = OsStr::from_bytes(&child.name);
            let (src_path, dst_path) = (
                from.join(OsStr::from_bytes(&rel)),
                to.join(OsStr::from_bytes(&rel)),
            );
            let src_dir =
                open_beneath(src.as_fd(), &dir).ctx("open", from.join(OsStr::from_bytes(&dir)))?;
            let dst_dir =
                open_beneath(dst.as_fd(), &dir).ctx("open", to.join(OsStr::from_bytes(&dir)))?;
            let sub = nix::fcntl::openat(
                src_dir.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx("open", &src_path)?;
            // The snapshot's stand-in for it: an empty directory.
            nix::unistd::unlinkat(dst_dir.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir)
                .ctx("remove the placeholder", &dst_path)?;
            sys::snap_create(sub.as_fd(), dst_dir.as_fd(), name)
                .ctx("snapshot the btrfs subvolume", &src_path)?;
            if sys::subvol_flags(sub.as_fd()).ctx("read the flags of", &src_path)?
                & sys::SUBVOL_RDONLY
                != 0
            {
                read_only.push(rel.clone());
            }
            // The two steps above touched the directory: it keeps the source's times.
            let st = nix::sys::stat::fstat(src_dir.as_fd())
                .ctx("inspect", from.join(OsStr::from_bytes(&dir)))?;
            let times = [
                nix::sys::time::TimeSpec::new(st.st_atime, st.st_atime_nsec),
                nix::sys::time::TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
            ];
            nix::sys::stat::futimens(dst_dir.as_fd(), &times[0], &times[1])
                .ctx("set the times of", to.join(OsStr::from_bytes(&dir)))?;
            let mut next = rel;
            next.push(b'/');
            pending.push((child.id, next));
        }
    }
    // Last: a read-only one could not take the snapshots of those nested in it.
    for rel in read_only {
        let p = to.join(OsStr::from_bytes(&rel));
        let fd = open_beneath(dst.as_fd(), &rel).ctx("open", &p)?;
        let flags = sys::subvol_flags(fd.as_fd()).ctx("read the flags of", &p)?;
        sys::set_subvol_flags(fd.as_fd(), flags | sys::SUBVOL_RDONLY).ctx("make read-only", &p)?;
    }
    Ok(())
}

/// Delete every subvolume at or below `path`, nested ones first, read-only ones too, so
/// that what is left is plain files and directories (`store::remove_tree` then removes
/// them). Nothing to do off btrfs, for a missing path, a symlink or a mount's root.
/// Subvolumes are found by the file system's own records, not a walk of the tree: fast,
/// and indifferent to how deep a container nests its directories.
pub fn remove_subvolumes(path: &Path) -> Result<()> {
    let fd = match open_dir(path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(()),
        Err(e) => return Err(e).ctx("open", path),
    };
    if !fd_on_btrfs(fd.as_fd()) {
        return Ok(());
    }
    let me = sys::entry_at(fd.as_fd(), OsStr::new("")).ctx("inspect", path)?;
    if me.mount_root {
        return Ok(());
    }
    let (tree, here) = match sys::ino_path(fd.as_fd(), 0, me.ino) {
        Ok(found) => found,
        // Without CAP_SYS_ADMIN the records are closed: unlinking is all there is.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(()),
        Err(e) => return Err(Error::io("look up", path, e)),
    };
    let mut roots = Vec::new();
    if me.ino == sys::SUBVOL_ROOT_INO {
        roots.push(tree);
    } else {
        // The subvolumes of the one `path` is in that lie below `path`.
        for child in sys::child_subvolumes(fd.as_fd(), tree).ctx("list the subvolumes in", path)? {
            match sys::ino_path(fd.as_fd(), tree, child.dirid) {
                Ok((_, dir)) if dir.starts_with(&here) => roots.push(child.id),
                Ok(_) => {}
                // Deeper than the lookup can say: not known to be ours, so left to
                // unlinking (which takes a writable one once it is empty).
                Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {}
                Err(e) => return Err(Error::io("look up a subvolume in", path, e)),
            }
        }
    }
    // Children before parents: a subvolume with another inside cannot be deleted.
    let mut order = Vec::new();
    let mut stack: Vec<(u64, bool)> = roots.into_iter().map(|id| (id, false)).collect();
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            order.push(id);
            continue;
        }
        stack.push((id, true));
        for c in sys::child_subvolumes(fd.as_fd(), id).ctx("list the subvolumes in", path)? {
            stack.push((c.id, false));
        }
    }
    // Asked through the directory above, not through a subvolume being deleted.
    drop(fd);
    let (parent, _) = parent_and_name(path)?;
    for id in order {
        sys::snap_destroy_by_id(parent.as_fd(), id)
            .ctx("delete a btrfs subvolume at or below", path)?;
    }
    Ok(())
}
