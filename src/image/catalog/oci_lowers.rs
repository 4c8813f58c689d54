//! The overlay lowers of OCI images (`CACHEPATH/lowers/oci/HEX`, one per chain id of a
//! top layer; see `image::lower`). A lower is kept while a record names its chain id
//! (a second `-B overlay` create of the image then takes no unpack) or a container in
//! lxcpath is layered on it; an image whose lower containers use is not removed, and
//! they are named. Every caller holds the blob store's lock exclusively: the creates
//! that make lowers hold it shared until their container is published.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::lowers::Layering;
use super::remove::Leftover;
use super::{scan, CachedImage, Catalog};
use crate::error::Result;
use crate::image::cache;
use crate::image::lower;
use crate::image::oci::record::Record;

/// The lower of the chain id `chain` (None: the image has none).
pub fn dir(root: &Path, chain: Option<&str>) -> Option<PathBuf> {
    lower::oci_dir(root, chain?).ok()
}

/// The lowers the records name, but for those in the files `except`.
fn named_by(root: &Path, records: &[(PathBuf, Record)], except: &[PathBuf]) -> BTreeSet<PathBuf> {
    records
        .iter()
        .filter(|(p, _)| !except.contains(p))
        .filter_map(|(_, r)| dir(root, r.chain_id.as_deref()))
        .collect()
}

/// Of the images `imgs` about to be removed, those whose lower containers use (and no
/// other record keeps), with those containers; none when containers are not looked at.
pub fn used(cat: &Catalog, imgs: &[CachedImage]) -> Result<Vec<(CachedImage, Vec<String>)>> {
    let Some(lxcpath) = &cat.lxcpath else {
        return Ok(Vec::new());
    };
    let going: Vec<PathBuf> = imgs.iter().map(|i| i.path.clone()).collect();
    let kept = named_by(cat.root(), &Record::all(cat.root()), &going);
    let mut layering = Layering::new(lxcpath);
    let mut out = Vec::new();
    for img in imgs {
        let chain = img.oci.as_ref().and_then(|o| o.chain_id.as_deref());
        let Some(l) = dir(cat.root(), chain).filter(|l| !kept.contains(l)) else {
            continue;
        };
        let users = layering.users(&l)?;
        if !users.is_empty() {
            out.push((img.clone(), users));
        }
    }
    Ok(out)
}

/// Whether `remove_unused` may find something to remove: a lower none of `images` names,
/// with the containers in view. The staging trees of creates that died are swept on the
/// way (their process is gone: no lock needed); a live create's is no lower, and no
/// reason to take the blob store's lock.
pub fn any_unnamed(cat: &Catalog, images: &[&CachedImage]) -> bool {
    if cat.lxcpath.is_none() {
        return false;
    }
    let parent = lower::oci_dirs(cat.root());
    lower::sweep_dead(&parent);
    let named: BTreeSet<&PathBuf> = images
        .iter()
        .filter_map(|i| i.oci.as_ref()?.lower.as_ref())
        .collect();
    scan::visible_dirs_at_depth(&parent, 1)
        .unwrap_or_default()
        .iter()
        .any(|l| !named.contains(l))
}

/// Remove the lowers no record names and no container uses (`only`: just these), and
/// the staging trees of creates that died. Nothing without a view of the containers.
pub fn remove_unused(cat: &Catalog, only: Option<&BTreeSet<PathBuf>>) -> Result<Vec<Leftover>> {
    let Some(lxcpath) = &cat.lxcpath else {
        return Ok(Vec::new());
    };
    let parent = lower::oci_dirs(cat.root());
    lower::sweep_dead(&parent);
    let named = named_by(cat.root(), &Record::all(cat.root()), &[]);
    let mut layering = Layering::new(lxcpath);
    let mut out = Vec::new();
    for l in scan::visible_dirs_at_depth(&parent, 1).unwrap_or_default() {
        if named.contains(&l) || only.is_some_and(|o| !o.contains(&l)) {
            continue;
        }
        if !layering.users(&l)?.is_empty() {
            continue;
        }
        let size = scan::disk_usage(&l);
        if cache::remove_entry_dir(&l)? {
            out.push(Leftover { path: l, size });
        }
    }
    Ok(out)
}
