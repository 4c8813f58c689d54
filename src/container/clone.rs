//! Copy-on-write clones (`rlxc-copy -s`, and `-e` for ephemeral ones): the source's
//! tree is frozen as a read-only overlay layer that both containers stack their own
//! upper on, so a clone is made in milliseconds and neither container sees the other's
//! later writes.
//!
//! LXC instead makes the source's live rootfs the clone's lower, so the source must
//! never change again (overlayfs leaves changes to a lower undefined) and nothing says
//! so. Freezing costs one config write on the source and no copying: a `dir` source
//! keeps its files where they are as its new lower and gets an empty upper (its merged
//! tree is mounted on `merged/`); an `overlay` source's upper joins its frozen layers
//! and a new upper takes its writes. The frozen layers live in the source's directory,
//! so the source cannot be destroyed while a clone is layered on it (`dependants`).

use std::path::{Path, PathBuf};

use super::copy::{CopyReport, NewContainer};
use super::Container;
use crate::config::{Backend, ContainerConfig, Rootfs, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::{name, store};

impl Container {
    /// A copy-on-write clone of this (stopped) container, whose config is `src_cfg`,
    /// named `new`; `ephemeral`: its writes go to a tmpfs at each start and it is
    /// destroyed when it stops.
    pub fn clone_to(
        &self,
        sys: &SystemConfig,
        mut src_cfg: ContainerConfig,
        new: &str,
        ephemeral: bool,
    ) -> Result<CopyReport> {
        name::validate(new)?;
        let _src_lock = self.lock_stopped("cloning this container", "a clone")?;
        if !store::backing::overlay_available() {
            return Err(Error::Other(
                "this kernel has no overlayfs (modprobe overlay), which clones need; \
                 make a full copy instead (rlxc-copy without -s or -e)"
                    .into(),
            ));
        }
        let here = std::fs::canonicalize(self.dir()).ctx("resolve", self.dir())?;
        let (frozen, src_rootfs) = freeze_plan(&src_cfg.rootfs, &here)?;

        let mut made = NewContainer::begin(sys, new, src_cfg.idmap.as_ref())?;
        let (dst, staging) = (&made.c, made.creating.dir.clone());
        // The source's new upper, work directory and mount point, made before anything
        // names them; its config switches to them in one atomic write below. A source
        // that stays as it is has them.
        let refrozen = src_rootfs != src_cfg.rootfs;
        if refrozen {
            self.backing_of(&src_rootfs).create(&self.dir())?;
        }
        let old_host = src_cfg.host_name(&self.name);
        let mut cfg = src_cfg.clone();
        cfg.rootfs = Rootfs {
            tmpfs: ephemeral,
            ..frozen
        };
        cfg.ephemeral = ephemeral;
        let mut cfg = dst.as_new(cfg, &self.name)?;
        cfg.autostart = Default::default();
        let backing = dst.backing(&cfg);
        backing.create(&staging)?;
        // Its own ids: the layers it shares stay root's on disk (the runtime maps them).
        let removed = made.make_own_and_save(sys, &mut cfg, &*backing, &old_host)?;

        // The source's commit point: from here its old upper (if any) is frozen.
        if refrozen {
            let old = std::mem::replace(&mut src_cfg.rootfs, src_rootfs);
            src_cfg.save(&self.config_path())?;
            if old.backend == Backend::Overlay && old.work_dir() != src_cfg.rootfs.work_dir() {
                // The old upper's work directory belongs to no layer now.
                let _ = store::remove_tree(&self.dir().join(old.work_dir()));
            }
        }
        let dir = made.publish()?;
        Ok(CopyReport {
            rootfs: backing.describe(&dir),
            removed,
        })
    }

    fn backing_of(&self, r: &Rootfs) -> Box<dyn store::backing::BackingStore> {
        store::select::open(r)
    }

    /// The containers (and snapshots of containers) in this lxcpath whose overlay
    /// stacks a layer inside this container's directory, by name.
    pub(crate) fn dependants(&self) -> Result<Vec<String>> {
        let Ok(here) = std::fs::canonicalize(self.dir()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for other in store::list(&self.lxcpath)? {
            if other == self.name {
                continue;
            }
            let dir = store::container_dir(&self.lxcpath, &other);
            let mut configs = vec![(other.clone(), dir.join("config.toml"))];
            if let Ok(rd) = std::fs::read_dir(dir.join("snaps")) {
                for e in rd.flatten() {
                    let snap = e.file_name().to_string_lossy().into_owned();
                    configs.push((
                        format!("{other} (snapshot {snap})"),
                        e.path().join("config.toml"),
                    ));
                }
            }
            for (who, file) in configs {
                if uses(&file, &here) {
                    out.push(who);
                }
            }
        }
        Ok(out)
    }
}

/// Whether the config `file` stacks a layer from under `dir`. A config that does not
/// load but mentions `dir` counts: better a refused destroy than a broken clone.
fn uses(file: &Path, dir: &Path) -> bool {
    match ContainerConfig::load(file) {
        Ok(cfg) => cfg
            .rootfs
            .read_only_layers()
            .iter()
            .any(|l| l.starts_with(dir)),
        Err(_) => {
            crate::config::read_text(file).is_ok_and(|t| t.contains(dir.to_string_lossy().as_ref()))
        }
    }
}

/// What the clone stacks on (its rootfs, still without its own upper's names), and the
/// source's rootfs once its current tree is frozen, for a source in directory `here`.
fn freeze_plan(src: &Rootfs, here: &Path) -> Result<(Rootfs, Rootfs)> {
    match src.backend {
        Backend::Dir => {
            let tree = here.join(&src.path);
            let frozen = Rootfs::overlay(tree);
            let source = Rootfs {
                path: fresh(here, "merged"),
                upper: Some(fresh(here, "upper")),
                work: Some(fresh(here, "work")),
                ..frozen.clone()
            };
            Ok((frozen, source))
        }
        Backend::Overlay if is_empty_dir(&here.join(src.upper_dir())) => {
            // Nothing written since the last freeze: the clone shares the source's stack
            // as it is, and the source stays as it is (no empty layer for each clone).
            let frozen = Rootfs {
                path: "rootfs".into(),
                upper: Some("upper".into()),
                work: Some("work".into()),
                tmpfs: false,
                ..src.clone()
            };
            Ok((frozen, src.clone()))
        }
        Backend::Overlay => {
            let mut layers = vec![here.join(src.upper_dir())];
            layers.extend(src.layers.iter().cloned());
            let frozen = Rootfs {
                layers,
                path: "rootfs".into(),
                upper: Some("upper".into()),
                work: Some("work".into()),
                tmpfs: false,
                ..src.clone()
            };
            let source = Rootfs {
                upper: Some(fresh(here, "upper")),
                work: Some(fresh(here, "work")),
                path: src.path.clone(),
                tmpfs: src.tmpfs,
                ..frozen.clone()
            };
            Ok((frozen, source))
        }
        other => Err(Error::Usage(format!(
            "a clone (-s, -e) of a container on the {other:?} backing store is not \
             supported; make a full copy (rlxc-copy without -s)"
        ))),
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// `base`, or `base.N` for the first N that names nothing in `dir` (a frozen upper
/// keeps its name; a crash may have left an empty one of a clone that never was).
fn fresh(dir: &Path, base: &str) -> PathBuf {
    let taken = |n: &str| dir.join(n).symlink_metadata().is_ok();
    if !taken(base) {
        return base.into();
    }
    (1u32..)
        .map(|i| format!("{base}.{i}"))
        .find(|n| !taken(n))
        .map(PathBuf::from)
        .unwrap_or_else(|| base.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_source_keeps_its_tree_as_the_shared_lower() {
        let t = tempfile::tempdir().unwrap();
        let here = t.path();
        std::fs::create_dir(here.join("rootfs")).unwrap();
        let (clone, source) = freeze_plan(&Rootfs::default(), here).unwrap();
        assert_eq!(clone.lower.as_deref(), Some(here.join("rootfs").as_path()));
        assert_eq!(source.read_only_layers(), [here.join("rootfs")]);
        assert_eq!(source.path, Path::new("merged"));
        assert_eq!(source.upper_dir(), Path::new("upper"));
        assert!(source.check().is_ok() && clone.check().is_ok());
    }

    #[test]
    fn an_overlay_source_freezes_its_upper_and_takes_a_new_one() {
        let t = tempfile::tempdir().unwrap();
        let here = t.path();
        for d in ["rootfs", "upper", "work"] {
            std::fs::create_dir(here.join(d)).unwrap();
        }
        std::fs::write(here.join("upper/written"), "").unwrap();
        let mut src = Rootfs::overlay("/cache/lowers/b1".into());
        src.layers = vec!["/lxc/origin/upper".into()];
        let (clone, source) = freeze_plan(&src, here).unwrap();
        let stack = [
            here.join("upper"),
            "/lxc/origin/upper".into(),
            "/cache/lowers/b1".into(),
        ];
        assert_eq!(clone.read_only_layers(), stack);
        assert_eq!(source.read_only_layers(), stack);
        assert_eq!(source.upper_dir(), Path::new("upper.1"));
        assert_eq!(source.work_dir(), Path::new("work.1"));
        assert_eq!(source.path, Path::new("rootfs"));
        assert_eq!(clone.upper_dir(), Path::new("upper"));

        // Cloned again with nothing written since: no new layer, the source unchanged.
        std::fs::create_dir(here.join("upper.1")).unwrap();
        let (again, unchanged) = freeze_plan(&source, here).unwrap();
        assert_eq!(unchanged, source);
        assert_eq!(again.read_only_layers(), stack);
        assert_eq!(again.upper_dir(), Path::new("upper"));
    }
}
