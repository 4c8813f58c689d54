//! Overlay lowers: an image build unpacked once, read-only, shared by every `-B overlay`
//! container made from it, at `CACHEPATH/lowers/download/DIST/REL/ARCH/VARIANT/BUILD/`,
//! or for an OCI image at `CACHEPATH/lowers/oci/CHAINID` (the hex of its top layer's
//! chain id: two references of one layer stack share it).
//!
//! Keyed by build, beside the cache rather than inside an entry: a refresh that swaps a
//! new build into the entry must not pull the tree out from under containers on the
//! old one. A lower is unpacked by the confined unpack into a hidden
//! `.BUILD.partial.PID` and renamed into place, so a half tree never looks complete;
//! the caller holds the cache entry's shared lock meanwhile (as any create reading it
//! does), which keeps `rlxc-image rm` away until the container that uses it exists.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::image::cache::{Key, STAGING_TAG};
use crate::image::fetch::Progress;
use crate::image::oci;
use crate::image::unpack;
use crate::rootfs::Root;
use crate::{store, sys};

/// Where lowers live under the cache root.
pub const LOWERS: &str = "lowers";

/// The directory holding every lower of the image `key` (one per build).
pub fn image_dir(cachepath: &Path, key: &Key) -> Result<PathBuf> {
    Ok(cachepath.join(LOWERS).join(key.rel()?))
}

/// The lower of `build` of `key`. A build id is the server's text: anything but
/// letters, digits, `-`, `_` and `.` becomes `_` (a ':' would split overlay's lowerdir).
pub fn dir(cachepath: &Path, key: &Key, build: &str) -> Result<PathBuf> {
    let name = dir_name(build)
        .ok_or_else(|| Error::hostile(format!("its build id {build:?} cannot name a directory")))?;
    Ok(image_dir(cachepath, key)?.join(name))
}

/// The directory name of `build`'s lower, None when it cannot have one.
pub fn dir_name(build: &str) -> Option<String> {
    let name: String = build
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!name.is_empty() && !name.starts_with('.')).then_some(name)
}

/// The lowers of OCI images, one per chain id.
pub const OCI: &str = "oci";

/// The lower of the OCI layer stack whose top layer has `chain_id` (`sha256:HEX`).
pub fn oci_dir(cachepath: &Path, chain_id: &str) -> Result<PathBuf> {
    // Only the canonical (lower-case) form: two spellings must not name two lowers.
    if !oci::is_canonical_digest(chain_id) {
        return Err(Error::Other(format!(
            "{chain_id:?} is not a sha256 chain id: no overlay lower can be named by it"
        )));
    }
    Ok(oci_dirs(cachepath).join(oci::digest_hex(chain_id)))
}

/// Where every OCI lower lives.
pub fn oci_dirs(cachepath: &Path) -> PathBuf {
    cachepath.join(LOWERS).join(OCI)
}

/// The lower at `dir`, unpacked from `tar` if it is not there yet. Returns what the
/// unpack did, or None when the lower already existed.
pub fn ensure_unpacked(
    dir: &Path,
    tar: &Path,
    excludes: &[String],
    progress: &dyn Progress,
) -> Result<Option<unpack::Stats>> {
    ensure(dir, progress, |root| {
        unpack::unpack_file(tar, root, excludes)
    })
}

/// The lower at `dir`, made by `fill` into an empty confined root if it is not there
/// yet. Returns what `fill` did, or None when the lower already existed.
pub fn ensure(
    dir: &Path,
    progress: &dyn Progress,
    fill: impl FnOnce(&Root) -> Result<unpack::Stats>,
) -> Result<Option<unpack::Stats>> {
    if dir.is_dir() {
        return Ok(None);
    }
    let parent = dir
        .parent()
        .ok_or_else(|| Error::Other(format!("{} has no parent", dir.display())))?;
    store::mkdir_p(parent, 0o700)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    sweep_dead(parent);
    let mut staging = Staging {
        path: parent.join(format!(".{name}.{STAGING_TAG}.{}", std::process::id())),
        kept: false,
    };
    store::remove_tree(&staging.path)?;
    std::fs::create_dir(&staging.path).ctx("create", &staging.path)?;
    progress.message(&format!("unpacking the shared lower {}", dir.display()));
    let stats = fill(&Root::open(&staging.path)?)?;
    match store::rename_noreplace(&staging.path, dir) {
        Ok(()) => staging.kept = true,
        // Another create made it meanwhile: theirs is as good; ours goes on drop.
        Err(nix::errno::Errno::EEXIST) | Err(nix::errno::Errno::ENOTEMPTY) => {}
        Err(e) => return Err(e).ctx("rename into place", dir),
    }
    Ok(Some(stats))
}

/// A staging tree, removed on drop unless renamed into place.
struct Staging {
    path: PathBuf,
    kept: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.kept {
            let _ = store::remove_tree(&self.path);
        }
    }
}

/// `.BUILD.partial.PID` of processes that died mid-unpack.
pub fn sweep_dead(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(&format!(".{STAGING_TAG}.")))
            .and_then(|(_, pid)| pid.parse::<i32>().ok());
        if pid.is_some_and(|p| p > 0 && !sys::pid_alive(p)) {
            let _ = store::remove_tree(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_id_becomes_a_plain_directory_name() {
        let key = crate::image::download::key("debian", "bookworm", "amd64", "default");
        let d = dir(Path::new("/c"), &key, "20240101_05:24").unwrap();
        assert_eq!(
            d,
            Path::new("/c/lowers/download/debian/bookworm/amd64/default/20240101_05_24")
        );
        assert!(dir(Path::new("/c"), &key, "..").is_err());
        assert!(dir(Path::new("/c"), &key, "").is_err());
        assert_eq!(
            dir(Path::new("/c"), &key, "a/b")
                .unwrap()
                .file_name()
                .unwrap(),
            "a_b"
        );
    }

    #[test]
    fn an_oci_lower_is_named_by_a_checked_chain_id_only() {
        let hex = "ab".repeat(32);
        assert_eq!(
            oci_dir(Path::new("/c"), &format!("sha256:{hex}")).unwrap(),
            Path::new("/c/lowers/oci").join(&hex)
        );
        for bad in [
            hex.clone(),
            format!("sha256:{}", &hex[..62]),
            format!("sha256:{}", "AB".repeat(32)),
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000".into(),
            "sha512:00".into(),
        ] {
            assert!(oci_dir(Path::new("/c"), &bad).is_err(), "{bad}");
        }
    }
}
