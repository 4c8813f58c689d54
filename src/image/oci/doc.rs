//! The JSON documents of an image, only the fields rlxc reads (the oci-spec crate would
//! be a large dependency for these), and the checks every one gets before use: a
//! digest is `sha256:` and 64 hex digits (it becomes a file name), media types are
//! Docker v2 schema 2 or OCI, and schema 1 is refused with a clear error.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// What a registry is asked for when a manifest is fetched.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:HEX` checked, lower-cased; anything else is refused (a digest becomes a
/// file name in the cache, and rlxc verifies only sha256).
pub fn check_digest(d: &str) -> std::result::Result<String, String> {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
        }
        Some(_) => Err(format!("{d:?} is not a sha256 digest (64 hex digits)")),
        None => Err(format!(
            "{d:?} is not a sha256 digest (rlxc verifies sha256 only)"
        )),
    }
}

/// Whether `d` is a checked digest as [`check_digest`] writes it (lower-case): the
/// only form believed where a digest already names a file.
pub fn is_canonical_digest(d: &str) -> bool {
    check_digest(d).is_ok_and(|c| c == d)
}

/// The hex part of a checked digest.
pub fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A manifest or an index: which one is told by the media type, or by the fields.
#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

pub enum Parsed {
    Index(Vec<Descriptor>),
    Manifest {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Parse a manifest or index fetched from `what`; `content_type`: the registry's header.
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Parsed> {
    let malformed = |why: String| Error::Other(format!("{what}: malformed manifest: {why}"));
    let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
    let schema1 = || {
        Error::Other(format!(
            "{what} is a Docker schema 1 manifest, which rlxc does not read (it carries no \
             verifiable image config): push the image again with a current docker, skopeo \
             or buildah, which write schema 2 or OCI"
        ))
    };
    if ct.is_some_and(|c| DOCKER_SCHEMA1.contains(&c)) {
        return Err(schema1());
    }
    let doc: Document = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not the JSON of a manifest ({e})")))?;
    if doc.schema_version == Some(1)
        || doc
            .media_type
            .as_deref()
            .is_some_and(|m| DOCKER_SCHEMA1.contains(&m))
    {
        return Err(schema1());
    }
    if doc.schema_version != Some(2) {
        return Err(malformed(format!(
            "schemaVersion {:?}, expected 2",
            doc.schema_version
        )));
    }
    let mt = doc.media_type.as_deref().or(ct).unwrap_or("");
    let check =
        |d: &Descriptor| -> Result<()> { check_digest(&d.digest).map(|_| ()).map_err(malformed) };
    match (doc.manifests, doc.config, doc.layers) {
        (Some(m), None, None) if mt.is_empty() || mt == OCI_INDEX || mt == DOCKER_LIST => {
            m.iter().try_for_each(check)?;
            Ok(Parsed::Index(m))
        }
        (None, Some(config), Some(layers))
            if mt.is_empty() || mt == OCI_MANIFEST || mt == DOCKER_MANIFEST =>
        {
            check(&config)?;
            layers.iter().try_for_each(check)?;
            Ok(Parsed::Manifest { config, layers })
        }
        _ => Err(malformed(format!(
            "neither an image index nor an image manifest (media type {mt:?})"
        ))),
    }
}

/// The image config: what the container runs and which diffs make its rootfs.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// What Docker runs: all optional, any may be null.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let c: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::Other(format!("{what}: malformed image config ({e})")))?;
        if c.rootfs.kind != "layers" {
            return Err(Error::Other(format!(
                "{what}: image config has rootfs type {:?}, expected \"layers\"",
                c.rootfs.kind
            )));
        }
        for d in &c.rootfs.diff_ids {
            check_digest(d)
                .map_err(|why| Error::Other(format!("{what}: image config diff_id {why}")))?;
        }
        Ok(c)
    }
}

impl RootFs {
    /// The chain id of the top layer (the OCI image spec's ChainID: the first diff_id,
    /// then `sha256(CHAIN + " " + DIFF_ID)` for each next one): what names the whole
    /// stack of layers, whichever manifest or compression carried them. None for an
    /// image without layers. The diff_ids were checked by `ImageConfig::parse`.
    pub fn chain_id(&self) -> Option<String> {
        let mut ids = self.diff_ids.iter().filter_map(|d| check_digest(d).ok());
        let first = ids.next()?;
        Some(ids.fold(first, |chain, diff| {
            let hex = super::blobs::sha256_hex(format!("{chain} {diff}").as_bytes());
            format!("sha256:{hex}")
        }))
    }
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

pub fn layer_compression(media_type: &str) -> Result<Compression> {
    Ok(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::Plain,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd" => Compression::Zstd,
        other => {
            return Err(Error::Other(format!(
                "layer media type {other:?} is not a tar layer rlxc reads (plain, gzip or zstd)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_apart_and_schema1_is_refused() {
        let d = format!("sha256:{}", "b".repeat(64));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse(m.as_bytes(), None, "t").unwrap(),
            Parsed::Manifest { .. }
        ));
        let i = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}","size":3}}]}}"#);
        assert!(matches!(
            parse(i.as_bytes(), Some(OCI_INDEX), "t").unwrap(),
            Parsed::Index(_)
        ));
        let s1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let e = parse(s1.as_bytes(), None, "t").err().unwrap().to_string();
        assert!(e.contains("schema 1"), "{e}");
        let bad = r#"{"schemaVersion":2,"manifests":[{"digest":"md5:1","size":3}]}"#;
        assert!(parse(bad.as_bytes(), None, "t").is_err());
        assert!(parse(b"{", None, "t").is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_ok());
        assert!(check_digest("sha256:../../etc").is_err());
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let fs = |ids: Vec<String>| RootFs {
            kind: "layers".into(),
            diff_ids: ids,
        };
        assert_eq!(fs(vec![]).chain_id(), None);
        assert_eq!(fs(vec![d('a')]).chain_id(), Some(d('a')));
        let two = format!(
            "sha256:{}",
            super::super::blobs::sha256_hex(format!("{} {}", d('a'), d('b')).as_bytes())
        );
        assert_eq!(fs(vec![d('a'), d('b')]).chain_id(), Some(two.clone()));
        let three = format!(
            "sha256:{}",
            super::super::blobs::sha256_hex(format!("{two} {}", d('c')).as_bytes())
        );
        assert_eq!(fs(vec![d('a'), d('b'), d('c')]).chain_id(), Some(three));
        assert_ne!(fs(vec![d('b'), d('a')]).chain_id(), Some(two));
    }
}
