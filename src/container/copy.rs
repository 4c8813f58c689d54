//! Copy: a stopped container becomes a second one with its own identity. The tree is
//! cloned where the backing store can (a btrfs subvolume snapshot) or copied whole
//! (`cp -a`: numeric owners, modes with setuid, xattrs with file capabilities and ACLs,
//! hardlinks, device nodes, sparse files, mtimes; reflinks where the file system has
//! them), then everything that made it the source is replaced: host name, MACs, the
//! picked `auto` address, machine-id, DHCP leases, SSH host keys. An overlay
//! container's merged tree is what is copied: the copy is a `dir` (or `btrfs`) container.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::own::make_own;
use super::tree::{whole_tree_config, Tree};
use super::{Bdev, Container};
use crate::config::{Backend, ContainerConfig, IdMap, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::store::backing::BackingStore;
use crate::{idmap, name, store};

/// What a copy did, for the CLI to report.
pub struct CopyReport {
    /// Its backing store and where the files are, in one line.
    pub rootfs: String,
    /// Source files that held the source's identity and were removed (SSH host keys).
    pub removed: Vec<String>,
}

/// The MAC template every new container's veths get (LXC's prefix).
const MAC_TEMPLATE: &str = "00:16:3e:xx:xx:xx";

impl Container {
    /// A full copy of this (stopped) container, whose config is `src_cfg`, named `new`,
    /// all or nothing, on the backing store `bdev` (None: this one's).
    pub fn copy_to(
        &self,
        sys: &SystemConfig,
        src_cfg: ContainerConfig,
        new: &str,
        bdev: Option<Bdev>,
    ) -> Result<CopyReport> {
        name::validate(new)?;
        let backend = match bdev {
            None => None,
            Some(Bdev::Dir) => Some(Backend::Dir),
            Some(Bdev::Btrfs) => Some(Backend::Btrfs),
            Some(_) => {
                return Err(Error::Usage(
                    "a full copy is made on -B dir or -B btrfs (without -B: the source's \
                     backing store); -B overlay or -s makes a clone"
                        .into(),
                ))
            }
        };
        // Held for the whole copy: no start or destroy of the source meanwhile.
        let _src_lock = self.lock_stopped("copying this container", "a copy")?;
        let from = self.backing(&src_cfg);
        if from.kind() == Backend::Overlay {
            // Its merged tree, whole: the copy is a container of its own on dir (or
            // btrfs), not layered on anything.
            let tree = self.tree_for_reading(&src_cfg)?;
            let whole = Source::Whole(&tree);
            return self.new_from(sys, whole, whole_tree_config(src_cfg), new, backend);
        }
        let own = Source::Own {
            store: &*from,
            dir: &self.dir(),
        };
        self.new_from(sys, own, src_cfg, new, backend)
    }

    /// This container's lock, taken only if it is stopped: `what` of a running
    /// container's files would be inconsistent.
    pub(super) fn lock_stopped(&self, doing: &str, what: &str) -> Result<store::NameLock> {
        let lock = store::lock_name(&self.lxcpath, &self.name, doing)?;
        if self.state().is_running() {
            return Err(Error::Busy {
                name: self.name.clone(),
                what: format!(
                    "it is running, and {what} of a running container's files is \
                     inconsistent; stop it first (rlxc-stop -n {})",
                    self.name
                ),
            });
        }
        Ok(lock)
    }

    /// A new container `new` of `from` and `src_cfg` (this container's own, or a
    /// snapshot's), on `backend` (None: `src_cfg`'s), made its own, all or nothing. The
    /// caller holds this one's lock.
    pub(super) fn new_from(
        &self,
        sys: &SystemConfig,
        from: Source,
        mut src_cfg: ContainerConfig,
        new: &str,
        backend: Option<Backend>,
    ) -> Result<CopyReport> {
        if let Some(b) = backend {
            src_cfg.rootfs.backend = b;
        }
        if src_cfg.rootfs.backend == Backend::Btrfs {
            store::btrfs::require(&sys.lxcpath, "-B btrfs")?;
        }
        let mut made = NewContainer::begin(sys, new, src_cfg.idmap.as_ref())?;
        let (dst, staging) = (&made.c, made.creating.dir.clone());
        let backing = dst.backing(&src_cfg);
        fill(&*backing, &staging, from)?;
        let old_host = src_cfg.host_name(&self.name);
        let mut cfg = dst.as_new(src_cfg, &self.name)?;
        let removed = made.make_own_and_save(sys, &mut cfg, &*backing, &old_host)?;
        let dir = made.publish()?;
        Ok(CopyReport {
            rootfs: backing.describe(&dir),
            removed,
        })
    }

    /// `cfg` (another container's) made this one's: its host name when it had the old
    /// container's, new MACs, no picked address.
    pub(crate) fn as_new(&self, mut cfg: ContainerConfig, old: &str) -> Result<ContainerConfig> {
        if cfg.hostname.is_none() || cfg.hostname.as_deref() == Some(&name::hostname_for(old)) {
            cfg.hostname = Some(name::hostname_for(&self.name));
        }
        for n in &mut cfg.networks {
            if n.hwaddr.is_some() {
                n.hwaddr = MAC_TEMPLATE.parse().ok();
            }
            n.ipv4_assigned = None;
        }
        cfg.fill_hwaddrs();
        cfg.validate(&self.config_path())?;
        Ok(cfg)
    }
}

/// A container being made under a new name: its lock held, its staging directory
/// (removed unless published; it drops first), a second Ctrl-C held off meanwhile, and
/// how it gets host ids of its own.
pub(super) struct NewContainer {
    pub c: Container,
    pub creating: store::Creating,
    ids: idmap::Plan,
    taken: Option<idmap::Taken>,
    _lock: store::NameLock,
    _cleanup: crate::sys::CleanupGuard,
}

impl NewContainer {
    /// Begin `new`, made of a config that maps `ids` (None: privileged); a container
    /// that could get no ids of its own is refused before anything is made.
    pub(super) fn begin(sys: &SystemConfig, new: &str, ids: Option<&IdMap>) -> Result<Self> {
        name::validate(new)?;
        let c = Container::new(sys, new)?;
        let cleanup = crate::sys::CleanupGuard::hold();
        let lock = store::lock_name(&c.lxcpath, new, "creating this container")?;
        if c.dir().exists() {
            return Err(Error::Exists {
                name: new.into(),
                lxcpath: c.lxcpath.clone(),
            });
        }
        let (ids, _) = idmap::Plan::new(sys, new, ids, idmap::Origin::Copy)?;
        store::sweep_stale(&c.lxcpath, new);
        Ok(NewContainer {
            ids,
            taken: None,
            creating: store::Creating::begin(&c.lxcpath, new)?,
            c,
            _lock: lock,
            _cleanup: cleanup,
        })
    }

    /// Its host ids of its own into `cfg`, when the config it is made of maps some:
    /// taken for good, the id lock held from here until it is published.
    pub(super) fn take_ids(&mut self, sys: &SystemConfig, cfg: &mut ContainerConfig) -> Result<()> {
        let taken = self.ids.take(sys)?;
        cfg.idmap.clone_from(&taken.idmap);
        self.taken = Some(taken);
        Ok(())
    }

    /// The tree built in staging made this container's own (host name, machine-id,
    /// leases, SSH host keys; see `make_own`), ids of its own taken, its config written.
    /// What was removed from the tree, for the report.
    pub(super) fn make_own_and_save(
        &mut self,
        sys: &SystemConfig,
        cfg: &mut ContainerConfig,
        backing: &dyn store::backing::BackingStore,
        old_host: &str,
    ) -> Result<Vec<String>> {
        let staging = self.creating.dir.clone();
        let new_host = cfg.host_name(&self.c.name);
        let removed =
            match super::own_upper::own_in_empty_upper(backing, &staging, old_host, &new_host)? {
                Some(removed) => removed,
                None => make_own(&*backing.open_tree(&staging)?, old_host, &new_host)?,
            };
        self.take_ids(sys, cfg)?;
        cfg.save_new(&staging.join("config.toml"))?;
        Ok(removed)
    }

    /// Rename it into place; the id lock and its own lock go after.
    pub(super) fn publish(self) -> Result<PathBuf> {
        let NewContainer {
            c, creating, taken, ..
        } = self;
        let dir = creating.publish(&c.lxcpath, &c.name);
        drop(taken);
        dir
    }
}

/// What a new container is made of.
pub(super) enum Source<'a> {
    /// The own files of `store` for the container (or snapshot) whose directory is
    /// `dir`, for a container on the same kind of store (an overlay's upper, on the same
    /// lowers) or on one whose own files are its whole tree too.
    Own {
        store: &'a dyn BackingStore,
        dir: &'a Path,
    },
    /// A whole tree (an overlay container's, merged), for a `dir` or `btrfs` container.
    Whole(&'a Tree),
}

/// The new container's tree (its directory `staging`, its store `to`) made of `from`.
fn fill(to: &dyn BackingStore, staging: &Path, from: Source) -> Result<()> {
    match from {
        Source::Whole(tree) => {
            let p = to.path(staging);
            make_tree(to.kind(), &p)?;
            copy_tree(tree, &p)
        }
        Source::Own { store, dir } if to.kind() == Backend::Overlay => {
            // Made as a create makes it (upper, work, mount point), then filled.
            to.create(staging)?;
            copy_tree(&Tree::dir(&store.own_files(dir))?, &to.own_files(staging))
        }
        Source::Own { store, .. } if store.kind() == Backend::Overlay => Err(Error::Other(
            "an overlay's own files are not a whole tree: copy its merged tree".into(),
        )),
        Source::Own { store, dir } => copy_own(store, dir, to.kind(), &to.path(staging)),
    }
}

/// `to` (absent) made a `kind` tree holding the own files of `from` for the container
/// (or snapshot) whose directory is `from_dir`: a copy-on-write clone where the stores
/// are of one kind and it can make one, else a new empty tree the files are copied into.
pub(super) fn copy_own(
    from: &dyn BackingStore,
    from_dir: &Path,
    kind: Backend,
    to: &Path,
) -> Result<()> {
    if let Some(parent) = to.parent() {
        store::mkdir_p(parent, 0o755)?;
    }
    if from.kind() == kind && from.clone_into(from_dir, to)? {
        return Ok(());
    }
    make_tree(kind, to)?;
    copy_tree(&Tree::dir(&from.own_files(from_dir))?, to)
}

/// `to` (absent, its directory there) made an empty tree of `kind`: a subvolume for
/// btrfs, else a directory.
pub(super) fn make_tree(kind: Backend, to: &Path) -> Result<()> {
    match kind {
        Backend::Btrfs => store::btrfs::create_subvolume(to),
        _ => std::fs::create_dir(to).ctx("create", to),
    }
}

/// `cp -a` of the tree's contents into the empty `to`, interruptible (Ctrl-C kills it;
/// the caller's staging directory then goes).
pub(super) fn copy_tree(from: &Tree, to: &Path) -> Result<()> {
    let shown = from.shown();
    // cp runs inside `from`: `to` must not depend on our working directory.
    let to = std::path::absolute(to).ctx("resolve", to)?;
    let mut child = from
        .command("cp")
        .args(["-a", "--reflink=auto", "--no-target-directory", "--", "."])
        .arg(&to)
        .stdin(std::process::Stdio::null())
        .spawn()
        .ctx("run cp for", &shown)?;
    loop {
        if crate::sys::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Interrupted);
        }
        match child.try_wait().ctx("wait for cp copying", &shown)? {
            Some(s) if s.success() => return Ok(()),
            Some(s) => {
                return Err(Error::Other(format!(
                    "copying {} failed (cp {s}; its message is above); nothing was created",
                    shown.display()
                )))
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
