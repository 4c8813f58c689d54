//! Published images (`rlxc-publish`): containers made into images in LXC's format, under
//! `CACHEPATH/published/ALIAS/`: `meta.tar.xz` and `rootfs.tar.zst` (the pair
//! `rlxc-create -t local` or LXC's `lxc-local` reads too) and `published.toml` (what it
//! was made from). Laid out as the caches are, so `rlxc-image` lists and removes them:
//! `.ALIAS.lock` beside each entry (shared while a create reads it, exclusive to replace
//! or remove it), `.ALIAS.staging.PID` while one is written, `last_used` in it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::config::ImageSource;
use crate::error::{Error, IoContext, Result};
use crate::image::cache::{lock_file, touch_last_used};
use crate::image::catalog::locks;
use crate::store;

/// Under the cachepath.
pub const DIR: &str = "published";
pub const META: &str = "meta.tar.xz";
pub const ROOTFS: &str = "rootfs.tar.zst";
/// What the image was made from; written last, so its presence marks a whole entry.
pub const INFO: &str = "published.toml";
const MAX_ALIAS: usize = 64;
const MAX_DESCRIPTION: usize = 1024;

/// What `published.toml` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub alias: String,
    /// The container it was published from.
    pub container: String,
    /// When (unix seconds).
    pub created: i64,
    /// Debian's name for its architecture.
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The image that container was created from, when it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    pub rlxc_version: String,
}

impl Info {
    /// `YYYYMMDD_HH:MM`, as image servers name their builds.
    pub fn build(&self) -> String {
        let t = crate::config::format_utc(self.created);
        format!("{}{}{}_{}", &t[0..4], &t[5..7], &t[8..10], &t[11..16])
    }

    /// What a container created from it records as its image: the distribution of the
    /// image under it, when known, this alias as its server.
    pub fn source(&self) -> ImageSource {
        let (dist, release, variant) = match &self.image {
            Some(i) => (i.dist.clone(), i.release.clone(), i.variant.clone()),
            None => (DIR.into(), self.alias.clone(), "default".into()),
        };
        ImageSource {
            server: format!("{DIR}:{}", self.alias),
            dist,
            release,
            arch: self.arch.clone(),
            variant,
            exposed_ports: Vec::new(),
            build: self.build(),
        }
    }
}

/// An alias becomes a directory name and an argument: a plain name, bounded.
pub fn validate_alias(alias: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let why = if alias.is_empty() || alias.len() > MAX_ALIAS {
        Some(format!("it is {} bytes long", alias.len()))
    } else if !alias.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("it does not start with a letter or digit".into())
    } else if let Some(c) = alias.chars().find(|c| !ok_char(*c)) {
        Some(format!("it contains {c:?}"))
    } else if alias.contains("..") {
        Some("it contains \"..\"".into())
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::Usage(format!(
            "invalid image alias {alias:?}: {why}; use 1-{MAX_ALIAS} characters from \
             a-z A-Z 0-9 - _ . , starting with a letter or digit, without \"..\""
        ))),
    }
}

/// A description is one line a listing can show.
pub fn validate_description(text: &str) -> Result<()> {
    if text.len() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "an image description is one line of at most {MAX_DESCRIPTION} bytes"
        )));
    }
    Ok(())
}

/// The published images under one cachepath.
pub struct Store {
    dir: PathBuf,
}

/// A published image held under its shared lock while a create reads it.
pub struct Held {
    pub dir: PathBuf,
    pub info: Info,
    _lock: Flock<File>,
}

impl Held {
    pub fn meta(&self) -> PathBuf {
        self.dir.join(META)
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS)
    }
}

/// An image being written: removed on drop unless committed (after a replace it holds
/// the image replaced, so that goes).
pub struct Staging {
    pub dir: PathBuf,
    alias: String,
    done: bool,
}

impl Store {
    pub fn new(cachepath: &Path) -> Self {
        Store {
            dir: cachepath.join(DIR),
        }
    }

    pub fn entry(&self, alias: &str) -> PathBuf {
        self.dir.join(alias)
    }

    fn lock_path(&self, alias: &str) -> PathBuf {
        self.dir.join(format!(".{alias}.lock"))
    }

    /// The image `alias`, if one is published (no lock taken).
    pub fn info(&self, alias: &str) -> Option<Info> {
        read_info(&self.entry(alias))
    }

    /// The aliases published, sorted.
    pub fn aliases(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && self.info(n).is_some())
            .collect();
        v.sort();
        v
    }

    /// The image `alias`, locked for reading; an unknown alias is an error naming the
    /// ones there are.
    pub fn open(&self, alias: &str) -> Result<Held> {
        validate_alias(alias)?;
        let unknown = || {
            let have = self.aliases();
            let have = if have.is_empty() {
                "none yet".to_string()
            } else {
                have.join(", ")
            };
            Error::Usage(format!(
                "no published image {alias:?} in {} (published: {have}); publish one with \
                 rlxc-publish -n CONTAINER --alias {alias}",
                self.dir.display()
            ))
        };
        if !self.entry(alias).is_dir() {
            return Err(unknown());
        }
        let lock = lock_file(&self.lock_path(alias), FlockArg::LockShared)?;
        let dir = self.entry(alias);
        let info = read_info(&dir).ok_or_else(unknown)?;
        touch_last_used(&dir);
        Ok(Held {
            dir,
            info,
            _lock: lock,
        })
    }

    /// A fresh staging directory for `alias`.
    pub fn stage(&self, alias: &str) -> Result<Staging> {
        store::mkdir_p(&self.dir, 0o700)?;
        let dir = self
            .dir
            .join(format!(".{alias}.staging.{}", std::process::id()));
        store::remove_tree(&dir)?;
        std::fs::create_dir(&dir).ctx("create", &dir)?;
        Ok(Staging {
            dir,
            alias: alias.to_string(),
            done: false,
        })
    }

    /// Make `staging` the image of its alias, in one rename. An image there already is
    /// swapped out with `replace` (waiting up to `wait` for creates reading it) and
    /// refused without. True when one was replaced.
    pub fn commit(&self, mut staging: Staging, replace: bool, wait: Duration) -> Result<bool> {
        let alias = staging.alias.clone();
        let _lock = match locks::exclusive(&self.lock_path(&alias), wait, &mut |_| {})? {
            Ok(l) => l,
            Err(busy) => {
                return Err(Error::ImageBusy {
                    image: format!("{DIR}:{alias}"),
                    holder: busy.holder,
                    waited: wait,
                })
            }
        };
        let entry = self.entry(&alias);
        if entry.is_dir() {
            if !replace {
                return Err(self.exists(&alias));
            }
            store::exchange(&staging.dir, &entry)?;
            return Ok(true);
        }
        store::rename_noreplace(&staging.dir, &entry).ctx("rename into place", &entry)?;
        staging.done = true;
        Ok(false)
    }

    /// The error for an alias that is taken.
    pub fn exists(&self, alias: &str) -> Error {
        let from = self
            .info(alias)
            .map(|i| {
                format!(
                    " (from container {}, {} UTC)",
                    i.container,
                    crate::config::format_utc(i.created)
                )
            })
            .unwrap_or_default();
        Error::Usage(format!(
            "a published image {alias:?} exists{from}; nothing was changed: publish with -f \
             to replace it, or choose another alias"
        ))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = store::remove_tree(&self.dir);
        }
    }
}

/// The most of `published.toml` read: a few lines.
const MAX_INFO: u64 = 64 << 10;

/// An entry's `published.toml`, if it is a whole entry.
pub fn read_info(dir: &Path) -> Option<Info> {
    use std::io::Read;
    let f = crate::image::decompress::open_plain(&dir.join(INFO)).ok()?;
    let mut text = String::new();
    f.take(MAX_INFO).read_to_string(&mut text).ok()?;
    toml::from_str(&text).ok()
}

/// `info` as `published.toml` in `dir`.
pub fn write_info(dir: &Path, info: &Info) -> Result<()> {
    let text = toml::to_string(info)
        .map_err(|e| Error::Other(format!("cannot write the image's {INFO}: {e}")))?;
    crate::config::write_atomic(&dir.join(INFO), text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(alias: &str) -> Info {
        Info {
            alias: alias.into(),
            container: "web1".into(),
            created: 1_796_531_260,
            arch: "amd64".into(),
            description: Some("nginx, tuned".into()),
            image: None,
            rlxc_version: "0.1.0".into(),
        }
    }

    #[test]
    fn aliases_are_plain_names() {
        for ok in ["web-base", "a", "Web_1.2", &"x".repeat(64)] {
            validate_alias(ok).unwrap();
        }
        for bad in [
            "", "../x", "a/b", "..", "a..b", ".hidden", "-x", "a b", "a:b", "é",
        ] {
            let e = validate_alias(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid image alias"), "{bad}: {e}");
        }
        assert!(validate_alias(&"x".repeat(65)).is_err());
        assert!(validate_description("one line").is_ok());
        assert!(validate_description("two\nlines").is_err());
    }

    #[test]
    fn a_commit_is_one_rename_and_a_taken_alias_needs_replace() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        let put = |replace: bool, text: &str| {
            let st = s.stage("web").unwrap();
            std::fs::write(st.dir.join(ROOTFS), text).unwrap();
            write_info(&st.dir, &info("web")).unwrap();
            s.commit(st, replace, Duration::ZERO)
        };
        assert!(!put(false, "one").unwrap());
        let e = put(false, "two").unwrap_err().to_string();
        assert!(e.contains("-f") && e.contains("web1"), "{e}");
        assert_eq!(
            std::fs::read_to_string(s.entry("web").join(ROOTFS)).unwrap(),
            "one"
        );
        assert!(put(true, "three").unwrap());
        assert_eq!(
            std::fs::read_to_string(s.entry("web").join(ROOTFS)).unwrap(),
            "three"
        );
        let left: Vec<_> = std::fs::read_dir(t.path().join(DIR))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("staging"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(s.aliases(), ["web"]);

        let held = s.open("web").unwrap();
        assert_eq!(held.info, info("web"));
        // A create reads it: a replace waits, then says who holds it.
        let e = put(true, "four").unwrap_err().to_string();
        assert!(e.contains("in use by"), "{e}");
        drop(held);
        let e = s.open("nosuch").err().unwrap().to_string();
        assert!(e.contains("published: web"), "{e}");
    }

    #[test]
    fn a_build_reads_like_an_image_servers() {
        assert_eq!(info("x").build(), "20261206_04:27");
        let src = info("x").source();
        assert_eq!(
            (src.dist.as_str(), src.release.as_str(), src.server.as_str()),
            ("published", "x", "published:x")
        );
    }
}
