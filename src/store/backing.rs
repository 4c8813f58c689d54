//! Backing stores: where a container's root file system lives and how its first
//! process gets it as its root. `dir` (a plain tree under the container's directory) is
//! the one there is; overlay and btrfs come beside it. Create, start and destroy go
//! through this, never through a path they assume.

use std::path::{Path, PathBuf};

use crate::config::{Backend, Rootfs};
use crate::error::{IoContext, Result};

/// What the container's first process mounts as its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// Bind this directory (recursively).
    Bind(PathBuf),
}

pub trait BackingStore {
    fn kind(&self) -> Backend;
    /// Where the files are, for a container whose directory is `dir` (rlxc-info, a
    /// sysadmin's chroot, a template filling it).
    fn path(&self, dir: &Path) -> PathBuf;
    /// Make the empty root file system of a container being built in `staging`.
    fn create(&self, staging: &Path) -> Result<PathBuf>;
    /// What the first process mounts as the container's root.
    fn root(&self, dir: &Path) -> RootSource;
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
    }
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

    fn root(&self, dir: &Path) -> RootSource {
        RootSource::Bind(self.path(dir))
    }

    fn destroy(&self, dir: &Path) -> Result<()> {
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
}
