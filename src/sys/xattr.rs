//! Extended attributes on open files and on links (for the confined unpack and copies).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{check, cstring};

/// Set an extended attribute on an open file.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
    let cname = cstring(name.as_bytes())?;
    // SAFETY: `fd` is a live descriptor borrowed for the call; `cname` is NUL-terminated and
    // outlives the call; `value` points to `value.len()` readable bytes.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(r)
}

/// Whether an open file has any extended attribute.
pub fn has_xattrs(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: `fd` is a live descriptor borrowed for the call; a NULL list with size 0
    // only asks for the size of the name list.
    let r = unsafe { libc::flistxattr(fd.as_raw_fd(), std::ptr::null_mut(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r > 0)
}

/// Set an extended attribute on `leaf` inside the directory `dir` without following a
/// symlink at `leaf` (for xattrs on symlinks, which cannot be opened).
pub fn lsetxattr_at(dir: BorrowedFd<'_>, leaf: &[u8], name: &str, value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(leaf);
    let cpath = cstring(&path)?;
    let cname = cstring(name.as_bytes())?;
    // SAFETY: both strings are NUL-terminated and live across the call; `value` points to
    // `value.len()` readable bytes. /proc/self/fd/N resolves to `dir` itself; `leaf` is a
    // single component, not followed because this is lsetxattr.
    let r = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(r)
}
