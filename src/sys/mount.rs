//! Mounts through the new mount API (fsopen, fsconfig, fsmount, open_tree,
//! mount_setattr, move_mount): each option is set on its own, so a path with a comma
//! cannot inject another option, and a mount is made detached: it exists only as long
//! as its descriptor (or a file opened through it) does, so a process killed mid-way
//! leaves no mount behind. Idmapped mounts (an unprivileged container's root) are
//! detached copies whose ids are shifted through a user namespace's map.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{check, cstring};

// The kernel's ABI numbers (linux/mount.h); libc 0.2 does not export them.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
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
    let fs = overlay_context(layers)?;
    mount_detached(&fs)
}

/// `overlay`, but `volatile`: its unmount does not sync the upper's whole file system
/// (a syncfs that waits for every other writer there: tens of ms on a busy host, most of
/// a copy-on-write clone's time). For rlxc's own short-lived handles, whose few writes
/// need no more durability than any other file written without fsync. The kernel marks
/// the work directory (`volatile_marker`) and refuses the next mount until it is gone:
/// the caller removes it once the mount is released. A kernel without the option gets
/// a plain overlay.
pub fn overlay_volatile(layers: &OverlayLayers) -> io::Result<OwnedFd> {
    let fs = overlay_context(layers)?;
    match set_flag(&fs, "volatile") {
        Ok(()) => mount_detached(&fs),
        Err(_) => overlay(layers),
    }
}

/// Where a `volatile` overlay marks its work directory `work`.
pub fn volatile_marker(work: &Path) -> PathBuf {
    work.join("work/incompat/volatile")
}

fn overlay_context(layers: &OverlayLayers) -> io::Result<OwnedFd> {
    let fs = fsopen("overlay")?;
    set_lowers(&fs, layers.lowers)?;
    set(&fs, "upperdir", layers.upper.as_os_str().as_encoded_bytes())?;
    set(&fs, "workdir", layers.work.as_os_str().as_encoded_bytes())?;
    for (k, v) in [("redirect_dir", "on"), ("index", "off"), ("xino", "off")] {
        set(&fs, k, v.as_bytes())?;
    }
    Ok(fs)
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
    let to = cstring(target.as_os_str().as_encoded_bytes())?;
    move_mount(mnt, libc::AT_FDCWD, &to, 0)
}

/// Attach the detached mount `mnt` on the directory or file `target` is open on (an
/// O_PATH handle resolved in the caller's mount namespace).
pub fn move_mount_onto(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    let empty = cstring(b"")?;
    move_mount(
        mnt,
        target.as_raw_fd(),
        &empty,
        libc::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

fn move_mount(
    mnt: BorrowedFd<'_>,
    to_dir: libc::c_int,
    to: &std::ffi::CStr,
    flags: libc::c_uint,
) -> io::Result<()> {
    let empty = cstring(b"")?;
    // SAFETY: both paths are NUL-terminated and outlive the call; the descriptors are
    // borrowed (or AT_FDCWD) for its duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            to_dir,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | flags,
        )
    };
    check(r)
}

/// A detached copy of the mount tree at `path` (a bind mount not attached anywhere);
/// `recursive`: with the mounts below it (rbind).
pub fn clone_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let p = cstring(path.as_os_str().as_encoded_bytes())?;
    open_tree(libc::AT_FDCWD, &p, recursive)
}

fn open_tree(dir: libc::c_int, path: &std::ffi::CStr, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: path is NUL-terminated and outlives the call; the rest are integers.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, dir, path.as_ptr(), flags) };
    let fd = owned(r)?;
    // A copy of a shared mount (systemd makes / shared) joins its peer group: mounts made
    // below it would propagate between the copy and the host's tree, and pivot_root
    // refuses a shared root. The copy stands alone.
    let private = libc::mount_attr {
        attr_set: 0,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    mount_setattr(fd.as_fd(), &private, recursive)?;
    Ok(fd)
}

/// Flags of a mount, set with `set_attributes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes {
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

/// Set `attrs` (those true) on the detached mount `mnt` (and the mounts below it when
/// `recursive`).
pub fn set_attributes(mnt: BorrowedFd<'_>, attrs: Attributes, recursive: bool) -> io::Result<()> {
    let mut set = 0;
    for (on, bit) in [
        (attrs.read_only, libc::MOUNT_ATTR_RDONLY),
        (attrs.nosuid, libc::MOUNT_ATTR_NOSUID),
        (attrs.nodev, libc::MOUNT_ATTR_NODEV),
        (attrs.noexec, libc::MOUNT_ATTR_NOEXEC),
    ] {
        if on {
            set |= bit;
        }
    }
    if set == 0 {
        return Ok(());
    }
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(mnt, &attr, recursive)
}

/// Shift the ids of the detached mount `mnt` (and the mounts below it when `recursive`)
/// through the id map of the user namespace `userns`: a file whose owner is N on disk
/// is seen as owned by the id N maps to (the container's N, on the host its range's
/// N-th id), and what that id creates is N on disk. Nothing on disk changes.
pub fn idmap(mnt: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr(mnt, &attr, recursive)
}

fn mount_setattr(mnt: BorrowedFd<'_>, attr: &libc::mount_attr, recursive: bool) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = cstring(b"")?;
    // SAFETY: `attr` is a live mount_attr of the size passed; the empty path is
    // NUL-terminated; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    check(r)
}

/// A detached tmpfs mounted with `options` (key, value).
pub fn tmpfs(options: &[(&str, &str)]) -> io::Result<OwnedFd> {
    let fs = fsopen("tmpfs")?;
    for (k, v) in options {
        set(&fs, k, v.as_bytes())?;
    }
    mount_detached(&fs)
}

/// The root directory of the mount `mnt` is open on (an O_PATH handle, a detached
/// mount), opened for reading.
pub fn open_root(mnt: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags =
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
    nix::fcntl::openat(mnt, ".", flags, nix::sys::stat::Mode::empty()).map_err(io::Error::from)
}

/// A path that resolves to what `fd` is open on, for calls that take paths (an overlay's
/// layers given as detached mounts). Only meaningful in this process.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
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
    check(r).map_err(|e| io::Error::new(e.kind(), format!("mount option {key}: {e}")))
}

/// A mount option without a value.
fn set_flag(fs: &OwnedFd, key: &str) -> io::Result<()> {
    let k = cstring(key.as_bytes())?;
    // SAFETY: the key is NUL-terminated and outlives the call; a flag takes no value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            k.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    check(r).map_err(|e| io::Error::new(e.kind(), format!("mount option {key}: {e}")))
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
