//! Container directories under lxcpath: list, lock, create atomically, destroy.
//!
//! A container is created as `.NAME.creating` and renamed to `NAME` (RENAME_NOREPLACE)
//! only when complete, under a per-name lock in `.locks/`. A crash leaves at most a
//! hidden directory whose lock nobody holds; the next create (of any name) removes it.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};

use crate::error::{Error, IoContext, Result};

pub mod backing;
pub mod btrfs;
pub mod digest;
pub mod select;
pub mod usage;

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
/// On btrfs, the subvolumes in it first (unlinking cannot remove a read-only one).
pub fn remove_tree(path: &Path) -> Result<()> {
    btrfs::remove_subvolumes(path)?;
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
    lock_name_tries(lxcpath, name, doing, 3)
}

/// `tries`: how often a lock whose holder turns out to be gone (it finished while we
/// looked) is tried again before the generic refusal.
fn lock_name_tries(lxcpath: &Path, name: &str, doing: &str, tries: u32) -> Result<NameLock> {
    let (f, path) = open_lock_file(lxcpath, name)?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => match same_file(&l, &path) {
            // A destroy unlinked the file between our open and our lock: lock the new one.
            None => {
                drop(l);
                lock_name_tries(lxcpath, name, doing, tries)
            }
            Some(old_len) => {
                record_holder(&l, doing, old_len);
                Ok(NameLock { _lock: l })
            }
        },
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = lock_holder(&path);
            if holder.is_empty() && tries > 0 {
                // No live holder wrote its line: it finished meanwhile. Take it now.
                return lock_name_tries(lxcpath, name, doing, tries - 1);
            }
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
/// What a finished holder wrote stays in the file until the next one overwrites it, so
/// a line whose pid is gone is an earlier holder's, not the current one's: look again.
fn lock_holder(path: &Path) -> String {
    for _ in 0..20 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let live = text
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(crate::sys::pid_alive);
        if live {
            return text.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    String::new()
}

/// The lock file `file` of the lxcpath (`.locks/FILE`), made if missing, and its path.
pub fn open_lock_file(lxcpath: &Path, file: &str) -> Result<(File, PathBuf)> {
    let dir = lxcpath.join(".locks");
    let path = dir.join(file);
    let open = || {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    };
    // `.locks` is there but for the first lock of an lxcpath: made only then.
    let f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            mkdir_p(&dir, 0o700)?;
            open()
        }
        r => r,
    }
    .ctx("open lock", &path)?;
    Ok((f, path))
}

/// Who holds the lock, for the other side's error message: "PID DOING", in one write
/// over what the last holder left, blank-padded to its length (`lock_holder` trims).
/// A truncate would free the file's block and the write allocate one again: that
/// journalling cost more than the rest of taking the lock.
fn record_holder(f: &File, doing: &str, old_len: u64) {
    use std::os::unix::fs::FileExt;
    let mut line = format!("{} {doing}\n", std::process::id()).into_bytes();
    let pad = usize::try_from(old_len)
        .unwrap_or(0)
        .saturating_sub(line.len());
    line.resize(line.len() + pad, b' ');
    let _ = f.write_all_at(&line, 0);
}

/// The length of the file `f` when `path` names it still, else None.
fn same_file(f: &File, path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev() => Some(a.len()),
        _ => None,
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
    Ok(configs_in(lxcpath)?.into_iter().map(|(n, _)| n).collect())
}

/// The directories in `dir` with a config.toml (containers in an lxcpath, snapshots in
/// `snaps`), but hidden ones (half made), sorted by name, each with its config's
/// metadata (one stat tells both that it is there and what it is). None there: none.
pub fn configs_in(dir: &Path) -> Result<Vec<(String, std::fs::Metadata)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    let mut out: Vec<(String, std::fs::Metadata)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.starts_with('.') {
                return None;
            }
            let meta = std::fs::metadata(e.path().join("config.toml")).ok()?;
            meta.is_file().then_some((name, meta))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
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

    #[test]
    fn sweep_keeps_the_lock_file_of_an_existing_container_and_skips_bad_names() {
        let d = tempfile::tempdir().unwrap();
        let lx = d.path();
        for n in [".web1.destroying", "web1", "..creating", ".-x.creating"] {
            std::fs::create_dir(lx.join(n)).unwrap();
        }
        assert_eq!(sweep_stale(lx, ""), [lx.join(".web1.destroying")]);
        // web1 still exists, so its lock file must stay for whoever locks it next.
        assert!(lx.join("web1").is_dir() && lx.join(".locks/web1").is_file());
        // Not valid names: nobody could hold their lock, so they are not ours to judge.
        assert!(lx.join("..creating").is_dir() && lx.join(".-x.creating").is_dir());
        assert!(sweep_stale(&lx.join("missing"), "").is_empty());
    }

    /// This process's umask, read without changing it (tests run in parallel threads).
    fn umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line[6..].trim(), 8).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn mkdir_p_makes_every_missing_level_with_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let leaf = d.path().join("a/b/c");
        mkdir_p(&leaf, 0o710).unwrap();
        for p in [d.path().join("a"), d.path().join("a/b"), leaf.clone()] {
            assert_eq!(mode(&p), 0o710 & !umask(), "{}", p.display());
        }
        // An existing directory is fine and keeps its mode.
        mkdir_p(&leaf, 0o777).unwrap();
        assert_eq!(mode(&leaf), 0o710 & !umask());
        std::fs::write(d.path().join("file"), "").unwrap();
        assert!(matches!(
            mkdir_p(&d.path().join("file/sub"), 0o700),
            Err(Error::Io {
                what: "create directory",
                ..
            })
        ));
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_the_file_by_rename() {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        write_atomic(&p, b"old", 0o600).unwrap();
        assert_eq!(mode(&p), 0o600 & !umask());
        let mut old = File::open(&p).unwrap();
        let old_ino = old.metadata().unwrap().ino();
        write_atomic(&p, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // A new inode renamed over the name: a reader of the old file sees it whole.
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), old_ino);
        let mut text = String::new();
        old.read_to_string(&mut text).unwrap();
        assert_eq!(text, "old");
        assert_eq!(entries(d.path()), ["config.toml"]);
    }

    #[test]
    fn write_atomic_leaves_no_temp_file_when_it_fails() {
        let d = tempfile::tempdir().unwrap();
        // The rename fails (a file cannot replace a non-empty directory) after the temp
        // file was written.
        let p = d.path().join("target");
        std::fs::create_dir_all(p.join("inside")).unwrap();
        assert!(matches!(
            write_atomic(&p, b"data", 0o644),
            Err(Error::Io {
                what: "rename into place",
                ..
            })
        ));
        assert_eq!(entries(d.path()), ["target"]);
        assert_eq!(entries(&p), ["inside"]);
        // The temp file cannot even be created.
        assert!(matches!(
            write_atomic(&d.path().join("missing/x"), b"data", 0o644),
            Err(Error::Io { what: "create", .. })
        ));
        assert_eq!(entries(d.path()), ["target"]);
    }

    #[test]
    fn remove_tree_accepts_a_missing_path_and_does_not_follow_links() {
        let d = tempfile::tempdir().unwrap();
        remove_tree(&d.path().join("missing")).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists() && outside.join("keep").is_file());
    }

    #[test]
    fn a_held_name_lock_refuses_a_second_one_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let held = lock_name(d.path(), "web1", "creating this container").unwrap();
        let lock_file = d.path().join(".locks/web1");
        let me = std::process::id();
        assert_eq!(
            std::fs::read_to_string(&lock_file).unwrap(),
            format!("{me} creating this container\n")
        );
        // flock locks belong to the open file description, so a second open in this
        // process conflicts just as another process would.
        match lock_name(d.path(), "web1", "destroying it") {
            Err(Error::Busy { name, what }) => {
                assert_eq!(name, "web1");
                assert_eq!(
                    what,
                    format!(
                        "another rlxc (pid {me}) is creating this container; \
                         try again when it is done"
                    )
                );
            }
            Err(e) => panic!("expected Busy, got {e}"),
            Ok(_) => panic!("a second lock on a held name succeeded"),
        }
        // Another name is independent; a released one can be taken again.
        let _other = lock_name(d.path(), "web2", "creating this container").unwrap();
        drop(held);
        let _again = lock_name(d.path(), "web1", "destroying it").unwrap();
        // Written over the last holder's longer line, padded: what a reader trims.
        let text = std::fs::read_to_string(&lock_file).unwrap();
        assert!(
            text.starts_with(&format!("{me} destroying it\n")),
            "{text:?}"
        );
        assert_eq!(text.len(), format!("{me} creating this container\n").len());
        assert_eq!(lock_holder(&lock_file), format!("{me} destroying it"));
    }

    #[test]
    fn a_lock_whose_file_was_unlinked_is_taken_on_a_new_file() {
        let d = tempfile::tempdir().unwrap();
        let lock_file = d.path().join(".locks/web1");
        // As destroy does: it removes the lock file while it still holds the lock.
        let old = lock_name(d.path(), "web1", "destroying it").unwrap();
        std::fs::remove_file(&lock_file).unwrap();
        let new = lock_name(d.path(), "web1", "creating this container").unwrap();
        assert!(
            same_file(&new._lock, &lock_file).is_some()
                && same_file(&old._lock, &lock_file).is_none()
        );
        // Whoever comes next contends with the live file's holder.
        drop(old);
        assert!(matches!(
            lock_name(d.path(), "web1", "starting it"),
            Err(Error::Busy { .. })
        ));
    }

    #[test]
    fn creating_is_removed_on_drop_unless_published() {
        let d = tempfile::tempdir().unwrap();
        let lx = d.path();
        // A leftover of a killed create is cleared by the next begin.
        std::fs::create_dir_all(lx.join(".web1.creating/rootfs/stale")).unwrap();
        let c = Creating::begin(lx, "web1").unwrap();
        assert_eq!(c.dir, lx.join(".web1.creating"));
        assert_eq!(entries(&c.dir), Vec::<String>::new());
        std::fs::create_dir_all(c.dir.join("rootfs/etc")).unwrap();
        drop(c);
        assert_eq!(entries(lx), Vec::<String>::new());

        let c = Creating::begin(lx, "web1").unwrap();
        std::fs::create_dir_all(c.dir.join("rootfs/etc")).unwrap();
        assert_eq!(c.publish(lx, "web1").unwrap(), lx.join("web1"));
        assert_eq!(entries(lx), ["web1"]);
        assert!(lx.join("web1/rootfs/etc").is_dir());
    }

    #[test]
    fn publish_refuses_an_existing_name_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let lx = d.path();
        std::fs::create_dir(lx.join("empty")).unwrap();
        std::fs::create_dir_all(lx.join("full/rootfs")).unwrap();
        // EEXIST for an empty directory, ENOTEMPTY for a full one: both are "exists".
        for name in ["empty", "full"] {
            let c = Creating::begin(lx, name).unwrap();
            std::fs::write(c.dir.join("config.toml"), "").unwrap();
            match c.publish(lx, name) {
                Err(Error::Exists { name: n, lxcpath }) => {
                    assert_eq!((n.as_str(), lxcpath.as_path()), (name, lx));
                }
                other => panic!(
                    "expected Exists, got {:?}",
                    other.map_err(|e| e.to_string())
                ),
            }
        }
        assert_eq!(entries(lx), ["empty", "full"]);
        assert_eq!(entries(&lx.join("empty")), Vec::<String>::new());
        assert_eq!(entries(&lx.join("full")), ["rootfs"]);
    }

    #[test]
    fn list_names_only_visible_directories_with_a_config() {
        let d = tempfile::tempdir().unwrap();
        let lx = d.path();
        assert_eq!(list(&lx.join("missing")).unwrap(), Vec::<String>::new());
        for n in ["web2", "web1", ".hidden", ".web3.creating"] {
            std::fs::create_dir(lx.join(n)).unwrap();
            std::fs::write(lx.join(n).join("config.toml"), "").unwrap();
        }
        std::fs::create_dir(lx.join("no-config")).unwrap();
        std::fs::create_dir_all(lx.join("dir-config/config.toml")).unwrap();
        std::fs::write(lx.join("plain-file"), "").unwrap();
        assert_eq!(list(lx).unwrap(), ["web1", "web2"]);
    }
}
