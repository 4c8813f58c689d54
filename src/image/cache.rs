//! The image cache: `CACHEPATH/download/DIST/REL/ARCH/VARIANT/` holding the verified,
//! decompressed `rootfs.tar`, the meta files, `build_id` and `server`.
//!
//! An entry is assembled in a hidden staging directory and swapped in with one rename
//! under an exclusive lock, after everything was downloaded and verified. Readers hold a
//! shared lock while they unpack. So an interrupted or corrupt download never replaces or
//! poisons a good entry, and a flush never pulls a cache out from under a create.
//! Each use touches the entry's `last_used`, which `rlxc-image ls` reports.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};
use crate::image::meta::Meta;
use crate::store;
use crate::sys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
}

impl Key {
    /// `d/r/a/v` under the cache root. Fields were checked by the index parser or the
    /// CLI to be plain names, and are checked again here.
    pub fn rel(&self) -> Result<PathBuf> {
        let mut p = PathBuf::from("download");
        for f in [&self.dist, &self.release, &self.arch, &self.variant] {
            if f.is_empty() || f.contains('/') || f == "." || f == ".." || f.starts_with('.') {
                return Err(Error::Usage(format!("invalid image name component {f:?}")));
            }
            p.push(f);
        }
        Ok(p)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} ({})",
            self.dist, self.release, self.arch, self.variant
        )
    }
}

/// The file in an entry directory whose mtime says when a create last used the entry
/// (download entries, and the templates' cache under `CACHEPATH/template/`).
pub const LAST_USED: &str = "last_used";

/// Take `arg` (shared or exclusive) on the lock file `path`, made if missing: how every
/// cache entry is guarded (readers share it, commit and removal hold it alone).
pub fn lock_file(path: &Path, arg: FlockArg) -> Result<Flock<File>> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx("open lock", path)?;
    Flock::lock(f, arg).map_err(|(_, e)| Error::io("lock", path, e.into()))
}

/// Mark `entry_dir` as used now. Best effort: a create must not fail because this
/// stamp could not be written (a read-only cache, say).
pub fn touch_last_used(entry_dir: &Path) {
    let path = entry_dir.join(LAST_USED);
    if let Ok(f) = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Remove an entry directory (of either cache), its exclusive lock held by the caller:
/// renamed to a hidden `.NAME.removing.PID` beside it first, so a crash mid-delete
/// leaves something every sweep removes, never a half entry that looks valid. False
/// when there was no entry.
pub fn remove_entry_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let doomed = dir.with_file_name(format!(".{name}.{REMOVING_TAG}.{}", std::process::id()));
    let _cleanup = sys::CleanupGuard::hold();
    if doomed.exists() {
        store::remove_tree(&doomed)?;
    }
    std::fs::rename(dir, &doomed).ctx("move aside the cached image", dir)?;
    store::remove_tree(&doomed)?;
    Ok(true)
}

/// A cache entry held under a shared lock.
pub struct Entry {
    pub dir: PathBuf,
    pub build: String,
    pub server: String,
    pub meta: Meta,
    _lock: Flock<File>,
}

impl Entry {
    pub fn rootfs_tar(&self) -> PathBuf {
        self.dir.join("rootfs.tar")
    }

    pub fn is_fresh(&self) -> bool {
        self.meta.expiry.is_none_or(|t| t > now())
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The pid in a work file's or directory's name `.NAME.TAG.PID`, for one of `tags`:
/// what a process leaves beside cache entries while it works on them.
pub fn work_name_pid(name: &str, tags: &[&str]) -> Option<i32> {
    let rest = name.strip_prefix('.')?;
    let (head, pid) = rest.rsplit_once('.')?;
    let (entry, tag) = head.rsplit_once('.')?;
    (!entry.is_empty() && tags.contains(&tag))
        .then(|| pid.parse().ok())
        .flatten()
        .filter(|&p: &i32| p > 0)
}

/// `.VARIANT.partial.PID`: a download being assembled.
pub const STAGING_TAG: &str = "partial";
/// `.VARIANT.removing.PID`: an entry renamed away by `rlxc-image rm`, being deleted.
pub const REMOVING_TAG: &str = "removing";

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(cachepath: &Path) -> Self {
        Cache {
            root: cachepath.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, key: &Key) -> Result<PathBuf> {
        Ok(self.root.join(key.rel()?))
    }

    fn lock(&self, key: &Key, arg: FlockArg) -> Result<Flock<File>> {
        let dir = self.dir(key)?;
        let parent = dir.parent().unwrap_or(&self.root).to_path_buf();
        store::mkdir_p(&parent, 0o755)?;
        lock_file(&parent.join(format!(".{}.lock", key.variant)), arg)
    }

    /// The entry for `key` under a shared lock, if one is committed.
    pub fn get(&self, key: &Key) -> Result<Option<Entry>> {
        let lock = self.lock(key, FlockArg::LockShared)?;
        let dir = self.dir(key)?;
        let build = match std::fs::read_to_string(dir.join("build_id")) {
            Ok(b) => b.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", dir.join("build_id"), e)),
        };
        let server = std::fs::read_to_string(dir.join("server"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let meta = Meta::load(&dir.join("meta"))?;
        // Every get is a create about to use (or fall back to) this entry.
        touch_last_used(&dir);
        Ok(Some(Entry {
            dir,
            build,
            server,
            meta,
            _lock: lock,
        }))
    }

    /// Remove the entry for `key`. True if there was one.
    pub fn flush(&self, key: &Key) -> Result<bool> {
        let _lock = self.lock(key, FlockArg::LockExclusive)?;
        remove_entry_dir(&self.dir(key)?)
    }

    /// A fresh staging directory for `key`; removed on drop unless committed.
    pub fn stage(&self, key: &Key) -> Result<Staging> {
        let dir = self.dir(key)?;
        let parent = dir.parent().unwrap_or(&self.root).to_path_buf();
        store::mkdir_p(&parent, 0o755)?;
        self.sweep(&parent, &key.variant);
        let path = parent.join(format!(
            ".{}.{STAGING_TAG}.{}",
            key.variant,
            std::process::id()
        ));
        if path.exists() {
            store::remove_tree(&path)?;
        }
        std::fs::create_dir(&path).ctx("create", &path)?;
        std::fs::create_dir(path.join("meta")).ctx("create", path.join("meta"))?;
        Ok(Staging {
            path,
            committed: false,
        })
    }

    /// Staging directories of processes that died (SIGKILL, power loss) are garbage,
    /// and so are entries an `rlxc-image rm` renamed away and did not finish deleting.
    fn sweep(&self, parent: &Path, variant: &str) {
        let prefixes = [
            format!(".{variant}.{STAGING_TAG}."),
            format!(".{variant}.{REMOVING_TAG}."),
        ];
        let Ok(rd) = std::fs::read_dir(parent) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = prefixes
                .iter()
                .find_map(|p| name.strip_prefix(p.as_str()))
                .and_then(|p| p.parse::<i32>().ok())
            {
                if !sys::pid_alive(pid) {
                    let _ = store::remove_tree(&e.path());
                }
            }
        }
    }

    /// Swap a verified staging directory in as the entry for `key`.
    pub fn commit(&self, key: &Key, mut staging: Staging, build: &str, server: &str) -> Result<()> {
        std::fs::write(staging.path.join("server"), format!("{server}\n"))
            .ctx("write", staging.path.join("server"))?;
        // build_id last: its presence marks a complete entry.
        store::write_atomic(
            &staging.path.join("build_id"),
            format!("{build}\n").as_bytes(),
            0o644,
        )?;
        let _lock = self.lock(key, FlockArg::LockExclusive)?;
        let dir = self.dir(key)?;
        if dir.exists() {
            store::exchange(&staging.path, &dir)?;
            // staging.path now holds the old entry; Drop removes it.
        } else {
            std::fs::rename(&staging.path, &dir).ctx("rename into place", &dir)?;
            staging.committed = true;
        }
        Ok(())
    }
}

pub struct Staging {
    pub path: PathBuf,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = store::remove_tree(&self.path);
        }
    }
}
