//! OCI layer whiteouts, applied through the same confinement as every member: `.wh.NAME`
//! removes NAME of the layers below, `.wh..wh..opq` empties its directory of them. The
//! directory is resolved inside the rootfs (a symlink an earlier layer planted resolves
//! there too), and what is removed is removed by handle, never by following a link.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{Error, IoContext, Result};
use crate::rootfs::{self, Root};

const PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What a layer created so far: an opaque directory keeps what its own layer put there.
#[derive(Default)]
pub struct Layer {
    pub created: HashSet<Vec<u8>>,
}

/// Is the member `comps` a whiteout?
pub fn is_whiteout(comps: &[Vec<u8>]) -> bool {
    comps.last().is_some_and(|l| l.starts_with(PREFIX))
}

/// Apply the whiteout `comps` (a member that `is_whiteout`).
pub fn apply(root: &Root, comps: &[Vec<u8>], layer: &Layer, name: &str) -> Result<()> {
    let Some((leaf, dir)) = comps.split_last() else {
        return Ok(());
    };
    let dir_fd = match root.openat(&rootfs::join(dir), OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0) {
        Ok(fd) => fd,
        // Nothing below to hide.
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).ctx("open directory", root.display(&rootfs::join(dir))),
    };
    if leaf.as_slice() == OPAQUE {
        let prefix = rootfs::join(dir);
        return empty_dir(root, dir_fd.as_fd(), &prefix, layer);
    }
    let target = &leaf[PREFIX.len()..];
    if target.is_empty() || target == b"." || target.starts_with(PREFIX) {
        return Err(Error::hostile(format!(
            "layer member {name:?} is a whiteout of nothing"
        )));
    }
    let disp = root.display(&rootfs::join(&[dir, &[target.to_vec()]].concat()));
    remove_tree_at(dir_fd.as_fd(), OsStr::from_bytes(target)).ctx("remove (whiteout)", &disp)
}

/// Remove every entry of the directory `dir_fd` (at `prefix`) that this layer did not
/// create.
fn empty_dir(root: &Root, dir_fd: BorrowedFd<'_>, prefix: &[u8], layer: &Layer) -> Result<()> {
    let disp = root.display(prefix);
    let dup = nix::fcntl::openat(
        dir_fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open directory", &disp)?;
    let mut d = nix::dir::Dir::from_fd(dup).ctx("read directory", &disp)?;
    let mut doomed = Vec::new();
    for e in d.iter() {
        let e = e.ctx("read directory", &disp)?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        let path = if prefix.is_empty() {
            n.to_vec()
        } else {
            [prefix, b"/", n].concat()
        };
        if !layer.created.contains(&path) {
            doomed.push(n.to_vec());
        }
    }
    for n in doomed {
        remove_tree_at(dir_fd, OsStr::from_bytes(&n)).ctx("remove (opaque directory)", &disp)?;
    }
    Ok(())
}

/// Remove `leaf` of `dir`, a directory with everything in it; symlinks are removed,
/// never followed. Nothing there is no error.
pub fn remove_tree_at(dir: BorrowedFd<'_>, leaf: &OsStr) -> std::io::Result<()> {
    let st = match nix::sys::stat::fstatat(dir, leaf, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return unlinkat(dir, leaf, UnlinkatFlags::NoRemoveDir).map_err(Into::into);
    }
    let sub = nix::fcntl::openat(
        dir,
        leaf,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let list = nix::fcntl::openat(
        sub.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(list)?;
    let names: Vec<Vec<u8>> = d
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for n in names {
        remove_tree_at(sub.as_fd(), OsStr::from_bytes(&n))?;
    }
    unlinkat(dir, leaf, UnlinkatFlags::RemoveDir).map_err(Into::into)
}
