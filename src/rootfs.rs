//! Confined access to a container's rootfs. Every lookup goes through openat2 with
//! RESOLVE_IN_ROOT, so `..` and symlinks (absolute or relative, planted by an image or
//! not) resolve as they would inside the container and can never reach the host.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, IoContext, Result};

/// A member path split into plain components. `..` is refused outright: a relative path
/// from an image has no business climbing, even where RESOLVE_IN_ROOT would clamp it.
pub fn components(path: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::hostile(format!(
                    "{what} {:?} contains '..'",
                    String::from_utf8_lossy(path)
                )))
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

pub fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

pub struct Root {
    path: PathBuf,
    fd: OwnedFd,
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

impl Root {
    pub fn open(path: &Path) -> Result<Self> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open rootfs", path)?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// The root a running process sees (`/proc/PID/root`): its mount namespace's view,
    /// whatever backs it. Lookups from here cross that namespace's mounts, not the host's.
    pub fn of_process(pid: i32) -> Result<Self> {
        let path = PathBuf::from(format!("/proc/{pid}/root"));
        // The magic link is the point here: it is the host's /proc, not the container's.
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open the root of process", &path)?;
        Ok(Root { path, fd })
    }

    /// A root already open as `fd` (a detached mount's root, say); `path` is what
    /// messages call it.
    pub fn from_fd(fd: OwnedFd, path: &Path) -> Self {
        Root {
            path: path.to_path_buf(),
            fd,
        }
    }

    /// Host path of a member, for messages only: never open it.
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(rel))
    }

    /// Open `rel` (resolved inside the root) with `flags`.
    pub fn openat(&self, rel: &[u8], flags: OFlag, mode: u32) -> nix::Result<OwnedFd> {
        let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(Mode::from_bits_truncate(mode))
            .resolve(resolve_flags());
        loop {
            match openat2(self.fd.as_fd(), OsStr::from_bytes(rel), how) {
                // openat2 asks for a retry when a rename raced the lookup.
                Err(Errno::EAGAIN) => continue,
                r => return r,
            }
        }
    }

    /// Open the directory `comps` inside the root as an O_PATH handle for *at calls,
    /// creating missing directories (0755, root-owned) like tar does.
    pub fn dir(&self, comps: &[Vec<u8>]) -> Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match self.openat(&join(comps), flags, 0) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) => self.make_dirs(comps),
            Err(e) => Err(e).ctx("open directory", self.display(&join(comps))),
        }
    }

    fn make_dirs(&self, comps: &[Vec<u8>]) -> Result<OwnedFd> {
        let mut cur = self
            .openat(b"", OFlag::O_PATH | OFlag::O_DIRECTORY, 0)
            .ctx("open", &self.path)?;
        for i in 0..comps.len() {
            let leaf = OsStr::from_bytes(&comps[i]);
            match nix::sys::stat::mkdirat(cur.as_fd(), leaf, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e).ctx("create directory", self.display(&join(&comps[..=i]))),
            }
            // Re-resolve from the root: the component may be a symlink planted earlier.
            let here = join(&comps[..=i]);
            cur = match self.openat(&here, OFlag::O_PATH | OFlag::O_DIRECTORY, 0) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    return Err(Error::Other(format!(
                        "{} is a symlink to a directory that does not exist inside the rootfs",
                        self.display(&here).display()
                    )))
                }
                Err(e) => return Err(e).ctx("open directory", self.display(&here)),
            };
        }
        Ok(cur)
    }
}

/// The root's own handle, for tools that work in it (as their working directory).
impl AsFd for Root {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Open the very inode an O_PATH handle names (no second lookup a rename could redirect)
/// for I/O, through this process's own /proc/self/fd.
pub fn reopen(fd: std::os::fd::BorrowedFd<'_>, flags: OFlag) -> nix::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_strip_dot_and_slashes() {
        assert_eq!(
            components(b"./usr//bin/./ls", "m").unwrap(),
            vec![b"usr".to_vec(), b"bin".to_vec(), b"ls".to_vec()]
        );
        assert!(components(b"./", "m").unwrap().is_empty());
        assert!(components(b"a/../../etc", "m").is_err());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("etc/climb")).unwrap();
        let r = Root::open(&root).unwrap();
        // "up/etc" must be the rootfs's etc, not the host's.
        let fd = r.dir(&[b"up".to_vec(), b"etc".to_vec()]).unwrap();
        let p = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        assert_eq!(p, root.join("etc"));
        let fd = r
            .dir(&[b"etc".to_vec(), b"climb".to_vec(), b"new".to_vec()])
            .unwrap();
        let p = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        assert_eq!(p, root.join("new"));
    }
}
