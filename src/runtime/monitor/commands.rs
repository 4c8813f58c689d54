//! The monitor's command socket: a hello, one request, one handler per request.

use std::io::{BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::{send_raw, Monitor};
use crate::ipc::{self, Hello, IpcError, Request, Response};

/// The hello and the request; an unreadable or foreign one is answered with the reason.
fn read_request(s: &UnixStream) -> Result<Request, IpcError> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut r = BufReader::new(s);
    let hello: Hello = ipc::read_msg(&mut r)?;
    ipc::check_hello(&hello)?;
    ipc::read_msg(&mut r)
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
        match req {
            Request::State => self.on_state(&s),
            Request::Stop { timeout_secs } => {
                self.begin_stop(s, Duration::from_secs(timeout_secs), false)
            }
            Request::Kill => self.begin_stop(s, Duration::ZERO, true),
            Request::Reboot => self.on_reboot(&s),
            Request::Console => self.on_console(s),
            Request::Winsize { rows, cols } => self.on_winsize(&s, rows, cols),
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
        send_raw(init, sig);
        reply(s, &Response::Ok);
    }

    /// The answer, the output kept so far, then the connection is a console.
    fn on_console(&mut self, mut s: UnixStream) {
        let _ = s.set_read_timeout(None);
        let ring: Vec<u8> = self.ring.0.iter().copied().collect();
        if ipc::write_msg(&s, &Response::Ok).is_ok()
            && s.write_all(&ring).is_ok()
            && s.set_nonblocking(true).is_ok()
        {
            self.consoles.push(s);
        }
    }

    fn on_winsize(&self, s: &UnixStream, rows: u16, cols: u16) {
        if let Some(run) = &self.run {
            let _ = crate::sys::set_winsize(run.pty_master.as_fd(), rows, cols);
        }
        reply(s, &Response::Ok);
    }
}
