//! The crate-wide error type. Every variant names the thing that failed (a path, a URL,
//! a container, an image member); `hint()` says what the sysadmin can do about it.
//! Display never repeats the source: the CLI prints the cause chain once.

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a container name may be (`name::validate` enforces it); here, so the hint needs
/// no module above this one.
pub const NAME_RULE: &str =
    "use 1-64 characters from a-z A-Z 0-9 - _ . , starting with a letter or digit, without \"..\"";

/// `config::MAX_CONFIG_SIZE` as the hint says it (a config test checks they agree).
pub const CONFIG_LIMIT: &str = "1 MiB";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{}: {msg}", file.display())]
    Config { file: PathBuf, msg: String },

    #[error("invalid container name {name:?}: {reason}")]
    BadName { name: String, reason: String },

    #[error("{0}")]
    Usage(String),

    #[error("container {name:?} already exists in {}", lxcpath.display())]
    Exists { name: String, lxcpath: PathBuf },

    #[error("container {name:?} does not exist in {}", lxcpath.display())]
    NotFound { name: String, lxcpath: PathBuf },

    #[error("container {name:?} is busy: {what}")]
    Busy { name: String, what: String },

    #[error("{url}: {msg}")]
    Http {
        url: String,
        msg: String,
        status: Option<u16>,
    },

    #[error("{0}")]
    NoImage(String),

    /// An OCI reference names no image, or none for this platform: the message says
    /// what there is (the download template's hint about -t local does not apply).
    #[error("{0}")]
    NoOciImage(String),

    /// A template program failed, or left what rlxc cannot use.
    #[error("template {template} {msg}")]
    Template { template: String, msg: String },

    #[error("checksum mismatch for {name} from {url}: SHA256SUMS says {expected}, got {actual}")]
    Checksum {
        name: String,
        url: String,
        expected: String,
        actual: String,
    },

    #[error("refusing image: {what}")]
    Hostile { what: String },

    #[error("bad image data in {what}")]
    Image {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("interrupted")]
    Interrupted,

    /// A limit stopped the step (what an image may expand to, free space); `fix` says
    /// what to do.
    #[error("{msg}")]
    Limit { msg: String, fix: String },

    /// Host ids of an unprivileged container: root's subordinate ranges in /etc/subuid
    /// and /etc/subgid, or another container's; `fix` says what to do.
    #[error("{msg}")]
    Ids { msg: String, fix: String },

    /// Host networking (bridges, DHCP/DNS, firewall); `fix` says what to do.
    #[error("{msg}")]
    Net { msg: String, fix: Option<String> },

    /// A message to or from a monitor (or another rlxc process) could not be had.
    /// `ipc` builds it (`IpcError::at`); `fault` is what callers decide on, `source`
    /// the details, so this module needs nothing of ipc.
    #[error("cannot talk to the monitor at {}", peer.display())]
    Ipc {
        peer: PathBuf,
        fault: IpcFault,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The monitor answered with an error.
    #[error("the monitor at {} says: {message}", peer.display())]
    Monitor { peer: PathBuf, message: String },

    /// `rlxc-image rm` was given a reference that no cache entry matches.
    #[error("no cached image matches {reference:?} in {}", cachepath.display())]
    NotCached {
        reference: String,
        /// What the cache has, as references.
        have: Vec<String>,
        cachepath: PathBuf,
    },

    /// A cache entry stayed in use (a create reading it) for the whole wait.
    #[error("cached image {image} is in use by {holder}; gave up after waiting {} s", waited.as_secs())]
    ImageBusy {
        image: String,
        holder: String,
        waited: std::time::Duration,
    },

    /// Containers are layered on a cache entry's overlay lower.
    #[error("cached image {image} is the overlay lower of {} {}", if containers.len() == 1 { "container" } else { "containers" }, containers.join(", "))]
    ImageUsed {
        image: String,
        containers: Vec<String>,
    },

    /// A controller file of a container's cgroup: a name rlxc-cgroup refuses, one the
    /// cgroup lacks, or a value the kernel refused; `fix` says what to do.
    #[error("{msg}")]
    Cgroup { msg: String, fix: Option<String> },

    #[error("{0}")]
    Other(String),
}

/// How an exchange with another rlxc process failed, as far as a caller decides on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcFault {
    /// The peer speaks another protocol (a monitor started by another rlxc version).
    Foreign,
    /// The peer went away mid-exchange: closed, cut short, an I/O error.
    Lost,
    /// Anything else (a message over the size limit).
    Other,
}

impl Error {
    /// An I/O failure on `path` while doing `what` ("create", "read", …).
    pub fn io(what: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn hostile(what: impl Into<String>) -> Self {
        Error::Hostile { what: what.into() }
    }

    /// What to do about it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => Some("rlxc needs root for this; run it with sudo".into()),
                _ if source.raw_os_error() == Some(libc::ENOSPC) => {
                    Some("the file system is full; free space or point lxcpath/cachepath elsewhere".into())
                }
                _ => None,
            },
            Error::Config { msg, .. } if msg.contains("regular file") || msg.contains("limit for a config file") => Some(format!(
                "name a regular TOML file of at most {CONFIG_LIMIT} (RLXC_CONFIG, `defaults` in rlxc.toml, rlxc-create -f)"
            )),
            Error::Config { .. } => Some("fix the file, or remove the key to get the built-in default".into()),
            Error::BadName { .. } => Some(NAME_RULE.into()),
            Error::Exists { name, .. } => {
                Some(format!("choose another name, or remove it first with: rlxc-destroy -n {name}"))
            }
            Error::NotFound { .. } => Some("rlxc-ls lists the containers that exist".into()),
            Error::Http { status: Some(404), .. } => {
                Some("the mirror has no such file: check --server, or list what it has with: rlxc-create -t download --list".into())
            }
            Error::Http { status: None, msg, .. } if msg.contains("certificate") => Some(
                "the server's TLS certificate is not trusted: add its CA to the system store \
                 (/usr/local/share/ca-certificates, then update-ca-certificates) or point \
                 SSL_CERT_FILE at it"
                    .into(),
            ),
            Error::Http { status: None, msg, .. } if msg.starts_with("stalled") => Some(
                "the server or the network stopped delivering: try again later, or use another \
                 --server (RLXC_STALL_WINDOW_MS and RLXC_STALL_MIN_BYTES set what counts as a stall)"
                    .into(),
            ),
            Error::Http { status: None, msg, .. } if msg.starts_with("redirect loop") => Some(
                "the server's redirects go round in a circle, which no retry fixes: tell the \
                 mirror's operators, or use another --server"
                    .into(),
            ),
            Error::Http { status: None, .. } => Some(
                "check the server name and the network (http_proxy/https_proxy are honoured); \
                 --force-cache uses a cached image without the network"
                    .into(),
            ),
            Error::Checksum { .. } => Some(
                "the download was corrupted or the mirror is inconsistent; nothing was cached: try again, or another --server"
                    .into(),
            ),
            Error::Hostile { .. } => Some(
                "the image tries to reach outside its rootfs; nothing outside was touched. Use an image from a trusted mirror"
                    .into(),
            ),
            Error::Net { fix, .. } | Error::Cgroup { fix, .. } => fix.clone(),
            Error::NoImage(_) => Some(
                "an image the server does not have (an archived CentOS 7, say) can be created \
                 from its files: rlxc-create -t local -n NAME -- --metadata meta.tar.xz \
                 --fstree rootfs.tar.xz"
                    .into(),
            ),
            Error::Ipc {
                fault: IpcFault::Foreign,
                ..
            } => Some(
                "the container was started by another rlxc version: stop it with that one, or \
                 kill it with rlxc-stop -k, and start it again with this one"
                    .into(),
            ),
            Error::Limit { fix, .. } | Error::Ids { fix, .. } => Some(fix.clone()),
            Error::Template { .. } => Some(
                "the template's own messages are above; nothing of the container was kept. \
                 rlxc-create --list-templates shows the templates there are"
                    .into(),
            ),
            Error::NotCached { have, .. } if have.is_empty() => {
                Some("the image cache is empty; creates fill it".into())
            }
            Error::NotCached { have, .. } => Some(format!(
                "the cache has: {} (rlxc-image ls shows more)",
                have.join(", ")
            )),
            Error::ImageUsed { containers, .. } => Some(format!(
                "destroy {} first (rlxc-destroy -n NAME{}), then remove the image",
                containers.join(", "),
                if containers.iter().any(|c| c.contains("(snapshot ")) {
                    "; a snapshot: rlxc-snapshot -n NAME -d SNAP"
                } else {
                    ""
                }
            )),
            Error::ImageBusy { .. } => Some(
                "a create is unpacking from it: run this again when the create has finished, \
                 or wait longer with --timeout SECONDS"
                    .into(),
            ),
            _ => None,
        }
    }

    /// A networking error with the fix named.
    pub fn net(msg: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::Net {
            msg: msg.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The causes of `e`, outermost first, `e` itself not among them.
pub fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s| s.source())
}

/// `e` and its causes on one line, "what: why: why" (status messages carry one line).
pub fn flatten(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    for s in causes(e) {
        msg += &format!(": {s}");
    }
    msg
}

/// `.ctx("read", path)` on io results: attach the operation and the path.
pub trait IoContext<T> {
    fn ctx(self, what: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, what: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(what, path, io::Error::from(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_chain_is_walked_outermost_first() {
        let inner = io::Error::other("disk on fire");
        let outer = io::Error::other(Error::io("read", "/x", inner));
        let e = Error::Image {
            what: "rootfs.tar.xz".into(),
            source: outer,
        };
        let each: Vec<String> = causes(&e).map(|s| s.to_string()).collect();
        assert_eq!(each, ["cannot read /x", "disk on fire"]);
        assert_eq!(
            flatten(&e),
            "bad image data in rootfs.tar.xz: cannot read /x: disk on fire"
        );
        assert_eq!(flatten(&Error::Interrupted), "interrupted");
        assert_eq!(causes(&Error::Interrupted).count(), 0);
    }
}
