//! The monitor's command socket: one text line per request, one line per answer.
//! "Connection refused" or a missing socket means no monitor, so no running container.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    let (_dir, path) = short_socket_path(dir)?;
    UnixStream::connect(path)
}

/// `dir/command` reached through an open handle on `dir`: `/proc/self/fd/N/command`.
/// A socket address holds at most 107 bytes, and RUNPATH plus a 64-byte name plus the
/// installation tag can be longer; the handle's path is always short. Keep the returned
/// handle open while the path is used.
pub fn short_socket_path(dir: &Path) -> std::io::Result<(std::fs::File, std::path::PathBuf)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let d = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let path = format!("/proc/self/fd/{}/command", d.as_raw_fd()).into();
    Ok((d, path))
}

/// Send one line, read one line back (waiting up to `timeout`, None = forever).
pub fn request(dir: &Path, line: &str, timeout: Option<Duration>) -> Result<String> {
    let s = connect(dir)
        .map_err(|e| Error::io("connect to the monitor at", super::socket_path(dir), e))?;
    exchange(s, dir, line, timeout)
}

/// `request` on a connection already made.
pub fn exchange(
    mut s: UnixStream,
    dir: &Path,
    line: &str,
    timeout: Option<Duration>,
) -> Result<String> {
    s.set_read_timeout(timeout).ok();
    writeln!(s, "{line}")
        .map_err(|e| Error::io("talk to the monitor at", super::socket_path(dir), e))?;
    let mut reply = String::new();
    BufReader::new(&s)
        .read_line(&mut reply)
        .map_err(|e| Error::io("read the monitor's answer at", super::socket_path(dir), e))?;
    let reply = reply.trim().to_string();
    if let Some(err) = reply.strip_prefix("ERR ") {
        return Err(Error::Other(err.to_string()));
    }
    Ok(reply)
}

/// "RUNNING <pid>" from a live monitor.
pub fn state(dir: &Path) -> Result<(String, i32)> {
    let r = request(dir, "state", Some(Duration::from_secs(5)))?;
    let mut it = r.split_whitespace();
    let state = it.next().unwrap_or("UNKNOWN").to_string();
    let pid = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok((state, pid))
}
