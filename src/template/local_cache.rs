//! `-t local`'s cache: an fstree archive decompressed once and kept, so the next create
//! from the same file unpacks at once (LXC's `lxc-local` decompresses it every time).
//! Entries are keyed by the archive's SHA-256 and laid out as template caches are, so
//! `rlxc-image` lists, removes and prunes them: `CACHEPATH/template/local/KEY/`
//! (`rootfs.tar`, `image.conf`, `last_used`), `.KEY.lock` (shared while a create reads
//! the entry, exclusive to commit or remove it), `.KEY.staging.PID` while one is built.
//! An entry is committed only after a create from it succeeded, so a refused archive
//! leaves nothing.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::image::cache::{lock_file, touch_last_used};
use crate::store;

/// The decompressed tree in an entry or a staging directory.
pub const ROOTFS_TAR: &str = "rootfs.tar";

pub struct LocalCache {
    dir: PathBuf,
}

/// A committed entry, held under its shared lock while a create reads it.
pub struct Held {
    pub dir: PathBuf,
    _lock: Flock<File>,
}

/// A staging directory: removed on drop unless committed.
pub struct Staging {
    pub dir: PathBuf,
    key: String,
    done: bool,
}

impl LocalCache {
    pub fn new(cachepath: &Path) -> Self {
        LocalCache {
            dir: cachepath.join("template").join("local"),
        }
    }

    fn lock(&self, key: &str, arg: FlockArg) -> Result<Flock<File>> {
        lock_file(&self.dir.join(format!(".{key}.lock")), arg)
    }

    /// The entry for `key`, locked for reading, if one is committed.
    pub fn get(&self, key: &str) -> Result<Option<Held>> {
        if !self.dir.join(key).is_dir() {
            return Ok(None);
        }
        let lock = self.lock(key, FlockArg::LockShared)?;
        let dir = self.dir.join(key);
        if !dir.join("image.conf").is_file() || !dir.join(ROOTFS_TAR).is_file() {
            return Ok(None);
        }
        touch_last_used(&dir);
        Ok(Some(Held { dir, _lock: lock }))
    }

    /// A fresh staging directory for `key`.
    pub fn stage(&self, key: &str) -> Result<Staging> {
        store::mkdir_p(&self.dir, 0o700)?;
        let dir = self
            .dir
            .join(format!(".{key}.staging.{}", std::process::id()));
        store::remove_tree(&dir)?;
        std::fs::create_dir(&dir).ctx("create", &dir)?;
        Ok(Staging {
            dir,
            key: key.to_string(),
            done: false,
        })
    }

    /// Make `staging` the entry for its key, described by `label`. Another create may
    /// have committed the same archive meanwhile: then that entry stays and ours goes.
    pub fn commit(&self, mut staging: Staging, label: &Label) -> Result<()> {
        let clean = |v: &str| v.replace(['\n', '='], "_");
        let conf = format!(
            "dist={}\nrelease={}\narch={}\nvariant={}\nbuild={}\nsource={}\n",
            clean(&label.dist),
            clean(&label.release),
            clean(&label.arch),
            staging.key,
            crate::image::cache::now(),
            label.source.replace('\n', "_"),
        );
        crate::config::write_atomic(&staging.dir.join("image.conf"), conf.as_bytes(), 0o644)?;
        touch_last_used(&staging.dir);
        let _lock = self.lock(&staging.key, FlockArg::LockExclusive)?;
        let entry = self.dir.join(&staging.key);
        if entry.exists() {
            return Ok(());
        }
        std::fs::rename(&staging.dir, &entry).ctx("rename into place", &entry)?;
        staging.done = true;
        Ok(())
    }
}

/// What an entry says it holds, as `rlxc-image ls` shows it.
pub struct Label {
    pub dist: String,
    pub release: String,
    pub arch: String,
    /// Where the archive came from.
    pub source: String,
}

impl Label {
    /// An archive named on the command line: `local`, its file name and path.
    pub fn of_file(fstree: &Path) -> Self {
        Label {
            dist: "local".into(),
            release: fstree
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: "-".into(),
            source: format!("local {}", fstree.display()),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = store::remove_tree(&self.dir);
        }
    }
}

/// The hex SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = crate::image::decompress::open_plain(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if crate::sys::interrupted() {
            return Err(Error::Interrupted);
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}
