//! `[idmap]` of a container's config: it runs in a user namespace of its own, its ids
//! `0..count` being the host's `uid..uid+count` (users) and `gid..gid+count` (groups), so
//! its root is an unprivileged user on the host. Absent: a privileged container (root
//! inside is root outside), as every container made before this existed.
//!
//! In the defaults (`default.toml`) the host ids are left out: `rlxc-create` allocates a
//! range of its own for each new container from root's `/etc/subuid` and `/etc/subgid`
//! and writes it into the container's config, so two containers never share host ids.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A full distribution uses ids up to 65534 (`nobody`).
pub const DEFAULT_COUNT: u32 = 65536;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    /// The host uid the container's uid 0 is; absent only in the defaults (allocated
    /// at create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The host gid the container's gid 0 is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// How many ids are mapped.
    #[serde(default = "default_count")]
    pub count: u32,
}

fn default_count() -> u32 {
    DEFAULT_COUNT
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap {
            uid: None,
            gid: None,
            count: DEFAULT_COUNT,
        }
    }
}

/// One mapped range: container ids `0..count` are host ids `host..host+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub host: u32,
    pub count: u32,
}

impl Range {
    /// The last host id, inclusive.
    pub fn last(&self) -> u32 {
        self.host + (self.count - 1)
    }
}

impl IdMap {
    /// The user and group ranges, once allocated.
    pub fn ranges(&self) -> Option<(Range, Range)> {
        Some((
            Range {
                host: self.uid?,
                count: self.count,
            },
            Range {
                host: self.gid?,
                count: self.count,
            },
        ))
    }

    /// Why the map cannot be used, for the caller to name the file. `allocated`: the
    /// host ids must be there (a container's config, not the defaults).
    pub fn check(&self, allocated: bool) -> Result<(), String> {
        if self.count == 0 {
            return Err("idmap.count = 0: map at least one id (65536 for a distribution)".into());
        }
        if self.uid.is_some() != self.gid.is_some() {
            return Err("idmap: set both uid and gid, or neither (allocated at create)".into());
        }
        for (key, base) in [("uid", self.uid), ("gid", self.gid)] {
            let Some(base) = base else {
                if allocated {
                    return Err(format!(
                        "idmap.{key} is missing: this container has no host ids; set uid \
                         and gid (a range of root's /etc/subuid and /etc/subgid), or remove \
                         [idmap] to make it privileged"
                    ));
                }
                continue;
            };
            if base == 0 {
                return Err(format!(
                    "idmap.{key} = 0: the container's root would be the host's root; use a \
                     range of root's /etc/sub{key} (or remove [idmap] for a privileged container)"
                ));
            }
            if base.checked_add(self.count - 1).is_none() {
                return Err(format!(
                    "idmap.{key} = {base} with count = {}: the range passes the largest id",
                    self.count
                ));
            }
        }
        Ok(())
    }
}

/// `[idmap]` of rlxc.toml: the files that list root's subordinate ids, read when a
/// container gets its ids and appended to by `rlxc-create --allocate`. Tests, and hosts
/// that keep them elsewhere, name other files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubidFiles {
    pub subuid: PathBuf,
    pub subgid: PathBuf,
}

impl Default for SubidFiles {
    fn default() -> Self {
        SubidFiles {
            subuid: "/etc/subuid".into(),
            subgid: "/etc/subgid".into(),
        }
    }
}

impl SubidFiles {
    /// Why the files cannot be used, naming the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, p) in [("subuid", &self.subuid), ("subgid", &self.subgid)] {
            if !p.is_absolute() || p.file_name().is_none() {
                return Err(format!(
                    "key `idmap.{key}` = {:?}: the absolute path of a file (default /etc/{key})",
                    p.display().to_string()
                ));
            }
        }
        if self.subuid == self.subgid {
            return Err(format!(
                "keys `idmap.subuid` and `idmap.subgid` both name {:?}: users' and groups' \
                 ranges are kept in two files",
                self.subuid.display().to_string()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_written_and_checked() {
        let m: IdMap = toml::from_str("uid = 1065536\ngid = 1065536\n").unwrap();
        assert_eq!(m.count, DEFAULT_COUNT);
        assert!(m.check(true).is_ok());
        let (u, g) = m.ranges().unwrap();
        assert_eq!((u.host, u.count), (1065536, 65536));
        assert_eq!(g.last(), 1065536 + 65535);
        let back: IdMap = toml::from_str(&toml::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);

        let defaults: IdMap = toml::from_str("").unwrap();
        assert!(defaults.check(false).is_ok());
        assert!(defaults
            .check(true)
            .unwrap_err()
            .contains("idmap.uid is missing"));
        assert!(defaults.ranges().is_none());

        let bad = |t: &str| toml::from_str::<IdMap>(t).unwrap().check(true).unwrap_err();
        assert!(bad("uid = 0\ngid = 100000\n").contains("host's root"));
        assert!(bad("uid = 100000\n").contains("both"));
        assert!(bad("uid = 1\ngid = 1\ncount = 0\n").contains("count = 0"));
        assert!(bad("uid = 4294967295\ngid = 1\ncount = 2\n").contains("largest id"));
        assert!(toml::from_str::<IdMap>("uids = 1\n").is_err());
    }

    #[test]
    fn subid_files_default_to_the_systems_and_must_be_absolute() {
        let d: SubidFiles = toml::from_str("").unwrap();
        assert_eq!(d.subuid, PathBuf::from("/etc/subuid"));
        assert!(d.check().is_ok());
        let rel: SubidFiles = toml::from_str("subgid = \"subgid\"\n").unwrap();
        assert_eq!(rel.subuid, PathBuf::from("/etc/subuid"));
        assert!(rel.check().unwrap_err().contains("idmap.subgid"));
        assert!(toml::from_str::<SubidFiles>("subuids = \"/x\"\n").is_err());
        let one: SubidFiles = toml::from_str("subgid = \"/etc/subuid\"\n").unwrap();
        assert!(one.check().unwrap_err().contains("two files"));
    }
}
