//! The OCI blob cache in the catalog (`CACHEPATH/oci`, see `image::oci::record`): each
//! pulled image (a record) and each blob, with its size, last use and who references
//! it (images by their records, containers by the manifest their `image.build` names).
//! `rm REF` removes an image's records and the blobs no other image holds; `prune`
//! removes the blobs no image holds (`--all`: every image too). Both take the blob
//! store's lock exclusively, so a create between its pull and its unpack is waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::remove::{PruneReport, RemoveReport};
use super::{locks, oci_lowers, scan, CachedImage, Catalog, Kind};
use crate::config::ContainerConfig;
use crate::error::{Error, Result};
use crate::image::fetch::Progress;
use crate::image::oci;
use crate::image::oci::record::{self, BlobKind, Record};

/// What an OCI image entry adds to the listing.
#[derive(Debug, Clone, Serialize)]
pub struct OciImage {
    /// `docker://HOST/REPO:TAG` or `oci:PATH[:TAG]`: what `rlxc-image rm` takes.
    pub reference: String,
    /// The registry (`docker://HOST`) or layout (`oci:PATH`).
    pub server: String,
    /// The manifest's digest (containers' `image.build`).
    pub manifest: String,
    /// Every blob it holds (indexes, manifest, config, layers).
    pub blobs: Vec<String>,
    /// Containers created from it.
    pub containers: Vec<String>,
    /// Its top layer's chain id, which names its overlay lower.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// The overlay lower `-B overlay` creates made of it, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<PathBuf>,
}

/// What a blob entry adds to the listing.
#[derive(Debug, Clone, Serialize)]
pub struct OciBlob {
    pub digest: String,
    /// `layer`, `manifest`, `config`, `index`; `document` for one no image names.
    #[serde(rename = "type")]
    pub kind: String,
    /// References of the images holding it; none: prune removes it.
    pub images: Vec<String>,
    /// Containers created from an image holding it.
    pub containers: Vec<String>,
}

fn kind_name(k: &BlobKind) -> &'static str {
    match k {
        BlobKind::Index => "index",
        BlobKind::Manifest => "manifest",
        BlobKind::Config => "config",
        BlobKind::Layer => "layer",
    }
}

/// Containers in `lxcpath` made from an OCI image, by its manifest digest.
fn containers_by_manifest(lxcpath: Option<&Path>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(lxcpath) = lxcpath else {
        return out;
    };
    for name in crate::store::list(lxcpath).unwrap_or_default() {
        let file = crate::store::container_dir(lxcpath, &name).join("config.toml");
        let Ok(cfg) = ContainerConfig::load(&file) else {
            continue;
        };
        if let Some(img) = cfg.image.filter(|i| i.variant == "oci") {
            out.entry(img.build).or_default().push(name);
        }
    }
    out
}

fn mtime(p: &Path) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| m.mtime())
}

/// The cached blob files, as (digest, file, is a layer's tar).
fn blob_files(root: &Path) -> Vec<(String, PathBuf, bool)> {
    let mut out: Vec<(String, PathBuf, bool)> = std::fs::read_dir(record::blobs_dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (hex, layer) = match name.strip_suffix(".tar") {
                Some(h) => (h.to_string(), true),
                None => (name, false),
            };
            let digest = format!("sha256:{hex}");
            oci::is_canonical_digest(&digest).then(|| (digest, e.path(), layer))
        })
        .collect();
    out.sort();
    out
}

/// Every OCI image and blob, images first.
pub fn entries(root: &Path, lxcpath: Option<&Path>) -> Vec<CachedImage> {
    let records = Record::all(root);
    let users = containers_by_manifest(lxcpath);
    let files = blob_files(root);
    let size_of: BTreeMap<&str, u64> = files
        .iter()
        .map(|(d, p, _)| (d.as_str(), scan::disk_usage(p)))
        .collect();
    // digest -> (kind, images, containers)
    let mut held: BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut out = Vec::new();
    for (path, r) in &records {
        let containers = users.get(&r.manifest).cloned().unwrap_or_default();
        for b in &r.blobs {
            let h = held.entry(b.digest.clone()).or_default();
            h.0 = kind_name(&b.kind).into();
            h.1.insert(r.reference.clone());
            h.2.extend(containers.iter().cloned());
        }
        out.push(CachedImage {
            kind: Kind::Oci,
            source: record::DIR.into(),
            origin: Some(r.reference.clone()),
            dist: r.dist.clone(),
            release: r.release.clone(),
            arch: r.arch.clone(),
            variant: "oci".into(),
            build: r.manifest.clone(),
            size: r
                .blobs
                .iter()
                .filter_map(|b| size_of.get(b.digest.as_str()))
                .sum(),
            last_used: mtime(path),
            expires: None,
            path: path.clone(),
            published: None,
            oci: Some(OciImage {
                reference: r.reference.clone(),
                server: r.server.clone(),
                manifest: r.manifest.clone(),
                blobs: r.blobs.iter().map(|b| b.digest.clone()).collect(),
                containers,
                chain_id: r.chain_id.clone(),
                lower: oci_lowers::dir(root, r.chain_id.as_deref()).filter(|l| l.is_dir()),
            }),
            blob: None,
        });
    }
    for (digest, path, layer) in files {
        let (kind, images, mut containers) = held.remove(&digest).unwrap_or_default();
        // A container's manifest, even when no record names it any more.
        containers.extend(users.get(&digest).into_iter().flatten().cloned());
        let kind = match (kind.is_empty(), layer) {
            (false, _) => kind,
            (true, true) => "layer".into(),
            (true, false) => "document".into(),
        };
        out.push(blob_entry(&digest, path, kind, images, containers));
    }
    out
}

fn blob_entry(
    digest: &str,
    path: PathBuf,
    kind: String,
    images: BTreeSet<String>,
    containers: BTreeSet<String>,
) -> CachedImage {
    CachedImage {
        kind: Kind::Blob,
        source: record::DIR.into(),
        origin: None,
        dist: "-".into(),
        release: "-".into(),
        arch: "-".into(),
        variant: kind.clone(),
        build: digest.to_string(),
        size: scan::disk_usage(&path),
        last_used: mtime(&path),
        expires: None,
        path,
        published: None,
        oci: None,
        blob: Some(OciBlob {
            digest: digest.to_string(),
            kind,
            images: images.into_iter().collect(),
            containers: containers.into_iter().collect(),
        }),
    }
}

/// Remove the blobs no remaining record holds; `only`: just those among these digests,
/// with the types their records said. The caller holds the store's lock exclusively.
fn remove_unheld(cat: &Catalog, only: Option<&BTreeMap<String, String>>) -> Vec<CachedImage> {
    let listed = entries(cat.root(), cat.lxcpath.as_deref());
    let mut removed = Vec::new();
    for mut b in listed.into_iter().filter(|i| i.kind == Kind::Blob) {
        let Some(info) = b.blob.as_mut() else {
            continue;
        };
        let kind = only.map(|o| o.get(&info.digest));
        if kind.is_some_and(|k| k.is_none()) || !info.images.is_empty() {
            continue;
        }
        if let Some(k) = kind.flatten().filter(|k| !k.is_empty()) {
            info.kind = k.clone();
        }
        if std::fs::remove_file(&b.path).is_ok() {
            removed.push(b);
        }
    }
    removed
}

/// `rm` of OCI images: their records, then the blobs only they held.
pub fn remove(
    cat: &Catalog,
    imgs: &[CachedImage],
    wait: Duration,
    progress: &dyn Progress,
    report: &mut RemoveReport,
) -> Result<()> {
    if imgs.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = imgs.iter().map(CachedImage::reference).collect();
    let mut on_wait = |holder: &str| {
        progress.message(&format!(
            "waiting up to {} s for the OCI blob cache to be free: in use by {holder}",
            wait.as_secs_f64().ceil() as u64,
        ))
    };
    let _lock = match locks::exclusive(&record::lock_path(cat.root()), wait, &mut on_wait)? {
        Ok(l) => l,
        Err(busy) => {
            report
                .busy
                .extend(names.into_iter().map(|image| Error::ImageBusy {
                    image,
                    holder: busy.holder.clone(),
                    waited: wait,
                }));
            return Ok(());
        }
    };
    // An image whose overlay lower containers are layered on stays, naming them.
    let used = oci_lowers::used(cat, imgs)?;
    for (img, containers) in &used {
        report.busy.push(Error::ImageUsed {
            image: img.reference(),
            containers: containers.clone(),
        });
    }
    let imgs: Vec<&CachedImage> = imgs
        .iter()
        .filter(|i| !used.iter().any(|(u, _)| u.path == i.path))
        .collect();
    // Their blobs, with the types the listing knows before the records go.
    let kinds: BTreeMap<String, String> = entries(cat.root(), None)
        .into_iter()
        .filter_map(|i| i.blob)
        .map(|b| (b.digest, b.kind))
        .collect();
    let mut theirs = BTreeMap::new();
    let mut their_lowers = BTreeSet::new();
    for img in imgs {
        match std::fs::remove_file(&img.path) {
            Ok(()) => {}
            // Removed meanwhile by another rm: nothing of it to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("remove the image record", &img.path, e)),
        }
        for d in img.oci.iter().flat_map(|o| o.blobs.iter()) {
            let kind = kinds.get(d).cloned().unwrap_or_default();
            theirs.insert(d.clone(), kind);
        }
        let chain = img.oci.as_ref().and_then(|o| o.chain_id.as_deref());
        their_lowers.extend(oci_lowers::dir(cat.root(), chain));
        report.removed.push(img.clone());
    }
    report.removed.extend(remove_unheld(cat, Some(&theirs)));
    // Their lowers, unless another image of the same layers keeps them.
    let lowers = oci_lowers::remove_unused(cat, Some(&their_lowers))?;
    report.leftovers.extend(lowers);
    Ok(())
}

/// `prune`: blobs no image holds and lowers no image names that no container uses;
/// with `all`, every image first, but those whose lower containers use.
pub fn prune(cat: &Catalog, all: bool, report: &mut PruneReport) -> Result<()> {
    let listed = entries(cat.root(), cat.lxcpath.as_deref());
    let images: Vec<&CachedImage> = listed.iter().filter(|i| i.kind == Kind::Oci).collect();
    let orphans = listed
        .iter()
        .any(|i| i.blob.as_ref().is_some_and(|b| b.images.is_empty()));
    let loose_lowers = oci_lowers::any_unnamed(cat, &images);
    if !orphans && !loose_lowers && (!all || images.is_empty()) {
        return Ok(());
    }
    let lock = locks::exclusive(&record::lock_path(cat.root()), Duration::ZERO, &mut |_| {})?;
    let _lock = match lock {
        Ok(l) => l,
        Err(busy) => {
            let held = |i: &&CachedImage| {
                (all && i.kind == Kind::Oci) || i.blob.as_ref().is_some_and(|b| b.images.is_empty())
            };
            for i in listed.iter().filter(held) {
                report.in_use.push((i.clone(), busy.holder.clone()));
            }
            return Ok(());
        }
    };
    if all {
        let owned: Vec<CachedImage> = images.into_iter().cloned().collect();
        let used = oci_lowers::used(cat, &owned)?;
        for img in owned {
            if let Some((_, users)) = used.iter().find(|(u, _)| u.path == img.path) {
                let holder = format!("the overlay lower of {}", users.join(", "));
                report.in_use.push((img, holder));
            } else if std::fs::remove_file(&img.path).is_ok() {
                report.removed.push((img, "unused"));
            }
        }
    }
    for b in remove_unheld(cat, None) {
        report.removed.push((b, "unreferenced"));
    }
    report
        .leftovers
        .extend(oci_lowers::remove_unused(cat, None)?);
    Ok(())
}
