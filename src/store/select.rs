//! Which backing store a container's `[rootfs]` names. Apart from the stores so that
//! none of them depends on another's module (btrfs builds on the dir store).

use super::backing::{dir_store, overlay_store, BackingStore};
use super::btrfs::Btrfs;
use crate::config::{Backend, Rootfs};

/// The backing store a container's `[rootfs]` names.
pub fn open(r: &Rootfs) -> Box<dyn BackingStore> {
    match r.backend {
        Backend::Dir => Box::new(dir_store(r)),
        Backend::Overlay => Box::new(overlay_store(r)),
        Backend::Btrfs => Box::new(Btrfs(dir_store(r))),
    }
}
