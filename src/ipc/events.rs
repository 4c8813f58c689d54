//! State changes as they happen (`rlxc-monitor`, `rlxc-wait`): whoever changes a
//! container's state (its monitor; rlxc-freeze; a kill of a monitorless container)
//! announces it to every listener of the installation.
//!
//! A listener is a datagram socket of its own in `RUNPATH/events.TAG/` (TAG: the
//! installation's, see `name::installation_tag`). An announcement is one datagram, one
//! JSON object, sent to each socket there. Nothing is kept or shared: a listener that
//! dies leaves a socket nobody receives on, which the next announcer removes
//! (`ECONNREFUSED`); an announcer that dies half-way has sent to some listeners, and
//! the others miss one change, never read half of one. A listener that does not read
//! (stopped with Ctrl-Z) costs an announcer at most `SEND_WAIT` per event, then misses
//! it. Why not a log file watched with inotify: it grows until someone rotates it, and
//! rotation races its readers; datagrams need no clean-up but of dead sockets.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The states an event reports, as LXC's lxc-monitor names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    Starting,
    Running,
    Stopping,
    Stopped,
    Frozen,
    /// The start failed (STOPPED follows).
    Aborting,
}

impl Change {
    pub const ALL: [Change; 6] = [
        Change::Starting,
        Change::Running,
        Change::Stopping,
        Change::Stopped,
        Change::Frozen,
        Change::Aborting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Change::Starting => "STARTING",
            Change::Running => "RUNNING",
            Change::Stopping => "STOPPING",
            Change::Stopped => "STOPPED",
            Change::Frozen => "FROZEN",
            Change::Aborting => "ABORTING",
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change; its JSON is what `rlxc-monitor --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    pub state: Change,
    /// The installation (events of others' are not sent here, but say whose it is).
    pub lxcpath: PathBuf,
    /// init's host pid, with RUNNING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// When, in unix seconds (milliseconds as the fraction).
    pub time: f64,
}

impl Event {
    pub fn new(lxcpath: &Path, name: &str, state: Change, pid: Option<i32>) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_millis() as f64) / 1000.0)
            .unwrap_or(0.0);
        Event {
            name: name.to_string(),
            state,
            lxcpath: lxcpath.to_path_buf(),
            pid,
            time,
        }
    }
}

/// The longest an announcer waits on one listener whose queue is full.
const SEND_WAIT: Duration = Duration::from_millis(100);
/// Events are a few hundred bytes; a datagram larger than this is not one.
const MAX_EVENT: usize = 8 * 1024;

/// The installation's event directory.
pub fn dir(runpath: &Path, lxcpath: &Path) -> PathBuf {
    runpath.join(format!("events.{}", crate::name::installation_tag(lxcpath)))
}

/// `dir` opened, for short socket paths (`/proc/self/fd/N/NAME`): RUNPATH can be
/// longer than a socket address allows.
fn open_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
}

fn short(d: &std::fs::File, name: &str) -> PathBuf {
    format!("/proc/self/fd/{}/{name}", d.as_raw_fd()).into()
}

/// Tell every listener of the installation. Best effort by design: a state change
/// never fails because nobody (or a dead listener) listens.
pub fn announce(runpath: &Path, event: &Event) {
    let dir = dir(runpath, &event.lxcpath);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // no listener ever
    };
    let (Ok(d), Ok(sock), Ok(msg)) = (
        open_dir(&dir),
        UnixDatagram::unbound(),
        serde_json::to_vec(event),
    ) else {
        return;
    };
    let _ = sock.set_write_timeout(Some(SEND_WAIT));
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sock") {
            continue;
        }
        if let Err(err) = sock.send_to(&msg, short(&d, &name)) {
            if matches!(
                err.raw_os_error(),
                Some(libc::ECONNREFUSED) | Some(libc::ENOTSOCK)
            ) {
                // Its listener is gone: nobody will ever read it. The directory goes
                // with the last (as a listener's own removes it).
                let _ = std::fs::remove_file(dir.join(&name));
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

/// A listener: events of one installation arrive here from the moment it exists.
pub struct Listener {
    sock: UnixDatagram,
    path: PathBuf,
    lxcpath: PathBuf,
}

impl Listener {
    pub fn open(runpath: &Path, lxcpath: &Path) -> std::io::Result<Self> {
        let dir = dir(runpath, lxcpath);
        // Unique: a dead listener's socket may still be there under its pid.
        let rnd = crate::config::random_bytes(4);
        let name = format!(
            "{}.{:02x}{:02x}{:02x}{:02x}.sock",
            std::process::id(),
            rnd[0],
            rnd[1],
            rnd[2],
            rnd[3]
        );
        // The last listener to go removes the directory: one that goes as this one
        // comes may remove it between the mkdir and the bind. Then again.
        let mut tries = 0;
        let sock = loop {
            use std::os::unix::fs::DirBuilderExt;
            // RUNPATH stays searchable (the bridge's dnsmasq reads below it); this one
            // is root's.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(runpath)?;
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            let bound = open_dir(&dir).and_then(|d| UnixDatagram::bind(short(&d, &name)));
            match bound {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => tries += 1,
                other => break other?,
            }
        };
        Ok(Listener {
            sock,
            path: dir.join(name),
            lxcpath: lxcpath.to_path_buf(),
        })
    }

    /// The next event of this installation, or None when none came within `timeout`
    /// (None: wait as long as it takes). A datagram that is not an event (another rlxc
    /// version's) is skipped.
    pub fn recv(&self, timeout: Option<Duration>) -> std::io::Result<Option<Event>> {
        let mut buf = vec![0u8; MAX_EVENT];
        self.sock
            .set_read_timeout(timeout.filter(|t| !t.is_zero()))?;
        self.sock
            .set_nonblocking(timeout.is_some_and(|t| t.is_zero()))?;
        loop {
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            match serde_json::from_slice::<Event>(&buf[..n]) {
                Ok(ev) if ev.lxcpath == self.lxcpath => return Ok(Some(ev)),
                _ => continue,
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // Nothing of a listener stays behind; others' sockets keep it (ENOTEMPTY).
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_hears_announcements_and_a_dead_ones_socket_is_removed() {
        let run = tempfile::tempdir().unwrap();
        let lxcpath = Path::new("/var/lib/rlxc-test");
        announce(
            run.path(),
            &Event::new(lxcpath, "a", Change::Starting, None),
        );
        let l = Listener::open(run.path(), lxcpath).unwrap();
        // A killed listener's: the socket stays, nobody receives on it.
        let dead_path = dir(run.path(), lxcpath).join("1.deadbeef.sock");
        drop(UnixDatagram::bind(&dead_path).unwrap());
        assert!(dead_path.exists());
        announce(
            run.path(),
            &Event::new(lxcpath, "a", Change::Running, Some(7)),
        );
        let ev = l.recv(Some(Duration::from_secs(1))).unwrap().unwrap();
        assert_eq!(
            (ev.name.as_str(), ev.state, ev.pid),
            ("a", Change::Running, Some(7))
        );
        assert!(!dead_path.exists());
        assert!(l.recv(Some(Duration::ZERO)).unwrap().is_none());
        // Another installation's events do not arrive.
        announce(
            run.path(),
            &Event::new(Path::new("/other"), "a", Change::Stopped, None),
        );
        assert!(l.recv(Some(Duration::from_millis(50))).unwrap().is_none());
        let path = l.path.clone();
        drop(l);
        assert!(!path.exists());
        assert!(!dir(run.path(), lxcpath).exists());
    }

    #[test]
    fn states_read_as_lxc_names_them() {
        let ev = Event::new(Path::new("/l"), "web1", Change::Frozen, None);
        let text = serde_json::to_string(&ev).unwrap();
        assert!(text.contains("\"state\":\"FROZEN\""), "{text}");
        assert!(!text.contains("pid"), "{text}");
        for c in Change::ALL {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
    }
}
