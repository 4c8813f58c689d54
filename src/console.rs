//! The console client: attach this terminal to a container's console through its
//! monitor. Ctrl-a q detaches (Ctrl-a a sends a literal Ctrl-a); the window size follows
//! this terminal; the monitor replays recent output first.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios;

use crate::error::{Error, Result};
use crate::ipc::{client, Request, Response};

const CTRL_A: u8 = 0x01;

/// The escape on what the user types: Ctrl-a q detaches, Ctrl-a a and Ctrl-a Ctrl-a send
/// one Ctrl-a, Ctrl-a followed by anything else sends both bytes. A Ctrl-a at the end of
/// one read waits for the next.
#[derive(Default)]
struct EscapeFilter {
    saw_escape: bool,
}

impl EscapeFilter {
    /// The bytes to send for `input`, and whether it asked to detach; nothing after the q
    /// counts (it was typed to the local terminal, not to the container).
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut fwd = Vec::with_capacity(input.len() + 1);
        for &c in input {
            if self.saw_escape {
                self.saw_escape = false;
                match c {
                    b'q' => return (fwd, true),
                    CTRL_A | b'a' => fwd.push(CTRL_A),
                    other => fwd.extend([CTRL_A, other]),
                }
            } else if c == CTRL_A {
                self.saw_escape = true;
            } else {
                fwd.push(c);
            }
        }
        (fwd, false)
    }
}

pub enum Ended {
    Detached,
    ContainerStopped,
}

/// Raw mode for the life of the guard.
pub(crate) struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: termios::Termios,
}

impl<'a> RawMode<'a> {
    pub(crate) fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, termios::SetArg::TCSANOW, &self.saved);
    }
}

fn send_winsize(dir: &Path, term: u32, tty: BorrowedFd<'_>) {
    if let Some((rows, cols)) = crate::sys::get_winsize(tty) {
        let _ = client::request(
            dir,
            &Request::Winsize {
                rows,
                cols,
                tty: term,
            },
            Some(std::time::Duration::from_secs(2)),
        );
    }
}

/// Attach to terminal `term`: 0 the console, N /dev/ttyN.
pub fn attach(dir: &Path, name: &str, quiet: bool, term: u32) -> Result<Ended> {
    let mut sock =
        client::connect(dir).map_err(|_| Error::Other(format!("{name} is not running")))?;
    client::send(&sock, dir, &Request::Console { tty: term })?;
    // What follows the answer is console output.
    match client::console_answer(&sock, dir)? {
        Response::Ok => {}
        Response::Error { message } => return Err(Error::Other(message)),
        other => {
            return Err(Error::Other(format!(
                "{name}: the monitor refused the console: {other:?}"
            )))
        }
    }
    let what = match term {
        0 => "console".to_string(),
        n => format!("tty{n}"),
    };
    let stdin = std::io::stdin();
    let tty = stdin.as_fd();
    let is_tty = termios::tcgetattr(tty).is_ok();
    if !quiet {
        eprint!("Connected to {name}'s {what}. Type Ctrl-a q to detach.\r\n");
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGWINCH);
    let _ = mask.thread_block();
    let winch = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::io("watch", "the window size", e.into()))?;
    let _raw = if is_tty { RawMode::enter(tty) } else { None };
    if is_tty {
        send_winsize(dir, term, tty);
    }
    let mut out = std::io::stdout();
    let mut escape = EscapeFilter::default();
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        let mut fds = vec![
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(winch.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(tty, PollFlags::POLLIN));
        }
        if nix::poll::poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => {
                    drop(_raw);
                    return Ok(Ended::ContainerStopped);
                }
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if ready[1] {
            while winch.read_signal().ok().flatten().is_some() {}
            send_winsize(dir, term, tty);
        }
        if stdin_open && ready.get(2).copied().unwrap_or(false) {
            let n = match nix::unistd::read(tty, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    continue;
                }
                Ok(n) => n,
            };
            let (fwd, detach) = escape.feed(&buf[..n]);
            if detach {
                return Ok(Ended::Detached);
            }
            if !fwd.is_empty() && sock.write_all(&fwd).is_err() {
                return Ok(Ended::ContainerStopped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(input: &[u8]) -> (Vec<u8>, bool) {
        EscapeFilter::default().feed(input)
    }

    #[test]
    fn plain_bytes_pass_through() {
        assert_eq!(feed(b"ls -l\r"), (b"ls -l\r".to_vec(), false));
        assert_eq!(feed(b""), (vec![], false));
    }

    #[test]
    fn ctrl_a_q_detaches_and_drops_what_follows() {
        assert_eq!(feed(b"\x01q"), (vec![], true));
        // What came before is returned; the q and everything after it are not.
        assert_eq!(feed(b"ab\x01qrm -rf\r"), (b"ab".to_vec(), true));
        // A q without the escape is just a q.
        assert_eq!(feed(b"q"), (b"q".to_vec(), false));
    }

    #[test]
    fn ctrl_a_a_and_ctrl_a_ctrl_a_send_one_ctrl_a() {
        assert_eq!(feed(b"\x01a"), (vec![CTRL_A], false));
        assert_eq!(feed(b"\x01\x01"), (vec![CTRL_A], false));
        // The second Ctrl-a was consumed, so the q after it is an ordinary byte.
        assert_eq!(feed(b"\x01\x01q"), (vec![CTRL_A, b'q'], false));
    }

    #[test]
    fn ctrl_a_and_anything_else_sends_both() {
        assert_eq!(feed(b"\x01x"), (vec![CTRL_A, b'x'], false));
        assert_eq!(feed(b"\x01\r"), (vec![CTRL_A, b'\r'], false));
        assert_eq!(feed(b"\x01Q"), (vec![CTRL_A, b'Q'], false));
    }

    #[test]
    fn an_escape_split_across_reads_still_counts() {
        let mut f = EscapeFilter::default();
        assert_eq!(f.feed(b"x\x01"), (b"x".to_vec(), false));
        assert_eq!(f.feed(b"qy"), (vec![], true));

        let mut f = EscapeFilter::default();
        assert_eq!(f.feed(b"\x01"), (vec![], false));
        assert_eq!(f.feed(b"a"), (vec![CTRL_A], false));
        // The escape was used up: a later q is a q.
        assert_eq!(f.feed(b"q"), (b"q".to_vec(), false));

        let mut f = EscapeFilter::default();
        assert_eq!(f.feed(b"\x01"), (vec![], false));
        assert_eq!(f.feed(b"z"), (vec![CTRL_A, b'z'], false));
    }
}
