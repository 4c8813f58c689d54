//! Overlay mounts through the new mount API (fsopen, fsconfig, fsmount, move_mount):
//! each option is set on its own, so a path with a comma cannot inject another option,
//! and the mount is made detached: it exists only as long as its descriptor (or a file
//! opened through it) does, so a process killed mid-way leaves no mount behind.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{check, cstring};

// The kernel's ABI numbers (linux/mount.h); libc 0.2 does not export them.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// The layers of an overlay: the read-only lowers (topmost first), the upper that takes
/// the writes, and the upper's work directory (same file system as the upper).
pub struct OverlayLayers<'a> {
    pub lowers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// A detached overlay mount of `layers`; its descriptor is the merged tree's root.
/// `redirect_dir=on` lets a container rename a directory of the lower; `index=off` and
/// `xino=off` because one lower is shared by many uppers and moved-in copies must not
/// depend on inode numbers of the lower's file system.
pub fn overlay(layers: &OverlayLayers) -> io::Result<OwnedFd> {
    let fs = fsopen("overlay")?;
    set_lowers(&fs, layers.lowers)?;
    set(&fs, "upperdir", layers.upper.as_os_str().as_encoded_bytes())?;
    set(&fs, "workdir", layers.work.as_os_str().as_encoded_bytes())?;
    for (k, v) in [("redirect_dir", "on"), ("index", "off"), ("xino", "off")] {
        set(&fs, k, v.as_bytes())?;
    }
    mount_detached(&fs)
}

/// A detached overlay of `lowers` alone, topmost first: read-only, as nothing can take
/// writes. An upper stacked here as a lower shows what it showed as an upper (whiteouts,
/// opaque directories); `redirect_dir=follow` reads the renames it recorded.
pub fn overlay_read_only(lowers: &[PathBuf]) -> io::Result<OwnedFd> {
    let fs = fsopen("overlay")?;
    set_lowers(&fs, lowers)?;
    for (k, v) in [
        ("redirect_dir", "follow"),
        ("index", "off"),
        ("xino", "off"),
    ] {
        set(&fs, k, v.as_bytes())?;
    }
    mount_detached(&fs)
}

/// `lowerdir`: the layers, topmost first, each escaped.
fn set_lowers(fs: &OwnedFd, lowers: &[PathBuf]) -> io::Result<()> {
    let list: Vec<Vec<u8>> = lowers.iter().map(|l| escape_lower(l)).collect();
    set(fs, "lowerdir", &list.join(&b':'))
}

/// Create the file system `fs` was configured for and mount it, attached nowhere.
fn mount_detached(fs: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: no pointers; fs is a valid fs context descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    check(r)?;
    // SAFETY: plain integer arguments; a non-negative result is a new descriptor we own.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    owned(m)
}

/// Attach the detached mount `mnt` at `target`.
pub fn move_mount_to(mnt: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    let empty = cstring(b"")?;
    let to = cstring(target.as_os_str().as_encoded_bytes())?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(r)
}

fn fsopen(fstype: &str) -> io::Result<OwnedFd> {
    let name = cstring(fstype.as_bytes())?;
    // SAFETY: name is NUL-terminated and outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    owned(r)
}

fn set(fs: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
    let k = cstring(key.as_bytes())?;
    let v = cstring(value)?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    check(r).map_err(|e| io::Error::new(e.kind(), format!("overlay option {key}: {e}")))
}

fn owned(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// `lowerdir` is a ':'-separated list of layers: a ':' (or '\') in a path must be
/// escaped.
fn escape_lower(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_os_str().as_encoded_bytes() {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colon_in_the_lower_is_escaped() {
        assert_eq!(escape_lower(Path::new("/c/b_05:24")), b"/c/b_05\\:24");
        assert_eq!(escape_lower(Path::new("/a\\b")), b"/a\\\\b");
    }
}
