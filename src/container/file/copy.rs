//! The copy engine of rlxc-file, one for both directions: everything goes through
//! directory handles and single-component `*at` calls, so no path is ever looked up
//! twice and no symlink is ever followed, on either side. A source entry is opened as
//! an O_PATH handle (never its device or FIFO), looked at, and only a regular file is
//! reopened for reading. A file lands under a temporary name and is renamed over its
//! destination, so a failure leaves no half-written file and a symlink at the
//! destination is replaced, not followed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::error::{Error, IoContext, Result};
use crate::rootfs::reopen;

/// What the copy did, and what it left out (and why).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// (path as shown, why) of each entry not copied.
    pub skipped: Vec<(String, String)>,
}

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// None: whoever runs the copy (a pull).
    pub owner: Option<(u32, u32)>,
    /// Regular files' mode; None: the source's permission bits.
    pub file_mode: Option<u32>,
    pub recursive: bool,
}

/// One source entry, held by an O_PATH handle.
pub struct Source {
    pub fd: OwnedFd,
    pub st: FileStat,
    /// As the messages name it (`web1:/etc/hosts`, `./site`).
    pub shown: String,
}

impl Source {
    /// `leaf` in the directory `dir`, never following it if it is a symlink.
    pub fn at(dir: BorrowedFd<'_>, leaf: &OsStr, shown: String) -> Result<Self> {
        let fd = openat(
            dir,
            leaf,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open", &shown)?;
        Self::from_fd(fd, shown)
    }

    pub fn from_fd(fd: OwnedFd, shown: String) -> Result<Self> {
        let st = fstat(fd.as_fd()).ctx("look at", &shown)?;
        Ok(Source { fd, st, shown })
    }

    /// A directory is copied only when asked (-r); said before anything is resolved.
    pub fn check_recursive(&self, recursive: bool) -> Result<()> {
        if self.kind() == SFlag::S_IFDIR && !recursive {
            return Err(Error::Usage(format!(
                "{} is a directory; pass -r to copy it with everything in it",
                self.shown
            )));
        }
        Ok(())
    }

    pub fn kind(&self) -> SFlag {
        SFlag::from_bits_truncate(self.st.st_mode) & SFlag::S_IFMT
    }
}

/// Where an entry goes: a name in a directory handle.
struct Dest<'a> {
    pub dir: BorrowedFd<'a>,
    pub leaf: &'a OsStr,
    pub shown: String,
}

/// Where a copy lands, as the caller resolved it: a name in a directory it holds.
pub struct Target {
    pub dir: OwnedFd,
    pub leaf: OsString,
    pub shown: String,
}

/// Copy `src` to `to` by the rules; the report says what was copied and skipped.
pub fn copy(src: &Source, to: Target, rules: &Rules) -> Result<Report> {
    let dst = Dest {
        dir: to.dir.as_fd(),
        leaf: &to.leaf,
        shown: to.shown,
    };
    let mut report = Report::default();
    copy_entry(src, &dst, rules, &mut report)?;
    Ok(report)
}

fn copy_entry(src: &Source, dst: &Dest<'_>, rules: &Rules, report: &mut Report) -> Result<()> {
    if crate::sys::interrupted() {
        return Err(Error::Interrupted);
    }
    match src.kind() {
        SFlag::S_IFREG => copy_file(src, dst, rules, report),
        SFlag::S_IFLNK => copy_symlink(src, dst, rules, report),
        SFlag::S_IFDIR => {
            src.check_recursive(rules.recursive)?;
            copy_dir(src, dst, rules, report)
        }
        other => {
            report
                .skipped
                .push((src.shown.clone(), special_kind(other).into()));
            Ok(())
        }
    }
}

fn special_kind(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFIFO => "a FIFO (named pipe)",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "not a file, directory or symlink",
    }
}

fn permissions(st: &FileStat) -> u32 {
    st.st_mode & 0o777
}

fn copy_file(src: &Source, dst: &Dest<'_>, rules: &Rules, report: &mut Report) -> Result<()> {
    let fd = reopen(src.fd.as_fd(), OFlag::O_RDONLY | OFlag::O_NONBLOCK).ctx("open", &src.shown)?;
    let mut input = File::from(fd);
    let tmp = TempName::new(dst.dir);
    let out = openat(
        dst.dir,
        tmp.name.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .ctx("create a temporary file for", &dst.shown)?;
    let mut guard = tmp.created();
    let mut output = File::from(out);
    let bytes = std::io::copy(&mut input, &mut output).map_err(|e| copy_error(e, src, dst))?;
    let mode = rules.file_mode.unwrap_or_else(|| permissions(&src.st));
    // Owner before mode: a chown clears set-id bits an explicit --mode asks for.
    set_owner(output.as_fd(), rules, &dst.shown)?;
    fchmod(output.as_fd(), Mode::from_bits_truncate(mode)).ctx("set the mode of", &dst.shown)?;
    output.sync_all().ctx("write", &dst.shown)?;
    guard.rename_to(dst)?;
    report.files += 1;
    report.bytes += bytes;
    Ok(())
}

/// The rules' owner on what `fd` is (nothing to do for a pull: it is the caller's).
fn set_owner(fd: BorrowedFd<'_>, rules: &Rules, shown: &str) -> Result<()> {
    match rules.owner {
        Some((uid, gid)) => fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .ctx("set the owner of", shown),
        None => Ok(()),
    }
}

/// std::io::copy's error does not say which side failed: the writer's ENOSPC and EIO are
/// the usual ones, a read error names the source.
fn copy_error(e: std::io::Error, src: &Source, dst: &Dest<'_>) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => {
            Error::io("write", &dst.shown, e)
        }
        _ => Error::io("copy", format!("{} to {}", src.shown, dst.shown), e),
    }
}

fn copy_symlink(src: &Source, dst: &Dest<'_>, rules: &Rules, report: &mut Report) -> Result<()> {
    // The link's own text, recreated as it is: never resolved on this side.
    let target = readlinkat(src.fd.as_fd(), "").ctx("read the symlink", &src.shown)?;
    let tmp = TempName::new(dst.dir);
    symlinkat(target.as_os_str(), dst.dir, tmp.name.as_os_str())
        .ctx("create the symlink", &dst.shown)?;
    let mut guard = tmp.created();
    if let Some((uid, gid)) = rules.owner {
        fchownat(
            dst.dir,
            guard.tmp.name.as_os_str(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx("set the owner of", &dst.shown)?;
    }
    guard.rename_to(dst)?;
    report.symlinks += 1;
    Ok(())
}

/// Pseudo file systems (a running container's /proc, /sys, cgroups) are not data: their
/// files can block or never end. Skipped when met inside a tree.
fn pseudo_fs(fd: BorrowedFd<'_>) -> Option<&'static str> {
    use nix::sys::statfs::*;
    let t = fstatfs(fd).ok()?.filesystem_type();
    [
        (PROC_SUPER_MAGIC, "proc"),
        (SYSFS_MAGIC, "sysfs"),
        (CGROUP_SUPER_MAGIC, "cgroup"),
        (CGROUP2_SUPER_MAGIC, "cgroup2"),
        (DEBUGFS_MAGIC, "debugfs"),
        (SECURITYFS_MAGIC, "securityfs"),
    ]
    .into_iter()
    .find_map(|(magic, name)| (t == magic).then_some(name))
}

fn copy_dir(src: &Source, dst: &Dest<'_>, rules: &Rules, report: &mut Report) -> Result<()> {
    if let Some(fs) = pseudo_fs(src.fd.as_fd()) {
        report
            .skipped
            .push((src.shown.clone(), format!("a {fs} file system, not data")));
        return Ok(());
    }
    let (dir, created) = make_dir(dst, rules)?;
    for name in list(src)? {
        let child_src = Source::at(src.fd.as_fd(), &name, child(&src.shown, &name))?;
        let child_dst = Dest {
            dir: dir.as_fd(),
            leaf: &name,
            shown: child(&dst.shown, &name),
        };
        copy_entry(&child_src, &child_dst, rules, report)?;
    }
    // Last, so a read-only directory mode does not get in the way of filling it. A
    // directory that was there keeps its owner and mode.
    if created {
        fchmod(dir.as_fd(), Mode::from_bits_truncate(permissions(&src.st)))
            .ctx("set the mode of", &dst.shown)?;
    }
    report.dirs += 1;
    Ok(())
}

fn child(parent: &str, name: &OsStr) -> String {
    let sep = if parent.ends_with('/') { "" } else { "/" };
    format!("{parent}{sep}{}", name.to_string_lossy())
}

/// The names in a source directory, sorted (messages and skips come in a stable order).
fn list(src: &Source) -> Result<Vec<OsString>> {
    let fd =
        reopen(src.fd.as_fd(), OFlag::O_RDONLY | OFlag::O_DIRECTORY).ctx("open", &src.shown)?;
    let mut dir = nix::dir::Dir::from_fd(fd).ctx("read", &src.shown)?;
    let mut names = Vec::new();
    for e in dir.iter() {
        let e = e.ctx("read", &src.shown)?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The destination directory, made (owned by the rules) unless a real directory is
/// there already; a symlink or file in its place is an error, never followed.
fn make_dir(dst: &Dest<'_>, rules: &Rules) -> Result<(OwnedFd, bool)> {
    let created = match mkdirat(dst.dir, dst.leaf, Mode::from_bits_truncate(0o700)) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(e).ctx("create the directory", &dst.shown),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = match openat(dst.dir, dst.leaf, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
            return Err(Error::Other(format!(
                "{} exists and is not a directory (a symlink or a file): a directory cannot \
                 be copied over it; remove it or copy somewhere else",
                dst.shown
            )))
        }
        Err(e) => return Err(e).ctx("open the directory", &dst.shown),
    };
    if created {
        set_owner(dir.as_fd(), rules, &dst.shown)?;
    }
    Ok((dir, created))
}

/// A name for an entry being written, unique in its directory; nothing on disk yet.
struct TempName<'a> {
    dir: BorrowedFd<'a>,
    name: OsString,
}

impl<'a> TempName<'a> {
    fn new(dir: BorrowedFd<'a>) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempName {
            dir,
            name: format!(".rlxc-file.{}.{n}", std::process::id()).into(),
        }
    }

    /// The entry exists now: it is removed on drop unless renamed into place.
    fn created(self) -> TempGuard<'a> {
        TempGuard {
            tmp: self,
            done: false,
        }
    }
}

struct TempGuard<'a> {
    tmp: TempName<'a>,
    done: bool,
}

impl TempGuard<'_> {
    /// Replace `dst` (whatever entry is there, a symlink included, is replaced, not
    /// followed; a directory there is an error).
    fn rename_to(&mut self, dst: &Dest<'_>) -> Result<()> {
        match renameat(self.tmp.dir, self.tmp.name.as_os_str(), dst.dir, dst.leaf) {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            Err(Errno::EISDIR) | Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => {
                Err(Error::Other(format!(
                    "{} is a directory: a file cannot replace it; name a path inside it",
                    dst.shown
                )))
            }
            Err(e) => Err(e).ctx("rename into place", &dst.shown),
        }
    }
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = unlinkat(
                self.tmp.dir,
                self.tmp.name.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}
