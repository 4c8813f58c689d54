//! What other containers' starts and allocations must know of each container's config
//! (and each snapshot's): the host ids it maps and the addresses it holds on the managed
//! bridge. Reading and parsing every config at every start made N starts cost O(N²)
//! parses (a thousand containers: a million); so each config's digest is kept in
//! `LXCPATH/.locks/digests.json` with the file's identity (device, inode, size, mtime
//! and ctime to the nanosecond), and a scan reads again only the configs whose identity
//! changed. Any write to a config, by rlxc or by hand, changes its ctime (which no
//! user can set), so a digest is never trusted past an edit: the overlap check keeps
//! its guarantees, and a scan costs a stat per config. The kernel stamps times at a
//! clock tick's granularity, so (as git does with its index) a config changed within
//! `RACY` of the scan is not kept: a second edit in the same tick would look the same.
//!
//! The index is a cache: one that is missing, unreadable or from another version is
//! rebuilt; it is replaced with a rename, so readers never see half of one, and two
//! scans at once each write a complete one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{IdMap, Network};
use crate::error::{Error, Result};

const INDEX: &str = "digests.json";
/// How old a config's last change must be for its digest to be kept.
const RACY: Duration = Duration::from_secs(2);
/// Bumped when a digest's meaning changes: an older index is rebuilt.
const VERSION: u32 = 1;

/// A config's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Its `[idmap]`.
    pub idmap: Option<IdMap>,
    /// Why the ids it maps cannot be told (it cannot be read, or its `[idmap]` does not
    /// parse): such a config stops every allocation and overlap check.
    pub ids_unknown: Option<String>,
    /// The fixed and recorded (`auto`) IPv4 addresses of its interfaces.
    pub ipv4: Vec<Ipv4Addr>,
}

/// A config of the lxcpath and its digest.
#[derive(Debug, Clone)]
pub struct Entry {
    pub container: String,
    /// The snapshot's name, for a snapshot's config.
    pub snapshot: Option<String>,
    pub file: PathBuf,
    pub digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    /// By the config's path relative to the lxcpath.
    configs: BTreeMap<String, (Stamp, Digest)>,
}

/// Every config of the lxcpath (containers, then each one's snapshots), with its digest.
pub fn scan(lxcpath: &Path) -> Result<Vec<Entry>> {
    scan_with(lxcpath, RACY)
}

fn scan_with(lxcpath: &Path, racy: Duration) -> Result<Vec<Entry>> {
    let settled = SystemTime::now()
        .checked_sub(racy)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(i128::MIN, |d| d.as_nanos() as i128);
    let index_path = lxcpath.join(".locks").join(INDEX);
    let old = read_index(&index_path);
    let mut new = Index {
        version: VERSION,
        configs: BTreeMap::new(),
    };
    let mut out = Vec::new();
    for (name, meta) in super::configs_in(lxcpath)? {
        let dir = super::container_dir(lxcpath, &name);
        let mut configs = vec![(None, format!("{name}/config.toml"), meta)];
        // Half-made snapshots (`.NAME.creating`) are nobody's yet; a `snaps` that
        // cannot be read holds none.
        configs.extend(
            super::configs_in(&dir.join("snaps"))
                .unwrap_or_default()
                .into_iter()
                .map(|(s, m)| (Some(s.clone()), format!("{name}/snaps/{s}/config.toml"), m)),
        );
        for (snapshot, rel, meta) in configs {
            let file = lxcpath.join(&rel);
            let stamp = Stamp::of(&meta);
            let digest = match old.configs.get(&rel) {
                Some((s, d)) if *s == stamp => d.clone(),
                _ => digest_of(&file),
            };
            if i128::from(stamp.ctime.0) * 1_000_000_000 + i128::from(stamp.ctime.1) < settled {
                new.configs.insert(rel, (stamp, digest.clone()));
            }
            out.push(Entry {
                container: name.clone(),
                snapshot,
                file,
                digest,
            });
        }
    }
    if new.configs != old.configs {
        // A cache: failing to keep it costs the next scan time, nothing else.
        let _ = write_index(&index_path, &new);
    }
    Ok(out)
}

/// What a config is read for here: other keys are not this module's to judge.
#[derive(Deserialize)]
struct IdsOnly {
    #[serde(default)]
    idmap: Option<IdMap>,
}

#[derive(Deserialize)]
struct NetworksOnly {
    #[serde(default, rename = "network")]
    networks: Vec<Network>,
}

/// Both at once: one parse of a config that is well (each apart when it is not).
#[derive(Deserialize)]
struct IdsAndNetworks {
    #[serde(default)]
    idmap: Option<IdMap>,
    #[serde(default, rename = "network")]
    networks: Vec<Network>,
}

fn addresses(networks: &[Network]) -> Vec<Ipv4Addr> {
    networks.iter().filter_map(|n| n.known_ipv4()).collect()
}

fn digest_of(file: &Path) -> Digest {
    let text = match crate::config::read_text(file) {
        Ok(t) => t,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Digest {
                idmap: None,
                ids_unknown: None,
                ipv4: Vec::new(),
            }
        }
        Err(e) => {
            return Digest {
                idmap: None,
                ids_unknown: Some(crate::error::flatten(&e)),
                ipv4: Vec::new(),
            }
        }
    };
    if let Ok(c) = toml::from_str::<IdsAndNetworks>(&text) {
        return Digest {
            idmap: c.idmap,
            ids_unknown: None,
            ipv4: addresses(&c.networks),
        };
    }
    let (idmap, ids_unknown) = match toml::from_str::<IdsOnly>(&text) {
        Ok(c) => (c.idmap, None),
        Err(_) if !text.contains("idmap") => (None, None),
        Err(e) => (
            None,
            Some(format!("{}: {}", file.display(), e.message().trim_end())),
        ),
    };
    // A config whose networks do not parse cannot start, and holds no address.
    let ipv4 = toml::from_str::<NetworksOnly>(&text)
        .map(|c| addresses(&c.networks))
        .unwrap_or_default();
    Digest {
        idmap,
        ids_unknown,
        ipv4,
    }
}

fn read_index(path: &Path) -> Index {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
        .filter(|i| i.version == VERSION)
        .unwrap_or_default()
}

/// Written beside itself under a name of this process and thread, then renamed over: no
/// sync (a cache lost in a crash is rebuilt).
fn write_index(path: &Path, index: &Index) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    super::mkdir_p(dir, 0o700)?;
    let tmp = dir.join(format!(
        ".{INDEX}.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let data = serde_json::to_vec(index).map_err(|e| Error::Other(format!("{e}")))?;
    let res = std::fs::write(&tmp, data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io("write", path, e));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lx: &Path, rel: &str, text: &str) {
        let f = lx.join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }

    const MAP_A: &str = "[idmap]\nuid = 1000000\ngid = 1000000\n";

    /// A scan that keeps every digest; the tests change files a tick apart.
    fn digests(lx: &Path) -> Vec<(String, Option<String>, Digest)> {
        scan_with(lx, Duration::ZERO)
            .unwrap()
            .into_iter()
            .map(|e| (e.container, e.snapshot, e.digest))
            .collect()
    }

    #[test]
    fn an_edit_is_seen_at_the_next_scan_whatever_the_index_says() {
        let t = tempfile::tempdir().unwrap();
        let lx = t.path();
        write(lx, "a/config.toml", MAP_A);
        write(
            lx,
            "b/config.toml",
            "[[network]]\ntype = \"veth\"\nipv4 = \"10.0.3.7/24\"\n",
        );
        write(lx, "b/snaps/s0/config.toml", "[idmap]\nuid = 5\ngid = 6\n");
        let first = digests(lx);
        assert_eq!(first.len(), 3);
        assert_eq!(first[0].2.idmap.as_ref().unwrap().uid, Some(1000000));
        assert_eq!(first[1].2.ipv4, ["10.0.3.7".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(first[2].1.as_deref(), Some("s0"));
        assert!(lx.join(".locks/digests.json").is_file());
        // From the index: the same.
        assert_eq!(digests(lx), first);
        // Edited in place, same size: the ctime tells (a clock tick later).
        std::thread::sleep(Duration::from_millis(30));
        write(
            lx,
            "a/config.toml",
            "[idmap]\nuid = 2000000\ngid = 1000000\n",
        );
        assert_eq!(digests(lx)[0].2.idmap.as_ref().unwrap().uid, Some(2000000));
        // A stale or corrupt index is never believed over the files.
        std::fs::write(lx.join(".locks/digests.json"), "{garbage").unwrap();
        assert_eq!(digests(lx)[0].2.idmap.as_ref().unwrap().uid, Some(2000000));
        // Gone: gone from the scan.
        std::fs::remove_dir_all(lx.join("b/snaps")).unwrap();
        assert_eq!(digests(lx).len(), 2);
    }

    #[test]
    fn a_config_changed_just_now_is_not_kept() {
        let t = tempfile::tempdir().unwrap();
        let lx = t.path();
        write(lx, "a/config.toml", MAP_A);
        assert_eq!(scan(lx).unwrap().len(), 1);
        assert!(read_index(&lx.join(".locks").join(INDEX))
            .configs
            .is_empty());
    }

    #[test]
    fn an_idmap_that_does_not_parse_is_unknown_and_a_broken_network_holds_nothing() {
        let t = tempfile::tempdir().unwrap();
        let lx = t.path();
        write(lx, "bad/config.toml", "[idmap]\nuid = \"many\"\n");
        write(
            lx,
            "net/config.toml",
            "[[network]]\ntype = \"veth\"\nipv4 = 3\n",
        );
        let d = digests(lx);
        assert!(d[0]
            .2
            .ids_unknown
            .as_ref()
            .unwrap()
            .contains("bad/config.toml"));
        assert_eq!(d[1].2.ids_unknown, None);
        assert!(d[1].2.ipv4.is_empty());
    }
}
