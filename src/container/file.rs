//! rlxc-file: files into (push) and out of (pull) a container, stopped or running.
//! Every path inside the container is resolved inside its root (crate::rootfs): for a
//! running container the root its init sees (`/proc/PID/root`, whatever backs it), for
//! a stopped one the backing store's tree, under the container's lock so no start
//! begins meanwhile. The copying itself is `copy`: handles and `*at` calls only.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{Container, State};
use crate::error::{Error, IoContext, Result};
use crate::rootfs::Root;
use crate::store::backing::OpenTree;

mod copy;
mod ids;

pub use copy::Report as CopyReport;
use copy::{Rules, Source, Target};

/// `rlxc-file push SOURCE NAME:DEST`.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// On the host; a symlink named here is followed (it is the caller's own).
    pub source: PathBuf,
    /// Inside the container, absolute.
    pub dest: String,
    pub recursive: bool,
    /// Create missing parent directories of `dest` (0755, root-owned).
    pub parents: bool,
    pub uid: u32,
    pub gid: u32,
    /// Pushed files' mode; None: the source's permission bits.
    pub mode: Option<u32>,
}

/// `rlxc-file pull NAME:SOURCE DEST`.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Inside the container, absolute.
    pub source: String,
    pub dest: PathBuf,
    pub recursive: bool,
}

/// A path inside the container, split into plain components.
struct InPath {
    comps: Vec<Vec<u8>>,
    /// Written with a trailing `/`: it must be a directory.
    dir_only: bool,
    /// `NAME:/PATH`, for messages.
    shown: String,
}

impl InPath {
    fn parse(name: &str, path: &str) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(Error::Usage(format!(
                "{name}:{path}: a path inside the container is absolute: {name}:/{path}"
            )));
        }
        let mut comps = Vec::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    return Err(Error::Usage(format!(
                        "{name}:{path}: '..' is not taken in a container path; write the path \
                         it means"
                    )))
                }
                c => comps.push(c.as_bytes().to_vec()),
            }
        }
        let shown = format!("{name}:/{}", String::from_utf8_lossy(&comps.join(&b'/')));
        Ok(InPath {
            dir_only: path.ends_with('/') && !comps.is_empty(),
            comps,
            shown,
        })
    }

    fn rel(&self) -> Vec<u8> {
        self.comps.join(&b'/')
    }

    fn parent(&self) -> InPath {
        let comps = self.comps[..self.comps.len().saturating_sub(1)].to_vec();
        let name = self.shown.split(':').next().unwrap_or_default();
        InPath {
            shown: format!("{name}:/{}", String::from_utf8_lossy(&comps.join(&b'/'))),
            comps,
            dir_only: true,
        }
    }
}

fn child_shown(parent: &str, leaf: &OsStr) -> String {
    let sep = if parent.ends_with('/') { "" } else { "/" };
    format!("{parent}{sep}{}", leaf.to_string_lossy())
}

/// The container's root, opened for one copy; holds the lock of a stopped container.
struct Opened {
    root: OpenTree,
    _lock: Option<crate::store::NameLock>,
    /// A running unprivileged container's id maps.
    ids: Option<ids::Mapped>,
}

impl Container {
    /// Copy a host file or tree into the container.
    pub fn push(&self, o: &PushOptions) -> Result<CopyReport> {
        let dest = InPath::parse(&self.name, &o.dest)?;
        let shown = o.source.display().to_string();
        let fd = nix::fcntl::open(&o.source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .ctx("open", &o.source)?;
        let src = Source::from_fd(fd, shown)?;
        src.check_recursive(o.recursive)?;
        let src_leaf = host_basename(&o.source)?;
        let opened = self.open_root()?;
        let owner = match &opened.ids {
            Some(m) => m.host(o.uid, o.gid, &self.name)?,
            None => (o.uid, o.gid),
        };
        let rules = Rules {
            owner: Some(owner),
            file_mode: o.mode,
            recursive: o.recursive,
        };
        let copy = || {
            let to = push_target(&opened.root, &dest, &src_leaf, o.parents)?;
            copy::copy(&src, to, &rules)
        };
        match &opened.ids {
            // Made as the container's root: its mounts have no place for the host's.
            Some(m) => {
                let (uid, gid) = m.host(0, 0, &self.name)?;
                crate::sys::creds::with_fs_ids(uid, gid, copy)
                    .map_err(|e| Error::io("take the ids of the root of", &self.name, e))?
            }
            None => copy(),
        }
    }

    /// Copy a file or tree of the container to the host. Symlinks are recreated, never
    /// followed; devices, FIFOs and sockets are skipped (the report lists them).
    pub fn pull(&self, o: &PullOptions) -> Result<CopyReport> {
        let from = InPath::parse(&self.name, &o.source)?;
        let opened = self.open_root()?;
        // A trailing '/' asks for the directory a symlink leads to (inside the root).
        let nofollow = if from.dir_only {
            OFlag::empty()
        } else {
            OFlag::O_NOFOLLOW
        };
        let fd = match opened.root.openat(&from.rel(), OFlag::O_PATH | nofollow, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                return Err(Error::Other(format!(
                    "{} does not exist in the container; rlxc-attach -n {} -- ls can look",
                    from.shown, self.name
                )))
            }
            Err(e) => return Err(e).ctx("open", &from.shown),
        };
        let src = Source::from_fd(fd, from.shown.clone())?;
        src.check_recursive(o.recursive)?;
        let src_leaf: OsString = match from.comps.last() {
            Some(c) => OsStr::from_bytes(c).to_os_string(),
            None => self.name.clone().into(),
        };
        let to = pull_target(&o.dest, &src_leaf)?;
        let rules = Rules {
            owner: None,
            file_mode: None,
            recursive: o.recursive,
        };
        copy::copy(&src, to, &rules)
    }

    /// Its root as its processes see it when it runs; its backing store's tree (an
    /// overlay's merged on a detached mount), under its lock, when it is stopped.
    fn open_root(&self) -> Result<Opened> {
        self.must_exist()?;
        if self.state() == State::Stopped {
            let lock =
                crate::store::lock_name(&self.lxcpath, &self.name, "copying files with rlxc-file")?;
            // A start may have finished between the look and the lock.
            if self.state() == State::Stopped {
                // An overlay's on a detached mount: writes land in its upper.
                let root = self.backing(&self.config()?).open_tree(&self.dir())?;
                return Ok(Opened {
                    root,
                    _lock: Some(lock),
                    ids: None,
                });
            }
        }
        let pid = self.running_pid()?;
        let root = OpenTree::plain(Root::of_process(pid)?);
        let ids = ids::Mapped::of(pid)?;
        // The pid was init's when asked; still so after the open, the root is its.
        if !matches!(self.state(), State::Running { pid: p, .. } if p == pid) {
            return Err(Error::Other(format!(
                "{} stopped or restarted while its files were being opened; try again",
                self.name
            )));
        }
        Ok(Opened {
            root,
            _lock: None,
            ids,
        })
    }
}

/// The last component of a host source (`.` and `dir/` name the directory itself).
fn host_basename(p: &Path) -> Result<OsString> {
    let abs = std::fs::canonicalize(p).ctx("resolve", p)?;
    match abs.file_name() {
        Some(n) => Ok(n.to_os_string()),
        None => Err(Error::Usage(format!(
            "{}: pushing the host's / is not something rlxc-file does; name a directory",
            p.display()
        ))),
    }
}

/// Where a push lands, as `docker cp` does it: into DEST, under the source's name, when
/// DEST is a directory (or written with a trailing '/'); else DEST itself. Resolved
/// inside the container's root; the final component is never followed.
fn push_target(root: &Root, dest: &InPath, src_leaf: &OsStr, parents: bool) -> Result<Target> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let into = |fd: OwnedFd| {
        Ok(Target {
            dir: fd,
            leaf: src_leaf.to_os_string(),
            shown: child_shown(&dest.shown, src_leaf),
        })
    };
    match root.openat(&dest.rel(), dir_flags, 0) {
        Ok(fd) => return into(fd),
        Err(Errno::ENOENT) if dest.dir_only && parents => return into(root.dir(&dest.comps)?),
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) if dest.dir_only => {
            return Err(missing_dir(dest));
        }
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
        Err(e) => return Err(e).ctx("open", &dest.shown),
    }
    let parent = dest.parent();
    let dir = match root.openat(&parent.rel(), dir_flags, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if parents => root.dir(&parent.comps)?,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Err(missing_dir(&parent)),
        Err(e) => return Err(e).ctx("open", &parent.shown),
    };
    let leaf = dest
        .comps
        .last()
        .map(|c| OsStr::from_bytes(c).to_os_string());
    let leaf = leaf.ok_or_else(|| Error::Other(format!("{}: no file name", dest.shown)))?;
    Ok(Target {
        dir,
        leaf,
        shown: dest.shown.clone(),
    })
}

fn missing_dir(dir: &InPath) -> Error {
    Error::Other(format!(
        "{} is not a directory in the container (it does not exist, or something else is \
         there); pass -p to create it and its parents",
        dir.shown
    ))
}

/// Where a pull lands on the host: into DEST under the source's name when DEST is a
/// directory, else DEST itself (its directory must exist).
fn pull_target(dest: &Path, src_leaf: &OsStr) -> Result<Target> {
    let open_dir = |p: &Path| {
        nix::fcntl::open(
            p,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    if dest.is_dir() {
        let fd = open_dir(dest).ctx("open", dest)?;
        let shown = child_shown(&dest.display().to_string(), src_leaf);
        return Ok(Target {
            dir: fd,
            leaf: src_leaf.to_os_string(),
            shown,
        });
    }
    let dir_only = dest.as_os_str().as_bytes().ends_with(b"/");
    let (Some(leaf), false) = (dest.file_name(), dir_only) else {
        return Err(Error::Other(format!(
            "{} is not a directory on the host; create it first, or name a file",
            dest.display()
        )));
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {
            return Err(Error::Other(format!(
                "{} is not a directory on the host; create it first (mkdir -p)",
                parent.display()
            )))
        }
        Err(e) => return Err(e).ctx("open", parent),
    };
    Ok(Target {
        dir: fd,
        leaf: leaf.to_os_string(),
        shown: dest.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_absolute_plain_components() {
        let p = InPath::parse("web1", "/etc//nginx/./nginx.conf").unwrap();
        assert_eq!(
            p.comps,
            [b"etc".to_vec(), b"nginx".to_vec(), b"nginx.conf".to_vec()]
        );
        assert_eq!(p.shown, "web1:/etc/nginx/nginx.conf");
        assert!(!p.dir_only);
        assert_eq!(p.parent().shown, "web1:/etc/nginx");
        assert!(InPath::parse("web1", "/srv/").unwrap().dir_only);
        let root = InPath::parse("web1", "/").unwrap();
        assert!(root.comps.is_empty() && !root.dir_only && root.shown == "web1:/");
        for bad in ["etc/x", "/etc/../x", ""] {
            assert!(
                matches!(InPath::parse("web1", bad), Err(Error::Usage(_))),
                "{bad}"
            );
        }
    }
}
