//! HTTP(S) downloads: redirects, proxies from the environment, the system CA store
//! (rustls), retries of transient failures, stall detection, and errors naming the URL
//! and status.
//!
//! Timeouts, in milliseconds; the environment overrides them (the tests make them small):
//! - `RLXC_CONNECT_TIMEOUT_MS` (15000): TCP and TLS connect.
//! - `RLXC_STALL_WINDOW_MS` (30000) and `RLXC_STALL_MIN_BYTES` (1024): waiting that long
//!   for the response headers, or receiving fewer bytes than that in any such window, is
//!   a stall. A reader of an unresponsive mirror gets the error in seconds, not minutes.
//! - `RLXC_METADATA_TIMEOUT_MS` (120000): the whole of a small document (index, checksums).
//! - `RLXC_RETRY_BACKOFF_MS` (500): the first wait before a retry, doubled each time.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::image::server::Server;
use crate::sys;

/// Redirects followed before the chain counts as a loop.
const MAX_REDIRECTS: usize = 10;
/// Attempts at one download; a stalled server gets only `STALL_ATTEMPTS` of them.
const ATTEMPTS: u32 = 4;
const STALL_ATTEMPTS: u32 = 2;

/// Progress reporting, drawn by the CLI; the image layer only calls it.
pub trait Progress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
    fn message(&self, _msg: &str) {}
}

pub struct Fetcher {
    client: reqwest::blocking::Client,
    t: Timeouts,
}

/// How long to wait for what; see the module comment.
#[derive(Debug, Clone)]
struct Timeouts {
    connect: Duration,
    stall_window: Duration,
    stall_min_bytes: u64,
    metadata: Duration,
    backoff: Duration,
}

impl Timeouts {
    fn from_env() -> Self {
        let num = |var: &str, default: u64| -> u64 {
            std::env::var(var)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let ms = |var: &str, default: u64| Duration::from_millis(num(var, default));
        Timeouts {
            connect: ms("RLXC_CONNECT_TIMEOUT_MS", 15_000),
            stall_window: ms("RLXC_STALL_WINDOW_MS", 30_000).max(Duration::from_millis(1)),
            stall_min_bytes: num("RLXC_STALL_MIN_BYTES", 1024),
            metadata: ms("RLXC_METADATA_TIMEOUT_MS", 120_000),
            backoff: ms("RLXC_RETRY_BACKOFF_MS", 500),
        }
    }
}

/// "30 s", "1.5 s".
fn secs(d: Duration) -> String {
    let t = format!("{:.1}", d.as_secs_f64());
    format!("{} s", t.strip_suffix(".0").unwrap_or(&t))
}

/// Is this worth another try? Connection trouble, timeouts and 5xx/408/429 are.
fn transient_status(s: u16) -> bool {
    s == 408 || s == 429 || (500..600).contains(&s)
}

enum Failure {
    Transient(Error),
    /// Transient too, but each try costs a whole stall window: retried fewer times.
    Stalled(Error),
    Final(Error),
}

fn http_error(url: &str, msg: String) -> Error {
    Error::Http {
        url: url.to_string(),
        msg,
        status: None,
    }
}

impl Fetcher {
    /// A client for `server`. For a plain-http server the CA store is not loaded (parsing
    /// it costs tens of milliseconds on every create); an https redirect from such a server
    /// then fails certificate verification, with the URL named.
    pub fn new(server: &Server) -> Result<Self> {
        // rustls needs one process-wide crypto provider; Err only means it is set already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let t = Timeouts::from_env();
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("rlxc/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(t.connect)
            // In the blocking client this bounds each wait (for the headers, then for
            // every read), not the whole download; read_body adds the throughput floor.
            .timeout(t.stall_window)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
        if !server.is_https() {
            builder = builder.tls_certs_only(Vec::new());
        }
        let client = builder
            .build()
            .map_err(|e| Error::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Fetcher { client, t })
    }

    fn with_retries<T>(
        &self,
        url: &str,
        mut f: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let mut delay = self.t.backoff;
        let mut stalls = 0;
        for attempt in 1..=ATTEMPTS {
            // (the error, this retry's number, how many there may be)
            let (err, n, max) = match f() {
                Ok(v) => return Ok(v),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Transient(e)) => (e, attempt, ATTEMPTS - 1),
                Err(Failure::Stalled(e)) => {
                    stalls += 1;
                    (e, stalls, STALL_ATTEMPTS - 1)
                }
            };
            if n > max || attempt == ATTEMPTS {
                return Err(err);
            }
            eprintln!("warning: {err}; retrying ({n}/{max})");
            std::thread::sleep(delay);
            delay *= 2;
            if sys::interrupted() {
                return Err(Error::Interrupted);
            }
        }
        Err(Error::Other(format!("{url}: no attempt made")))
    }

    /// What a failed request means, and whether trying again can help.
    fn request_failure(&self, url: &str, e: &reqwest::Error) -> Failure {
        if e.is_redirect() {
            // A loop (or a chain that long) is the server's configuration: no retry helps.
            let last = e.url().map_or(url, |u| u.as_str());
            return Failure::Final(http_error(
                url,
                format!("redirect loop: more than {MAX_REDIRECTS} redirects, the last to {last}"),
            ));
        }
        if e.is_timeout() && e.is_connect() {
            return Failure::Transient(http_error(
                url,
                format!("cannot connect within {}", secs(self.t.connect)),
            ));
        }
        if e.is_timeout() {
            return Failure::Stalled(http_error(
                url,
                format!("stalled: no response within {}", secs(self.t.stall_window)),
            ));
        }
        let err = http_error(url, describe(e));
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
    }

    /// GET `url` with `headers`; a response of any status, or why there was none.
    fn request(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> std::result::Result<reqwest::blocking::Response, Failure> {
        let mut req = self.client.get(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().map_err(|e| self.request_failure(url, &e))
    }

    fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> std::result::Result<reqwest::blocking::Response, Failure> {
        let resp = self.request(url, headers)?;
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

    /// Read a response body into `on_data`. Fewer than `stall_min_bytes` in a stall
    /// window (or one read waiting out the window) is a stall; past `deadline`, too slow.
    /// reqwest's blocking client has no low-speed limit, so this loop is it.
    fn read_body(
        &self,
        url: &str,
        resp: &mut reqwest::blocking::Response,
        deadline: Option<Instant>,
        mut on_data: impl FnMut(&[u8]) -> std::result::Result<(), Failure>,
    ) -> std::result::Result<u64, Failure> {
        let window = self.t.stall_window;
        let mut buf = vec![0u8; 256 * 1024];
        let (mut total, mut in_window) = (0u64, 0u64);
        let mut window_start = Instant::now();
        loop {
            if sys::interrupted() {
                return Err(Failure::Final(Error::Interrupted));
            }
            let n = match resp.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(Failure::Stalled(http_error(
                        url,
                        format!("stalled: no data for {} after {total} bytes", secs(window)),
                    )))
                }
                Err(e) => {
                    return Err(Failure::Transient(http_error(
                        url,
                        format!("download broke off after {total} bytes: {}", cause(&e)),
                    )))
                }
            };
            on_data(&buf[..n])?;
            total += n as u64;
            in_window += n as u64;
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Failure::Stalled(http_error(
                    url,
                    format!(
                        "stalled: not complete within {} ({total} bytes received)",
                        secs(self.t.metadata)
                    ),
                )));
            }
            if now.duration_since(window_start) >= window {
                if in_window < self.t.stall_min_bytes {
                    return Err(Failure::Stalled(http_error(
                        url,
                        format!(
                            "stalled: {in_window} bytes in the last {}, under the {} a working mirror sends ({total} bytes in all)",
                            secs(now.duration_since(window_start)),
                            self.t.stall_min_bytes
                        ),
                    )));
                }
                (window_start, in_window) = (now, 0);
            }
        }
    }

    /// A small response's whole body, at most `limit` bytes, by `deadline`.
    fn small_body(
        &self,
        url: &str,
        resp: &mut reqwest::blocking::Response,
        deadline: Instant,
        limit: u64,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        self.read_body(url, resp, Some(deadline), |data| {
            body.extend_from_slice(data);
            if body.len() as u64 > limit {
                return Err(Failure::Final(http_error(
                    url,
                    format!("response is larger than {limit} bytes"),
                )));
            }
            Ok(())
        })?;
        Ok(body)
    }

    /// GET a small text document (index, checksums), at most `limit` bytes, within the
    /// metadata timeout.
    pub fn text(&self, url: &str, limit: u64) -> Result<String> {
        self.with_retries(url, || {
            let deadline = Instant::now() + self.t.metadata;
            let mut resp = self.send(url, &[])?;
            let body = self.small_body(url, &mut resp, deadline, limit)?;
            String::from_utf8(body)
                .map_err(|_| Failure::Final(http_error(url, "response is not UTF-8 text".into())))
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
        self.stream_with(url, &[], label, sink, progress)
    }

    /// `stream` with request headers (a registry's Authorization).
    pub fn stream_with<S: Sink>(
        &self,
        url: &str,
        headers: &[(&str, String)],
        label: &str,
        sink: &mut S,
        progress: &dyn Progress,
    ) -> Result<u64> {
        self.with_retries(url, || {
            sink.reset().map_err(Failure::Final)?;
            let mut resp = self.send(url, headers)?;
            let total = resp.content_length();
            progress.start(label, total);
            let result = self.read_body(url, &mut resp, None, |data| {
                sink.write_all(data).map_err(Failure::Final)?;
                progress.advance(data.len() as u64);
                Ok(())
            });
            progress.finish();
            let n = result?;
            if let Some(t) = total {
                if n != t {
                    return Err(Failure::Transient(http_error(
                        url,
                        format!("got {n} of {t} bytes"),
                    )));
                }
            }
            Ok(n)
        })
    }
}

/// A small response of any final status (a registry's manifest, or its 401 with the
/// challenge to answer), for protocols that decide on the status themselves.
pub struct Reply {
    pub status: u16,
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Fetcher {
    /// GET `url` with `headers`, at most `limit` bytes of body, within the metadata
    /// timeout. Transient failures are retried; any other status is the caller's.
    pub fn reply(&self, url: &str, headers: &[(&str, String)], limit: u64) -> Result<Reply> {
        self.with_retries(url, || {
            let deadline = Instant::now() + self.t.metadata;
            let mut resp = self.request(url, headers)?;
            let status = resp.status().as_u16();
            if transient_status(status) {
                return Err(Failure::Transient(Error::Http {
                    url: url.to_string(),
                    msg: format!("HTTP {}", resp.status()),
                    status: Some(status),
                }));
            }
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let body = self.small_body(url, &mut resp, deadline, limit)?;
            Ok(Reply {
                status,
                headers,
                body,
            })
        })
    }
}

/// A read that waited out the client's timeout (reqwest wraps it in an io::Error).
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// The innermost cause of an error, which says more than reqwest's "error decoding
/// response body".
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error::causes(e).last().unwrap_or(e).to_string()
}

/// Where a download goes; `reset` starts over for a retry.
pub trait Sink {
    fn write_all(&mut self, data: &[u8]) -> Result<()>;
    fn reset(&mut self) -> Result<()>;
}

/// The most specific cause reqwest knows, e.g. "connection refused".
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{what}: {}", cause(s)),
        None => what.to_string(),
    }
}
