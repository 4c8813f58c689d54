//! Snapshots, laid out as LXC lays them out: `LXCPATH/NAME/snaps/snapN/` holds a copy of
//! the container's own files, `config.toml`, `ts` (when) and `comment`. Own files are the
//! backing store's: the whole tree of a `dir` or `btrfs` container (`rootfs/`), only the
//! upper of an overlay one (`upper/`; the lower is shared, read-only, and kept while a
//! snapshot's config names it). A snapshot is a copy of a stopped container (a subvolume
//! snapshot for btrfs, else `cp -a`, reflinks where the file system has them); restoring
//! swaps a copy of it in with one rename, so a failed or interrupted restore leaves the
//! container as it was.

use std::path::{Path, PathBuf};

use super::copy::{copy_own, CopyReport, Source};
use super::Container;
use crate::config::{Backend, ContainerConfig, Rootfs, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::store;
use crate::store::backing::BackingStore;

/// A snapshot as `rlxc-snapshot -L` lists it.
pub struct Snapshot {
    pub name: String,
    /// Seconds since the epoch, when it was taken.
    pub taken: i64,
    pub comment: String,
    pub dir: PathBuf,
    /// Its copy of the container's own files (`dir/rootfs` or `dir/upper`).
    pub tree: PathBuf,
}

/// A comment is a line or a few: kept to a size a listing can show.
pub(super) const MAX_COMMENT: usize = 4096;

/// What a snapshot of a container on `backend` calls its copy of the own files.
fn tree_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Dir | Backend::Btrfs => "rootfs",
        Backend::Overlay => "upper",
    }
}

/// A snapshot's store, as its config names it, with its own files where the snapshot
/// keeps them (`snapN/rootfs` or `snapN/upper`).
fn snapshot_store(cfg: &ContainerConfig) -> Box<dyn BackingStore> {
    store::select::open(&Rootfs {
        path: "rootfs".into(),
        upper: (cfg.rootfs.backend == Backend::Overlay).then(|| "upper".into()),
        ..cfg.rootfs.clone()
    })
}

impl Container {
    pub(super) fn snaps_dir(&self) -> PathBuf {
        self.dir().join("snaps")
    }

    /// Snapshot this container (a running one frozen for the copy); its name (`snap0`, …).
    pub fn snapshot(&self, comment: Option<&str>) -> Result<String> {
        let cfg = self.config()?;
        if comment.is_some_and(|c| c.len() > MAX_COMMENT) {
            return Err(Error::Usage(format!(
                "a snapshot comment holds at most {MAX_COMMENT} bytes"
            )));
        }
        let (_lock, live) = self.lock_quiesced("snapshotting this container", "a snapshot")?;
        if live.is_some() && cfg.rootfs.tmpfs {
            return Err(Error::Busy {
                name: self.name.clone(),
                what: "its writes are in a tmpfs while it runs, which a snapshot of its files \
                       would miss; snapshot what it was made of before it starts, or copy \
                       out what it made (rlxc-file pull)"
                    .into(),
            });
        }
        let _cleanup = crate::sys::CleanupGuard::hold();
        let snaps = self.snaps_dir();
        store::mkdir_p(&snaps, 0o700)?;
        let name = next_name(&self.snapshots()?);
        let building = snaps.join(format!(".{name}.creating"));
        store::remove_tree(&building)?;
        let guard = RemoveOnDrop(building.clone());
        std::fs::create_dir(&building).ctx("create", &building)?;
        let from = self.backing(&cfg);
        let copy = building.join(tree_name(from.kind()));
        copy_own(&*from, &self.dir(), from.kind(), &copy)?;
        cfg.save(&building.join("config.toml"))?;
        let ts = crate::image::cache::now().to_string();
        let comment = super::freeze::noted(comment.unwrap_or(""), live.is_some());
        write_meta(&building, &ts, &comment)?;
        store::rename_noreplace(&building, &snaps.join(&name))
            .ctx("rename into place", snaps.join(&name))?;
        std::mem::forget(guard);
        Ok(name)
    }

    /// The snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        self.must_exist()?;
        let Ok(rd) = std::fs::read_dir(self.snaps_dir()) else {
            return Ok(Vec::new());
        };
        let mut v: Vec<Snapshot> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                if name.starts_with('.') {
                    return None;
                }
                let tree = [Backend::Dir, Backend::Overlay]
                    .iter()
                    .map(|b| e.path().join(tree_name(*b)))
                    .find(|t| t.is_dir())?;
                Some(read_snapshot(name, e.path(), tree))
            })
            .collect();
        v.sort_by_key(|s| (s.taken, s.name.clone()));
        Ok(v)
    }

    fn find_snapshot(&self, snap: &str) -> Result<Snapshot> {
        let mut all = self.snapshots()?;
        match all.iter().position(|s| s.name == snap) {
            Some(i) => Ok(all.swap_remove(i)),
            None => {
                let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                Err(Error::Usage(format!(
                    "{} has no snapshot {snap:?}; it has: {}",
                    self.name,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )))
            }
        }
    }

    /// Put the container back as snapshot `snap` was (it must be stopped). An overlay
    /// container gets the snapshot's upper back on the same lower.
    pub fn restore(&self, snap: &str) -> Result<()> {
        let s = self.find_snapshot(snap)?;
        let _lock = self.lock_stopped("restoring this container", "a restore")?;
        let _cleanup = crate::sys::CleanupGuard::hold();
        let cfg = ContainerConfig::load(&s.dir.join("config.toml"))?;
        let store = self.backing(&self.config()?);
        if cfg.rootfs.backend != store.kind()
            || s.tree.file_name() != Some(tree_name(store.kind()).as_ref())
        {
            return Err(Error::Usage(format!(
                "snapshot {snap} of {} was taken on another backing store than the one \
                 it is on now; make a new container of it instead: rlxc-snapshot -n {} -r \
                 {snap} -N NEWNAME",
                self.name, self.name
            )));
        }
        let current = store.own_files(&self.dir());
        let incoming = self
            .dir()
            .join(format!(".{}.restoring", tree_name(store.kind())));
        store::remove_tree(&incoming)?;
        let guard = RemoveOnDrop(incoming.clone());
        let from = snapshot_store(&cfg);
        copy_own(&*from, &s.dir, from.kind(), &incoming)?;
        // The swap is the one step that changes the container: after it, the old tree
        // sits where the new one was built and goes with the guard.
        store::exchange(&incoming, &current)?;
        cfg.save(&self.config_path())?;
        self.backing(&cfg).after_restore(&self.dir())?;
        drop(guard);
        Ok(())
    }

    /// A new container `new` made from snapshot `snap`, with its own identity: on the
    /// same backing store (an overlay snapshot's upper on the same lower).
    pub fn restore_as(&self, sys: &SystemConfig, snap: &str, new: &str) -> Result<CopyReport> {
        let s = self.find_snapshot(snap)?;
        let cfg = ContainerConfig::load(&s.dir.join("config.toml"))?;
        let _lock = store::lock_name(
            &self.lxcpath,
            &self.name,
            "making a container of a snapshot",
        )?;
        let from = snapshot_store(&cfg);
        let own = Source::Own {
            store: &*from,
            dir: &s.dir,
        };
        self.new_from(sys, own, cfg, new, None)
    }

    /// Remove snapshot `snap` (renamed aside first, so a removal cut short leaves no
    /// half snapshot under its name).
    pub fn destroy_snapshot(&self, snap: &str) -> Result<()> {
        let s = self.find_snapshot(snap)?;
        let _lock = store::lock_name(&self.lxcpath, &self.name, "removing a snapshot")?;
        let _cleanup = crate::sys::CleanupGuard::hold();
        let doomed = self.snaps_dir().join(format!(".{}.destroying", s.name));
        store::remove_tree(&doomed)?;
        std::fs::rename(&s.dir, &doomed).ctx("rename", &s.dir)?;
        store::remove_tree(&doomed)
    }
}

/// A snapshot's `ts` and `comment`, in the directory being built.
pub(super) fn write_meta(dir: &Path, ts: &str, comment: &str) -> Result<()> {
    crate::config::write_atomic(&dir.join("ts"), ts.as_bytes(), 0o644)?;
    crate::config::write_atomic(&dir.join("comment"), comment.as_bytes(), 0o644)
}

fn read_snapshot(name: String, dir: PathBuf, tree: PathBuf) -> Snapshot {
    let small = |f: &str| {
        crate::config::read_text(&dir.join(f))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    };
    Snapshot {
        taken: small("ts").parse().unwrap_or(0),
        comment: small("comment"),
        name,
        dir,
        tree,
    }
}

/// LXC's next free `snapN`.
fn next_name(existing: &[Snapshot]) -> String {
    let n = existing
        .iter()
        .filter_map(|s| s.name.strip_prefix("snap")?.parse::<u64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    format!("snap{n}")
}

/// A directory removed when this goes out of scope (unless forgotten).
pub(super) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = store::remove_tree(Path::new(&self.0));
    }
}
