//! Image server addresses: LXC's `host[/prefix]` (https) or full http(s) URLs, and how
//! paths are joined to them (by trimming slashes, never by relative-URL resolution).

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Base URL with no trailing slash, e.g. `https://images.linuxcontainers.org`.
    base: String,
}

impl Server {
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let bad = |why: &str| Err(Error::Usage(format!("invalid --server {spec:?}: {why}")));
        if spec.is_empty() {
            return bad("it is empty");
        }
        if spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("it contains white space");
        }
        let base = if spec.starts_with("http://") || spec.starts_with("https://") {
            spec.to_string()
        } else if spec.contains("://") {
            return bad("only http:// and https:// are supported");
        } else {
            format!("https://{spec}")
        };
        let base = base.trim_end_matches('/').to_string();
        let url = match reqwest::Url::parse(&base) {
            Ok(u) => u,
            Err(e) => return bad(&e.to_string()),
        };
        if url.host_str().is_none_or(|h| h.is_empty()) {
            return bad("it has no host name");
        }
        if url.query().is_some() || url.fragment().is_some() {
            return bad("it must not have a query or fragment");
        }
        Ok(Server { base })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base + "/" + path` with the slashes between them trimmed to one.
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn index_url(&self) -> String {
        self.join("meta/1.0/index-system")
    }

    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lxc_style_host_and_prefix_mean_https() {
        let s = Server::parse("mirrors.tuna.tsinghua.edu.cn/lxc-images").unwrap();
        assert_eq!(s.base(), "https://mirrors.tuna.tsinghua.edu.cn/lxc-images");
        assert_eq!(
            s.index_url(),
            "https://mirrors.tuna.tsinghua.edu.cn/lxc-images/meta/1.0/index-system"
        );
        assert!(s.is_https());
    }

    #[test]
    fn full_urls_are_kept_and_slashes_trimmed() {
        let s = Server::parse("http://127.0.0.1:8080/mirror//").unwrap();
        assert_eq!(
            s.join("/images/debian/bookworm/amd64/default/20261120_05:24/rootfs.tar.xz"),
            "http://127.0.0.1:8080/mirror/images/debian/bookworm/amd64/default/20261120_05:24/rootfs.tar.xz"
        );
        assert!(!s.is_https());
    }

    #[test]
    fn colon_in_build_id_survives_url_parsing() {
        let s = Server::parse("images.linuxcontainers.org").unwrap();
        let u = reqwest::Url::parse(&s.join("images/a/b/amd64/default/20261120_05:24/x")).unwrap();
        assert!(u.path().contains("20261120_05:24"), "{}", u.path());
    }

    #[test]
    fn bad_servers_are_refused() {
        for s in ["", "ftp://x", "http://", "a b", "https://x/?q=1"] {
            assert!(Server::parse(s).is_err(), "{s:?}");
        }
    }
}
