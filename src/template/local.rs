//! The local template (LXC's `lxc-local`): an image's two archives from the local disk,
//! `--metadata` (meta.tar.*) and `--fstree` (rootfs.tar.*), through the same confined
//! unpack, meta templates, excludes, config translation and create message as a
//! download. An archived CentOS 7 image, or anything the image server no longer has.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Filled, Prepared, Target, Template};
use crate::error::{Error, IoContext, Result};
use crate::image::budget::{Bounded, Budget};
use crate::image::fetch::Progress;
use crate::image::meta::{self, Meta};
use crate::image::{decompress, unpack};

/// The most of a metadata archive read (decompressed).
const MAX_META: u64 = 64 << 20;

pub struct Local {
    metadata: PathBuf,
    fstree: PathBuf,
    /// `CACHEPATH/local/.NAME.PID`: the decompressed tree and meta while the create
    /// runs; removed when this is dropped.
    work: PathBuf,
    max_image_size: u64,
    meta: Option<Meta>,
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
            metadata,
            fstree,
            work: cachepath
                .join("local")
                .join(format!(".{name}.{}", std::process::id())),
            max_image_size,
            meta: None,
        }
    }

    fn tar(&self) -> PathBuf {
        self.work.join("rootfs.tar")
    }

    /// The tree decompressed into a plain tar (the unpacker copies file data out of it
    /// with copy_file_range), held to `max_image_size` and the file system's free space.
    fn decompress_fstree(&self, progress: &dyn Progress) -> Result<()> {
        let what = format!("{}", self.fstree.display());
        progress.message(&format!("decompressing {what}"));
        let budget = Budget {
            what: what.clone(),
            url: "the local disk".into(),
            limit: self.max_image_size,
            limit_fix: "raise max_image_size in [download] of rlxc.toml if the image is \
                        really that large"
                .into(),
            fs_dir: self.work.clone(),
        };
        let out = std::fs::File::create(self.tar()).ctx("create", self.tar())?;
        let mut bounded = Bounded::new(out, budget.limit, crate::sys::interrupted);
        let mut input = decompress::open(&self.fstree)?;
        match std::io::copy(&mut input, &mut bounded) {
            Ok(_) => bounded.flush().ctx("write", self.tar()),
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
        self.decompress_fstree(progress)?;
        let prepared = Prepared {
            source: None,
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
        progress.message(&format!("unpacking {}", self.fstree.display()));
        let stats = unpack::unpack_file(&self.tar(), target.root, &excludes)?;
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
