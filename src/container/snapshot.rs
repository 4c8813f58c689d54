//! Snapshots, laid out as LXC lays them out: `LXCPATH/NAME/snaps/snapN/` holds the
//! rootfs, `config.toml`, `ts` (when) and `comment`. A snapshot is a full copy of a
//! stopped container (a subvolume snapshot for btrfs, else `cp -a`, reflinks where the
//! file system has them); restoring swaps a copy of it in with one rename, so a failed
//! or interrupted restore leaves the container as it was.

use std::path::{Path, PathBuf};

use super::copy::{copy_rootfs, CopyReport};
use super::Container;
use crate::config::{ContainerConfig, Rootfs, SystemConfig};
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
}

/// A comment is a line or a few: kept to a size a listing can show.
const MAX_COMMENT: usize = 4096;

impl Container {
    fn snaps_dir(&self) -> PathBuf {
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
        let _cleanup = crate::sys::CleanupGuard::hold();
        let snaps = self.snaps_dir();
        store::mkdir_p(&snaps, 0o700)?;
        let name = next_name(&self.snapshots()?);
        let building = snaps.join(format!(".{name}.creating"));
        store::remove_tree(&building)?;
        let guard = RemoveOnDrop(building.clone());
        std::fs::create_dir(&building).ctx("create", &building)?;
        // Refuses a store whose tree is not a directory on disk.
        self.rootfs(&cfg)?;
        let from = self.backing(&cfg);
        copy_rootfs(&*from, &self.dir(), from.kind(), &building.join("rootfs"))?;
        cfg.save(&building.join("config.toml"))?;
        let ts = crate::image::cache::now().to_string();
        crate::config::write_atomic(&building.join("ts"), ts.as_bytes(), 0o644)?;
        let comment = super::freeze::noted(comment.unwrap_or(""), live.is_some());
        crate::config::write_atomic(&building.join("comment"), comment.as_bytes(), 0o644)?;
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
                (!name.starts_with('.') && e.path().join("rootfs").is_dir())
                    .then(|| read_snapshot(name, e.path()))
            })
            .collect();
        v.sort_by_key(|s| (s.taken, s.name.clone()));
        Ok(v)
    }

    fn find_snapshot(&self, snap: &str) -> Result<Snapshot> {
        let all = self.snapshots()?;
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        let wanted = all.iter().find(|s| s.name == snap);
        match wanted {
            Some(s) => Ok(read_snapshot(s.name.clone(), s.dir.clone())),
            None => Err(Error::Usage(format!(
                "{} has no snapshot {snap:?}; it has: {}",
                self.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))),
        }
    }

    /// Put the container back as snapshot `snap` was (it must be stopped).
    pub fn restore(&self, snap: &str) -> Result<()> {
        let s = self.find_snapshot(snap)?;
        let _lock = self.lock_stopped("restoring this container", "a restore")?;
        let _cleanup = crate::sys::CleanupGuard::hold();
        let cfg = ContainerConfig::load(&s.dir.join("config.toml"))?;
        let current = self.rootfs(&self.config()?)?;
        let incoming = self.dir().join(".rootfs.restoring");
        store::remove_tree(&incoming)?;
        let guard = RemoveOnDrop(incoming.clone());
        let from = snapshot_store(&cfg);
        copy_rootfs(&*from, &s.dir, from.kind(), &incoming)?;
        // The swap is the one step that changes the container: after it, the old tree
        // sits where the new one was built and goes with the guard.
        store::exchange(&incoming, &current)?;
        cfg.save(&self.config_path())?;
        drop(guard);
        Ok(())
    }

    /// A new container `new` made from snapshot `snap`, with its own identity.
    pub fn restore_as(&self, sys: &SystemConfig, snap: &str, new: &str) -> Result<CopyReport> {
        let s = self.find_snapshot(snap)?;
        let cfg = ContainerConfig::load(&s.dir.join("config.toml"))?;
        let _lock = store::lock_name(
            &self.lxcpath,
            &self.name,
            "making a container of a snapshot",
        )?;
        let from = snapshot_store(&cfg);
        self.new_from(sys, &*from, &s.dir, cfg, new, None)
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

/// A snapshot's tree as its config's backing store has it, at `snapN/rootfs` where LXC
/// lays it out.
fn snapshot_store(cfg: &ContainerConfig) -> Box<dyn BackingStore> {
    store::backing::open(&Rootfs {
        path: "rootfs".into(),
        ..cfg.rootfs.clone()
    })
}

fn read_snapshot(name: String, dir: PathBuf) -> Snapshot {
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
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = store::remove_tree(Path::new(&self.0));
    }
}
