//! An OCI image layout on disk (`oci:PATH[:TAG]`, what skopeo and umoci write):
//! `oci-layout`, `index.json` naming manifests by `org.opencontainers.image.ref.name`,
//! and `blobs/sha256/HEX`. Blobs are checked against their digests as a registry's are.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::doc::{self, Descriptor};
use crate::error::{Error, IoContext, Result};
use crate::image::fetch::Sink;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Layout {
    path: PathBuf,
}

impl Layout {
    pub fn open(path: &Path) -> Result<Self> {
        let marker = path.join("oci-layout");
        if !marker.is_file() {
            return Err(Error::Usage(format!(
                "{} is not an OCI image layout (it has no oci-layout file): name the \
                 directory skopeo copy … oci:DIR or umoci wrote",
                path.display()
            )));
        }
        Ok(Layout {
            path: path.to_path_buf(),
        })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.path.join("blobs/sha256").join(doc::hex(digest))
    }

    /// The descriptor `tag` names in index.json (none: the only one there is).
    pub fn top(&self, tag: Option<&str>) -> Result<Descriptor> {
        let index = self.path.join("index.json");
        let bytes = read_limited(&index, super::registry::DOC_LIMIT)?;
        let what = index.display().to_string();
        let doc::Parsed::Index(entries) = doc::parse(&bytes, Some(doc::OCI_INDEX), &what)? else {
            return Err(Error::Other(format!("{what}: not an image index")));
        };
        let names: Vec<&str> = entries
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        let found = match tag {
            Some(t) => entries
                .iter()
                .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(t)),
            None if entries.len() == 1 => entries.first(),
            None => None,
        };
        found.cloned().ok_or_else(|| {
            let want = tag.map_or("an image (no :TAG given)".to_string(), |t| {
                format!("tag {t:?}")
            });
            Error::NoOciImage(format!(
                "{}: no {want}; the layout has: {}",
                self.path.display(),
                if names.is_empty() {
                    "no tagged image".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })
    }

    /// A small blob (manifest, index, config), up to the document limit.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        read_limited(&self.blob_path(digest), super::registry::DOC_LIMIT)
    }

    /// A layer blob copied into `sink`.
    pub fn stream_blob<S: Sink>(&self, digest: &str, sink: &mut S) -> Result<()> {
        let p = self.blob_path(digest);
        let mut f = crate::image::decompress::open_plain(&p)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &p, e)),
            };
            if crate::sys::interrupted() {
                return Err(Error::Interrupted);
            }
            sink.write_all(&buf[..n])?;
        }
    }

    pub fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

fn read_limited(p: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = crate::image::decompress::open_plain(p)?;
    let mut out = Vec::new();
    f.take(limit + 1).read_to_end(&mut out).ctx("read", p)?;
    if out.len() as u64 > limit {
        return Err(Error::Other(format!(
            "{} is larger than the {limit} bytes a manifest or config may be",
            p.display()
        )));
    }
    Ok(out)
}
