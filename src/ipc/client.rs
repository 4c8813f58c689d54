//! The client side of a monitor's command socket (`RUNPATH/NAME.TAG/command`):
//! "connection refused" or no socket means no monitor, so no running container.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{read_line_unbuffered, read_msg, Hello, IpcError, Request, Response};
use crate::error::{Error, Result};

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("command")
}

/// `dir/command` reached through an open handle on `dir`: `/proc/self/fd/N/command`.
/// A socket address holds at most 107 bytes, and RUNPATH plus a 64-byte name plus the
/// installation tag can be longer; the handle's path is always short. Keep the returned
/// handle open while the path is used.
pub fn short_socket_path(dir: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let d = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let path = format!("/proc/self/fd/{}/command", d.as_raw_fd()).into();
    Ok((d, path))
}

pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    let (_dir, path) = short_socket_path(dir)?;
    UnixStream::connect(path)
}

fn ipc_error(dir: &Path, source: IpcError) -> Error {
    // The line-based protocol of the rlxc before this one ("RUNNING 42", "ERR …").
    let source = match source {
        IpcError::Malformed(_, line)
            if ["ERR ", "RUNNING ", "STOPPED", "OK"]
                .iter()
                .any(|p| line.starts_with(p)) =>
        {
            IpcError::Version {
                ours: super::VERSION,
                theirs: 0,
            }
        }
        other => other,
    };
    source.at(socket_path(dir))
}

/// Hello and request, in one write.
pub fn send(mut s: &UnixStream, dir: &Path, req: &Request) -> Result<()> {
    let mut buf = Vec::new();
    super::write_msg(&mut buf, &Hello::current()).map_err(|e| ipc_error(dir, e))?;
    super::write_msg(&mut buf, req).map_err(|e| ipc_error(dir, e))?;
    s.write_all(&buf)
        .map_err(|e| ipc_error(dir, IpcError::Io(e)))
}

/// The monitor's answer (waiting up to `timeout`, None = forever). `Error` answers
/// become errors.
pub fn answer(s: &UnixStream, dir: &Path, timeout: Option<Duration>) -> Result<Response> {
    s.set_read_timeout(timeout).ok();
    refusal(
        dir,
        read_msg(&mut BufReader::new(s)).map_err(|e| ipc_error(dir, e))?,
    )
}

/// An `Error` answer as an error, any other as it is.
fn refusal(dir: &Path, r: Response) -> Result<Response> {
    match r {
        Response::Error { message } => Err(Error::Monitor {
            peer: socket_path(dir),
            message,
        }),
        r => Ok(r),
    }
}

/// The answer to `Console`, read so that no console byte after it is consumed.
pub fn console_answer(s: &UnixStream, dir: &Path) -> Result<Response> {
    refusal(dir, read_line_unbuffered(s).map_err(|e| ipc_error(dir, e))?)
}

/// `send` then `answer` on a connection already made.
pub fn exchange(
    s: &UnixStream,
    dir: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<Response> {
    send(s, dir, req)?;
    answer(s, dir, timeout)
}

/// Connect, ask, answer.
pub fn request(dir: &Path, req: &Request, timeout: Option<Duration>) -> Result<Response> {
    let s =
        connect(dir).map_err(|e| Error::io("connect to the monitor at", socket_path(dir), e))?;
    exchange(&s, dir, req, timeout)
}

/// init's pid, from the live monitor on `s`.
pub fn state_on(s: &UnixStream, dir: &Path) -> Result<i32> {
    match exchange(s, dir, &Request::State, Some(Duration::from_secs(5)))? {
        Response::Running { pid } => Ok(pid),
        other => Err(ipc_error(
            dir,
            IpcError::Malformed("not a state".into(), format!("{other:?}")),
        )),
    }
}
