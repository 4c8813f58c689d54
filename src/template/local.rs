//! The local template (LXC's `lxc-local`): an image's two archives from the local disk,
//! `--metadata` (meta.tar.*) and `--fstree` (rootfs.tar.*), through the same confined
//! unpack, meta templates, excludes, config translation and create message as a
//! download. An archived CentOS 7 image, or anything the image server no longer has.
//! The decompressed tree is cached by the archive's hash (`local_cache.rs`), so the
//! next create from the same file only unpacks. `-t image ALIAS` is this template on a
//! published image's pair (`image::published`), held against removal while it runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::local_cache::{self, Held, Label, LocalCache, Staging, ROOTFS_TAR};
use super::{Filled, Prepared, Target, Template};
use crate::config::ImageSource;
use crate::error::{Error, IoContext, Result};
use crate::image::budget::{Bounded, Budget};
use crate::image::fetch::Progress;
use crate::image::meta::{self, Meta};
use crate::image::published::{self, Store};
use crate::image::{decompress, unpack};

/// The most of a metadata archive read (decompressed).
const MAX_META: u64 = 64 << 20;

pub struct Local {
    metadata: PathBuf,
    fstree: PathBuf,
    /// `CACHEPATH/local/.NAME.PID`: the image's meta files while the create runs;
    /// removed when this is dropped.
    work: PathBuf,
    cache: LocalCache,
    max_image_size: u64,
    meta: Option<Meta>,
    /// Where the decompressed tree is: a cached entry, or one being built.
    tree: Option<Tree>,
    /// What its cache entry says it holds.
    label: Label,
    /// The image a container records it came from (a published one's).
    source: Option<ImageSource>,
    /// The published image read, locked so no replace or removal takes it meanwhile.
    _published: Option<published::Held>,
}

enum Tree {
    Cached(Held),
    Fresh(Staging),
}

impl Tree {
    fn tar(&self) -> PathBuf {
        match self {
            Tree::Cached(h) => h.dir.join(ROOTFS_TAR),
            Tree::Fresh(s) => s.dir.join(ROOTFS_TAR),
        }
    }
}

impl Local {
    pub fn new(
        metadata: PathBuf,
        fstree: PathBuf,
        cachepath: &Path,
        name: &str,
        max_image_size: u64,
    ) -> Self {
        Local {
            label: Label::of_file(&fstree),
            metadata,
            fstree,
            work: cachepath
                .join("local")
                .join(format!(".{name}.{}", std::process::id())),
            cache: LocalCache::new(cachepath),
            max_image_size,
            meta: None,
            tree: None,
            source: None,
            _published: None,
        }
    }

    /// The image published as `alias` (an unknown alias is an error naming the ones
    /// there are).
    pub fn published(
        alias: &str,
        cachepath: &Path,
        name: &str,
        max_image_size: u64,
    ) -> Result<Self> {
        let held = Store::new(cachepath).open(alias)?;
        let mut local = Local::new(held.meta(), held.rootfs(), cachepath, name, max_image_size);
        local.label = Label {
            dist: published::DIR.into(),
            release: alias.into(),
            arch: held.info.arch.clone(),
            source: format!("{}:{alias}", published::DIR),
        };
        local.source = Some(held.info.source());
        local._published = Some(held);
        Ok(local)
    }

    /// The tree from the cache, else decompressed into a staging entry (committed once
    /// the create succeeded), its key the archive's hash, which must not change while
    /// it is read.
    fn obtain_tree(&self, progress: &dyn Progress) -> Result<Tree> {
        progress.message(&format!("checking {}", self.fstree.display()));
        let key = local_cache::sha256_file(&self.fstree)?[..32].to_string();
        if let Some(held) = self.cache.get(&key)? {
            progress.message(&format!(
                "using the tree of {} decompressed earlier",
                self.fstree.display()
            ));
            return Ok(Tree::Cached(held));
        }
        let staging = self.cache.stage(&key)?;
        let tar = staging.dir.join(ROOTFS_TAR);
        self.decompress_fstree(&tar, progress)?;
        if local_cache::sha256_file(&self.fstree)?[..32] != key {
            return Err(Error::Usage(format!(
                "{} changed while it was read; nothing was created: run the create again",
                self.fstree.display()
            )));
        }
        Ok(Tree::Fresh(staging))
    }

    /// The tree decompressed into a plain tar (the unpacker copies file data out of it
    /// with copy_file_range), held to `max_image_size` and the file system's free space.
    fn decompress_fstree(&self, tar: &Path, progress: &dyn Progress) -> Result<()> {
        let what = format!("{}", self.fstree.display());
        progress.message(&format!("decompressing {what}"));
        let budget = Budget {
            what: what.clone(),
            url: "the local disk".into(),
            limit: self.max_image_size,
            limit_fix: "raise max_image_size in [download] of rlxc.toml if the image is \
                        really that large"
                .into(),
            fs_dir: tar.parent().unwrap_or(Path::new("/")).to_path_buf(),
        };
        let out = std::fs::File::create(tar).ctx("create", tar)?;
        let mut bounded = Bounded::new(out, budget.limit, crate::sys::interrupted);
        let mut input = decompress::open(&self.fstree)?;
        match std::io::copy(&mut input, &mut bounded) {
            Ok(_) => bounded.flush().ctx("write", tar),
            Err(e) => Err(match bounded.stopped() {
                Some(stop) => budget.error(stop, bounded.written()),
                None => Error::Image {
                    what: what.clone(),
                    source: e,
                },
            }),
        }
    }
}

impl Template for Local {
    fn prepare(&mut self, progress: &dyn Progress) -> Result<Prepared> {
        std::fs::create_dir_all(&self.work).ctx("create", &self.work)?;
        let meta_dir = self.work.join("meta");
        std::fs::create_dir_all(&meta_dir).ctx("create", &meta_dir)?;
        // No metadata archive holds anywhere near this; a bomb stops here.
        let input = std::io::Read::take(decompress::open(&self.metadata)?, MAX_META);
        meta::extract(input, &meta_dir)?;
        let meta = Meta::load(&meta_dir)?;
        if meta.config.trim().is_empty() {
            return Err(Error::Usage(format!(
                "{} has no config: is it an image's metadata archive (meta.tar.xz)?",
                self.metadata.display()
            )));
        }
        self.tree = Some(self.obtain_tree(progress)?);
        let prepared = Prepared {
            source: self.source.clone(),
            lxc_config: meta.config.clone(),
            substitute: meta.templates.clone(),
            create_message: meta.create_message.clone(),
        };
        self.meta = Some(meta);
        Ok(prepared)
    }

    fn fill(&mut self, target: &Target, progress: &dyn Progress) -> Result<Filled> {
        let meta = self
            .meta
            .as_ref()
            .ok_or_else(|| Error::Other("the local template was not prepared".into()))?;
        let excludes = super::excludes(&meta.excludes_user)?;
        let tree = self
            .tree
            .take()
            .ok_or_else(|| Error::Other("the local template was not prepared".into()))?;
        progress.message(&format!("unpacking {}", self.fstree.display()));
        let stats = unpack::unpack_file(&tree.tar(), target.root, &excludes)?;
        if let Tree::Fresh(staging) = tree {
            // Kept for the next create only now that this one could use it.
            if let Err(e) = self.cache.commit(staging, &self.label) {
                progress.message(&format!(
                    "warning: the decompressed tree was not cached: {e}"
                ));
            }
        }
        Ok(Filled {
            stats: Some(stats),
            lxc_config: None,
        })
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = crate::store::remove_tree(&self.work);
    }
}
