//! Backing stores: where a container's root file system lives and how its first
//! process gets it as its root. `dir` (a plain tree under the container's directory) and
//! `overlay` (a shared read-only lower under the image cache, an upper and work
//! directory per container); btrfs comes beside them. Create, start and destroy go
//! through this, never through a path they assume.

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
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        at: PathBuf,
    },
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
    fn open_tree(&self, dir: &Path) -> Result<Root>;
    /// What the first process mounts as the container's root.
    fn root(&self, dir: &Path) -> RootSource;
    /// One line for a sysadmin: the store and where its files are.
    fn describe(&self, dir: &Path) -> String {
        let kind = format!("{:?}", self.kind()).to_lowercase();
        format!("{} ({kind})", self.path(dir).display())
    }
    /// Remove the root file system of a container being destroyed (its directory
    /// already renamed to `dir`).
    fn destroy(&self, dir: &Path) -> Result<()>;
}

/// The backing store a container's `[rootfs]` names.
pub fn open(r: &Rootfs) -> Box<dyn BackingStore> {
    match r.backend {
        Backend::Dir => Box::new(Dir {
            path: r.path.clone(),
        }),
        Backend::Overlay => Box::new(Overlay {
            at: r.path.clone(),
            // `Rootfs::check` refused an overlay without one; an empty path fails at
            // mount with the path named.
            lower: r.lower.clone().unwrap_or_default(),
            upper: r.upper_dir().to_path_buf(),
            work: r.work_dir().to_path_buf(),
        }),
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
struct Dir {
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

    fn open_tree(&self, dir: &Path) -> Result<Root> {
        Root::open(&self.path(dir))
    }

    fn root(&self, dir: &Path) -> RootSource {
        RootSource::Bind(self.path(dir))
    }

    fn destroy(&self, dir: &Path) -> Result<()> {
        super::remove_tree(&self.path(dir))
    }
}

/// An overlay: `lower` shared and never written, `upper` and `work` in the container's
/// directory, merged on `at` (an empty directory there) only inside the container's
/// mount namespace while it runs.
struct Overlay {
    at: PathBuf,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
}

impl Overlay {
    fn layers_in(&self, dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join(&self.upper), dir.join(&self.work))
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
        let meta = std::fs::metadata(&self.lower).ctx("read the overlay lower", &self.lower)?;
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

    /// A detached overlay mount: writes land in the upper, and the mount goes away with
    /// the handle (or the process), so a create leaves no mount behind, killed or not.
    fn open_tree(&self, dir: &Path) -> Result<Root> {
        let (upper, work) = self.layers_in(dir);
        let layers = crate::sys::mount::OverlayLayers {
            lower: &self.lower,
            upper: &upper,
            work: &work,
        };
        let mnt = crate::sys::mount::overlay(&layers).ctx("mount an overlay on", &self.lower)?;
        let fd = nix::fcntl::openat(
            mnt.as_fd(),
            ".",
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx("open the overlay of", &upper)?;
        Ok(Root::from_fd(fd, &self.path(dir)))
    }

    fn root(&self, dir: &Path) -> RootSource {
        let (upper, work) = self.layers_in(dir);
        RootSource::Overlay {
            lower: self.lower.clone(),
            upper,
            work,
            at: self.path(dir),
        }
    }

    fn describe(&self, dir: &Path) -> String {
        format!(
            "{} (overlay on {})",
            dir.join(&self.upper).display(),
            self.lower.display()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_store_lives_in_the_container_directory() {
        let t = tempfile::tempdir().unwrap();
        let store = open(&Rootfs::default());
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
        let store = open(&Rootfs {
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
        let store = open(&Rootfs::overlay(lower.clone()));
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
        drop((f, root));
        assert_eq!(
            std::fs::read_to_string(dir.join("upper/etc/hostname")).unwrap(),
            "c1\n"
        );
        assert_eq!(
            std::fs::read_to_string(lower.join("etc/hostname")).unwrap(),
            "image\n"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*dir.to_string_lossy()), "{mounts}");
        assert_eq!(
            store.root(&dir),
            RootSource::Overlay {
                lower: lower.clone(),
                upper: dir.join("upper"),
                work: dir.join("work"),
                at: dir.join("rootfs"),
            }
        );
        store.destroy(&dir).unwrap();
        assert!(!dir.join("upper").exists() && !dir.join("work").exists());
        assert!(lower.join("etc/hostname").is_file());
    }
}
