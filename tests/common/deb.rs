//! The Debian package of this build, made by packaging/build-deb.sh as a user makes it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages the test binary into `out` and returns the .deb. `lintian`: whether
/// build-deb.sh runs lintian itself (failing on errors) when it is installed.
pub fn build(out: &Path, lintian: bool) -> PathBuf {
    let repo = env!("CARGO_MANIFEST_DIR");
    let built = Command::new("bash")
        .arg(format!("{repo}/packaging/build-deb.sh"))
        .env("RLXC_BINARY", env!("CARGO_BIN_EXE_rlxc"))
        .env("RLXC_DEB_DIR", out)
        .env("RLXC_LINTIAN", if lintian { "1" } else { "0" })
        .output()
        .expect("run packaging/build-deb.sh");
    let stdout = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "build-deb.sh failed: {stdout}{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Its first line is the package's path (lintian's findings may follow).
    let deb = PathBuf::from(stdout.lines().next().unwrap_or_default());
    assert!(deb.is_file(), "build-deb.sh named no package: {stdout}");
    deb
}
