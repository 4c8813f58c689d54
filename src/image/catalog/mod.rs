//! The image cache as a sysadmin sees it (`rlxc-image ls|rm|prune`): every entry of the
//! download cache (`CACHEPATH/download/DIST/REL/ARCH/VARIANT/`), of the templates'
//! cache (`CACHEPATH/template/TEMPLATE/KEY/`) and the published images
//! (`CACHEPATH/published/ALIAS/`), what each holds and when it was last used, and
//! removing them without pulling one out from under a create. Prune never removes a
//! published image: it is the only copy of what it holds; `rm ALIAS` does.
//!
//! The OCI blob cache (`CACHEPATH/oci`) is listed as images and blobs (`oci.rs`).
//!
//! All three follow one layout rule, which is all this module relies on: an entry
//! directory `NAME` has its lock in `.NAME.lock` beside it (shared while a create reads
//! the entry, exclusive while committing or removing), work directories beside it are
//! hidden `.NAME.TAG.PID`, and a file `last_used` in it is touched on every use.

mod imgref;
pub(crate) mod locks;
mod lowers;
mod oci;
mod oci_lowers;
mod remove;
mod scan;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use crate::image::cache::now;
pub use imgref::ImageRef;
pub use oci::{OciBlob, OciImage};
pub use remove::{PruneReport, RemoveReport};
pub use scan::disk_usage;

use crate::error::Result;
use crate::image::fetch::Progress;

/// Which cache an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An image from an LXC image server (`-t download`).
    Download,
    /// A tree a template built and cached (`-t debian`).
    Template,
    /// A container made an image (`rlxc-publish`).
    Published,
    /// An OCI image pulled by `-t oci` (its record; the blobs are shared).
    Oci,
    /// One blob of the OCI cache, by digest.
    Blob,
}

/// One cache entry, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct CachedImage {
    pub kind: Kind,
    /// `download`, or the template's name.
    pub source: String,
    /// The image server (download) or what the template built from (its `source`).
    pub origin: Option<String>,
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    pub build: String,
    /// Disk use of the entry in bytes (allocated blocks, hard links counted once).
    pub size: u64,
    /// When a create last used it (unix seconds); None before its first use was stamped.
    pub last_used: Option<i64>,
    /// When the image server says to refresh it (unix seconds); download entries only.
    pub expires: Option<i64>,
    pub path: PathBuf,
    /// What a published image was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<crate::image::published::Info>,
    /// An OCI image: its reference, manifest, blobs and containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciImage>,
    /// An OCI blob: its digest, type, and the images and containers holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<OciBlob>,
}

impl CachedImage {
    /// How a user names it to `rlxc-image rm`: `SOURCE:DIST/RELEASE/ARCH/VARIANT`, or
    /// `published:ALIAS`.
    pub fn reference(&self) -> String {
        if let Some(p) = &self.published {
            return format!("{}:{}", crate::image::published::DIR, p.alias);
        }
        if let Some(o) = &self.oci {
            return o.reference.clone();
        }
        if let Some(b) = &self.blob {
            return format!("blob {}", b.digest);
        }
        format!(
            "{}:{}/{}/{}/{}",
            self.source, self.dist, self.release, self.arch, self.variant
        )
    }

    /// The server's host (and port) for a download entry.
    pub fn host(&self) -> Option<String> {
        match self.kind {
            Kind::Download => self.origin.as_deref().map(imgref::host_of),
            Kind::Template | Kind::Published | Kind::Oci | Kind::Blob => None,
        }
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }

    /// `.NAME.lock` beside the entry directory `NAME`.
    fn lock_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.lock"))
    }
}

/// The cache under one `cachepath`: list, remove, prune.
pub struct Catalog {
    root: PathBuf,
    /// Where the containers are that may be layered on an entry's overlay lower.
    lxcpath: Option<PathBuf>,
}

impl Catalog {
    pub fn new(cachepath: &Path) -> Self {
        Catalog {
            root: cachepath.to_path_buf(),
            lxcpath: None,
        }
    }

    /// Keep the entries whose overlay lowers containers in `lxcpath` use.
    pub fn with_containers_in(mut self, lxcpath: &Path) -> Self {
        self.lxcpath = Some(lxcpath.to_path_buf());
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every committed entry of the caches, sorted by kind, source, dist, release, arch,
    /// variant; then the OCI images and blobs.
    pub fn list(&self) -> Result<Vec<CachedImage>> {
        let mut all = scan::entries(&self.root)?;
        all.extend(oci::entries(&self.root, self.lxcpath.as_deref()));
        Ok(all)
    }

    /// Remove every entry that one of `refs` matches. All refs are checked first: one
    /// that matches nothing is an error before anything is removed. An entry a create
    /// is reading is waited for up to `wait`, then refused (in the report, not as an
    /// error, so the others are still removed).
    pub fn remove(
        &self,
        refs: &[ImageRef],
        wait: Duration,
        progress: &dyn Progress,
    ) -> Result<RemoveReport> {
        remove::remove(self, refs, wait, progress)
    }

    /// Remove expired download entries (every entry with `all`) that no create is
    /// using, and work directories of processes that died.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        remove::prune(self, all)
    }

    /// Remove the work directories of processes that died.
    pub fn sweep(&self) -> Vec<remove::Leftover> {
        remove::sweep(&self.root)
    }

    /// Remove (when no create reads them) the trees creates decompressed from the
    /// published image `alias`: they go with it, or with the image it replaced.
    pub fn remove_derived(&self, alias: &str) -> Vec<CachedImage> {
        remove::derived(self, alias)
    }
}
