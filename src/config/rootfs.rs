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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    #[serde(default)]
    pub backend: Backend,
    /// Relative to the container's directory.
    #[serde(default = "default_path")]
    pub path: PathBuf,
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
        }
    }
}

impl Rootfs {
    /// The path must stay inside the container's directory: a config is the sysadmin's,
    /// but one copied from elsewhere must not point a start at the host's files.
    pub fn check(&self) -> Result<(), String> {
        let p: &Path = &self.path;
        let ok =
            !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "rootfs.path = {:?}: a path inside the container's directory, like \"rootfs\"",
                p.display().to_string()
            ))
        }
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
}
