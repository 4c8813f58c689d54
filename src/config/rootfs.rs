//! `[rootfs]` of a container's config: which backing store holds its root file system,
//! and where. Written at create time, so a container says what it is made of.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The kinds of backing store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A plain directory tree.
    #[default]
    Dir,
    /// A shared read-only lower (an image build unpacked once under the cache) with an
    /// upper and work directory of the container's own.
    Overlay,
    /// A btrfs subvolume (the lxcpath on btrfs): copies and snapshots are subvolume
    /// snapshots.
    Btrfs,
}

impl Backend {
    /// As config.toml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Dir => "dir",
            Backend::Overlay => "overlay",
            Backend::Btrfs => "btrfs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    #[serde(default)]
    pub backend: Backend,
    /// Relative to the container's directory. For overlay, the (empty) directory the
    /// merged tree is mounted on while the container runs.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Overlay: the shared lower, an absolute path (under the image cache, or a
    /// cloned container's frozen tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<PathBuf>,
    /// Overlay: frozen read-only layers stacked on `lower`, topmost first, absolute
    /// (uppers of containers this one was cloned from with `rlxc-copy -s`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<PathBuf>,
    /// Overlay: the container's writable layer and its work directory, relative to the
    /// container's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<PathBuf>,
    /// Overlay: at each start the upper is stacked read-only and a new tmpfs takes the
    /// writes, so nothing written while it runs survives a stop (`rlxc-copy -e`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tmpfs: bool,
}

fn default_path() -> PathBuf {
    PathBuf::from("rootfs")
}

/// Containers made before `[rootfs]` was written have this one.
impl Default for Rootfs {
    fn default() -> Self {
        Rootfs {
            backend: Backend::Dir,
            path: default_path(),
            lower: None,
            layers: Vec::new(),
            upper: None,
            work: None,
            tmpfs: false,
        }
    }
}

impl Rootfs {
    /// An overlay on `lower` with the usual names inside the container's directory.
    pub fn overlay(lower: PathBuf) -> Self {
        Rootfs {
            backend: Backend::Overlay,
            lower: Some(lower),
            upper: Some("upper".into()),
            work: Some("work".into()),
            ..Rootfs::default()
        }
    }

    /// A btrfs subvolume with the usual name inside the container's directory.
    pub fn btrfs() -> Self {
        Rootfs {
            backend: Backend::Btrfs,
            ..Rootfs::default()
        }
    }

    /// Paths must stay inside the container's directory: a config is the sysadmin's,
    /// but one copied from elsewhere must not point a start at the host's files. The
    /// overlay's lower is shared and outside, so it must at least be a plain absolute
    /// path (it is only ever read).
    pub fn check(&self) -> Result<(), String> {
        inside("rootfs.path", &self.path, "rootfs")?;
        match self.backend {
            Backend::Dir | Backend::Btrfs => {
                if self.lower.is_some()
                    || !self.layers.is_empty()
                    || self.upper.is_some()
                    || self.work.is_some()
                    || self.tmpfs
                {
                    return Err(
                        "rootfs.lower, layers, upper, work and tmpfs are for backend = \
                         \"overlay\"; remove them or set the backend"
                            .into(),
                    );
                }
            }
            Backend::Overlay => {
                let lower = self.lower.as_deref().ok_or(
                    "backend = \"overlay\" needs rootfs.lower, the image tree it is made on",
                )?;
                plain_absolute("rootfs.lower", lower)?;
                for l in &self.layers {
                    plain_absolute("rootfs.layers", l)?;
                }
                inside("rootfs.upper", self.upper_dir(), "upper")?;
                inside("rootfs.work", self.work_dir(), "work")?;
            }
        }
        Ok(())
    }

    /// The overlay's upper, relative to the container's directory.
    pub fn upper_dir(&self) -> &Path {
        self.upper.as_deref().unwrap_or(Path::new("upper"))
    }

    /// The overlay's work directory, relative to the container's directory.
    pub fn work_dir(&self) -> &Path {
        self.work.as_deref().unwrap_or(Path::new("work"))
    }

    /// Every read-only layer of an overlay, topmost first (`layers`, then `lower`).
    pub fn read_only_layers(&self) -> Vec<PathBuf> {
        self.layers.iter().chain(&self.lower).cloned().collect()
    }
}

/// A shared layer is only ever read, but a config may come from elsewhere: it must at
/// least be a plain absolute path.
fn plain_absolute(key: &str, p: &Path) -> Result<(), String> {
    let plain = p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{key} = {:?}: an absolute path without `..`",
            p.display().to_string()
        ))
    }
}

fn inside(key: &str, p: &Path, example: &str) -> Result<(), String> {
    let ok = !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key} = {:?}: a path inside the container's directory, like \"{example}\"",
            p.display().to_string()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_container_directory() {
        for ok in ["rootfs", "data/root"] {
            let r = Rootfs {
                path: ok.into(),
                ..Rootfs::default()
            };
            assert!(r.check().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "/srv/root",
            "../other/rootfs",
            "a/../../b",
            "./rootfs",
        ] {
            let r = Rootfs {
                path: bad.into(),
                ..Rootfs::default()
            };
            let e = r.check().unwrap_err();
            assert!(e.contains("rootfs.path"), "{bad}: {e}");
        }
    }

    #[test]
    fn written_and_read_back() {
        let t = toml::to_string(&Rootfs::default()).unwrap();
        assert_eq!(t, "backend = \"dir\"\npath = \"rootfs\"\n");
        let back: Rootfs = toml::from_str("").unwrap();
        assert_eq!(back, Rootfs::default());
        assert!(toml::from_str::<Rootfs>("backend = \"zfs\"\n").is_err());
    }

    #[test]
    fn an_overlay_records_its_layers_and_they_are_checked() {
        let o = Rootfs::overlay("/var/cache/rlxc/lowers/download/d/r/a/v/b1".into());
        let t = toml::to_string(&o).unwrap();
        assert_eq!(
            t,
            "backend = \"overlay\"\npath = \"rootfs\"\n\
             lower = \"/var/cache/rlxc/lowers/download/d/r/a/v/b1\"\n\
             upper = \"upper\"\nwork = \"work\"\n"
        );
        assert_eq!(toml::from_str::<Rootfs>(&t).unwrap(), o);
        assert!(o.check().is_ok());
        let bad = |f: &dyn Fn(&mut Rootfs)| {
            let mut r = o.clone();
            f(&mut r);
            r.check().unwrap_err()
        };
        assert!(bad(&|r| r.lower = None).contains("needs rootfs.lower"));
        assert!(bad(&|r| r.lower = Some("rel/x".into())).contains("rootfs.lower"));
        assert!(bad(&|r| r.lower = Some("/a/../etc".into())).contains("rootfs.lower"));
        assert!(bad(&|r| r.upper = Some("/tmp/u".into())).contains("rootfs.upper"));
        assert!(bad(&|r| r.work = Some("../w".into())).contains("rootfs.work"));
        assert!(bad(&|r| r.backend = Backend::Dir).contains("backend = \"overlay\""));
        assert!(bad(&|r| r.layers = vec!["x/y".into()]).contains("rootfs.layers"));
        let d = Rootfs {
            tmpfs: true,
            ..Rootfs::default()
        };
        assert!(d.check().unwrap_err().contains("tmpfs"));
        let mut l = o.clone();
        l.layers = vec!["/var/lib/rlxc/web1/upper".into()];
        l.tmpfs = true;
        assert!(l.check().is_ok());
        assert_eq!(
            l.read_only_layers(),
            [
                PathBuf::from("/var/lib/rlxc/web1/upper"),
                "/var/cache/rlxc/lowers/download/d/r/a/v/b1".into()
            ]
        );
        let t = toml::to_string(&l).unwrap();
        assert_eq!(toml::from_str::<Rootfs>(&t).unwrap(), l);
        assert!(bad(&|r| r.backend = Backend::Btrfs).contains("backend = \"overlay\""));
    }

    #[test]
    fn a_btrfs_rootfs_is_recorded_and_checked_like_a_dir() {
        let b = Rootfs::btrfs();
        let t = toml::to_string(&b).unwrap();
        assert_eq!(t, "backend = \"btrfs\"\npath = \"rootfs\"\n");
        assert_eq!(toml::from_str::<Rootfs>(&t).unwrap(), b);
        assert!(b.check().is_ok());
        let outside = Rootfs {
            path: "../x".into(),
            ..Rootfs::btrfs()
        };
        assert!(outside.check().unwrap_err().contains("rootfs.path"));
    }
}
