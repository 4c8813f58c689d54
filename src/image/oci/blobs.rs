//! Blobs cached by digest under `CACHEPATH/oci/sha256/`: manifests and configs as they
//! came (`HEX`), layers decompressed (`HEX.tar`, the unpacker copies file data out of a
//! plain tar with copy_file_range). A blob is written to a hidden partial file, checked
//! against its digest (and a layer's tar against the image config's diff_id), and only
//! then renamed into place: the download cache's rule, so a cut or corrupt download is
//! never used, and two images sharing a base layer share its file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::doc::{self, Compression};
use crate::error::{Error, IoContext, Result};
use crate::image::budget::{Bounded, Budget};
use crate::image::fetch::Sink;
use crate::sys;

pub struct Blobs {
    dir: PathBuf,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex_of(Sha256::digest(data).as_slice())
}

fn hex_of(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn mismatch(what: &str, expected: &str, actual: &str) -> Error {
    Error::Other(format!(
        "{what}: digest mismatch: expected {expected}, got sha256:{actual}; nothing was \
         cached (a corrupt transfer, or a registry serving other content than it lists): \
         try again, and tell the registry's operators if it persists"
    ))
}

impl Blobs {
    pub fn new(cachepath: &Path) -> Result<Self> {
        let dir = cachepath.join("oci").join("sha256");
        crate::store::mkdir_p(&dir, 0o700)?;
        Ok(Blobs { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn small_path(&self, digest: &str) -> PathBuf {
        self.dir.join(doc::hex(digest))
    }

    pub fn layer_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}.tar", doc::hex(digest)))
    }

    fn partial(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!(".{name}.partial.{}", std::process::id()))
    }

    /// A cached manifest or config, verified again (they are small).
    pub fn get_small(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.small_path(digest)).ok()?;
        (sha256_hex(&bytes) == doc::hex(digest)).then_some(bytes)
    }

    /// Keep a manifest or config that was verified against `digest`.
    pub fn put_small(&self, digest: &str, bytes: &[u8], what: &str) -> Result<()> {
        let actual = sha256_hex(bytes);
        if actual != doc::hex(digest) {
            return Err(mismatch(what, digest, &actual));
        }
        crate::store::write_atomic(&self.small_path(digest), bytes, 0o644)
    }

    pub fn has_layer(&self, digest: &str) -> bool {
        self.layer_path(digest).is_file()
    }

    /// Where a layer is decompressed as it arrives; `finish` checks and commits it.
    pub fn layer_sink(
        &self,
        digest: &str,
        size: u64,
        diff_id: &str,
        compression: Compression,
        budget: Budget,
    ) -> Result<LayerSink> {
        let mut s = LayerSink {
            partial: Partial(self.partial(&format!("{}.tar", doc::hex(digest)))),
            dest: self.layer_path(digest),
            digest: digest.to_string(),
            size,
            diff_id: diff_id.to_string(),
            compression,
            budget,
            hasher: Sha256::new(),
            received: 0,
            dec: None,
        };
        s.reset()?;
        Ok(s)
    }
}

/// A partial file, removed unless it was renamed into place.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The uncompressed tar's writer: hashes what it passes on (the diff_id).
struct Hashing {
    out: BufWriter<Bounded>,
    hasher: Sha256,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

enum Decoder {
    Plain(Hashing),
    Gzip(Box<flate2::write::MultiGzDecoder<Hashing>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Hashing>>),
}

impl Decoder {
    fn inner(&self) -> &Hashing {
        match self {
            Decoder::Plain(h) => h,
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Zstd(d) => d.get_ref(),
        }
    }

    fn inner_mut(&mut self) -> &mut Hashing {
        match self {
            Decoder::Plain(h) => h,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Decoder::Plain(h) => h.write_all(data),
            Decoder::Gzip(d) => d.write_all(data),
            Decoder::Zstd(d) => d.write_all(data),
        }
    }

    /// The end of the stream (a cut gzip stream fails here); the tar's writer.
    fn finish(self) -> std::io::Result<Hashing> {
        match self {
            Decoder::Plain(h) => Ok(h),
            Decoder::Gzip(d) => d.finish(),
            Decoder::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner())
            }
        }
    }
}

/// Hashes the blob as it arrives and decompresses it into the partial tar.
pub struct LayerSink {
    partial: Partial,
    dest: PathBuf,
    digest: String,
    size: u64,
    diff_id: String,
    compression: Compression,
    budget: Budget,
    hasher: Sha256,
    received: u64,
    dec: Option<Decoder>,
}

impl LayerSink {
    fn error(&self, e: std::io::Error, out: Option<&Bounded>) -> Error {
        if let Some(stop) = out.and_then(Bounded::stopped) {
            return self.budget.error(stop, out.map_or(0, Bounded::written));
        }
        if e.kind() == std::io::ErrorKind::WriteZero || e.raw_os_error().is_some() {
            return Error::io("write", &self.partial.0, e);
        }
        Error::Image {
            what: format!(
                "layer {} from {} (not a valid {:?} stream)",
                self.digest, self.budget.url, self.compression
            ),
            source: e,
        }
    }

    /// Check size, digest and diff_id; then the layer is in the cache.
    pub fn finish(mut self) -> Result<PathBuf> {
        let what = format!("layer {} from {}", self.digest, self.budget.url);
        if self.received != self.size {
            return Err(Error::Other(format!(
                "{what}: truncated or oversized blob: {} bytes where the manifest says {}; \
                 nothing was cached: try again",
                self.received, self.size
            )));
        }
        let actual = hex_of(std::mem::take(&mut self.hasher).finalize().as_slice());
        if actual != doc::hex(&self.digest) {
            return Err(mismatch(&what, &self.digest, &actual));
        }
        let dec = self
            .dec
            .take()
            .ok_or_else(|| Error::Other("layer decoder already finished".into()))?;
        let mut h = match dec.finish() {
            Ok(h) => h,
            Err(e) => return Err(self.error(e, None)),
        };
        if let Err(e) = h.out.flush() {
            return Err(self.error(e, Some(h.out.get_ref())));
        }
        let tar_digest = hex_of(h.hasher.finalize().as_slice());
        if tar_digest != doc::hex(&self.diff_id) {
            return Err(mismatch(
                &format!("{what} (its uncompressed tar, the config's diff_id)"),
                &self.diff_id,
                &tar_digest,
            ));
        }
        std::fs::rename(&self.partial.0, &self.dest).ctx("rename into place", &self.dest)?;
        Ok(self.dest.clone())
    }
}

impl Sink for LayerSink {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.received += data.len() as u64;
        if self.received > self.size {
            return Err(Error::Other(format!(
                "layer {} from {}: more bytes than the {} the manifest says; nothing was cached",
                self.digest, self.budget.url, self.size
            )));
        }
        self.hasher.update(data);
        let res = match self.dec.as_mut() {
            Some(d) => d.write_all(data),
            None => return Err(Error::Other("layer decoder already finished".into())),
        };
        res.map_err(|e| self.error(e, self.dec.as_ref().map(|d| d.inner().out.get_ref())))
    }

    fn reset(&mut self) -> Result<()> {
        if let Some(mut old) = self.dec.take() {
            old.inner_mut().out.get_mut().discard();
        }
        let f = File::create(&self.partial.0).ctx("create", &self.partial.0)?;
        let out = Hashing {
            out: BufWriter::with_capacity(
                1 << 20,
                Bounded::new(f, self.budget.limit, sys::interrupted),
            ),
            hasher: Sha256::new(),
        };
        self.dec = Some(match self.compression {
            Compression::Plain => Decoder::Plain(out),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(out))),
            Compression::Zstd => Decoder::Zstd(Box::new(
                zstd::stream::write::Decoder::new(out)
                    .map_err(|e| Error::Other(format!("cannot set up the zstd decoder: {e}")))?,
            )),
        });
        self.hasher = Sha256::new();
        self.received = 0;
        Ok(())
    }
}
