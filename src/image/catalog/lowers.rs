//! The overlay lowers made from a download entry (`CACHEPATH/lowers/download/D/R/A/V/`,
//! one per build; see `image::lower`) go with the entry, and an entry whose lowers a
//! container is layered on stays: its users are the containers in lxcpath whose
//! config names a lower there. The caller holds the entry's exclusive lock, so no create
//! is between making a lower and publishing its container.

use std::path::{Path, PathBuf};

use super::{CachedImage, Kind};
use crate::config::ContainerConfig;
use crate::error::Result;
use crate::image::cache;
use crate::image::lower::LOWERS;
use crate::store;

/// Where `img`'s lowers live; None for entries that make none (templates' trees).
pub fn dir_of(cachepath: &Path, img: &CachedImage) -> Option<PathBuf> {
    if img.kind != Kind::Download {
        return None;
    }
    let rel = img.path.strip_prefix(cachepath).ok()?;
    Some(cachepath.join(LOWERS).join(rel))
}

/// The containers in `lxcpath` layered on a lower under `lowers`, sorted; one whose
/// snapshots alone are (a restore would layer it there again) as `NAME (snapshot S, …)`.
pub fn users(lxcpath: &Path, lowers: &Path) -> Result<Vec<String>> {
    Layering::new(lxcpath).users(lowers)
}

/// What the configs of the containers in lxcpath and of their snapshots layer on,
/// for callers asking about many lowers: read at the first question, then kept. Make
/// one under the lock that keeps creates from layering new containers meanwhile.
pub struct Layering<'a> {
    lxcpath: &'a Path,
    /// Containers in `store::list` order.
    read: Option<Vec<Layered>>,
}

/// One container: what its config and those of its snapshots (sorted) layer on.
struct Layered {
    name: String,
    own: Layer,
    snaps: Vec<(String, Layer)>,
}

/// What one config file layers its tree on.
enum Layer {
    /// Its lower, if any.
    Lower(Option<PathBuf>),
    /// A config that does not load cannot be started either, but it may be fixed:
    /// its text, so that lowers it mentions at all are kept.
    Unloadable(String),
}

impl Layer {
    fn read(file: &Path) -> Layer {
        match ContainerConfig::load(file) {
            Ok(cfg) => Layer::Lower(cfg.rootfs.lower),
            Err(_) => Layer::Unloadable(std::fs::read_to_string(file).unwrap_or_default()),
        }
    }

    /// Whether it layers a tree on a lower under `lowers`.
    fn uses(&self, lowers: &Path) -> bool {
        match self {
            Layer::Lower(l) => l.as_ref().is_some_and(|l| l.starts_with(lowers)),
            Layer::Unloadable(text) => text.contains(lowers.to_string_lossy().as_ref()),
        }
    }
}

impl<'a> Layering<'a> {
    pub fn new(lxcpath: &'a Path) -> Layering<'a> {
        Layering {
            lxcpath,
            read: None,
        }
    }

    /// See [`users`].
    pub fn users(&mut self, lowers: &Path) -> Result<Vec<String>> {
        let containers = match self.read.take() {
            Some(c) => c,
            None => read_containers(self.lxcpath)?,
        };
        let mut out = Vec::new();
        for Layered { name, own, snaps } in self.read.insert(containers).iter() {
            if own.uses(lowers) {
                out.push(name.clone());
                continue;
            }
            let snaps: Vec<&str> = snaps
                .iter()
                .filter(|(_, l)| l.uses(lowers))
                .map(|(s, _)| s.as_str())
                .collect();
            if !snaps.is_empty() {
                out.push(format!("{name} (snapshot {})", snaps.join(", ")));
            }
        }
        Ok(out)
    }
}

fn read_containers(lxcpath: &Path) -> Result<Vec<Layered>> {
    let mut containers = Vec::new();
    for name in store::list(lxcpath)? {
        let dir = store::container_dir(lxcpath, &name);
        let own = Layer::read(&dir.join("config.toml"));
        let mut snaps: Vec<(String, Layer)> = std::fs::read_dir(dir.join("snaps"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            // Hidden: a snapshot being taken under the container's lock, or removed.
            .filter(|s| !s.starts_with('.'))
            .map(|s| {
                let layer = Layer::read(&dir.join("snaps").join(&s).join("config.toml"));
                (s, layer)
            })
            .collect();
        snaps.sort_by(|a, b| a.0.cmp(&b.0));
        containers.push(Layered { name, own, snaps });
    }
    Ok(containers)
}

/// Remove the lowers of an entry nobody uses (renamed aside first, as entries are).
pub fn remove(lowers: &Path) -> Result<()> {
    cache::remove_entry_dir(lowers).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rootfs;
    use crate::image::catalog::scan::fixtures;

    fn container(lxcpath: &Path, name: &str, rootfs: Rootfs) {
        let cfg = ContainerConfig {
            rootfs,
            ..ContainerConfig::default()
        };
        let dir = lxcpath.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        cfg.save(&dir.join("config.toml")).unwrap();
    }

    #[test]
    fn users_are_the_containers_on_a_lower_of_the_entry() {
        let t = tempfile::tempdir().unwrap();
        let (cache, lx) = (t.path().join("cache"), t.path().join("lxc"));
        let deb = fixtures::download(&cache, "debian", "bookworm", "b1", None);
        let img = &super::super::scan::entries(&cache).unwrap()[0];
        assert_eq!(img.path, deb);
        let lowers = dir_of(&cache, img).unwrap();
        assert_eq!(
            lowers,
            cache.join("lowers/download/debian/bookworm/amd64/default")
        );
        container(&lx, "web2", Rootfs::overlay(lowers.join("b0")));
        container(&lx, "web1", Rootfs::overlay(lowers.join("b1")));
        container(&lx, "plain", Rootfs::default());
        let other = cache.join("lowers/download/debian/bookworm/amd64/defaultx/b1");
        container(&lx, "near", Rootfs::overlay(other));
        assert_eq!(users(&lx, &lowers).unwrap(), ["web1", "web2"]);
        std::fs::write(
            lx.join("web1/config.toml"),
            format!("junk {}", lowers.display()),
        )
        .unwrap();
        assert_eq!(users(&lx, &lowers).unwrap(), ["web1", "web2"]);
        assert!(users(&t.path().join("none"), &lowers).unwrap().is_empty());
        // A snapshot's config keeps its lower too, once its container is elsewhere.
        container(
            &lx.join("plain/snaps"),
            "snap1",
            Rootfs::overlay(lowers.join("b0")),
        );
        container(
            &lx.join("plain/snaps"),
            "snap0",
            Rootfs::overlay(lowers.join("b1")),
        );
        container(
            &lx.join("plain/snaps"),
            ".snap2.creating",
            Rootfs::overlay(lowers.join("b1")),
        );
        container(&lx.join("near/snaps"), "snap0", Rootfs::default());
        assert_eq!(
            users(&lx, &lowers).unwrap(),
            ["plain (snapshot snap0, snap1)", "web1", "web2"]
        );
    }
}
