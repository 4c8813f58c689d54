//! Mounts a test makes, undone whatever the test did.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mount a test made (`mount ARGS… AT`), lazily unmounted on drop whatever the test did.
pub struct Mounted(pub PathBuf);

impl Mounted {
    pub fn new(args: &[&str], at: &Path) -> Self {
        let ok = Command::new("mount")
            .args(args)
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {args:?} {}", at.display());
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
