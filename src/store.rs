//! Container directories under lxcpath: list, lock, create atomically, destroy.
//!
//! A container is created as `.NAME.creating` and renamed to `NAME` (RENAME_NOREPLACE)
//! only when complete, under a per-name lock in `.locks/`. A crash leaves at most a
//! hidden directory whose lock nobody holds; the next create (of any name) removes it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};

use crate::error::{Error, IoContext, Result};

pub fn mkdir_p(path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .ctx("create directory", path)
}

// In config, which must not import store (DESIGN.md, Layout); here for store's users.
pub use crate::config::write_atomic;

/// Remove a tree without following symlinks (std's remove_dir_all is symlink-safe).
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.ctx("remove", path),
    }
}

/// Atomically swap two directory entries.
pub fn exchange(a: &Path, b: &Path) -> Result<()> {
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).ctx("swap into place", b)
}

/// Rename `from` to `to`, failing with EEXIST instead of replacing.
pub fn rename_noreplace(from: &Path, to: &Path) -> nix::Result<()> {
    renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE)
}

/// An exclusive per-name lock; released on drop (or when the process dies).
pub struct NameLock {
    _lock: Flock<File>,
}

pub fn lock_name(lxcpath: &Path, name: &str, doing: &str) -> Result<NameLock> {
    let dir = lxcpath.join(".locks");
    mkdir_p(&dir, 0o700)?;
    let path = dir.join(name);
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx("open lock", &path)?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) if !same_file(&l, &path) => {
            // A destroy unlinked the file between our open and our lock: lock the new one.
            drop(l);
            lock_name(lxcpath, name, doing)
        }
        Ok(mut l) => {
            // Record who holds it, for the other side's error message.
            let _ = l.set_len(0);
            let _ = writeln!(*l, "{} {doing}", std::process::id());
            Ok(NameLock { _lock: l })
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = lock_holder(&path);
            let what = match holder.split_once(' ') {
                Some((pid, what)) => format!("another rlxc (pid {pid}) is {what}"),
                None => "another rlxc is working on it".into(),
            };
            Err(Error::Busy {
                name: name.to_string(),
                what: format!("{what}; try again when it is done"),
            })
        }
        Err((_, e)) => Err(Error::io("lock", &path, e.into())),
    }
}

/// "PID DOING" from a lock file. The holder writes it just after it got the lock, so a
/// loser of a close race may look before it is there: look again, briefly.
fn lock_holder(path: &Path) -> String {
    for _ in 0..20 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.trim().is_empty() {
            return text.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    String::new()
}

fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

pub fn container_dir(lxcpath: &Path, name: &str) -> PathBuf {
    lxcpath.join(name)
}

pub fn staging_dir(lxcpath: &Path, name: &str) -> PathBuf {
    lxcpath.join(format!(".{name}.creating"))
}

/// A container directory being built; removed on drop unless published.
pub struct Creating {
    pub dir: PathBuf,
    published: bool,
}

impl Creating {
    /// Start building `name` (the caller holds its lock).
    pub fn begin(lxcpath: &Path, name: &str) -> Result<Self> {
        let dir = staging_dir(lxcpath, name);
        // Left by a create that was killed; we hold the lock, so it is nobody's.
        remove_tree(&dir)?;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .ctx("create", &dir)?;
        Ok(Creating {
            dir,
            published: false,
        })
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Rename into place; fails, leaving nothing, if the name appeared meanwhile.
    pub fn publish(mut self, lxcpath: &Path, name: &str) -> Result<PathBuf> {
        let dest = container_dir(lxcpath, name);
        match rename_noreplace(&self.dir, &dest) {
            Ok(()) => {
                self.published = true;
                Ok(dest)
            }
            Err(nix::errno::Errno::EEXIST) | Err(nix::errno::Errno::ENOTEMPTY) => {
                Err(Error::Exists {
                    name: name.into(),
                    lxcpath: lxcpath.into(),
                })
            }
            Err(e) => Err(e).ctx("rename into place", &dest),
        }
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        if !self.published {
            let _ = remove_tree(&self.dir);
        }
    }
}

/// Remove the `.X.creating` and `.X.destroying` directories nobody works on: a create or
/// destroy killed outright (SIGKILL, power loss) leaves one, as large as a rootfs. Whoever
/// works on X holds X's lock, so a lock we can take (never waiting) means the owner is
/// dead. `except` is the caller's own name, whose lock it holds. Returns what was removed.
pub fn sweep_stale(lxcpath: &Path, except: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(lxcpath) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let Ok(file) = e.file_name().into_string() else {
            continue;
        };
        let Some(name) = work_dir_owner(&file) else {
            continue;
        };
        if name == except || crate::name::validate(name).is_err() {
            continue;
        }
        let Ok(lock) = lock_name(lxcpath, name, "removing a stale work directory") else {
            continue;
        };
        let dir = e.path();
        if remove_tree(&dir).is_ok() {
            removed.push(dir);
        }
        // As destroy does: a name with no container keeps no lock file.
        if !container_dir(lxcpath, name).exists() {
            let _ = std::fs::remove_file(lxcpath.join(".locks").join(name));
        }
        drop(lock);
    }
    removed.sort();
    removed
}

/// ".X.creating" or ".X.destroying" → X.
fn work_dir_owner(file: &str) -> Option<&str> {
    let rest = file.strip_prefix('.')?;
    rest.strip_suffix(".creating")
        .or_else(|| rest.strip_suffix(".destroying"))
}

pub fn destroying_dir(lxcpath: &Path, name: &str) -> PathBuf {
    lxcpath.join(format!(".{name}.destroying"))
}

/// Names of the containers in lxcpath (directories with a config.toml), sorted.
pub fn list(lxcpath: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(lxcpath) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", lxcpath, e)),
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (!name.starts_with('.') && e.path().join("config.toml").is_file()).then_some(name)
        })
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_dirs_name_their_owner() {
        assert_eq!(work_dir_owner(".web1.creating"), Some("web1"));
        assert_eq!(work_dir_owner(".a.b.destroying"), Some("a.b"));
        assert_eq!(work_dir_owner("web1.creating"), None);
        assert_eq!(work_dir_owner(".locks"), None);
        assert_eq!(work_dir_owner(".x.config.toml.tmp.12"), None);
    }

    #[test]
    fn only_unlocked_work_dirs_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let lx = d.path();
        for n in [
            ".dead.creating",
            ".gone.destroying",
            ".busy.creating",
            ".me.creating",
        ] {
            std::fs::create_dir_all(lx.join(n).join("rootfs/etc")).unwrap();
        }
        std::fs::create_dir(lx.join("kept")).unwrap();
        let _busy = lock_name(lx, "busy", "creating this container").unwrap();
        let _me = lock_name(lx, "me", "creating this container").unwrap();
        let removed = sweep_stale(lx, "me");
        assert_eq!(
            removed,
            [lx.join(".dead.creating"), lx.join(".gone.destroying")]
        );
        for n in [".busy.creating", ".me.creating", "kept"] {
            assert!(lx.join(n).is_dir(), "{n} was removed");
        }
        assert!(!lx.join(".locks/dead").exists() && lx.join(".locks/busy").exists());
    }
}
