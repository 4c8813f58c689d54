//! The OCI distribution protocol, read side, over the download code's HTTP client
//! (proxies, CA store, retries, errors naming URL and status): manifests by tag or
//! digest, blobs by digest, and the authentication registries ask for with a 401:
//! `Basic` (the credentials given) or the `Bearer` token handshake (a token from the
//! challenge's realm for its service and scope, with the credentials if any), as
//! Docker Hub and most registries do. One handshake per registry and run.

use crate::error::{Error, Result};
use crate::image::fetch::{Fetcher, Progress, Reply, Sink};
use crate::image::server::Server;

/// The most a manifest, index or config may be; real ones are a few KiB.
pub const DOC_LIMIT: u64 = 4 << 20;

pub struct Registry {
    fetcher: Fetcher,
    /// `https://HOST` of the API.
    base: String,
    /// `HOST/REPO`, for messages.
    name: String,
    repo: String,
    creds: Option<(String, String)>,
    /// The Authorization header, once a challenge was answered.
    auth: Option<String>,
    answered: bool,
}

/// RFC 4648 base64 (for a Basic header): the one place rlxc needs it.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Bearer realm="…",service="…",scope="…"`: the scheme and its parameters.
pub fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, mut rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((key.trim().to_ascii_lowercase(), value.to_string()));
        rest = next;
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Registry {
    pub fn new(
        base: &str,
        host: &str,
        repo: &str,
        creds: Option<(String, String)>,
    ) -> Result<Self> {
        Ok(Registry {
            fetcher: Fetcher::new(&Server::parse(base)?)?,
            base: base.to_string(),
            name: format!("{host}/{repo}"),
            repo: repo.to_string(),
            creds,
            auth: None,
            answered: false,
        })
    }

    fn headers(&self, accept: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(a) = accept {
            h.push(("Accept", a.to_string()));
        }
        if let Some(a) = &self.auth {
            h.push(("Authorization", a.clone()));
        }
        h
    }

    /// What to say about a 401 or 403 at `url`.
    fn denied(&self, url: &str, status: u16) -> Error {
        let how = if self.creds.is_some() {
            "the credentials given were refused: check --username and the password"
        } else {
            "give credentials with --username USER --password-stdin (the password on \
             standard input)"
        };
        Error::Http {
            url: url.to_string(),
            msg: format!(
                "HTTP {status}: the registry refuses access to {}: {how}, and check the \
                 repository name",
                self.name
            ),
            status: Some(status),
        }
    }

    /// GET with the current authorization; a 401 is answered once, then retried.
    fn get(&mut self, url: &str, accept: Option<&str>, limit: u64) -> Result<Reply> {
        loop {
            let reply = self.fetcher.reply(url, &self.headers(accept), limit)?;
            if reply.status == 401 && !self.answered {
                self.answered = true;
                let challenge = reply.header("www-authenticate").map(str::to_string);
                self.authenticate(url, challenge.as_deref())?;
                continue;
            }
            if matches!(reply.status, 401 | 403) {
                return Err(self.denied(url, reply.status));
            }
            return Ok(reply);
        }
    }

    fn authenticate(&mut self, url: &str, challenge: Option<&str>) -> Result<()> {
        let (scheme, params) = parse_challenge(challenge.unwrap_or(""));
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match scheme.as_str() {
            "basic" => {
                let Some((u, p)) = &self.creds else {
                    return Err(self.denied(url, 401));
                };
                self.auth = Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes())));
                Ok(())
            }
            "bearer" => {
                let realm = param("realm").ok_or_else(|| Error::Http {
                    url: url.to_string(),
                    msg: "the registry's Bearer challenge names no realm to get a token from"
                        .into(),
                    status: Some(401),
                })?;
                let mut token_url = reqwest::Url::parse(&realm).map_err(|e| Error::Http {
                    url: url.to_string(),
                    msg: format!("the registry's token realm {realm:?} is not a URL ({e})"),
                    status: Some(401),
                })?;
                if !matches!(token_url.scheme(), "https" | "http") {
                    return Err(Error::Http {
                        url: url.to_string(),
                        msg: format!("the token realm {realm:?} is not an http(s) URL"),
                        status: Some(401),
                    });
                }
                // Credentials never go in clear text to a realm an https registry names.
                let https = reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "https");
                if self.creds.is_some() && https && token_url.scheme() == "http" {
                    return Err(Error::Http {
                        url: url.to_string(),
                        msg: format!(
                            "the registry sends its token requests to {realm:?}, plain http: \
                             the credentials are not sent there"
                        ),
                        status: Some(401),
                    });
                }
                let scope =
                    param("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repo));
                {
                    let mut q = token_url.query_pairs_mut();
                    if let Some(s) = param("service") {
                        q.append_pair("service", &s);
                    }
                    q.append_pair("scope", &scope);
                }
                let mut headers = Vec::new();
                if let Some((u, p)) = &self.creds {
                    headers.push((
                        "Authorization",
                        format!("Basic {}", base64(format!("{u}:{p}").as_bytes())),
                    ));
                }
                let tu = token_url.to_string();
                // The realm may be another host (auth.docker.io): a client of its own.
                let fetcher =
                    Fetcher::new(&Server::parse(&token_url.origin().ascii_serialization())?)?;
                let reply = fetcher.reply(&tu, &headers, 1 << 20)?;
                if matches!(reply.status, 401 | 403) {
                    return Err(self.denied(&tu, reply.status));
                }
                if reply.status != 200 {
                    return Err(Error::Http {
                        url: tu,
                        msg: format!("HTTP {} from the token service", reply.status),
                        status: Some(reply.status),
                    });
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = serde_json::from_slice(&reply.body).map_err(|e| Error::Http {
                    url: tu.clone(),
                    msg: format!("the token service's answer is not a token ({e})"),
                    status: None,
                })?;
                let token = t.token.or(t.access_token).filter(|t| !t.is_empty());
                let token = token.ok_or_else(|| Error::Http {
                    url: tu.clone(),
                    msg: "the token service answered without a token".into(),
                    status: None,
                })?;
                if token.chars().any(|c| c.is_control() || c == ' ') {
                    return Err(Error::Http {
                        url: tu,
                        msg: "the token service's token has characters no header may hold".into(),
                        status: None,
                    });
                }
                self.auth = Some(format!("Bearer {token}"));
                Ok(())
            }
            _ => Err(self.denied(url, 401)),
        }
    }

    /// The manifest or index `reference` (a tag or a digest) names, and its media type.
    pub fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, Option<String>)> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repo);
        let reply = self.get(&url, Some(super::doc::ACCEPT), DOC_LIMIT)?;
        match reply.status {
            200 => Ok((
                reply.body.clone(),
                reply.header("content-type").map(str::to_string),
            )),
            404 => {
                let hint = self.tags_hint();
                Err(Error::NoOciImage(format!(
                    "{}: no manifest {reference:?} ({url}: HTTP 404){hint}",
                    self.name
                )))
            }
            s => Err(Error::Http {
                url,
                msg: format!("HTTP {s}: {}", String::from_utf8_lossy(&reply.body).trim()),
                status: Some(s),
            }),
        }
    }

    /// "; the repository has tags: …", when the registry says.
    fn tags_hint(&mut self) -> String {
        let url = format!("{}/v2/{}/tags/list", self.base, self.repo);
        #[derive(serde::Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        match self.get(&url, None, 1 << 20) {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<Tags>(&r.body) {
                Ok(Tags { tags: Some(t) }) if !t.is_empty() => {
                    let mut t = t;
                    t.sort();
                    t.truncate(20);
                    format!("; the repository has tags: {}", t.join(", "))
                }
                _ => "; the repository has no tags".into(),
            },
            _ => "; check the repository name and the tag".into(),
        }
    }

    /// A small blob (an image config).
    pub fn blob(&mut self, digest: &str) -> Result<Vec<u8>> {
        let url = self.blob_url(digest);
        let reply = self.get(&url, None, DOC_LIMIT)?;
        if reply.status != 200 {
            return Err(Error::Http {
                url,
                msg: format!("HTTP {} for blob {digest}", reply.status),
                status: Some(reply.status),
            });
        }
        Ok(reply.body)
    }

    fn blob_url(&self, digest: &str) -> String {
        format!("{}/v2/{}/blobs/{digest}", self.base, self.repo)
    }

    /// A layer blob streamed into `sink`.
    pub fn stream_blob<S: Sink>(
        &mut self,
        digest: &str,
        label: &str,
        sink: &mut S,
        progress: &dyn Progress,
    ) -> Result<()> {
        let url = self.blob_url(digest);
        let headers = self.headers(None);
        match self
            .fetcher
            .stream_with(&url, &headers, label, sink, progress)
        {
            Err(Error::Http {
                status: Some(s @ (401 | 403)),
                ..
            }) => Err(self.denied(&url, s)),
            r => r.map(|_| ()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_base64() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[2].1, "repository:library/alpine:pull");
        let (s, p) = parse_challenge("Basic realm=Registry");
        assert_eq!((s.as_str(), p[0].1.as_str()), ("basic", "Registry"));
        assert_eq!(base64(b"u:p"), "dTpw");
        assert_eq!(base64(b"user:pw"), "dXNlcjpwdw==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_of_an_https_registry() {
        let creds = Some(("u".to_string(), "secret".to_string()));
        let mut r = Registry::new("https://reg.example", "reg.example", "lib/app", creds).unwrap();
        // Refused before any request is made.
        let e = r
            .authenticate(
                "https://reg.example/v2/lib/app/manifests/1",
                Some(r#"Bearer realm="http://tokens.example/token",service="reg""#),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain http"), "{e}");
    }
}
