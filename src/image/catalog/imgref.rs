//! `[SOURCE:]DIST/RELEASE[/ARCH[/VARIANT]]`: how `rlxc-image rm` names cache entries.
//! SOURCE is `download` (any server), `download:HOST[:PORT]` (one server) or a
//! template's name; without it, both caches are searched. A published image is named
//! by its alias (`ALIAS` or `published:ALIAS`): a name without `/`.

use super::{CachedImage, Kind};
use crate::error::{Error, Result};
use crate::image::published;

const FORM: &str = "[SOURCE:]DIST/RELEASE[/ARCH[/VARIANT]], e.g. debian/bookworm or \
                    download:debian/bookworm/amd64/default, a published image's ALIAS, or an \
                    OCI image's docker://HOST/REPO:TAG or oci:PATH[:TAG]";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Any,
    Download {
        host: Option<String>,
    },
    Template(String),
    Published,
    /// An OCI image by its reference, as `Reference` shows it.
    Oci(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    text: String,
    source: Source,
    dist: String,
    release: String,
    arch: Option<String>,
    variant: Option<String>,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self> {
        if text.starts_with("docker://") || text.starts_with("oci:") {
            // As the template wrote it in the record: docker.io/library/ and :latest
            // filled in, a layout's path absolute.
            let r = crate::image::oci::Reference::parse(text, false)?;
            return Ok(ImageRef {
                text: text.to_string(),
                source: Source::Oci(r.to_string()),
                dist: String::new(),
                release: String::new(),
                arch: None,
                variant: None,
            });
        }
        let bad = |why: &str| Error::Usage(format!("image reference {text:?}: {why}; use {FORM}"));
        // The last colon: a server's `HOST:PORT` has one too, a dist or release none.
        let (source, path) = match text.rsplit_once(':') {
            Some((s, p)) => (parse_source(s).ok_or_else(|| bad("bad source"))?, p),
            None => (Source::Any, text),
        };
        let published_source = matches!(&source, Source::Template(t) if t == published::DIR);
        if !path.contains('/') && (source == Source::Any || published_source) {
            return match published::validate_alias(path) {
                Ok(()) => Ok(Self::alias(text, path)),
                Err(_) => Err(bad(&format!(
                    "{path:?} is neither DIST/RELEASE nor an alias"
                ))),
            };
        }
        let parts: Vec<&str> = path.split('/').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(bad("expected 2 to 4 names separated by '/'"));
        }
        if let Some(p) = parts.iter().find(|p| !plain(p)) {
            return Err(bad(&format!("{p:?} is not a plain name")));
        }
        let field = |i: usize| parts.get(i).map(|s| s.to_string());
        Ok(ImageRef {
            text: text.to_string(),
            source,
            dist: parts[0].to_string(),
            release: parts[1].to_string(),
            arch: field(2),
            variant: field(3),
        })
    }

    /// A published image's alias.
    fn alias(text: &str, alias: &str) -> Self {
        ImageRef {
            text: text.to_string(),
            source: Source::Published,
            dist: alias.to_string(),
            release: String::new(),
            arch: None,
            variant: None,
        }
    }

    pub fn matches(&self, img: &CachedImage) -> bool {
        if self.source == Source::Published {
            return img.published.as_ref().is_some_and(|p| p.alias == self.dist);
        }
        if let Source::Oci(r) = &self.source {
            return img.oci.as_ref().is_some_and(|o| o.reference == *r);
        }
        if matches!(img.kind, Kind::Oci | Kind::Blob) {
            return false;
        }
        let source_ok = match (&self.source, img.kind) {
            (Source::Any, _) => true,
            (Source::Download { host: None }, Kind::Download) => true,
            (Source::Download { host: Some(h) }, Kind::Download) => {
                img.host().is_some_and(|x| x.eq_ignore_ascii_case(h))
            }
            (Source::Template(t), Kind::Template) => *t == img.source,
            _ => false,
        };
        source_ok
            && self.dist == img.dist
            && self.release == img.release
            && self.arch.as_ref().is_none_or(|a| *a == img.arch)
            && self.variant.as_ref().is_none_or(|v| *v == img.variant)
    }
}

fn parse_source(s: &str) -> Option<Source> {
    if s == "download" {
        return Some(Source::Download { host: None });
    }
    if let Some(host) = s.strip_prefix("download:") {
        return (!host.is_empty() && !host.contains('/')).then(|| Source::Download {
            host: Some(host.to_string()),
        });
    }
    plain(s).then(|| Source::Template(s.to_string()))
}

/// A name that can be one directory component of the cache.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.contains(['/', ':'])
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `https://host:8443/prefix` → `host:8443`; what cannot be parsed is shown as is.
pub fn host_of(server: &str) -> String {
    match reqwest::Url::parse(server) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => server.to_string(),
        },
        Err(_) => server.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(kind: Kind, source: &str, origin: &str, d: &str, r: &str, a: &str) -> CachedImage {
        CachedImage {
            kind,
            source: source.into(),
            origin: Some(origin.into()),
            dist: d.into(),
            release: r.into(),
            arch: a.into(),
            variant: "default".into(),
            build: "20261201_05:24".into(),
            size: 0,
            last_used: None,
            expires: None,
            path: "/var/cache/rlxc/x".into(),
            published: None,
            oci: None,
            blob: None,
        }
    }

    fn published(alias: &str) -> CachedImage {
        let mut i = img(
            Kind::Published,
            "published",
            "container web1",
            "debian",
            "bookworm",
            "amd64",
        );
        i.published = Some(crate::image::published::Info {
            alias: alias.into(),
            container: "web1".into(),
            created: 0,
            arch: "amd64".into(),
            description: None,
            image: None,
            rlxc_version: "0".into(),
        });
        i
    }

    fn dl() -> CachedImage {
        img(
            Kind::Download,
            "download",
            "http://127.0.0.1:8080/lxc",
            "debian",
            "bookworm",
            "amd64",
        )
    }

    fn tpl() -> CachedImage {
        img(
            Kind::Template,
            "debian",
            "http://deb.debian.org/debian",
            "debian",
            "bookworm",
            "amd64",
        )
    }

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn a_bare_ref_matches_both_caches_by_the_fields_it_names() {
        assert!(r("debian/bookworm").matches(&dl()));
        assert!(r("debian/bookworm").matches(&tpl()));
        assert!(r("debian/bookworm/amd64/default").matches(&dl()));
        assert!(!r("debian/bookworm/arm64").matches(&dl()));
        assert!(!r("debian/bookworm/amd64/cloud").matches(&dl()));
        assert!(!r("debian/trixie").matches(&dl()));
        assert!(!r("Debian/bookworm").matches(&dl()), "names are exact");
    }

    #[test]
    fn a_source_picks_one_cache_or_one_server() {
        assert!(r("download:debian/bookworm").matches(&dl()));
        assert!(!r("download:debian/bookworm").matches(&tpl()));
        assert!(r("debian:debian/bookworm").matches(&tpl()));
        assert!(!r("debian:debian/bookworm").matches(&dl()));
        assert!(!r("ubuntu:debian/bookworm").matches(&tpl()));
        assert!(r("download:127.0.0.1:8080:debian/bookworm").matches(&dl()));
        assert!(!r("download:127.0.0.1:9090:debian/bookworm").matches(&dl()));
        assert!(!r("download:mirror.example:debian/bookworm").matches(&dl()));
    }

    #[test]
    fn a_name_without_a_slash_is_a_published_images_alias() {
        assert!(r("web-base").matches(&published("web-base")));
        assert!(r("published:web-base").matches(&published("web-base")));
        assert!(!r("web-base").matches(&published("web")));
        assert!(!r("debian").matches(&dl()) && !r("debian").matches(&tpl()));
        assert!(!r("published:debian/bookworm").matches(&published("debian")));
        for bad in ["published:../x", "a b", "download:web", "published:", ".x"] {
            let e = ImageRef::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("ALIAS"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_entry_is_matched_by_its_own_reference() {
        for e in [dl(), tpl(), published("web-base")] {
            assert!(r(&e.reference()).matches(&e), "{}", e.reference());
        }
        assert_eq!(dl().reference(), "download:debian/bookworm/amd64/default");
        assert_eq!(tpl().reference(), "debian:debian/bookworm/amd64/default");
    }

    #[test]
    fn malformed_refs_say_what_is_expected() {
        for bad in [
            "",
            "debian/bookworm/amd64/default/extra",
            "debian//amd64",
            "../etc/passwd",
            "debian/..",
            ":debian/bookworm",
            "down load:debian/bookworm",
            "download::debian/bookworm",
            "debian/.hidden",
        ] {
            let e = ImageRef::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("DIST/RELEASE"), "{bad}: {e}");
        }
    }

    #[test]
    fn hosts_keep_their_port() {
        assert_eq!(host_of("http://127.0.0.1:8080/lxc"), "127.0.0.1:8080");
        assert_eq!(
            host_of("https://images.linuxcontainers.org"),
            "images.linuxcontainers.org"
        );
        assert_eq!(host_of("not a url"), "not a url");
    }
}
