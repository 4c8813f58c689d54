//! rlxc-attach's side of the command's stdio: bytes between this process's stdio and
//! the container's pty (or pipes), the window size when it changes, and signals sent
//! to rlxc-attach passed on to the command, until the command has exited.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// rlxc-attach's ends of the pipes: the command's stdin (written), stdout and stderr (read).
pub struct PipeEnds {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// This side's terminal, if stdin or stdout is one: then the command gets a pty.
pub fn terminal() -> Option<BorrowedFd<'static>> {
    [0, 1]
        .into_iter()
        .map(crate::sys::borrow_fd)
        .find(|fd| nix::unistd::isatty(fd).unwrap_or(false))
}

/// Three pipes: the command's ends (stdin read end, stdout and stderr write ends) and
/// ours. All close-on-exec: the command's are dup'ed onto 0-2 before its exec.
pub fn pipes() -> Result<([OwnedFd; 3], PipeEnds)> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx("create", "the attach pipes");
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok((
        [in_r, out_w, err_w],
        PipeEnds {
            stdin: in_w,
            stdout: out_r,
            stderr: err_r,
        },
    ))
}

/// Signals rlxc-attach passes on to the command (SIGWINCH and SIGCHLD it handles):
/// to the attach child, which passes them to the command.
const FORWARDED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
];

/// The forwarded signals and SIGCHLD, for the attach child to block before it forks.
pub fn forwarded_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in FORWARDED.into_iter().chain([Signal::SIGCHLD]) {
        mask.add(s);
    }
    mask
}

/// In the attach child: wait for the command, passing on the signals in `mask` (blocked
/// since before the fork); its exit code, 128 + N for a signal as a shell says.
pub fn wait_forwarding(command: Pid, mask: &SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC)
        .ctx("watch signals in", "the attach child")?;
    loop {
        match waitpid(command, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("wait for", "the attached command", e.into())),
        }
        if let Ok(Some(info)) = sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig != libc::SIGCHLD {
                let _ = crate::sys::kill_raw(command.as_raw(), sig);
            }
        }
    }
}

/// One stream to copy: from a readable descriptor to one of ours.
struct Source {
    from: OwnedFd,
    to: i32,
}

/// Relay until `child` (the process in the container that waits for the command) exits;
/// returns the command's exit code.
pub fn run(child: Pid, sock: OwnedFd, pipes: Option<PipeEnds>) -> Result<i32> {
    let mut mask = forwarded_signals();
    mask.add(Signal::SIGWINCH);
    mask.thread_block().ctx("block signals in", "rlxc-attach")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .ctx("watch signals in", "rlxc-attach")?;
    let (sink, sources) = match pipes {
        Some(p) => (
            p.stdin,
            vec![
                Source {
                    from: p.stdout,
                    to: 1,
                },
                Source {
                    from: p.stderr,
                    to: 2,
                },
            ],
        ),
        None => {
            let Some(master) = receive_master(&sock)? else {
                // The child failed before the command started, and said why on stderr.
                return super::wait_code(child);
            };
            let copy = master.try_clone().ctx("share", "the pty")?;
            (master, vec![Source { from: copy, to: 1 }])
        }
    };
    // Nothing more comes from the child.
    drop(sock);
    let tty = terminal();
    let stdin = crate::sys::borrow_fd(0);
    let _raw = if nix::unistd::isatty(stdin).unwrap_or(false) {
        crate::console::RawMode::enter(stdin)
    } else {
        None
    };
    let mut r = Relay {
        child,
        signals,
        sink: Some(sink),
        is_pty: tty.is_some(),
        tty,
        pending: Vec::new(),
        stdin_open: true,
        sources,
        code: None,
    };
    for s in &r.sources {
        nonblocking(s.from.as_fd())?;
    }
    if let Some(s) = &r.sink {
        nonblocking(s.as_fd())?;
    }
    // It may have ended before SIGCHLD was blocked.
    r.reap();
    r.run()
}

/// The pty master from the child; None when the child ended before sending it.
fn receive_master(sock: &OwnedFd) -> Result<Option<OwnedFd>> {
    let mut buf = [0u8; 16];
    let (n, mut fds) = crate::sys::pty::recv_fds(sock.as_fd(), &mut buf)
        .map_err(|e| Error::io("hear from", "the attached process", e))?;
    match (&buf[..n], fds.len()) {
        ([], _) => Ok(None),
        (b"pty", 1) => Ok(fds.pop()),
        (other, _) => Err(Error::Other(format!(
            "unexpected message {other:?} from the attach child"
        ))),
    }
}

struct Relay {
    /// The attach child: it waits for the command and passes signals on to it.
    child: Pid,
    signals: SignalFd,
    /// Where our stdin goes: the pty master or the command's stdin pipe.
    sink: Option<OwnedFd>,
    is_pty: bool,
    tty: Option<BorrowedFd<'static>>,
    /// Input read from our stdin, not yet taken by the command.
    pending: Vec<u8>,
    stdin_open: bool,
    sources: Vec<Source>,
    /// The command's exit code, once the child has exited.
    code: Option<i32>,
}

/// Input held for a command that does not read; past this, our stdin waits.
const PENDING_MAX: usize = 64 * 1024;

impl Relay {
    fn run(&mut self) -> Result<i32> {
        while self.code.is_none() {
            self.step()?;
        }
        // The command is gone: what it wrote before is still to be copied.
        self.drain();
        Ok(self.code.unwrap_or(1))
    }

    fn step(&mut self) -> Result<()> {
        let stdin = crate::sys::borrow_fd(0);
        let want_input = self.stdin_open && self.sink.is_some() && self.pending.len() < PENDING_MAX;
        let want_output = !self.pending.is_empty();
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            self.sources
                .iter()
                .map(|s| PollFd::new(s.from.as_fd(), PollFlags::POLLIN)),
        );
        let sink_at = fds.len();
        if let (Some(sink), true) = (&self.sink, want_output) {
            fds.push(PollFd::new(sink.as_fd(), PollFlags::POLLOUT));
        }
        let stdin_at = fds.len();
        if want_input {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::io("wait for", "the attached command", e.into())),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let n_sources = self.sources.len();
        for i in (0..n_sources).rev() {
            if ready[1 + i] && !self.copy_out(i) {
                self.sources.remove(i);
            }
        }
        if want_output && ready.get(sink_at).copied().unwrap_or(false) {
            self.flush_input();
        }
        if want_input && ready.get(stdin_at).copied().unwrap_or(false) {
            self.read_input(stdin);
        }
        if ready[0] {
            self.handle_signals();
        }
        Ok(())
    }

    /// Copy what source `i` has; false at its end.
    fn copy_out(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let s = &self.sources[i];
        match nix::unistd::read(&s.from, &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                write_all(crate::sys::borrow_fd(s.to), &buf[..n]);
                true
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => true,
            // EIO: every slave of the pty is closed.
            Err(_) => false,
        }
    }

    fn read_input(&mut self, stdin: BorrowedFd<'_>) {
        let mut buf = [0u8; 16 * 1024];
        match nix::unistd::read(stdin, &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EBADF) | Err(nix::errno::Errno::EIO) => {
                self.stdin_open = false;
                if self.is_pty {
                    // End of input on a terminal is its EOF character.
                    self.pending.push(0x04);
                } else if self.pending.is_empty() {
                    self.sink = None;
                }
            }
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }

    fn flush_input(&mut self) {
        let Some(sink) = &self.sink else { return };
        match nix::unistd::write(sink, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            // The command closed its stdin: drop what it will never read.
            Err(_) => {
                self.pending.clear();
                if !self.is_pty {
                    self.sink = None;
                }
            }
        }
        if self.pending.is_empty() && !self.stdin_open && !self.is_pty {
            self.sink = None;
        }
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                self.reap();
            } else if sig == libc::SIGWINCH {
                self.copy_winsize();
            } else {
                let _ = crate::sys::kill_raw(self.child.as_raw(), sig);
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(self.child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => self.code = Some(c),
                Ok(WaitStatus::Signaled(_, s, _)) => self.code = Some(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            }
            return;
        }
    }

    fn copy_winsize(&self) {
        let (Some(tty), Some(sink), true) = (self.tty, &self.sink, self.is_pty) else {
            return;
        };
        if let Some((rows, cols)) = crate::sys::get_winsize(tty) {
            let _ = crate::sys::set_winsize(sink.as_fd(), rows, cols);
        }
    }

    /// After the command exited: copy what is buffered, without waiting for processes
    /// it left behind that still hold the pty or pipes.
    fn drain(&mut self) {
        for i in 0..self.sources.len() {
            for _ in 0..64 {
                let mut buf = [0u8; 16 * 1024];
                let s = &self.sources[i];
                match nix::unistd::read(&s.from, &mut buf) {
                    Ok(n) if n > 0 => write_all(crate::sys::borrow_fd(s.to), &buf[..n]),
                    _ => break,
                }
            }
        }
    }
}

fn nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let fl = fcntl(fd, FcntlArg::F_GETFL).ctx("configure", "the attach relay")?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
    )
    .ctx("configure", "the attach relay")?;
    Ok(())
}

/// Our stdout/stderr may be a pipe or file: plain blocking writes, retried on EINTR.
fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut p, PollTimeout::from(100u16));
            }
            Err(_) => return,
        }
    }
}
