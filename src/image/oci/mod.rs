//! OCI and Docker images: where one is (`Reference`), the JSON documents that describe
//! it (hand-written serde types for the few fields rlxc reads: image index, manifest,
//! image config), the platform chosen from an index, and the pull that leaves every
//! blob verified in the cache (`pull`). Sources are a registry (`registry.rs`, the
//! distribution protocol) or an OCI image layout on disk (`layout.rs`).

pub mod blobs;
mod doc;
mod layout;
pub mod pull;
pub mod record;
mod registry;

pub use doc::{hex as digest_hex, is_canonical_digest, Platform, RunConfig};
pub use pull::{pull, PullRequest, Pulled};

use crate::error::{Error, Result};

/// `docker://` registries default to Docker Hub, as docker and skopeo do.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Where an image is: lxc-oci's `-u` forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST]`
    Registry {
        /// As written (docker.io for Docker Hub), for messages and the config.
        host: String,
        /// The API's base URL, `https://HOST` (or `http://` with --plain-http).
        base: String,
        repo: String,
        tag: Tag,
    },
    /// `oci:PATH[:TAG]`: an OCI image layout directory.
    Layout {
        path: std::path::PathBuf,
        tag: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    Name(String),
    Digest(String),
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tag::Name(t) => write!(f, ":{t}"),
            Tag::Digest(d) => write!(f, "@{d}"),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Registry {
                host, repo, tag, ..
            } => write!(f, "docker://{host}/{repo}{tag}"),
            Reference::Layout { path, tag } => match tag {
                Some(t) => write!(f, "oci:{}:{t}", path.display()),
                None => write!(f, "oci:{}", path.display()),
            },
        }
    }
}

fn usage<T>(spec: &str, why: &str) -> Result<T> {
    Err(Error::Usage(format!(
        "invalid image {spec:?}: {why}; use docker://[HOST[:PORT]/]REPO[:TAG|@sha256:…] or \
         oci:PATH[:TAG]"
    )))
}

/// A path component of a repository name, as the distribution spec allows.
fn repo_component_ok(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !t.starts_with(['.', '-'])
}

impl Reference {
    /// As a container's `[image]` records it: server (`docker://HOST` or `oci:PATH`),
    /// dist (the repository, or `layout`) and release (the tag or digest).
    pub fn names(&self) -> (String, String, String) {
        match self {
            Reference::Registry {
                host, repo, tag, ..
            } => (
                format!("docker://{host}"),
                repo.clone(),
                tag.to_string().trim_start_matches(':').to_string(),
            ),
            Reference::Layout { path, tag } => (
                format!("oci:{}", path.display()),
                "layout".into(),
                tag.clone().unwrap_or_default(),
            ),
        }
    }

    /// Parse lxc-oci's `-u` argument. `plain_http`: talk http to the registry.
    pub fn parse(spec: &str, plain_http: bool) -> Result<Self> {
        if spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return usage(spec, "it contains white space");
        }
        if let Some(rest) = spec.strip_prefix("oci:") {
            // A tag never holds '/', so the last ':' after the last '/' splits it off.
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !p.is_empty() => (p, Some(t)),
                _ => (rest, None),
            };
            if path.is_empty() {
                return usage(spec, "no layout directory");
            }
            if let Some(t) = tag.filter(|t| !tag_ok(t)) {
                return usage(spec, &format!("{t:?} is not a tag"));
            }
            // Absolute, so the cache's record names it wherever rlxc-image runs.
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
            return Ok(Reference::Layout {
                path,
                tag: tag.map(str::to_string),
            });
        }
        let Some(rest) = spec.strip_prefix("docker://") else {
            return usage(
                spec,
                "it names neither a registry (docker://) nor a layout (oci:)",
            );
        };
        let (name, tag) = if let Some((n, d)) = rest.split_once('@') {
            match doc::check_digest(d) {
                Ok(d) => (n, Tag::Digest(d)),
                Err(why) => return usage(spec, &why),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => {
                    if !tag_ok(t) {
                        return usage(spec, &format!("{t:?} is not a tag"));
                    }
                    (n, Tag::Name(t.to_string()))
                }
                _ => (rest, Tag::Name("latest".into())),
            }
        };
        let (host, repo) = match name.split_once('/') {
            Some((h, r)) if h.contains(['.', ':']) || h == "localhost" => {
                (h.to_string(), r.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let repo = if host == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        if !repo.split('/').all(repo_component_ok) {
            return usage(
                spec,
                &format!("{repo:?} is not a repository name (lower case, digits, . _ -)"),
            );
        }
        let api = if host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &host
        };
        let scheme = if plain_http { "http" } else { "https" };
        let base = format!("{scheme}://{api}");
        // The host part must make a URL (a port that is a number, no user info).
        match reqwest::Url::parse(&base) {
            Ok(u) if u.host_str().is_some() && u.path() == "/" => {}
            _ => return usage(spec, &format!("{host:?} is not a registry host")),
        }
        Ok(Reference::Registry {
            host,
            base,
            repo,
            tag,
        })
    }
}

/// The OCI platform of a Debian architecture name (`-a`, or the host's), as
/// (architecture, variant). OCI names given to -a are taken as they are.
pub fn platform_of(arch: &str) -> (String, Option<String>) {
    let (a, v) = match arch {
        "amd64" | "x86_64" => ("amd64", None),
        "arm64" | "aarch64" => ("arm64", None),
        "armhf" => ("arm", Some("v7")),
        "armel" => ("arm", Some("v6")),
        "i386" => ("386", None),
        "ppc64el" => ("ppc64le", None),
        other => match other.split_once('/') {
            Some((a, v)) => return (a.to_string(), Some(v.to_string())),
            None => (other, None),
        },
    };
    (a.to_string(), v.map(str::to_string))
}

/// The Debian name of an OCI platform, for the container's `arch`.
pub fn debian_arch(p: &Platform) -> String {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm", Some("v6" | "v5")) => "armel".into(),
        ("arm", _) => "armhf".into(),
        ("386", _) => "i386".into(),
        ("ppc64le", _) => "ppc64el".into(),
        (a, _) => a.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker_and_lxc_oci() {
        let r = Reference::parse("docker://127.0.0.1:5000/library/nginx:1.25", false).unwrap();
        assert_eq!(
            r,
            Reference::Registry {
                host: "127.0.0.1:5000".into(),
                base: "https://127.0.0.1:5000".into(),
                repo: "library/nginx".into(),
                tag: Tag::Name("1.25".into()),
            }
        );
        let r = Reference::parse("docker://alpine", true).unwrap();
        assert_eq!(r.to_string(), "docker://docker.io/library/alpine:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("docker://localhost/x/y@{d}"), false).unwrap();
        assert!(matches!(r, Reference::Registry { tag: Tag::Digest(ref x), .. } if *x == d));
        let r = Reference::parse("oci:/srv/layouts/app:v3", false).unwrap();
        assert_eq!(
            r,
            Reference::Layout {
                path: "/srv/layouts/app".into(),
                tag: Some("v3".into())
            }
        );
        for bad in [
            "nginx",
            "docker://Host.example/UPPER",
            "docker://h.example/x@sha256:12",
            "docker://h.example/x:bad/tag",
            "oci:",
            "docker://a b",
        ] {
            assert!(Reference::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms_map_both_ways() {
        for a in [
            "amd64", "arm64", "armhf", "armel", "i386", "ppc64el", "s390x",
        ] {
            let (arch, variant) = platform_of(a);
            let p = Platform {
                architecture: arch,
                os: "linux".into(),
                variant,
            };
            assert_eq!(debian_arch(&p), a);
        }
    }
}
