//! The file-system steps every member shares: replacing what is in the way, owners,
//! modes, times and xattrs, in the order the kernel needs them.

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::Attrs;
use crate::error::{IoContext, Result};
use crate::sys;

/// Run `make`; if something is in the way, remove it and run it again (a later tar
/// member replaces an earlier one, as with tar).
pub(super) fn create_replacing(
    parent: BorrowedFd<'_>,
    leaf: &OsStr,
    disp: &std::path::Path,
    what: &'static str,
    make: impl Fn() -> nix::Result<()>,
) -> Result<()> {
    match make() {
        Err(Errno::EEXIST) => {
            remove_existing(parent, leaf).ctx("replace", disp)?;
            make()
        }
        r => r,
    }
    .ctx(what, disp)
}

/// Owner and times of a member that cannot be opened (symlink, device node, FIFO).
pub(super) fn set_owner_and_times_at(
    parent: BorrowedFd<'_>,
    leaf: &OsStr,
    a: &Attrs,
    disp: &std::path::Path,
) -> Result<()> {
    nix::unistd::fchownat(
        parent,
        leaf,
        Some(Uid::from_raw(a.uid)),
        Some(Gid::from_raw(a.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx("set owner of", disp)?;
    let t = ts(a.mtime);
    nix::sys::stat::utimensat(parent, leaf, &t, &t, UtimensatFlags::NoFollowSymlink)
        .ctx("set times of", disp)
}

/// Owner, then mode (chown clears setuid bits), then xattrs (chown clears capabilities).
pub(super) fn set_fd_attrs(fd: BorrowedFd<'_>, a: &Attrs, disp: &std::path::Path) -> Result<()> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(a.uid)), Some(Gid::from_raw(a.gid)))
        .ctx("set owner of", disp)?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(a.mode)).ctx("set mode of", disp)?;
    for (k, v) in &a.xattrs {
        sys::fsetxattr(fd, k, v).ctx("set extended attribute on", disp)?;
    }
    Ok(())
}

pub(super) fn ts((secs, nsecs): (i64, i64)) -> TimeSpec {
    TimeSpec::new(secs, nsecs)
}

/// Remove whatever is at `leaf` (a later tar member replaces an earlier one, like tar).
pub(super) fn remove_existing(dir: BorrowedFd<'_>, leaf: &OsStr) -> nix::Result<()> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    match unlinkat(dir, leaf, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => unlinkat(dir, leaf, UnlinkatFlags::RemoveDir),
        r => r,
    }
}
