//! The download template's image side: read the index, pick the build, reuse or refresh
//! the cache, download and verify. Returns a cache entry under a shared lock.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::config::format_size;
use crate::error::{Error, IoContext, Result};
use crate::image::budget::{Bounded, Budget};
use crate::image::cache::{self, Cache, Key};
use crate::image::fetch::{Fetcher, Progress, Sink};
use crate::image::index::{self, Index, Query};
use crate::image::meta;
use crate::image::server::Server;
use crate::sys;

const INDEX_LIMIT: u64 = 32 << 20;
const XZ_MEMLIMIT: u64 = 1 << 30;
/// meta.tar holds a few files of at most 1 MiB each (meta::MAX_META_FILE).
const META_TAR_LIMIT: u64 = 64 << 20;

pub struct Request {
    pub server: Server,
    pub key: Key,
    pub flush_cache: bool,
    pub force_cache: bool,
    /// `[download] max_image_size`: the most rootfs.tar.xz may decompress to.
    pub max_image_size: u64,
}

/// Read and parse the server's index, warning about lines that were skipped.
pub fn fetch_index(fetcher: &Fetcher, server: &Server, progress: &dyn Progress) -> Result<Index> {
    let url = server.index_url();
    let text = fetcher.text(&url, INDEX_LIMIT)?;
    let idx = index::parse(&text);
    if let Some(first) = idx.malformed.first() {
        progress.message(&format!(
            "warning: skipped {} malformed line(s) of {url} (line {}: {})",
            idx.malformed.len(),
            first.line_no,
            first.reason
        ));
    }
    if idx.entries.is_empty() {
        return Err(Error::Http {
            url,
            msg: "the index lists no usable image: is this an LXC image server?".into(),
            status: None,
        });
    }
    Ok(idx)
}

/// Make sure the cache holds the requested image and return it, locked for reading.
pub fn obtain(
    req: &Request,
    cache: &Cache,
    index: Option<Index>,
    progress: &dyn Progress,
) -> Result<cache::Entry> {
    if req.flush_cache && cache.flush(&req.key)? {
        progress.message(&format!("flushed the cached {}", req.key));
    }
    if req.force_cache {
        return cache.get(&req.key)?.ok_or_else(|| {
            Error::NoImage(format!(
                "--force-cache: no cached image for {} in {}",
                req.key,
                cache_hint(cache, req)
            ))
        });
    }
    let fetcher = Fetcher::new(&req.server)?;
    let idx = match index {
        Some(i) => i,
        None => match fetch_index(&fetcher, &req.server, progress) {
            Ok(i) => i,
            Err(e) => return fall_back_to_cache(cache, req, e, progress),
        },
    };
    let mut entry = find(&idx, req)?;
    if let Some(c) = cache.get(&req.key)? {
        if c.build == entry.build {
            progress.message(&format!("using cached image {} build {}", req.key, c.build));
            return Ok(c);
        }
        progress.message(&format!(
            "cached build {} is outdated, the server has {}",
            c.build, entry.build
        ));
    }
    // Builds rotate out after a few days: on a 404, re-read the index once.
    for attempt in 0..2 {
        match download(&fetcher, cache, req, &entry, progress) {
            Err(Error::Http {
                status: Some(404), ..
            }) if attempt == 0 => {
                progress.message("build is gone from the server; re-reading the index");
                let idx = fetch_index(&fetcher, &req.server, progress)?;
                let newer = find(&idx, req)?;
                if newer.build == entry.build {
                    return download(&fetcher, cache, req, &entry, progress)
                        .and_then(|_| committed(cache, req));
                }
                entry = newer;
            }
            r => return r.and_then(|_| committed(cache, req)),
        }
    }
    committed(cache, req)
}

fn committed(cache: &Cache, req: &Request) -> Result<cache::Entry> {
    cache.get(&req.key)?.ok_or_else(|| {
        Error::Other(format!(
            "the cache entry for {} vanished after download",
            req.key
        ))
    })
}

fn cache_hint(cache: &Cache, req: &Request) -> String {
    let _ = cache;
    format!(
        "the cache; run without --force-cache to download it from {}",
        req.server
    )
}

fn fall_back_to_cache(
    cache: &Cache,
    req: &Request,
    err: Error,
    progress: &dyn Progress,
) -> Result<cache::Entry> {
    match cache.get(&req.key)? {
        Some(c) if c.is_fresh() => {
            progress.message(&format!(
                "warning: {err}; using the cached build {} of {} (not expired)",
                c.build, req.key
            ));
            Ok(c)
        }
        Some(c) => Err(Error::Other(format!(
            "{err}; the cached build {} of {} has expired: use --force-cache to use it anyway",
            c.build, req.key
        ))),
        None => Err(err),
    }
}

fn find(idx: &Index, req: &Request) -> Result<index::Entry> {
    let q = Query {
        dist: Some(req.key.dist.clone()),
        release: Some(req.key.release.clone()),
        arch: Some(req.key.arch.clone()),
        variant: Some(req.key.variant.clone()),
    };
    idx.find(&q).cloned().ok_or_else(|| {
        Error::NoImage(format!(
            "no image for {} on {}\n{}",
            req.key,
            req.server,
            idx.explain_miss(&q)
        ))
    })
}

/// Download one build into a staging directory, verify it whole, commit it.
fn download(
    fetcher: &Fetcher,
    cache: &Cache,
    req: &Request,
    entry: &index::Entry,
    progress: &dyn Progress,
) -> Result<()> {
    let base = req.server.join(&entry.path);
    let url = |name: &str| format!("{}/{name}", base.trim_end_matches('/'));
    let sums = match fetcher.optional_text(&url("SHA256SUMS"), 1 << 20)? {
        Some(t) => Some(parse_sums(&t)),
        None => {
            let how = if req.server.is_https() {
                "TLS only"
            } else {
                "nothing (plain http)"
            };
            progress.message(&format!(
                "warning: {} publishes no SHA256SUMS; integrity rests on {how}",
                base
            ));
            None
        }
    };
    let staging = cache.stage(&req.key)?;
    progress.message(&format!(
        "downloading {} build {} from {}",
        req.key, entry.build, req.server
    ));
    for (name, out) in [("rootfs.tar.xz", "rootfs.tar"), ("meta.tar.xz", "meta.tar")] {
        let mut sink = XzSink::create(staging.path.join(out), budget(req, cache, name, url(name)))?;
        fetcher.stream(&url(name), name, &mut sink, progress)?;
        let digest = sink.finish()?;
        if let Some(s) = &sums {
            verify(s, name, &url(name), &digest)?;
        }
    }
    let meta_tar = staging.path.join("meta.tar");
    let f = File::open(&meta_tar).ctx("open", &meta_tar)?;
    meta::extract(std::io::BufReader::new(f), &staging.path.join("meta"))?;
    std::fs::remove_file(&meta_tar).ctx("remove", &meta_tar)?;
    cache.commit(&req.key, staging, &entry.build, req.server.base())
}

/// What `name` (rootfs.tar.xz or meta.tar.xz) may expand to, and what to say when not.
fn budget(req: &Request, cache: &Cache, name: &str, url: String) -> Budget {
    let (limit, limit_fix) = if name == "rootfs.tar.xz" {
        (
            req.max_image_size,
            format!(
                "if the image is genuine, raise `max_image_size` under [download] in rlxc.toml \
                 (now {}); else it is a decompression bomb: use a trusted --server",
                format_size(req.max_image_size)
            ),
        )
    } else {
        let limit = META_TAR_LIMIT.min(req.max_image_size);
        let fix = format!(
            "an LXC image's {name} is a few small files, far below {}: use a trusted --server",
            format_size(limit)
        );
        (limit, fix)
    };
    Budget {
        what: format!("{name} of {}", req.key),
        url,
        limit,
        limit_fix,
        fs_dir: cache.root().to_path_buf(),
    }
}

/// `<hex>  <name>` or `<hex> *<name>` lines.
pub fn parse_sums(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (hex, name) = l.trim().split_once(char::is_whitespace)?;
            let name = name.trim_start().trim_start_matches('*');
            (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| (name.to_string(), hex.to_ascii_lowercase()))
        })
        .collect()
}

fn verify(sums: &HashMap<String, String>, name: &str, url: &str, actual: &str) -> Result<()> {
    match sums.get(name) {
        Some(exp) if exp == actual => Ok(()),
        Some(exp) => Err(Error::Checksum {
            name: name.into(),
            url: url.into(),
            expected: exp.clone(),
            actual: actual.into(),
        }),
        None => Err(Error::Checksum {
            name: name.into(),
            url: url.into(),
            expected: "nothing (the file is not listed)".into(),
            actual: actual.into(),
        }),
    }
}

/// Hashes the compressed bytes and decompresses them to a file as they arrive, so the
/// image is read once and the cache holds a tar that unpacks without decompression.
/// The output is bounded (budget.rs): a bomb stops at the size limit or before the
/// disk is full, and an interrupt stops it within a megabyte.
struct XzSink {
    path: PathBuf,
    budget: Budget,
    hasher: Sha256,
    dec: Option<xz2::write::XzDecoder<BufWriter<Bounded>>>,
}

impl XzSink {
    fn create(path: PathBuf, budget: Budget) -> Result<Self> {
        let mut s = XzSink {
            path,
            budget,
            hasher: Sha256::new(),
            dec: None,
        };
        s.reset()?;
        Ok(s)
    }

    /// What a failed write means: a spent budget, a file system error, or bad xz data.
    fn error(&self, e: std::io::Error, out: Option<&Bounded>) -> Error {
        if let Some(stop) = out.and_then(Bounded::stopped) {
            return self.budget.error(stop, out.map_or(0, Bounded::written));
        }
        if e.kind() == std::io::ErrorKind::WriteZero || e.raw_os_error().is_some() {
            return Error::io("write", &self.path, e);
        }
        Error::Image {
            what: format!("{} (not a valid xz stream)", self.budget.url),
            source: e,
        }
    }

    /// Finish decompression (a truncated stream fails here) and return the hex digest.
    fn finish(mut self) -> Result<String> {
        let mut dec = self
            .dec
            .take()
            .ok_or_else(|| Error::Other("decoder already finished".into()))?;
        let mut w = match dec.finish() {
            Ok(w) => w,
            Err(e) => return Err(self.error(e, Some(dec.get_ref().get_ref()))),
        };
        w.flush().map_err(|e| self.error(e, Some(w.get_ref())))?;
        let digest = std::mem::take(&mut self.hasher).finalize();
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl Sink for XzSink {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        let res = match self.dec.as_mut() {
            Some(d) => d.write_all(data),
            None => return Err(Error::Other("decoder already finished".into())),
        };
        res.map_err(|e| self.error(e, self.dec.as_ref().map(|d| d.get_ref().get_ref())))
    }

    fn reset(&mut self) -> Result<()> {
        // Dropping a decoder finishes its stream into its file, which is about to be
        // started over: let nothing more reach it.
        if let Some(mut old) = self.dec.take() {
            old.get_mut().get_mut().discard();
        }
        let f = File::create(&self.path).ctx("create", &self.path)?;
        let stream =
            xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, xz2::stream::CONCATENATED)
                .map_err(|e| Error::Other(format!("cannot set up xz decoder: {e}")))?;
        let out = Bounded::new(f, self.budget.limit, sys::interrupted);
        self.dec = Some(xz2::write::XzDecoder::new_stream(
            BufWriter::with_capacity(1 << 20, out),
            stream,
        ));
        self.hasher = Sha256::new();
        Ok(())
    }
}

/// The cache key for a query whose fields are all known.
pub fn key(dist: &str, release: &str, arch: &str, variant: &str) -> Key {
    Key {
        dist: dist.into(),
        release: release.into(),
        arch: arch.into(),
        variant: variant.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_parse_both_styles() {
        let h = "a".repeat(64);
        let s = parse_sums(&format!(
            "{h}  rootfs.tar.xz\n{h} *meta.tar.xz\nbogus line\n"
        ));
        assert_eq!(s.len(), 2);
        assert_eq!(s["meta.tar.xz"], h);
    }
}
