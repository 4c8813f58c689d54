//! Idmapped mounts: a detached copy of a mount (`open_tree`) whose file owners are seen
//! through a user namespace's map (`mount_setattr` with `MOUNT_ATTR_IDMAP`), and a
//! throwaway user namespace to give one. rlxc-checkconfig probes with them whether the
//! file system under the lxcpath can be idmapped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use super::{check, cstring};

// The kernel's ABI (linux/mount.h); libc 0.2 does not export these for glibc targets.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount at `path` (not of the mounts below it): it exists as
/// long as its descriptor does.
pub fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    let cpath = cstring(path.as_os_str().as_encoded_bytes())?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: `cpath` is NUL-terminated and outlives the call; the other arguments are
    // integers. A non-negative result is a new descriptor that nothing else owns.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, cpath.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd =
        i32::try_from(fd).map_err(|_| io::Error::other("open_tree: descriptor out of range"))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Owners in the detached mount `tree` seen through the map of user namespace `userns`.
pub fn set_idmap(tree: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: the path is a static empty C string; `attr` is a live, fully initialised
    // mount_attr whose size is passed with it; both descriptors are borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r)
}

/// A user namespace of its own whose ids `0..count` are the host's `uid..` and `gid..`,
/// held by its descriptor. A child forked into it does nothing but wait until its
/// namespace is open here, then exits; it is reaped before this returns.
pub fn user_namespace(uid: u32, gid: u32, count: u32) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the child only makes raw system calls (unshare, write, read, _exit), which
    // are async-signal-safe, so it is sound even if this process has other threads.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            drop((ready_r, done_w));
            // SAFETY: plain system calls on descriptors this child owns; `ok` is one
            // readable byte; _exit never returns and runs no destructors.
            unsafe {
                let ok: u8 = u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0);
                libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
                let mut b = 0u8;
                libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                libc::_exit(0)
            }
        }
        ForkResult::Parent { child } => {
            drop((ready_w, done_r));
            let reaper = Reap(child);
            let ns = open_child_namespace(child, ready_r.as_fd(), uid, gid, count);
            // Its end closed, the child's read returns and it exits.
            drop(done_w);
            drop(reaper);
            ns
        }
    }
}

/// Once the child says it is in a namespace of its own: its maps written and the
/// namespace opened.
fn open_child_namespace(
    child: Pid,
    ready: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    count: u32,
) -> io::Result<OwnedFd> {
    let mut ok = [0u8];
    match nix::unistd::read(ready, &mut ok)? {
        1 if ok[0] == 1 => {}
        _ => {
            return Err(io::Error::other(
                "a child could not make a user namespace (unshare CLONE_NEWUSER failed)",
            ))
        }
    }
    let proc = Path::new("/proc").join(child.as_raw().to_string());
    std::fs::write(proc.join("uid_map"), format!("0 {uid} {count}\n"))?;
    std::fs::write(proc.join("gid_map"), format!("0 {gid} {count}\n"))?;
    Ok(std::fs::File::open(proc.join("ns/user"))?.into())
}

/// A child killed (if still there) and reaped when this goes.
struct Reap(Pid);

impl Drop for Reap {
    fn drop(&mut self) {
        // A child that exits on its own is reaped here too; SIGKILL only if it hangs.
        for _ in 0..100 {
            match nix::sys::wait::waitpid(self.0, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                _ => return,
            }
        }
        let _ = kill(self.0, Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

/// Whether the file system holding `dir` can be idmapped: a detached copy of its mount
/// at `dir` given a throwaway namespace's map. Nothing is left mounted.
pub fn probe(dir: &Path) -> io::Result<()> {
    let userns = user_namespace(65534, 65534, 1)?;
    let tree = open_tree_clone(dir)?;
    set_idmap(tree.as_fd(), userns.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throwaway_namespace_maps_what_it_was_given() {
        let ns = user_namespace(1_000_000, 2_000_000, 10).unwrap();
        // The namespace outlives its only process: its descriptor holds it.
        let own = std::fs::metadata("/proc/self/ns/user").unwrap();
        let md = std::fs::File::from(ns).metadata().unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(md.ino(), own.ino());
    }

    #[test]
    fn disk_file_systems_can_be_idmapped_and_proc_cannot() {
        use nix::sys::statfs::{
            statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
        };
        let d = tempfile::tempdir().unwrap();
        let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let kind = statfs(d.path()).unwrap().filesystem_type();
        let r = probe(d.path());
        if [
            EXT4_SUPER_MAGIC,
            XFS_SUPER_MAGIC,
            BTRFS_SUPER_MAGIC,
            TMPFS_MAGIC,
        ]
        .contains(&kind)
        {
            r.unwrap();
        }
        let e = probe(Path::new("/proc")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        let e = probe(&d.path().join("missing")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // The detached copies went with their descriptors.
        let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(before.lines().count(), after.lines().count());
    }
}
