//! HTTP(S) downloads: redirects, proxies from the environment, the system CA store
//! (native TLS), retries of transient failures, and errors naming the URL and status.

use std::io::Read;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::image::server::Server;
use crate::sys;

/// Progress reporting, drawn by the CLI; the image layer only calls it.
pub trait Progress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
    fn message(&self, _msg: &str) {}
}

pub struct Fetcher {
    client: reqwest::blocking::Client,
    attempts: u32,
    backoff: Duration,
}

/// Is this worth another try? Connection trouble, timeouts and 5xx/408/429 are.
fn transient_status(s: u16) -> bool {
    s == 408 || s == 429 || (500..600).contains(&s)
}

enum Failure {
    Transient(Error),
    Final(Error),
}

impl Fetcher {
    /// A client for `server`. For a plain-http server the CA store is not loaded (parsing
    /// it costs tens of milliseconds on every create); an https redirect from such a server
    /// then fails certificate verification, with the URL named.
    pub fn new(server: &Server) -> Result<Self> {
        // rustls needs one process-wide crypto provider; Err only means it is set already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("rlxc/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            // In the blocking client this bounds each wait (the send, then every read):
            // an idle limit, not a cap on a long download.
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(10));
        if !server.is_https() {
            builder = builder.tls_certs_only(Vec::new());
        }
        let client = builder
            .build()
            .map_err(|e| Error::Other(format!("cannot set up the HTTP client: {e}")))?;
        let backoff_ms = std::env::var("RLXC_RETRY_BACKOFF_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        Ok(Fetcher {
            client,
            attempts: 4,
            backoff: Duration::from_millis(backoff_ms),
        })
    }

    fn with_retries<T>(
        &self,
        url: &str,
        mut f: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let mut delay = self.backoff;
        for attempt in 1..=self.attempts {
            match f() {
                Ok(v) => return Ok(v),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Transient(e)) if attempt == self.attempts => return Err(e),
                Err(Failure::Transient(e)) => {
                    eprintln!("warning: {e}; retrying ({attempt}/{})", self.attempts - 1);
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
            if sys::interrupted() {
                return Err(Error::Interrupted);
            }
        }
        Err(Error::Other(format!("{url}: no attempt made")))
    }

    fn send(&self, url: &str) -> std::result::Result<reqwest::blocking::Response, Failure> {
        let resp = self.client.get(url).send().map_err(|e| {
            let err = Error::Http {
                url: url.to_string(),
                msg: describe(&e),
                status: None,
            };
            // A name that does not exist will not exist on the next try either.
            let unknown_host = matches!(&err, Error::Http { msg, .. }
                if msg.contains("Name or service not known") || msg.contains("No address associated"));
            // Nor does an untrusted certificate become trusted.
            let bad_cert = matches!(&err, Error::Http { msg, .. } if msg.contains("certificate"));
            if e.is_builder() || unknown_host || bad_cert {
                Failure::Final(err)
            } else {
                Failure::Transient(err)
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let err = Error::Http {
            url: url.to_string(),
            msg: format!("HTTP {status}"),
            status: Some(status.as_u16()),
        };
        Err(if transient_status(status.as_u16()) {
            Failure::Transient(err)
        } else {
            Failure::Final(err)
        })
    }

    /// GET a small text document (index, checksums), at most `limit` bytes.
    pub fn text(&self, url: &str, limit: u64) -> Result<String> {
        self.with_retries(url, || {
            let resp = self.send(url)?;
            let mut body = Vec::new();
            resp.take(limit + 1).read_to_end(&mut body).map_err(|e| {
                Failure::Transient(Error::Http {
                    url: url.to_string(),
                    msg: format!("reading the response failed: {e}"),
                    status: None,
                })
            })?;
            if body.len() as u64 > limit {
                return Err(Failure::Final(Error::Http {
                    url: url.to_string(),
                    msg: format!("response is larger than {limit} bytes"),
                    status: None,
                }));
            }
            String::from_utf8(body).map_err(|_| {
                Failure::Final(Error::Http {
                    url: url.to_string(),
                    msg: "response is not UTF-8 text".into(),
                    status: None,
                })
            })
        })
    }

    /// Like `text`, but a 404 is `None` (for optional files such as SHA256SUMS).
    pub fn optional_text(&self, url: &str, limit: u64) -> Result<Option<String>> {
        match self.text(url, limit) {
            Ok(t) => Ok(Some(t)),
            Err(Error::Http {
                status: Some(404), ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stream `url` into `sink` (restarted from scratch on a transient failure, so `reset`
    /// must empty the sink). Returns the byte count.
    pub fn stream<S: Sink>(
        &self,
        url: &str,
        label: &str,
        sink: &mut S,
        progress: &dyn Progress,
    ) -> Result<u64> {
        self.with_retries(url, || {
            sink.reset().map_err(Failure::Final)?;
            let mut resp = self.send(url)?;
            let total = resp.content_length();
            progress.start(label, total);
            let mut buf = vec![0u8; 256 * 1024];
            let mut n_total = 0u64;
            let result = loop {
                if sys::interrupted() {
                    break Err(Failure::Final(Error::Interrupted));
                }
                match resp.read(&mut buf) {
                    Ok(0) => break Ok(n_total),
                    Ok(n) => {
                        sink.write_all(&buf[..n]).map_err(Failure::Final)?;
                        n_total += n as u64;
                        progress.advance(n as u64);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        break Err(Failure::Transient(Error::Http {
                            url: url.to_string(),
                            msg: format!("download broke off after {n_total} bytes: {e}"),
                            status: None,
                        }))
                    }
                }
            };
            progress.finish();
            let n = result?;
            if let Some(t) = total {
                if n != t {
                    return Err(Failure::Transient(Error::Http {
                        url: url.to_string(),
                        msg: format!("got {n} of {t} bytes"),
                        status: None,
                    }));
                }
            }
            Ok(n)
        })
    }
}

/// Where a download goes; `reset` starts over for a retry.
pub trait Sink {
    fn write_all(&mut self, data: &[u8]) -> Result<()>;
    fn reset(&mut self) -> Result<()>;
}

/// The most specific cause reqwest knows, e.g. "connection refused".
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last {
        msg = format!("{msg}: {l}");
    }
    msg
}
