//! Backing stores: where a container's root file system lives and how its first
//! process gets it as its root. `dir` (a plain tree under the container's directory) and
//! `overlay` (a shared read-only lower under the image cache, an upper and work
//! directory per container); `btrfs` (a subvolume) is in store/btrfs.rs. Create, start
//! and destroy go through this, never through a path they assume.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::config::{Backend, Rootfs};
use crate::error::{IoContext, Result};
use crate::rootfs::Root;

/// What the container's first process mounts as its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// Bind this directory (recursively).
    Bind(PathBuf),
    /// Mount an overlay of these layers on `at`.
    Overlay {
        /// Read-only, topmost first.
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        at: PathBuf,
        /// The upper is stacked read-only on the lowers and a new tmpfs, mounted on
        /// `work`, holds this run's upper and work directories.
        tmpfs: bool,
    },
}

impl RootSource {
    /// An overlay's lowers, upper and work directory for a run, called in the
    /// container's own mount namespace (after its mounts were made private). With
    /// `tmpfs`, the upper joins the lowers and a tmpfs mounted on the work directory
    /// holds a fresh upper (owned and moded as the old one, which the merged root shows)
    /// and work directory: it goes when the namespace does.
    pub fn overlay_layers_for_run(&self) -> Result<(Vec<PathBuf>, PathBuf, PathBuf)> {
        let RootSource::Overlay {
            lowers,
            upper,
            work,
            tmpfs,
            ..
        } = self
        else {
            return Err(crate::error::Error::Other("not an overlay".into()));
        };
        if !tmpfs {
            return Ok((lowers.clone(), upper.clone(), work.clone()));
        }
        use nix::mount::{mount, MsFlags};
        let none = MsFlags::empty();
        mount(Some("tmpfs"), work, Some("tmpfs"), none, Some("mode=0700"))
            .ctx("mount a tmpfs on", work)?;
        let (run_upper, run_work) = make_run_layers(work, upper)?;
        let all = std::iter::once(upper.clone())
            .chain(lowers.iter().cloned())
            .collect();
        Ok((all, run_upper, run_work))
    }
}

/// In `base` (a fresh tmpfs), a run's upper, owned and moded as the container's `upper`
/// (which the merged root shows), and its work directory.
pub fn make_run_layers(base: &Path, upper: &Path) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(upper).ctx("read the overlay upper", upper)?;
    let (run_upper, run_work) = (base.join("upper"), base.join("work"));
    std::fs::create_dir(&run_upper).ctx("create", &run_upper)?;
    std::os::unix::fs::chown(&run_upper, Some(meta.uid()), Some(meta.gid()))
        .ctx("chown", &run_upper)?;
    let mode = std::fs::Permissions::from_mode(meta.mode() & 0o7777);
    std::fs::set_permissions(&run_upper, mode).ctx("chmod", &run_upper)?;
    std::fs::create_dir(&run_work).ctx("create", &run_work)?;
    Ok((run_upper, run_work))
}

pub trait BackingStore {
    fn kind(&self) -> Backend;
    /// Where the files are, for a container whose directory is `dir` (rlxc-info, a
    /// sysadmin's chroot, a template filling it).
    fn path(&self, dir: &Path) -> PathBuf;
    /// Make the empty root file system of a container being built in `staging`.
    fn create(&self, staging: &Path) -> Result<PathBuf>;
    /// A confined handle on the container's tree as its init will see it, for the
    /// container whose directory is `dir`: what a create writes into (templates,
    /// substitutions) after `create`, what a start checks before it starts.
    fn open_tree(&self, dir: &Path) -> Result<OpenTree>;
    /// What the first process mounts as the container's root.
    fn root(&self, dir: &Path) -> RootSource;
    /// The directory of the container's own files, what a snapshot keeps a copy of and
    /// a restore puts back: the whole tree (`dir`), the upper (`overlay`: the lower is
    /// shared and never written).
    fn own_files(&self, dir: &Path) -> PathBuf {
        self.path(dir)
    }
    /// The shared read-only layers the tree stacks its own files on, topmost first
    /// (overlay); none for a store whose own files are the whole tree.
    fn lowers(&self) -> &[PathBuf] {
        &[]
    }
    /// A read-only view of the whole tree whose own files are at `own` (the container's
    /// `own_files` or a snapshot's copy of them): that directory for `dir`, merged on the
    /// lower for overlay, a detached mount like `open_tree`'s.
    fn open_view(&self, own: &Path) -> Result<Root> {
        Root::open(own)
    }
    /// After a restore put other own files in place, what the old ones left beside them
    /// goes (overlay: the work directory, emptied).
    fn after_restore(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
    /// One line for a sysadmin: the store and where its files are.
    fn describe(&self, dir: &Path) -> String {
        let kind = format!("{:?}", self.kind()).to_lowercase();
        format!("{} ({kind})", self.path(dir).display())
    }
    /// Remove the root file system of a container being destroyed (its directory
    /// already renamed to `dir`).
    fn destroy(&self, dir: &Path) -> Result<()>;
    /// Make `to` (absent; its directory exists) a copy-on-write copy of the tree of the
    /// container whose directory is `dir`, of this same store. False, with nothing made,
    /// when this store cannot here: the caller copies the files.
    fn clone_into(&self, _dir: &Path, _to: &Path) -> Result<bool> {
        Ok(false)
    }
}

/// The `dir` store of `[rootfs]` (store::select::open picks the store by its backend).
pub(super) fn dir_store(r: &Rootfs) -> Dir {
    Dir {
        path: r.path.clone(),
    }
}

/// The `overlay` store of `[rootfs]`.
pub(super) fn overlay_store(r: &Rootfs) -> Overlay {
    Overlay {
        at: r.path.clone(),
        // `Rootfs::check` refused an overlay without a lower; none fails at mount with
        // the container named.
        lowers: r.read_only_layers(),
        upper: r.upper_dir().to_path_buf(),
        work: r.work_dir().to_path_buf(),
        tmpfs: r.tmpfs,
    }
}

/// Whether this kernel has overlayfs (built in or loaded).
pub fn overlay_available() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    })
}

/// A plain directory, `DIR/rootfs` by default.
pub(super) struct Dir {
    /// Relative to the container's directory (checked by `Rootfs::check`).
    path: PathBuf,
}

impl BackingStore for Dir {
    fn kind(&self) -> Backend {
        Backend::Dir
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.path)
    }

    fn create(&self, staging: &Path) -> Result<PathBuf> {
        let p = self.path(staging);
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&p)
            .ctx("create", &p)?;
        Ok(p)
    }

    fn open_tree(&self, dir: &Path) -> Result<OpenTree> {
        Ok(OpenTree::plain(Root::open(&self.path(dir))?))
    }

    fn root(&self, dir: &Path) -> RootSource {
        RootSource::Bind(self.path(dir))
    }

    fn destroy(&self, dir: &Path) -> Result<()> {
        super::remove_tree(&self.path(dir))
    }
}

/// An overlay: `lowers` shared and never written, `upper` and `work` in the container's
/// directory, merged on `at` (an empty directory there) only inside the container's
/// mount namespace while it runs.
pub(super) struct Overlay {
    at: PathBuf,
    /// Topmost first: frozen uppers of the containers it was cloned from, then the image.
    lowers: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    tmpfs: bool,
}

impl Overlay {
    fn layers_in(&self, dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join(&self.upper), dir.join(&self.work))
    }

    /// The layer whose root the merged root shows (the upper takes its owner and mode).
    fn top(&self) -> &Path {
        self.lowers.first().map_or(Path::new(""), |p| p.as_path())
    }
}

impl BackingStore for Overlay {
    fn kind(&self) -> Backend {
        Backend::Overlay
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.at)
    }

    fn create(&self, staging: &Path) -> Result<PathBuf> {
        let (upper, work) = self.layers_in(staging);
        let at = self.path(staging);
        for d in [&upper, &work, &at] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(d)
                .ctx("create", d)?;
        }
        // The merged root takes the upper's owner and mode: give it the lower's.
        let meta = std::fs::metadata(self.top()).ctx("read the overlay lower", self.top())?;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::os::unix::fs::chown(&upper, Some(meta.uid()), Some(meta.gid()))
            .ctx("chown", &upper)?;
        std::fs::set_permissions(
            &upper,
            std::fs::Permissions::from_mode(meta.mode() & 0o7777),
        )
        .ctx("chmod", &upper)?;
        Ok(at)
    }

    /// A detached overlay mount: writes land in the upper (a tmpfs container's too: what
    /// a create writes is its own), and the mount goes away with the handle (or the
    /// process), so a create leaves no mount behind, killed or not.
    /// Volatile (see `sys::mount::overlay_volatile`): a marker a killed rlxc left is
    /// cleared first, and the handle clears its own.
    fn open_tree(&self, dir: &Path) -> Result<OpenTree> {
        let (upper, work) = self.layers_in(dir);
        let layers = crate::sys::mount::OverlayLayers {
            lowers: &self.lowers,
            upper: &upper,
            work: &work,
        };
        let marker = crate::sys::mount::volatile_marker(&work);
        remove_marker(&marker)?;
        let mnt =
            crate::sys::mount::overlay_volatile(&layers).ctx("mount an overlay on", self.top())?;
        Ok(OpenTree {
            root: mounted_root(&mnt, &upper, &self.path(dir))?,
            _marker: Marker(Some(marker)),
        })
    }

    fn root(&self, dir: &Path) -> RootSource {
        let (upper, work) = self.layers_in(dir);
        RootSource::Overlay {
            lowers: self.lowers.clone(),
            upper,
            work,
            at: self.path(dir),
            tmpfs: self.tmpfs,
        }
    }

    fn own_files(&self, dir: &Path) -> PathBuf {
        dir.join(&self.upper)
    }

    fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    fn open_view(&self, own: &Path) -> Result<Root> {
        let layers: Vec<PathBuf> = std::iter::once(own.to_path_buf())
            .chain(self.lowers.iter().cloned())
            .collect();
        let mnt = crate::sys::mount::overlay_read_only(&layers)
            .ctx("mount a read-only overlay of", own)?;
        mounted_root(&mnt, own, own)
    }

    fn after_restore(&self, dir: &Path) -> Result<()> {
        let work = dir.join(&self.work);
        super::remove_tree(&work)?;
        std::fs::create_dir(&work).ctx("create", &work)
    }

    fn describe(&self, dir: &Path) -> String {
        let on: Vec<String> = self
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        format!(
            "{} (overlay{} on {})",
            dir.join(&self.upper).display(),
            if self.tmpfs { ", writes on tmpfs" } else { "" },
            on.join(" on ")
        )
    }

    /// The upper and work directories; the lower is the image cache's.
    fn destroy(&self, dir: &Path) -> Result<()> {
        let (upper, work) = self.layers_in(dir);
        super::remove_tree(&upper)?;
        super::remove_tree(&work)?;
        super::remove_tree(&self.path(dir))
    }
}

/// A container's tree open for writing (`BackingStore::open_tree`): a confined `Root`;
/// for an overlay, also the marker its volatile mount leaves in the work directory,
/// removed once the handle, and with it the mount, is gone (fields drop in order).
pub struct OpenTree {
    root: Root,
    _marker: Marker,
}

impl OpenTree {
    pub fn plain(root: Root) -> Self {
        OpenTree {
            root,
            _marker: Marker(None),
        }
    }
}

impl std::ops::Deref for OpenTree {
    type Target = Root;
    fn deref(&self) -> &Root {
        &self.root
    }
}

/// A volatile overlay's marker, removed when dropped (after the root that held the mount).
struct Marker(Option<PathBuf>);

impl Drop for Marker {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            if let Err(e) = remove_marker(m) {
                eprintln!("rlxc: warning: {e} (the next rlxc that opens the tree removes it)");
            }
        }
    }
}

/// The volatile marker `marker` (a directory holding the file `dirty`) and its
/// `incompat` directory gone, if there.
fn remove_marker(marker: &Path) -> Result<()> {
    let dirty = marker.join("dirty");
    match std::fs::remove_file(&dirty) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
            return Err(e).ctx("remove the overlay's volatile marker", &dirty)
        }
        _ => {}
    }
    for d in [Some(marker), marker.parent()].into_iter().flatten() {
        match std::fs::remove_dir(d) {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTEMPTY)) => {
                return Err(e).ctx("remove the overlay's volatile marker", d)
            }
            _ => {}
        }
    }
    Ok(())
}

/// The root of the detached mount `mnt` (of `upper`) as a `Root` that `shown` names; the
/// mount lives as long as the handle.
fn mounted_root(mnt: &std::os::fd::OwnedFd, upper: &Path, shown: &Path) -> Result<Root> {
    let fd = nix::fcntl::openat(
        mnt.as_fd(),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open the overlay of", upper)?;
    Ok(Root::from_fd(fd, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_store_lives_in_the_container_directory() {
        let t = tempfile::tempdir().unwrap();
        let store = dir_store(&Rootfs::default());
        assert_eq!(store.kind(), Backend::Dir);
        let made = store.create(t.path()).unwrap();
        assert_eq!(made, t.path().join("rootfs"));
        assert!(made.is_dir());
        assert_eq!(store.root(t.path()), RootSource::Bind(made.clone()));
        std::fs::write(made.join("f"), "x").unwrap();
        store.destroy(t.path()).unwrap();
        assert!(!made.exists());
        // Nothing there is fine too.
        store.destroy(t.path()).unwrap();
    }

    #[test]
    fn another_path_is_honoured() {
        let t = tempfile::tempdir().unwrap();
        let store = dir_store(&Rootfs {
            path: "data/root".into(),
            ..Rootfs::default()
        });
        let made = store.create(t.path()).unwrap();
        assert_eq!(made, t.path().join("data/root"));
    }

    #[test]
    fn an_overlay_writes_to_its_upper_and_destroy_keeps_the_lower() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/hostname"), "image\n").unwrap();
        std::fs::set_permissions(&lower, std::fs::Permissions::from_mode(0o751)).unwrap();
        let dir = t.path().join("c1");
        let store = overlay_store(&Rootfs::overlay(lower.clone()));
        assert_eq!(store.create(&dir).unwrap(), dir.join("rootfs"));
        let mode = std::fs::metadata(dir.join("upper"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o7777,
            0o751,
            "the merged root keeps the image's mode"
        );
        let root = store.open_tree(&dir).unwrap();
        let f = root
            .openat(
                b"etc/hostname",
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_TRUNC,
                0,
            )
            .unwrap();
        nix::unistd::write(&f, b"c1\n").unwrap();
        let marker = crate::sys::mount::volatile_marker(&dir.join("work"));
        assert!(marker.is_dir(), "the handle's mount is volatile");
        drop((f, root));
        assert_eq!(
            std::fs::read_to_string(dir.join("upper/etc/hostname")).unwrap(),
            "c1\n"
        );
        assert!(!marker.exists() && !marker.parent().unwrap().exists());
        // A marker a killed rlxc left is cleared before the next mount (which the
        // kernel would refuse).
        std::fs::create_dir_all(&marker).unwrap();
        std::fs::write(marker.join("dirty"), "").unwrap();
        drop(store.open_tree(&dir).unwrap());
        assert!(!marker.exists());
        assert_eq!(
            std::fs::read_to_string(lower.join("etc/hostname")).unwrap(),
            "image\n"
        );
        // The read-only view of the upper (a snapshot's copy, say) on the same lower.
        std::fs::remove_file(dir.join("upper/etc/hostname")).unwrap();
        std::fs::rename(dir.join("upper"), t.path().join("copy")).unwrap();
        std::fs::create_dir(dir.join("upper")).unwrap();
        std::fs::write(t.path().join("copy/etc/new"), "n\n").unwrap();
        let view = store.open_view(&t.path().join("copy")).unwrap();
        let read = |rel: &[u8]| {
            let fd = view.openat(rel, nix::fcntl::OFlag::O_RDONLY, 0).unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
            s
        };
        assert_eq!(
            (read(b"etc/hostname"), read(b"etc/new")),
            ("image\n".into(), "n\n".into())
        );
        let w = view.openat(
            b"etc/x",
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CREAT,
            0o644,
        );
        assert_eq!(w.unwrap_err(), nix::errno::Errno::EROFS);
        assert_eq!(store.own_files(&dir), dir.join("upper"));
        drop(view);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*dir.to_string_lossy()), "{mounts}");
        assert!(!mounts.contains(&*t.path().to_string_lossy()), "{mounts}");
        assert_eq!(
            store.root(&dir),
            RootSource::Overlay {
                lowers: vec![lower.clone()],
                upper: dir.join("upper"),
                work: dir.join("work"),
                at: dir.join("rootfs"),
                tmpfs: false,
            }
        );
        store.destroy(&dir).unwrap();
        assert!(!dir.join("upper").exists() && !dir.join("work").exists());
        assert!(lower.join("etc/hostname").is_file());
    }
}
