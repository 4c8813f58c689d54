//! The host ids the containers of an lxcpath map: each container's config and each of
//! its snapshots' (a restore brings a snapshot's map back), from the lxcpath's config
//! digests (`store::digest`: a config is parsed again only after it changed).

use std::path::Path;

use super::span::Span;
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

/// Every map in `lxcpath`, but those of container `except` (it is the one being given
/// ids, and its snapshots are its own). A config whose map cannot be told (unreadable,
/// or an `[idmap]` that does not parse) is an error: its ids might be given out twice.
pub fn scan(lxcpath: &Path, except: Option<&str>) -> Result<Vec<Holder>> {
    let mut out = Vec::new();
    for e in store::digest::scan(lxcpath)? {
        if Some(e.container.as_str()) == except {
            continue;
        }
        let who = match &e.snapshot {
            Some(s) => format!("{} (snapshot {s})", e.container),
            None => e.container.clone(),
        };
        if let Some(why) = &e.digest.ids_unknown {
            return Err(Error::Ids {
                msg: format!("cannot tell which host ids {who} maps: {why}"),
                fix: format!(
                    "fix or remove its [idmap] in {} (or destroy it), then try again",
                    e.file.display()
                ),
            });
        }
        if let Some((u, g)) = e.digest.idmap.as_ref().and_then(|m| m.ranges()) {
            out.push(Holder {
                who,
                container: e.container,
                uids: u.into(),
                gids: g.into(),
            });
        }
    }
    Ok(out)
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
