//! A container's (or a snapshot's) tree open for reading by the tools that want a
//! directory, `cp` and GNU tar. They run inside it: their working directory is the tree's
//! handle, so an overlay's merged view is read on its detached mount, attached nowhere and
//! gone with the last handle, even if rlxc is killed (the tool is killed with it).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Container;
use crate::config::{Backend, ContainerConfig, Rootfs};
use crate::error::Result;
use crate::rootfs::Root;
use crate::store::backing::BackingStore;

/// A whole tree (or a snapshot's own files), open.
pub(crate) struct Tree {
    root: Root,
}

impl Tree {
    /// The whole tree of a store whose own files are at `own` (see `BackingStore::open_view`).
    pub fn view(store: &dyn BackingStore, own: &Path) -> Result<Self> {
        Ok(Tree {
            root: store.open_view(own)?,
        })
    }

    /// A plain directory as it lies on disk (a snapshot's copy of an upper, say).
    pub fn dir(path: &Path) -> Result<Self> {
        Ok(Tree {
            root: Root::open(path)?,
        })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// What messages call it.
    pub fn shown(&self) -> PathBuf {
        self.root.display(b"")
    }

    /// `program`, to run with the tree as its working directory (so paths it is given
    /// elsewhere must be absolute), killed if this process dies first. The tree must
    /// stay open until the spawn.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        crate::sys::exec_in_dir(&mut cmd, self.root.as_fd());
        cmd
    }
}

impl Container {
    /// This container's whole tree, open for reading (copy, export): the caller holds
    /// its lock with it stopped.
    pub(super) fn tree_for_reading(&self, cfg: &ContainerConfig) -> Result<Tree> {
        let store = self.backing(cfg);
        Tree::view(store.as_ref(), &store.own_files(&self.dir()))
    }
}

/// `cfg` for a whole copy of its tree: a `dir` container (one on another store becomes one
/// on `dir`, its tree complete in itself).
pub(super) fn whole_tree_config(mut cfg: ContainerConfig) -> ContainerConfig {
    if cfg.rootfs.backend != Backend::Dir {
        cfg.rootfs = Rootfs::default();
    }
    cfg
}
