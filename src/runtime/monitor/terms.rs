//! The container's terminals in the monitor: the console (0) and its ttys (1..N), each a
//! pty master the monitor holds, recent output kept for clients that attach later,
//! and the clients attached (rlxc-console [-t N], rlxc-start in the foreground).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::poll::{PollFd, PollFlags};

use super::Monitor;
use crate::ipc::{self, Response};

/// Output kept of the console, for consoles that attach later.
pub(super) const CONSOLE_RING: usize = 128 * 1024;
/// Of a tty: enough for a login prompt and what followed it.
const TTY_RING: usize = 16 * 1024;

/// Output kept for clients that attach later.
pub(super) struct Ring {
    data: VecDeque<u8>,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Self {
        Ring {
            data: VecDeque::new(),
            cap,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.data.extend(data);
        let excess = self.data.len().saturating_sub(self.cap);
        self.data.drain(..excess);
    }
}

/// One terminal.
pub(super) struct Term {
    /// The pty's master while a run has it.
    master: Option<OwnedFd>,
    /// Its slave, kept open so reads on the master do not fail with EIO (and poll
    /// does not spin on a hang-up) when nothing inside has it open.
    _slave: Option<OwnedFd>,
    ring: Ring,
    clients: Vec<UnixStream>,
}

impl Term {
    pub fn console() -> Self {
        Term {
            master: None,
            _slave: None,
            ring: Ring::new(CONSOLE_RING),
            clients: Vec::new(),
        }
    }
}

/// What a descriptor in the poll set is.
#[derive(Clone, Copy)]
pub(super) enum Source {
    Master(usize),
    /// A client of terminal `.0`, by its descriptor number.
    Client(usize, RawFd),
}

/// The terminals' descriptors to poll (duplicates: the set must not borrow the monitor),
/// and what each is.
pub(super) struct PollSet {
    fds: Vec<OwnedFd>,
    what: Vec<Source>,
}

impl PollSet {
    pub fn poll_fds(&self) -> impl Iterator<Item = PollFd<'_>> {
        self.fds
            .iter()
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
    }

    pub fn sources(&self) -> &[Source] {
        &self.what
    }
}

impl Monitor {
    /// A run's terminals: the console's pty (its output kept across reboots) and the
    /// ttys the child made (master and slave of each).
    pub(super) fn set_terms(&mut self, console: (OwnedFd, OwnedFd), ttys: Vec<OwnedFd>) {
        self.terms.truncate(1);
        let c = &mut self.terms[0];
        c.master = Some(console.0);
        c._slave = Some(console.1);
        let mut ends = ttys.into_iter();
        while let (Some(master), Some(slave)) = (ends.next(), ends.next()) {
            // Non-blocking like the console's: a pump reads until the pty is empty.
            let _ = nix::fcntl::fcntl(
                master.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            self.terms.push(Term {
                master: Some(master),
                _slave: Some(slave),
                ring: Ring::new(TTY_RING),
                clients: Vec::new(),
            });
        }
    }

    /// At the end of a run: every pty closed, the ttys' clients let go. The console's
    /// clients and output stay: a reboot goes on on the same console (an rlxc-start in
    /// the foreground stays attached, as lxc-start does), and at the monitor's end its
    /// exit closes them.
    pub(super) fn drop_terms(&mut self) {
        self.terms.truncate(1);
        let c = &mut self.terms[0];
        c.master = None;
        c._slave = None;
    }

    /// The last `n` lines the console showed, as text (control sequences dropped).
    pub(super) fn console_tail(&self, n: usize) -> Vec<String> {
        let bytes: Vec<u8> = self.terms[0].ring.data.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text
            .split(['\n', '\r'])
            .map(plain)
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    pub(super) fn poll_set(&self) -> PollSet {
        let mut set = PollSet {
            fds: Vec::new(),
            what: Vec::new(),
        };
        for (i, t) in self.terms.iter().enumerate() {
            if let Some(m) = t.master.as_ref().and_then(|m| m.try_clone().ok()) {
                set.fds.push(m);
                set.what.push(Source::Master(i));
            }
            for c in &t.clients {
                if let Ok(fd) = c.as_fd().try_clone_to_owned() {
                    set.fds.push(fd);
                    set.what.push(Source::Client(i, c.as_raw_fd()));
                }
            }
        }
        set
    }

    pub(super) fn on_ready(&mut self, src: Source) {
        match src {
            Source::Master(i) => self.pump(i),
            Source::Client(i, fd) => self.input(i, fd),
        }
    }

    /// Output of terminal `i`: into its ring, out to every client attached to it.
    fn pump(&mut self, i: usize) {
        let Some(t) = self.terms.get_mut(i) else {
            return;
        };
        let Some(master) = t.master.as_ref() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    t.ring.push(&buf[..n]);
                    t.clients.retain_mut(|c| match c.write(&buf[..n]) {
                        Ok(_) => true,
                        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                    });
                }
            }
        }
    }

    /// Keystrokes from client `fd` of terminal `i` go to its pty; EOF detaches it.
    fn input(&mut self, i: usize, fd: RawFd) {
        let Some(t) = self.terms.get_mut(i) else {
            return;
        };
        let Some(at) = t.clients.iter().position(|c| c.as_raw_fd() == fd) else {
            return;
        };
        let mut buf = [0u8; 4096];
        match (&t.clients[at]).read(&mut buf) {
            Ok(n) if n > 0 => {
                if let Some(m) = &t.master {
                    let _ = nix::unistd::write(m, &buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                t.clients.remove(at);
            }
        }
    }

    /// The answer, the output kept so far, then the connection is terminal `tty`'s.
    pub(super) fn on_console(&mut self, mut s: UnixStream, tty: u32) {
        let ttys = self.terms.len().saturating_sub(1);
        let Some(t) = self.terms.get_mut(tty as usize) else {
            let message = match ttys {
                0 => format!("{} has no ttys (tty_max = 0 in its config.toml)", self.name),
                n => format!("{} has no tty {tty}: its ttys are 1-{n}", self.name),
            };
            let _ = ipc::write_msg(&s, &Response::Error { message });
            return;
        };
        let _ = s.set_read_timeout(None);
        let ring: Vec<u8> = t.ring.data.iter().copied().collect();
        if ipc::write_msg(&s, &Response::Ok).is_ok()
            && s.write_all(&ring).is_ok()
            && s.set_nonblocking(true).is_ok()
        {
            t.clients.push(s);
        }
    }

    pub(super) fn on_winsize(&self, s: &UnixStream, tty: u32, rows: u16, cols: u16) {
        if let Some(m) = self.terms.get(tty as usize).and_then(|t| t.master.as_ref()) {
            let _ = crate::sys::set_winsize(m.as_fd(), rows, cols);
        }
        let _ = ipc::write_msg(s, &Response::Ok);
    }
}

/// `line` without terminal control sequences (ESC [ ... letter) and control characters.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters, then the final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn control_sequences_are_dropped_from_console_lines() {
        assert_eq!(
            plain("\x1b[0;1;31mFAILED\x1b[0m to start\x07"),
            "FAILED to start"
        );
        assert_eq!(plain("plain"), "plain");
    }
}
