//! The monitor's command socket: a hello, one request, one handler per request.

use std::io::{BufReader, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{send_raw, Monitor};
use crate::ipc::{self, Hello, IpcError, Request, Response};

/// The most a client may take to send its hello and request: the monitor serves one
/// thing at a time, and a client dripping bytes must not hold up the console or a stop.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Reads from `s` that together end by a deadline (a socket timeout is per read).
struct Deadline<'a> {
    s: &'a UnixStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.s.set_read_timeout(Some(left))?;
        (&mut &*self.s).read(buf)
    }
}

/// The hello and the request; an unreadable or foreign one is answered with the reason.
fn read_request(s: &UnixStream) -> Result<Request, IpcError> {
    let mut r = BufReader::new(Deadline {
        s,
        until: Instant::now() + REQUEST_DEADLINE,
    });
    let hello: Hello = ipc::read_msg(&mut r)?;
    ipc::check_hello(&hello)?;
    ipc::read_msg(&mut r)
}

/// A change's outcome as the answer: Ok, or its reason.
fn done(r: crate::error::Result<()>) -> Response {
    match r {
        Ok(()) => Response::Ok,
        Err(e) => Response::Error {
            message: crate::error::flatten(&e),
        },
    }
}

fn reply(s: &UnixStream, r: &Response) {
    let _ = ipc::write_msg(s, r);
}

impl Monitor {
    /// One client: its request, handled (or its reason for being refused, sent back).
    pub(super) fn client(&mut self, s: UnixStream) {
        let req = match read_request(&s) {
            Ok(r) => r,
            Err(IpcError::Closed) => return,
            Err(e) => {
                return reply(
                    &s,
                    &Response::Error {
                        message: e.to_string(),
                    },
                )
            }
        };
        if self.run.is_none() {
            return reply(&s, &Response::Stopped);
        }
        self.handle(req, s);
    }

    fn handle(&mut self, req: Request, s: UnixStream) {
        match req {
            Request::State => self.on_state(&s),
            Request::Stop { timeout_secs } => {
                self.begin_stop(s, Duration::from_secs(timeout_secs), false)
            }
            Request::Kill => self.begin_stop(s, Duration::ZERO, true),
            Request::Reboot => self.on_reboot(&s),
            Request::Console { tty } => self.on_console(s, tty),
            Request::Winsize { rows, cols, tty } => self.on_winsize(&s, tty, rows, cols),
            Request::AllowDevice { rule } => reply(&s, &done(self.allow_device(&rule))),
            Request::DenyDevice { rule } => reply(&s, &done(self.deny_device(&rule))),
            Request::AddNic { host, inside } => reply(&s, &done(self.add_nic(&host, &inside))),
            Request::DelNic { inside } => reply(&s, &done(self.del_nic(&inside))),
            Request::NoWait { then } => match *then {
                r @ (Request::Stop { .. } | Request::Kill | Request::Reboot) => {
                    // Taken: the answer to the request itself goes to a closed socket.
                    reply(&s, &Response::Ok);
                    self.handle(r, s);
                }
                other => reply(
                    &s,
                    &Response::Error {
                        message: format!("{other:?} cannot be sent without waiting"),
                    },
                ),
            },
            Request::Describe => reply(
                &s,
                &Response::Described {
                    init: self.init.describe(),
                    cgroup_layout: self.cgroup_view.describe(),
                    ttys: self.cfg.ttys(),
                },
            ),
        }
    }

    fn on_state(&self, s: &UnixStream) {
        if let Some(run) = &self.run {
            reply(
                s,
                &Response::Running {
                    pid: run.init.as_raw(),
                },
            );
        }
    }

    fn on_reboot(&mut self, s: &UnixStream) {
        let Some(init) = self.run.as_ref().map(|r| r.init) else {
            return;
        };
        let sig = self.signal_for("reboot");
        self.reboot_requested = true;
        self.announce(crate::ipc::events::Change::Stopping);
        send_raw(init, sig);
        self.thaw_for_stop();
        reply(s, &Response::Ok);
    }

    /// A frozen container cannot halt, and on cgroup v1 not even die: thawed once its
    /// signal is sent (a pending SIGKILL ends a task before it runs again).
    pub(super) fn thaw_for_stop(&self) {
        let Some(run) = &self.run else { return };
        if run.cgroup.frozen() {
            if let Err(e) = run.cgroup.thaw() {
                eprintln!("{}: {e}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_dripping_client_is_cut_off_at_the_deadline() {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut b = b;
            // A byte every 300 ms: each read returns in time, the whole never would.
            for c in b"{\"rlxc_protocol\":1}".iter().cycle().take(40) {
                if b.write_all(&[*c]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let t0 = Instant::now();
        let e = read_request(&a).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(matches!(e, IpcError::Io(_)), "{e}");
        drop(a);
        let _ = writer.join();
    }

    #[test]
    fn a_prompt_client_is_read() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut msg = Vec::new();
        ipc::write_msg(&mut msg, &Hello::current()).unwrap();
        ipc::write_msg(&mut msg, &Request::Kill).unwrap();
        b.write_all(&msg).unwrap();
        assert_eq!(read_request(&a).unwrap(), Request::Kill);
    }
}
