//! The end of a run: init reaped, everything of it undone in reverse order, the
//! after-stop command run, and only then the stop waiters told.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::Monitor;
use crate::ipc::client::socket_path;
use crate::ipc::events::{Change, Event};
use crate::net::link as net;

impl Monitor {
    /// Start deleting the veths (see `net::VethRemoval`): at a kill, while the container's
    /// processes die; at the latest when init is gone.
    pub(super) fn begin_removals(&mut self) {
        if let Some(run) = self.run.as_mut() {
            let started = run.veths.drain(..).map(|v| net::begin_remove_veth(&v));
            self.removing.extend(started);
        }
    }

    /// Reap children; true when init is gone.
    pub(super) fn reap_init(&mut self) -> bool {
        while self.signals.read_signal().ok().flatten().is_some() {}
        let Some(init) = self.run.as_ref().map(|r| r.init) else {
            return true;
        };
        let mut gone = false;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == init => {
                    self.exit_code = Some(code);
                    if code != 0 {
                        self.note_failure(&format!("exited with status {code}"));
                    }
                    gone = true;
                }
                Ok(WaitStatus::Signaled(p, sig, _)) if p == init => {
                    self.exit_code = Some(128 + sig as i32);
                    // In a PID namespace, init's reboot(2) ends it with SIGHUP (restart)
                    // or SIGINT (halt).
                    self.init_asked_reboot = sig == Signal::SIGHUP;
                    if !matches!(sig, Signal::SIGHUP | Signal::SIGINT) {
                        self.note_failure(&format!("was killed by {sig}"));
                    }
                    gone = true;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        gone
    }

    /// init ended (`how`) without a halt or reboot of its own: unless a stop asked for
    /// it, that is the run's failure, with what init last said on the console.
    fn note_failure(&mut self, how: &str) {
        if self.stopping.is_some() || self.reboot_requested {
            return;
        }
        let ran = self.booted_at.elapsed().as_secs_f64();
        let mut msg = format!(
            "its init ({}) {how} after {ran:.1} s, without being asked to stop",
            self.init.describe()
        );
        let tail = self.console_tail(12);
        if tail.is_empty() {
            msg += " (it wrote nothing on the console)";
        } else {
            msg += "; its last console lines:";
            for l in tail {
                msg += &format!("\n    {l}");
            }
        }
        eprintln!("{}: {msg}", self.name);
        self.failure = Some(msg);
    }

    /// Everything of the run, in reverse order of creation.
    pub(super) fn teardown(&mut self) {
        // Started first (unless a kill did): the deletes run while the cgroup goes.
        self.begin_removals();
        let Some(mut run) = self.run.take() else {
            return;
        };
        // Init is gone, its network namespace held here: the interfaces come back.
        super::devices::give_back_all(&self.name, &mut run);
        if let Err(e) = run.cgroup.destroy() {
            eprintln!("{}: {e}", self.name);
        }
        if let Some(machine) = &run.registered {
            super::machined::unregister(machine);
        }
        for r in &self.removing {
            if !r.wait_gone(Duration::from_secs(5)) {
                eprintln!(
                    "{}: the veth {} is still there after 5 s",
                    self.name, r.name
                );
            }
        }
        let _ = std::fs::remove_file(self.dir.join("init.pid"));
        let _ = std::fs::remove_file(self.dir.join("boot_id"));
        self.drop_terms();
    }

    /// The end: nothing of the container is left when the stop waiters hear so.
    pub(super) fn shutdown(&mut self) {
        self.teardown();
        self.keep_exit_status();
        // Before the socket goes: a start that follows must find the ports free.
        if let Some(runpath) = self.dir.parent() {
            crate::net::ports::release(runpath, &self.key);
        }
        // Gone before the reply: whoever it wakes may start the container again.
        let _ = std::fs::remove_file(socket_path(&self.dir));
        let _ = std::fs::remove_file(self.dir.join("monitor.log"));
        let _ = std::fs::remove_dir(&self.dir);
        self.run_after_stop();
        self.announce(Change::Stopped);
        let (mut waiters, answer) = match self.stopping.take() {
            Some(st) => {
                let answer = match st.timed_out {
                    Some(waited_secs) => crate::ipc::Response::KilledAfterTimeout {
                        signal: st.signal,
                        waited_secs,
                        hint: self.init.halt_hint(),
                    },
                    None => crate::ipc::Response::Stopped,
                };
                (st.waiters, answer)
            }
            None => (Vec::new(), crate::ipc::Response::Stopped),
        };
        // Clients that connected before the socket went, not yet accepted: whatever they
        // asked, the answer is that the container stopped (unanswered, they would read
        // "connection reset").
        if self.listener.set_nonblocking(true).is_ok() {
            waiters.extend(std::iter::from_fn(|| {
                self.listener.accept().ok().map(|(s, _)| s)
            }));
        }
        for w in waiters {
            let _ = crate::ipc::write_msg(&w, &answer);
        }
        // rlxc-start in the foreground waits for this; anyone else has closed the pipe.
        // rlxc-execute waits for the command's exit status instead.
        if let Some(r) = self.report.take() {
            let last = match self.app {
                Some(_) => crate::ipc::Status::Exited {
                    code: self.exit_code.unwrap_or(128 + libc::SIGKILL),
                },
                None => crate::ipc::Status::Ended {
                    failure: self.failure.take(),
                },
            };
            let _ = crate::ipc::write_msg(r, &last);
        }
        self.finish_removals();
    }

    /// An application's status, on disk before anyone hears of the stop.
    fn keep_exit_status(&self) {
        let (Some(path), Some(_)) = (&self.exit_status, self.app) else {
            return;
        };
        let code = self.exit_code.unwrap_or(128 + libc::SIGKILL);
        if let Err(e) = crate::store::write_atomic(path, format!("{code}\n").as_bytes(), 0o644) {
            eprintln!("{}: cannot keep the exit status {code}: {e}", self.name);
        }
    }

    /// Tell the installation's listeners (rlxc-monitor, rlxc-wait); STOPPING once a run,
    /// however many stop requests and the exit of init itself say so.
    pub(super) fn announce(&mut self, change: Change) {
        match change {
            Change::Stopping if self.said_stopping => return,
            Change::Stopping => self.said_stopping = true,
            Change::Running => self.said_stopping = false,
            _ => {}
        }
        let pid = match change {
            Change::Running => self.run.as_ref().map(|r| r.init.as_raw()),
            _ => None,
        };
        let ev = Event::new(&self.lxcpath, &self.name, change, pid);
        crate::ipc::events::announce(&self.runpath, &ev);
    }

    /// The after-stop command, retried for a while: a start or copy of this container
    /// still holding its lock (a run that ended at once) makes it fail at first.
    pub(super) fn run_after_stop(&self) {
        let Some((prog, args)) = self.after_stop.split_first() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match std::process::Command::new(prog)
                .args(args)
                .stdin(std::process::Stdio::null())
                .status()
            {
                Ok(s) if s.success() => return,
                Ok(s) if Instant::now() < deadline => {
                    eprintln!("{}: after-stop command {s}; trying again", self.name)
                }
                r => {
                    eprintln!("{}: after-stop command failed: {r:?}", self.name);
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(super) fn finish_removals(&mut self) {
        for r in self.removing.drain(..) {
            r.finish();
        }
    }
}
