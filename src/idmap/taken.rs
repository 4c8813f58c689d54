//! The host ids the containers of an lxcpath map: each container's config and each of
//! its snapshots' (a restore brings a snapshot's map back), read for `[idmap]` alone.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::span::Span;
use crate::config::IdMap;
use crate::error::{Error, Result};
use crate::store;

/// A container (or a snapshot of one) and the host ids it maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `web1`, or `web1 (snapshot snap0)`.
    pub who: String,
    /// The container it belongs to.
    pub container: String,
    pub uids: Span,
    pub gids: Span,
}

/// What a config is read for here: other keys are not this module's to judge.
#[derive(Deserialize)]
struct IdsOnly {
    #[serde(default)]
    idmap: Option<IdMap>,
}

/// Every map in `lxcpath`, but those of container `except` (it is the one being given
/// ids, and its snapshots are its own).
pub fn scan(lxcpath: &Path, except: Option<&str>) -> Result<Vec<Holder>> {
    let mut out = Vec::new();
    for name in store::list(lxcpath)? {
        if Some(name.as_str()) == except {
            continue;
        }
        let dir = store::container_dir(lxcpath, &name);
        let mut configs = vec![(name.clone(), dir.join("config.toml"))];
        configs.extend(snapshot_configs(&dir, &name));
        for (who, file) in configs {
            if let Some(m) = read_map(&file, &who)? {
                if let Some((u, g)) = m.ranges() {
                    out.push(Holder {
                        who,
                        container: name.clone(),
                        uids: u.into(),
                        gids: g.into(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn snapshot_configs(dir: &Path, name: &str) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir.join("snaps")) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let snap = e.file_name().into_string().ok()?;
            let file = e.path().join("config.toml");
            (!snap.starts_with('.') && file.is_file())
                .then(|| (format!("{name} (snapshot {snap})"), file))
        })
        .collect();
    v.sort();
    v
}

/// The `[idmap]` of `file`. A config gone meanwhile (destroyed) maps nothing; one that
/// cannot be read, or mentions idmap and does not parse, is an error: its ids might be
/// given out twice.
fn read_map(file: &Path, who: &str) -> Result<Option<IdMap>> {
    let unknown = |why: String| Error::Ids {
        msg: format!("cannot tell which host ids {who} maps: {why}"),
        fix: format!(
            "fix or remove its [idmap] in {} (or destroy it), then try again",
            file.display()
        ),
    };
    let text = match crate::config::read_text(file) {
        Ok(t) => t,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(unknown(crate::error::flatten(&e))),
    };
    match toml::from_str::<IdsOnly>(&text) {
        Ok(c) => Ok(c.idmap),
        Err(_) if !text.contains("idmap") => Ok(None),
        Err(e) => Err(unknown(format!(
            "{}: {}",
            file.display(),
            e.message().trim_end()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(lxcpath: &Path, name: &str, config: &str) {
        let d = lxcpath.join(name);
        std::fs::create_dir_all(d.join("rootfs")).unwrap();
        std::fs::write(d.join("config.toml"), config).unwrap();
    }

    #[test]
    fn containers_and_their_snapshots_hold_ids() {
        let t = tempfile::tempdir().unwrap();
        let lx = t.path();
        container(
            lx,
            "a",
            "hostname = \"a\"\n[idmap]\nuid = 1000000\ngid = 2000000\n",
        );
        container(lx, "priv", "hostname = \"p\"\n");
        container(
            lx,
            "b",
            "[idmap]\nuid = 1065536\ngid = 1065536\ncount = 10\n",
        );
        let snap = lx.join("priv/snaps/snap0");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.toml"), "[idmap]\nuid = 5\ngid = 5\n").unwrap();
        // Half-made snapshots and work directories are nobody's yet.
        std::fs::create_dir_all(lx.join("priv/snaps/.snap1.creating")).unwrap();
        std::fs::write(
            lx.join("priv/snaps/.snap1.creating/config.toml"),
            "[idmap]\nuid = 7\ngid = 7\n",
        )
        .unwrap();
        container(lx, ".c.creating", "[idmap]\nuid = 9\ngid = 9\n");
        let all = scan(lx, None).unwrap();
        let who: Vec<(&str, String, String)> = all
            .iter()
            .map(|h| (h.who.as_str(), h.uids.to_string(), h.gids.to_string()))
            .collect();
        assert_eq!(
            who,
            [
                ("a", "1000000-1065535".into(), "2000000-2065535".into()),
                ("b", "1065536-1065545".into(), "1065536-1065545".into()),
                ("priv (snapshot snap0)", "5-65540".into(), "5-65540".into()),
            ]
        );
        assert_eq!(all[2].container, "priv");
        let but_a: Vec<String> = scan(lx, Some("a"))
            .unwrap()
            .into_iter()
            .map(|h| h.who)
            .collect();
        assert_eq!(but_a, ["b", "priv (snapshot snap0)"]);
        assert!(scan(&lx.join("missing"), None).unwrap().is_empty());
    }

    #[test]
    fn a_map_that_cannot_be_read_stops_the_allocation() {
        let t = tempfile::tempdir().unwrap();
        let lx = t.path();
        // Broken, but no idmap in it: it maps nothing.
        container(lx, "broken", "hostname = [\n");
        assert!(scan(lx, None).unwrap().is_empty());
        container(lx, "bad", "[idmap]\nuid = \"many\"\n");
        let e = scan(lx, None).unwrap_err();
        let (msg, hint) = (e.to_string(), e.hint().unwrap());
        assert!(msg.contains("cannot tell which host ids bad maps"), "{msg}");
        assert!(hint.contains("bad/config.toml"), "{hint}");
    }
}
