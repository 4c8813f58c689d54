//! Framing: one JSON object per line on streams and pipes, one line per packet on the
//! sync socket (SOCK_SEQPACKET keeps message boundaries itself).

use std::io::{BufRead, Read, Write};
use std::os::fd::BorrowedFd;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{IpcError, MAX_MESSAGE};

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Plain data types only: serialising them cannot fail.
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.push(b'\n');
    line
}

fn decode<T: DeserializeOwned>(line: &[u8]) -> Result<T, IpcError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\n');
    serde_json::from_str(text)
        .map_err(|e| IpcError::Malformed(e.to_string(), text.chars().take(200).collect()))
}

/// Write one message in a single write (a pipe or socket never interleaves it).
pub fn write_msg<T: Serialize>(mut w: impl Write, msg: &T) -> Result<(), IpcError> {
    w.write_all(&encode(msg))?;
    w.flush()?;
    Ok(())
}

/// Read one message; `Closed` when the peer closed before sending anything.
pub fn read_msg<T: DeserializeOwned>(r: &mut impl BufRead) -> Result<T, IpcError> {
    let mut line = Vec::new();
    let n = r
        .take(MAX_MESSAGE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    match line.last() {
        None if n == 0 => Err(IpcError::Closed),
        Some(b'\n') => decode(&line),
        _ if line.len() > MAX_MESSAGE => Err(IpcError::TooLong),
        _ => Err(IpcError::Truncated),
    }
}

/// Read one message a byte at a time, so nothing after its newline is consumed (the
/// console: what follows the answer is the container's output).
pub fn read_line_unbuffered<T: DeserializeOwned>(mut r: impl Read) -> Result<T, IpcError> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b)? {
            0 if line.is_empty() => return Err(IpcError::Closed),
            0 => return Err(IpcError::Truncated),
            _ => {}
        }
        line.push(b[0]);
        if b[0] == b'\n' {
            return decode(&line);
        }
        if line.len() > MAX_MESSAGE {
            return Err(IpcError::TooLong);
        }
    }
}

/// Send one message as one packet.
pub fn send_packet<T: Serialize>(sock: BorrowedFd<'_>, msg: &T) -> Result<(), IpcError> {
    nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &encode(msg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

/// Receive one packet: `Ok(None)` at end of stream (the peer exec'd or exited), and
/// with `wait` false also when nothing is queued.
pub fn recv_packet<T: DeserializeOwned>(
    sock: BorrowedFd<'_>,
    wait: bool,
) -> Result<Option<T>, IpcError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let flags = if wait {
        nix::sys::socket::MsgFlags::empty()
    } else {
        nix::sys::socket::MsgFlags::MSG_DONTWAIT
    };
    match nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(&sock), &mut buf, flags) {
        Ok(0) => Ok(None),
        Ok(n) => decode(&buf[..n]).map(Some),
        Err(nix::errno::Errno::EAGAIN) if !wait => Ok(None),
        Err(e) => Err(std::io::Error::from(e).into()),
    }
}

/// Send one message as one packet with descriptors attached (SCM_RIGHTS, at most
/// `sys::pty::MAX_FDS`).
pub fn send_packet_with_fds<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), IpcError> {
    crate::sys::pty::send_fds(sock, &encode(msg), fds)?;
    Ok(())
}

/// Wait for one packet and the descriptors attached to it; `Ok(None)` at end of stream.
pub fn recv_packet_with_fds<T: DeserializeOwned>(
    sock: BorrowedFd<'_>,
) -> Result<Option<(T, Vec<std::os::fd::OwnedFd>)>, IpcError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    match crate::sys::pty::recv_fds(sock, &mut buf)? {
        (0, _) => Ok(None),
        (n, fds) => decode(&buf[..n]).map(|m| Some((m, fds))),
    }
}
