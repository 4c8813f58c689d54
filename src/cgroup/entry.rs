//! Joining a container's cgroup: born in its cgroup2 directory (clone3
//! CLONE_INTO_CGROUP), then writing "0" to each v1 hierarchy's `tasks`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// Open handles for joining a container's cgroup (see `Cgroup::entry`).
pub struct Entry {
    /// The cgroup2 directory (open, and its path), for clone3(CLONE_INTO_CGROUP).
    v2: Option<(OwnedFd, PathBuf)>,
    /// The v1 hierarchies' `tasks` files: the child writes "0" to each.
    v1_tasks: Vec<JoinFile>,
}

/// A cgroup membership file opened for writing, and its path for error messages.
pub struct JoinFile {
    fd: OwnedFd,
    path: PathBuf,
}

impl Entry {
    /// Handles for the cgroup directories `dirs` (path, is cgroup2).
    pub fn open(dirs: impl Iterator<Item = (PathBuf, bool)>) -> Result<Self> {
        let mut e = Entry {
            v2: None,
            v1_tasks: Vec::new(),
        };
        for (dir, v2) in dirs {
            if v2 {
                let fd = nix::fcntl::open(
                    &dir,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ctx("open cgroup", &dir)?;
                e.v2 = Some((fd, dir));
            } else {
                e.v1_tasks.push(JoinFile::open(dir.join("tasks"))?);
            }
        }
        Ok(e)
    }

    /// Start `child` (a process of its own, in new namespaces `flags`, SIGCHLD on exit)
    /// in this cgroup: born in the cgroup2 directory, and given the files it must write
    /// "0" to before anything else. A kernel without clone3(CLONE_INTO_CGROUP) gets the
    /// cgroup2 `cgroup.procs` among those files too; the errno that forced that fallback
    /// is returned with the pid, for the caller to log.
    pub fn spawn(
        self,
        flags: CloneFlags,
        child: impl Fn(&[JoinFile]) -> isize,
    ) -> Result<(Pid, Option<Errno>)> {
        let mut join = self.v1_tasks;
        let mut fell_back = None;
        if let Some((dir, path)) = self.v2 {
            match crate::sys::clone_into_cgroup(flags, dir.as_fd(), || child(&join)) {
                Ok(pid) => return Ok((pid, None)),
                // Before Linux 5.7, or clone3 filtered: the child joins by itself.
                Err(e @ (Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EPERM)) => {
                    join.push(JoinFile::open(path.join("cgroup.procs"))?);
                    fell_back = Some(e);
                }
                Err(e) => return Err(Error::io("start a process in cgroup", &path, e.into())),
            }
        }
        let pid = crate::sys::clone_child(flags, Box::new(|| child(&join)))
            .map_err(|e| Error::io("start a process in", "the container's cgroup", e.into()))?;
        Ok((pid, fell_back))
    }
}

impl JoinFile {
    fn open(path: PathBuf) -> Result<Self> {
        let fd = nix::fcntl::open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx("open cgroup file", &path)?;
        Ok(JoinFile { fd, path })
    }

    /// Move the calling process (single-threaded) into this cgroup.
    pub fn join_self(&self) -> Result<()> {
        nix::unistd::write(&self.fd, b"0")
            .map(|_| ())
            .ctx("join cgroup", &self.path)
    }
}
