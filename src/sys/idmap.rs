//! Idmapped mounts (`mount::clone_tree`, `mount::idmap`) take their map from a user
//! namespace: a throwaway one gives it. rlxc-checkconfig probes with them whether the
//! file system under the lxcpath can be idmapped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

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
    let tree = super::mount::clone_tree(dir, false)?;
    super::mount::idmap(tree.as_fd(), userns.as_fd(), false)
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
