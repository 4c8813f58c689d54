//! What the blob cache holds, as images: one record per pulled (reference, platform) in
//! `CACHEPATH/oci/images/KEY.json`, naming every blob of it (the indexes on the way,
//! manifest, config, layers). `rlxc-image` lists images and blobs from these, removes an
//! image's record and the blobs no other record names, and prunes blobs none names.
//!
//! One lock guards the blob store, `CACHEPATH/oci/.sha256.lock` (the cache's rule:
//! `.NAME.lock` beside the entry `NAME`): a create holds it shared from its pull to the
//! end of its unpack, a removal exclusive, so no blob vanishes under a create and no
//! freshly fetched blob is taken for an unreferenced one before its record is written.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::blobs::sha256_hex;
use crate::error::{Error, Result};

pub const DIR: &str = "oci";
pub const RECORDS: &str = "images";
pub const BLOBS: &str = "sha256";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Index,
    Manifest,
    Config,
    Layer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: String,
    pub kind: BlobKind,
}

/// One pulled image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// As `Reference` shows it: `docker://HOST/REPO:TAG` or `oci:PATH[:TAG]`.
    pub reference: String,
    /// The registry (`docker://HOST`) or layout (`oci:PATH`), repository and tag, as a
    /// container's `[image]` records them.
    pub server: String,
    pub dist: String,
    pub release: String,
    /// Debian name of the platform pulled (`amd64`).
    pub arch: String,
    /// The manifest's digest: a container's `image.build`.
    pub manifest: String,
    /// The chain id of its top layer: what names its overlay lower
    /// (`CACHEPATH/lowers/oci/HEX`, see `image::lower`). None in records written before
    /// lowers were, and for an image without layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    pub blobs: Vec<BlobRef>,
}

impl Record {
    /// The record's file: one per reference and platform.
    pub fn path(cachepath: &Path, reference: &str, arch: &str) -> PathBuf {
        let key = sha256_hex(format!("{reference}\n{arch}").as_bytes());
        records_dir(cachepath).join(format!("{}.json", &key[..32]))
    }

    /// Write it (atomically) and mark it used now.
    pub fn save(&self, cachepath: &Path) -> Result<()> {
        let dir = records_dir(cachepath);
        crate::store::mkdir_p(&dir, 0o700)?;
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Other(format!("cannot format the image record: {e}")))?;
        crate::store::write_atomic(
            &Self::path(cachepath, &self.reference, &self.arch),
            &text,
            0o644,
        )
    }

    /// A record file; None when it is not one (a partial write cannot be: it is
    /// renamed into place, so this is a hand-edited or foreign file).
    pub fn load(path: &Path) -> Option<Record> {
        use std::io::Read;
        let mut text = Vec::new();
        File::open(path)
            .ok()?
            .take(4 << 20)
            .read_to_end(&mut text)
            .ok()?;
        let r: Record = serde_json::from_slice(&text).ok()?;
        // Digests become file names: only checked ones are believed.
        let ok = super::doc::is_canonical_digest;
        let chain_ok = r.chain_id.as_deref().is_none_or(ok);
        (ok(&r.manifest) && chain_ok && r.blobs.iter().all(|b| ok(&b.digest))).then_some(r)
    }

    /// Every record in the cache, with its file.
    pub fn all(cachepath: &Path) -> Vec<(PathBuf, Record)> {
        let mut out: Vec<(PathBuf, Record)> = std::fs::read_dir(records_dir(cachepath))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .filter_map(|p| Some((p.clone(), Record::load(&p)?)))
            .collect();
        out.sort_by(|a, b| (&a.1.reference, &a.1.arch).cmp(&(&b.1.reference, &b.1.arch)));
        out
    }
}

pub fn records_dir(cachepath: &Path) -> PathBuf {
    cachepath.join(DIR).join(RECORDS)
}

pub fn blobs_dir(cachepath: &Path) -> PathBuf {
    cachepath.join(DIR).join(BLOBS)
}

/// The blob store's lock file.
pub fn lock_path(cachepath: &Path) -> PathBuf {
    cachepath.join(DIR).join(format!(".{BLOBS}.lock"))
}

/// The store's lock, shared: what a create holds while it pulls and unpacks.
pub fn lock_shared(cachepath: &Path) -> Result<Flock<File>> {
    crate::store::mkdir_p(&cachepath.join(DIR), 0o700)?;
    crate::image::cache::lock_file(&lock_path(cachepath), FlockArg::LockShared)
}

/// The file of blob `digest` of `kind` (layers are kept decompressed, as `HEX.tar`).
pub fn blob_file(cachepath: &Path, digest: &str, kind: &BlobKind) -> PathBuf {
    let hex = super::doc::hex(digest);
    match kind {
        BlobKind::Layer => blobs_dir(cachepath).join(format!("{hex}.tar")),
        _ => blobs_dir(cachepath).join(hex),
    }
}

/// Mark `path` used now (its mtime: what `rlxc-image ls` shows as last use). Best
/// effort, as for the other caches.
pub fn touch(path: &Path) {
    if let Ok(f) = File::options().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Remove the partial files of pulls that died (`.NAME.partial.PID`, and the
/// `.NAME.tmp.PID` of an atomic write) in the blob and record directories; what was
/// removed, with its size.
pub fn sweep(cachepath: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for dir in [blobs_dir(cachepath), records_dir(cachepath)] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = dead_pid_of(&name) else {
                continue;
            };
            if crate::sys::pid_alive(pid) {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(e.path()).is_ok() {
                out.push((e.path(), size));
            }
        }
    }
    out
}

/// The pid in a work file's name `.NAME.partial.PID` or `.NAME.tmp.PID`.
fn dead_pid_of(name: &str) -> Option<i32> {
    crate::image::cache::work_name_pid(name, &["partial", "tmp"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_digests_are_not_believed() {
        let t = tempfile::tempdir().unwrap();
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let r = Record {
            reference: "docker://h:5000/lib/x:1".into(),
            server: "docker://h:5000".into(),
            dist: "lib/x".into(),
            release: "1".into(),
            arch: "amd64".into(),
            manifest: d('a'),
            chain_id: Some(d('c')),
            blobs: vec![
                BlobRef {
                    digest: d('a'),
                    kind: BlobKind::Manifest,
                },
                BlobRef {
                    digest: d('b'),
                    kind: BlobKind::Layer,
                },
            ],
        };
        r.save(t.path()).unwrap();
        let all = Record::all(t.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, r);
        let mut bad = r.clone();
        bad.arch = "arm64".into();
        bad.blobs[1].digest = "sha256:../../etc".into();
        bad.save(t.path()).unwrap();
        assert_eq!(Record::all(t.path()).len(), 1, "the bad one is passed over");
        assert_eq!(
            blob_file(t.path(), &d('b'), &BlobKind::Layer),
            t.path().join(format!("oci/sha256/{}.tar", "b".repeat(64)))
        );
    }
}
