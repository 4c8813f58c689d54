//! Device nodes given to a running container (rlxc-device, `[[device]]`): made inside its
//! root as its init sees it (`/proc/PID/root`, its own /dev included), every path
//! resolved confined. A privileged container gets a node made with mknod (as LXC does);
//! an unprivileged one the host's node bound in (a user namespace's mounts cannot hold
//! usable nodes), moved in place from inside its mount namespace.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, IoContext, Result};
use crate::rootfs::Root;
use crate::sys;

/// A host device node, as the container is to get it.
#[derive(Debug, Clone)]
pub struct HostNode {
    pub path: PathBuf,
    block: bool,
    rdev: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl HostNode {
    /// The node at `path` on the host; anything else (absent, a file) is refused.
    pub fn stat(path: &Path) -> Result<Self> {
        let md = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "there is no device {} on the host (name an existing node, or a \
                     network interface without a leading '/')",
                    path.display()
                ))
            } else {
                Error::io("inspect", path, e)
            }
        })?;
        let ft = md.file_type();
        if !ft.is_char_device() && !ft.is_block_device() {
            return Err(Error::Usage(format!(
                "{} is not a device node on the host",
                path.display()
            )));
        }
        Ok(HostNode {
            path: path.to_path_buf(),
            block: ft.is_block_device(),
            rdev: md.rdev(),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
        })
    }

    /// Its device cgroup rule.
    pub fn rule(&self) -> String {
        rule_of(self.block, self.rdev)
    }
}

fn rule_of(block: bool, rdev: u64) -> String {
    crate::cgroup::node_rule(
        block,
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev),
    )
}

/// Whether the container whose init is `init` has a user namespace of its own.
fn unprivileged(init: i32) -> bool {
    let ns = |p: String| std::fs::read_link(p).ok();
    ns(format!("/proc/{init}/ns/user")) != ns("/proc/self/ns/user".into())
}

/// `target` split into its parent (opened, made if missing) and its leaf.
fn parent_and_leaf(root: &Root, target: &str) -> Result<(OwnedFd, Vec<u8>)> {
    let comps = crate::rootfs::components(target.as_bytes(), "device path")?;
    let (leaf, parent) = comps
        .split_last()
        .ok_or_else(|| Error::Usage(format!("device path {target:?} names no file")))?;
    Ok((root.dir(parent)?, leaf.clone()))
}

/// Make `node` at `target` in the running container whose init is `init`.
pub fn add_node(init: i32, node: &HostNode, target: &str) -> Result<()> {
    let root = Root::of_process(init)?;
    let (parent, leaf) = parent_and_leaf(&root, target)?;
    let leaf = OsStr::from_bytes(&leaf);
    let shown = format!("{target} in the container");
    if nix::sys::stat::fstatat(parent.as_fd(), leaf, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
        return Err(Error::Usage(format!(
            "{shown} exists already (rlxc-device del it first, or choose another path)"
        )));
    }
    if !unprivileged(init) {
        return make_node(parent.as_fd(), leaf, node).ctx("create device node", &shown);
    }
    // The bind's source, taken here where the host's paths are reachable.
    let bind = sys::mount::clone_tree(&node.path, false).ctx("bind", &node.path)?;
    // The file it is bound on, made as the owner of its directory (the container's
    // root): a file of the host's root, an id the container's file system cannot map,
    // is refused (EOVERFLOW).
    let dir = nix::sys::stat::fstat(parent.as_fd()).ctx("inspect the directory of", &shown)?;
    sys::creds::with_fs_ids(dir.st_uid, dir.st_gid, || {
        nix::fcntl::openat(
            parent.as_fd(),
            leaf,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    })
    .ctx("create", &shown)?
    .ctx("create", &shown)?;
    let placed = nix::fcntl::openat(
        parent.as_fd(),
        leaf,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", &shown)
    .and_then(|spot| {
        in_mount_ns(init, || {
            sys::mount::move_mount_onto(bind.as_fd(), spot.as_fd())
        })
        .ctx("bind the host's node onto", &shown)
    });
    if placed.is_err() {
        let _ = nix::unistd::unlinkat(
            parent.as_fd(),
            leaf,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    placed
}

fn make_node(dir: BorrowedFd<'_>, leaf: &OsStr, node: &HostNode) -> nix::Result<()> {
    let kind = if node.block {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFCHR
    };
    let old = sys::umask(0);
    let made = nix::sys::stat::mknodat(
        dir,
        leaf,
        kind,
        Mode::from_bits_truncate(node.mode),
        node.rdev,
    );
    sys::umask(old);
    made?;
    nix::unistd::fchownat(
        dir,
        leaf,
        Some(node.uid.into()),
        Some(node.gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// Remove the device node at `target` in the running container; its rule.
pub fn remove_node(init: i32, target: &str) -> Result<String> {
    let root = Root::of_process(init)?;
    let (parent, leaf) = parent_and_leaf(&root, target)?;
    let leaf = OsStr::from_bytes(&leaf);
    let shown = format!("{target} in the container");
    let st = nix::sys::stat::fstatat(parent.as_fd(), leaf, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(
        |e| match e {
            nix::errno::Errno::ENOENT => Error::Usage(format!("there is no {shown}")),
            e => Error::io("inspect", &shown, e.into()),
        },
    )?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
        return Err(Error::Usage(format!("{shown} is not a device node")));
    }
    let rule = rule_of(kind == libc::S_IFBLK, st.st_rdev);
    if unprivileged(init) {
        // The host's node bound on an empty file: unmounted from inside (not a mount:
        // nothing to do), then the file goes.
        let path = format!(
            "/{}",
            String::from_utf8_lossy(&crate::rootfs::join(&crate::rootfs::components(
                target.as_bytes(),
                "device path"
            )?,))
        );
        in_mount_ns(init, || {
            match nix::mount::umount2(
                path.as_str(),
                nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW,
            ) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .ctx("unmount", &shown)?;
    }
    nix::unistd::unlinkat(
        parent.as_fd(),
        leaf,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )
    .ctx("remove", &shown)?;
    Ok(rule)
}

/// Run `f` in a child process in the mount namespace of `init` (a mount moves only into
/// the caller's own namespace); its error comes back as an errno.
fn in_mount_ns(init: i32, f: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    let p = format!("/proc/{init}/ns/mnt");
    let ns = std::fs::File::open(&p)?;
    match sys::fork()? {
        sys::Forked::Child => {
            let r = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(std::io::Error::from)
                .and_then(|_| f());
            let code = match r {
                Ok(()) => 0,
                Err(e) => e
                    .raw_os_error()
                    .filter(|n| (1..256).contains(n))
                    .unwrap_or(libc::EIO),
            };
            sys::exit_child(code)
        }
        sys::Forked::Parent(pid) => loop {
            match nix::sys::wait::waitpid(pid, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, n)) => {
                    return Err(std::io::Error::from_raw_os_error(n))
                }
                Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => {
                    return Err(std::io::Error::other(format!("the helper died of {s}")))
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        },
    }
}
