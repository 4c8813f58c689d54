//! Mounts a test makes, undone whatever the test did.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mount a test made (`mount ARGS… AT`), lazily unmounted on drop whatever the test did.
pub struct TestMount(pub PathBuf);

impl TestMount {
    pub fn new(args: &[&str], at: &Path) -> Self {
        let ok = Command::new("mount")
            .args(args)
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {args:?} {}", at.display());
        TestMount(at.to_path_buf())
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
