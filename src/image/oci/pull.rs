//! A pull: the reference resolved to one manifest (an index's entry for the platform
//! asked for), its config and every layer verified into the blob cache. Layers already
//! cached (by digest, from any image) are not fetched again.

use std::path::{Path, PathBuf};

use super::blobs::Blobs;
use super::doc::{self, Descriptor, ImageConfig, Parsed, Platform};
use super::layout::Layout;
use super::record::{self, BlobKind, BlobRef, Record};
use super::registry::Registry;
use super::{Reference, Tag};
use crate::config::format_size;
use crate::error::{Error, Result};
use crate::image::budget::Budget;
use crate::image::fetch::Progress;

pub struct PullRequest<'a> {
    pub reference: &'a Reference,
    /// `-a`: a Debian or OCI architecture name; None: the host's.
    pub arch: Option<&'a str>,
    pub creds: Option<(String, String)>,
    pub cachepath: &'a Path,
    /// What all layers together may decompress to.
    pub max_image_size: u64,
}

/// A pulled image: everything in the cache, verified.
pub struct Pulled {
    /// The manifest's digest (the image's identity for this platform).
    pub digest: String,
    pub platform: Platform,
    pub config: ImageConfig,
    /// The layers' tars, in the order they are applied.
    pub layers: Vec<PathBuf>,
    /// The top layer's chain id: what names the image's overlay lower.
    pub chain_id: Option<String>,
    /// Bytes fetched (0: every layer was cached).
    pub fetched: u64,
    /// The blob store's shared lock: no removal while the layers are read.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

enum Source {
    Registry(Box<Registry>),
    Layout(Layout),
}

impl Source {
    /// A document by digest: from the cache, else fetched and verified into it.
    fn document(&mut self, blobs: &Blobs, digest: &str, what: &str) -> Result<Vec<u8>> {
        if let Some(b) = blobs.get_small(digest) {
            return Ok(b);
        }
        let bytes = match self {
            Source::Registry(r) if what == "manifest" => r.manifest(digest)?.0,
            Source::Registry(r) => r.blob(digest)?,
            Source::Layout(l) => l.blob(digest)?,
        };
        blobs.put_small(
            digest,
            &bytes,
            &format!("{what} {digest} of {}", self.name()),
        )?;
        Ok(bytes)
    }

    fn name(&self) -> String {
        match self {
            Source::Registry(r) => r.name().to_string(),
            Source::Layout(l) => l.describe(),
        }
    }
}

/// Pull `req.reference` for the platform asked for.
pub fn pull(req: &PullRequest, progress: &dyn Progress) -> Result<Pulled> {
    let lock = record::lock_shared(req.cachepath)?;
    let blobs = Blobs::new(req.cachepath)?;
    record::sweep(req.cachepath);
    let (arch, variant) = super::platform_of(
        &req.arch
            .map(str::to_string)
            .unwrap_or_else(crate::image::arch::host),
    );
    let mut source;
    // The top document: a manifest or an index, and its media type.
    let (mut bytes, mut media_type, mut digest) = match req.reference {
        Reference::Registry {
            host,
            base,
            repo,
            tag,
        } => {
            let mut r = Registry::new(base, host, repo, req.creds.clone())?;
            progress.message(&format!("resolving {}", req.reference));
            let (b, ct, d) = match tag {
                Tag::Name(t) => {
                    let (b, ct) = r.manifest(t)?;
                    let d = format!("sha256:{}", super::blobs::sha256_hex(&b));
                    // Kept as every blob of the image is (a tag is asked again each time).
                    blobs.put_small(&d, &b, &format!("manifest {d} of {}", r.name()))?;
                    (b, ct, d)
                }
                Tag::Digest(d) => {
                    let (b, ct) = r.manifest(d)?;
                    blobs.put_small(d, &b, &format!("manifest {d} of {}", r.name()))?;
                    (b, ct, d.clone())
                }
            };
            source = Source::Registry(Box::new(r));
            (b, ct, d)
        }
        Reference::Layout { path, tag } => {
            let l = Layout::open(path)?;
            let top = l.top(tag.as_deref())?;
            source = Source::Layout(l);
            let b = source.document(&blobs, &top.digest, "manifest")?;
            (b, Some(top.media_type.clone()), top.digest.clone())
        }
    };
    let what = req.reference.to_string();
    // Every blob the image holds, for its record.
    let mut held = Vec::new();
    // An index leads to a manifest (an index of indexes, one level more).
    let mut depth = 0;
    let (config_desc, layer_descs) = loop {
        match doc::parse(&bytes, media_type.as_deref(), &what)? {
            Parsed::Manifest { config, layers } => break (config, layers),
            Parsed::Index(entries) => {
                held.push(BlobRef {
                    digest: digest.clone(),
                    kind: BlobKind::Index,
                });
                depth += 1;
                if depth > 2 {
                    return Err(Error::Other(format!(
                        "{what}: malformed manifest: indexes nested more than two deep"
                    )));
                }
                let chosen = choose(&entries, &arch, variant.as_deref(), &what)?.clone();
                media_type = Some(chosen.media_type).filter(|m| !m.is_empty());
                bytes = source.document(&blobs, &chosen.digest, "manifest")?;
                digest = chosen.digest;
            }
        }
    };
    let config_bytes = source.document(&blobs, &config_desc.digest, "config")?;
    let config = ImageConfig::parse(&config_bytes, &format!("the config of {what}"))?;
    let platform = Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: config.variant.clone(),
    };
    if config.architecture != arch || (config.os != "linux" && !config.os.is_empty()) {
        return Err(Error::NoOciImage(format!(
            "{what} is for {platform}, not linux/{arch}: choose the architecture with -a (the \
             image's: -a {})",
            super::debian_arch(&platform)
        )));
    }
    if config.rootfs.diff_ids.len() != layer_descs.len() {
        return Err(Error::Other(format!(
            "{what}: malformed manifest: {} layers, but its config lists {} diff_ids",
            layer_descs.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let (layers, fetched) = fetch_layers(
        &mut source,
        &blobs,
        &layer_descs,
        &config.rootfs.diff_ids,
        req,
        progress,
    )?;
    let (server, dist, release) = req.reference.names();
    held.push(BlobRef {
        digest: digest.clone(),
        kind: BlobKind::Manifest,
    });
    held.push(BlobRef {
        digest: config_desc.digest.clone(),
        kind: BlobKind::Config,
    });
    held.extend(layer_descs.iter().map(|d| BlobRef {
        digest: d.digest.clone(),
        kind: BlobKind::Layer,
    }));
    let rec = Record {
        reference: what,
        server,
        dist,
        release,
        arch: super::debian_arch(&platform),
        manifest: digest.clone(),
        chain_id: config.rootfs.chain_id(),
        blobs: held,
    };
    rec.save(req.cachepath)?;
    for b in &rec.blobs {
        record::touch(&record::blob_file(req.cachepath, &b.digest, &b.kind));
    }
    Ok(Pulled {
        chain_id: rec.chain_id.clone(),
        digest,
        platform,
        config,
        layers,
        fetched,
        _lock: lock,
    })
}

/// The index entry for linux/`arch`[/`variant`]; none is an error naming what there is.
fn choose<'a>(
    entries: &'a [Descriptor],
    arch: &str,
    variant: Option<&str>,
    what: &str,
) -> Result<&'a Descriptor> {
    let linux = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os == "linux");
    let fits = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.architecture == arch
                && match (variant, p.variant.as_deref()) {
                    (Some(w), Some(v)) => w == v,
                    _ => true,
                }
        })
    };
    if let Some(d) = entries.iter().filter(linux).find(fits) {
        return Ok(d);
    }
    // An index without platforms (a layout's index.json entry) means its one image.
    if let [only] = entries {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let have: Vec<String> = entries
        .iter()
        .filter(linux)
        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
        .collect();
    let want = Platform {
        architecture: arch.to_string(),
        os: "linux".into(),
        variant: variant.map(str::to_string),
    };
    Err(Error::NoOciImage(format!(
        "{what} has no image for {want}; it has: {} (choose one with -a, e.g. -a {})",
        if have.is_empty() {
            "none for linux".to_string()
        } else {
            have.join(", ")
        },
        entries
            .iter()
            .filter(linux)
            .find_map(|d| d.platform.as_ref().map(super::debian_arch))
            .unwrap_or_else(|| "amd64".into())
    )))
}

fn fetch_layers(
    source: &mut Source,
    blobs: &Blobs,
    descs: &[Descriptor],
    diff_ids: &[String],
    req: &PullRequest,
    progress: &dyn Progress,
) -> Result<(Vec<PathBuf>, u64)> {
    let mut out = Vec::new();
    let mut fetched = 0;
    let mut budget_left = req.max_image_size;
    for (i, (d, diff_id)) in descs.iter().zip(diff_ids).enumerate() {
        let short = &doc::hex(&d.digest)[..12];
        let path = blobs.layer_path(&d.digest);
        if blobs.has_layer(&d.digest) {
            progress.message(&format!("layer {}/{} {short}: cached", i + 1, descs.len()));
            budget_left = budget_left.saturating_sub(file_len(&path));
            out.push(path);
            continue;
        }
        let compression = doc::layer_compression(&d.media_type)?;
        let budget = Budget {
            what: format!("layer {short} of {}", req.reference),
            url: source.name(),
            limit: budget_left,
            limit_fix: format!(
                "if the image is genuine, raise `max_image_size` under [download] in \
                 rlxc.toml (now {}); else it is a decompression bomb: use a trusted image",
                format_size(req.max_image_size)
            ),
            fs_dir: blobs.dir().to_path_buf(),
        };
        let mut sink = blobs.layer_sink(&d.digest, d.size, diff_id, compression, budget)?;
        let label = format!("layer {}/{} {short}", i + 1, descs.len());
        match source {
            Source::Registry(r) => r.stream_blob(&d.digest, &label, &mut sink, progress)?,
            Source::Layout(l) => {
                progress.message(&label);
                l.stream_blob(&d.digest, &mut sink)?
            }
        }
        let path = sink.finish()?;
        fetched += d.size;
        budget_left = budget_left.saturating_sub(file_len(&path));
        out.push(path);
    }
    Ok((out, fetched))
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
