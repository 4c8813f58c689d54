//! The monitor's command socket: one text line per request, one line per answer.
//! "Connection refused" or a missing socket means no monitor, so no running container.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(super::socket_path(dir))
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
