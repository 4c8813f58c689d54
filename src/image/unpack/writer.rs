//! Regular files are written by a small pool of threads. On a 10k-file rootfs the cost is
//! inode creation and page-cache copies in the kernel, which scale across cores; the tar
//! stream is still parsed, and every directory, link and node made, in archive order on
//! the calling thread. File data never passes through user space when the kernel can
//! copy it (copy_file_range from the cached tar).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::ops::{remove_existing, set_fd_attrs, ts};
use super::Attrs;
use crate::error::{Error, IoContext, Result};

pub(super) struct FileJob {
    pub parent: Arc<OwnedFd>,
    pub leaf: Vec<u8>,
    pub attrs: Attrs,
    /// Where the data is in the tarball, and how much.
    pub offset: u64,
    pub size: u64,
    /// Host path, for messages.
    pub disp: PathBuf,
}

/// Create one file and fill it from the tarball `src`.
pub(super) fn write_file(job: &FileJob, src: &File) -> Result<u64> {
    let a = &job.attrs;
    let plain = a.is_plain();
    let parent = job.parent.as_fd();
    let leaf = OsStr::from_bytes(&job.leaf);
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // A plain root-owned file gets its final mode at creation (umask is 0 here) and
    // needs no chown/chmod: two syscalls less per file.
    let mode = Mode::from_bits_truncate(if plain { a.mode } else { 0o600 });
    let fd = match nix::fcntl::openat(parent, leaf, flags, mode) {
        Err(Errno::EEXIST) => {
            remove_existing(parent, leaf).ctx("replace", &job.disp)?;
            nix::fcntl::openat(parent, leaf, flags, mode)
        }
        r => r,
    }
    .ctx("create", &job.disp)?;
    let file = File::from(fd);
    copy_range(src, job.offset, job.size, &file).ctx("write", &job.disp)?;
    if !plain {
        set_fd_attrs(file.as_fd(), a, &job.disp)?;
    }
    nix::sys::stat::futimens(&file, &ts(a.mtime), &ts(a.mtime)).ctx("set times of", &job.disp)?;
    Ok(job.size)
}

/// Copy `len` bytes at `offset` of `src` to `out`: in the kernel when it can, else
/// through a buffer with pread (file systems without copy_file_range).
fn copy_range(src: &File, offset: u64, len: u64, out: &File) -> io::Result<()> {
    let mut off = i64::try_from(offset).map_err(|_| io::Error::other("offset out of range"))?;
    let mut done = 0u64;
    while done < len {
        let chunk = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match nix::fcntl::copy_file_range(src, Some(&mut off), out, None, chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tarball ends inside a member",
                ))
            }
            Ok(n) => done += n as u64,
            Err(Errno::EINTR) => {}
            Err(Errno::EXDEV | Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP) => {
                return copy_buffered(src, offset + done, len - done, out)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_buffered(src: &File, mut offset: u64, mut len: u64, out: &File) -> io::Result<()> {
    use std::io::Write;
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = out;
    while len > 0 {
        let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let n = src.read_at(&mut buf[..want], offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tarball ends inside a member",
            ));
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// The parser's side of the pool: hands out jobs, knows which paths are still being
/// written, and waits for them when an archive member depends on one.
pub(super) struct Pool {
    tx: Option<SyncSender<FileJob>>,
    done: Receiver<Result<u64>>,
    outstanding: usize,
    /// Paths of files handed out since the last barrier.
    pending: HashSet<Vec<u8>>,
    pub bytes: u64,
}

impl Pool {
    /// Start `threads` writers reading from `src`, inside `scope`.
    pub fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        src: &'scope File,
        threads: usize,
    ) -> Pool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(256);
        let (done_tx, done) = std::sync::mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let (rx, done_tx): (_, Sender<Result<u64>>) = (rx.clone(), done_tx.clone());
            scope.spawn(move || loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                if done_tx.send(write_file(&job, src)).is_err() {
                    return;
                }
            });
        }
        Pool {
            tx: Some(tx),
            done,
            outstanding: 0,
            pending: HashSet::new(),
            bytes: 0,
        }
    }

    pub fn submit(&mut self, path: Vec<u8>, job: FileJob) -> Result<()> {
        self.reap()?;
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::Other("file writers are gone".into()))?;
        tx.send(job)
            .map_err(|_| Error::Other("file writers stopped".into()))?;
        self.pending.insert(path);
        self.outstanding += 1;
        Ok(())
    }

    /// Collect finished jobs without waiting; the first failure is returned.
    fn reap(&mut self) -> Result<()> {
        while let Ok(r) = self.done.try_recv() {
            self.outstanding -= 1;
            self.bytes += r?;
        }
        Ok(())
    }

    /// Wait until every file handed out is written.
    pub fn barrier(&mut self) -> Result<()> {
        let mut first_err = None;
        while self.outstanding > 0 {
            match self.done.recv() {
                Ok(r) => {
                    self.outstanding -= 1;
                    match r {
                        Ok(n) => self.bytes += n,
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        self.pending.clear();
        first_err.map_or(Ok(()), Err)
    }

    /// Does `path`, or a directory above it, name a file still being written?
    pub fn conflicts(&self, comps: &[Vec<u8>]) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let mut p = Vec::new();
        for c in comps {
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(c);
            if self.pending.contains(&p) {
                return true;
            }
        }
        false
    }

    /// Finish: wait for the writers, then let them exit.
    pub fn finish(&mut self) -> Result<u64> {
        let r = self.barrier();
        self.tx = None;
        r.map(|()| self.bytes)
    }
}
