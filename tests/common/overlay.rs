//! Overlay containers in tests: create one from the fixture mirror, find its lower, see
//! what is mounted, and mount a read-only merged view to compare trees with (unmounted
//! on drop, whatever the test did).

use super::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stops (kills) the named containers whatever the test did.
pub struct Stopper<'a>(pub &'a Env, pub Vec<String>);

impl Drop for Stopper<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.run(&["stop", "-k", "-n", n]);
        }
    }
}

/// `create -q -B overlay` from the fixture mirror with no network; returns how long
/// it took.
pub fn create_overlay(env: &Env, name: &str, dist: &str, release: &str) -> Duration {
    let t0 = Instant::now();
    let no_net = "[[network]]\ntype = \"empty\"\n";
    env.create_with_args(name, dist, release, no_net, &["-B", "overlay"]);
    t0.elapsed()
}

/// Every entry under `dir` with its size, mode, owner and mtime: equal lists, an
/// unchanged tree.
pub fn tree_listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            out.push(format!(
                "{} {} {:o} {}:{} {}",
                e.path().display(),
                m.len(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime()
            ));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Lines of /proc/self/mountinfo that mention `paths`.
pub fn mounts_under(paths: &[PathBuf]) -> Vec<String> {
    read("/proc/self/mountinfo")
        .lines()
        .filter(|l| paths.iter().any(|p| l.contains(&*p.to_string_lossy())))
        .map(str::to_string)
        .collect()
}

/// The one lower of `dist/release` (the fixtures have one build each), with nothing
/// else (no half-unpacked staging tree) beside it.
pub fn the_lower(env: &Env, dist: &str, release: &str) -> PathBuf {
    let dir = env.cachepath().join(format!(
        "lowers/download/{dist}/{release}/{}/default",
        host_arch()
    ));
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

/// A read-only overlay of `layers` (topmost first) mounted at `at` for the test to read
/// the tree a container or snapshot is, as the kernel merges it; unmounted on drop.
pub struct Merged {
    pub at: PathBuf,
}

impl Merged {
    pub fn mount(layers: &[&Path], at: PathBuf) -> Self {
        std::fs::create_dir_all(&at).unwrap();
        let lower: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
        let opts = format!("lowerdir={},redirect_dir=follow", lower.join(":"));
        nix::mount::mount(
            Some("overlay"),
            &at,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(opts.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount {opts} on {}: {e}", at.display()));
        Merged { at }
    }
}

impl Drop for Merged {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.at, nix::mount::MntFlags::MNT_DETACH);
    }
}
