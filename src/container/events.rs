//! State changes of an installation's containers as they happen (`ipc::events`): what
//! rlxc-monitor prints and rlxc-wait waits for. A monitor that is killed announces
//! nothing, so a watch also holds a pidfd on each watched container's monitor: when
//! one ends without having said STOPPED, the container's state is asked anew and a
//! STOPPED is reported if that is what it is (a killed monitor whose container lives
//! on leaves it RUNNING: nothing changed).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{Container, State};
use crate::config::SystemConfig;
use crate::error::{Error, Result};
use crate::ipc::events::Listener;
pub use crate::ipc::events::{Change, Event};

impl Container {
    /// Tell the installation's listeners; never fails the change it reports.
    pub(super) fn announce(&self, change: Change, pid: Option<i32>) {
        let runpath = self.run_dir.parent().unwrap_or(&self.run_dir);
        let ev = Event::new(&self.lxcpath, &self.name, change, pid);
        crate::ipc::events::announce(runpath, &ev);
    }

    /// Its monitor's process as a pidfd (readable once it has exited), if one listens.
    fn monitor_pidfd(&self) -> Option<OwnedFd> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        // The monitor reads no request on this connection, sees it closed, and moves on.
        let s = crate::ipc::client::connect(&self.run_dir).ok()?;
        let cred = getsockopt(&s, PeerCredentials).ok()?;
        crate::sys::pidfd_open(nix::unistd::Pid::from_raw(cred.pid())).ok()
    }
}

/// The changes of the containers `wanted` accepts, from the moment it is made.
pub struct Watch {
    sys: SystemConfig,
    listener: Listener,
    wanted: Box<dyn Fn(&str) -> bool>,
    monitors: HashMap<String, OwnedFd>,
    last: HashMap<String, Change>,
}

impl Watch {
    pub fn new(sys: &SystemConfig, wanted: impl Fn(&str) -> bool + 'static) -> Result<Self> {
        let listener = Listener::open(&sys.runpath, &sys.lxcpath).map_err(|e| {
            Error::io(
                "listen for state changes in",
                crate::ipc::events::dir(&sys.runpath, &sys.lxcpath),
                e,
            )
        })?;
        let mut w = Watch {
            sys: sys.clone(),
            listener,
            wanted: Box::new(wanted),
            monitors: HashMap::new(),
            last: HashMap::new(),
        };
        // After the listener exists: a monitor that ends from here on is either
        // tracked or announces its end to us.
        for c in Container::list(sys)? {
            if (w.wanted)(&c.name) {
                w.track(&c.name);
            }
        }
        Ok(w)
    }

    fn track(&mut self, name: &str) {
        if self.monitors.contains_key(name) {
            return;
        }
        if let Some(fd) = Container::new(&self.sys, name)
            .ok()
            .and_then(|c| c.monitor_pidfd())
        {
            self.monitors.insert(name.to_string(), fd);
        }
    }

    /// The next change of a wanted container; None once `deadline` passed. An
    /// interrupt (Ctrl-C) ends the wait with `Error::Interrupted`.
    pub fn next(&mut self, deadline: Option<Instant>) -> Result<Option<Event>> {
        loop {
            if crate::sys::interrupted() {
                return Err(Error::Interrupted);
            }
            // What is queued first: a monitor's last words come before the news of its end.
            let queued = self
                .listener
                .recv(Some(Duration::ZERO))
                .map_err(|e| Error::io("receive", "a state change", e))?;
            if let Some(ev) = queued {
                match self.take(ev) {
                    Some(ev) => return Ok(Some(ev)),
                    None => continue,
                }
            }
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    PollTimeout::from(left.as_millis().clamp(1, 60_000) as u16)
                }
            };
            let names: Vec<String> = self.monitors.keys().cloned().collect();
            let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                names
                    .iter()
                    .filter_map(|n| self.monitors.get(n))
                    .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
            );
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::io("wait for", "state changes", e.into())),
            }
            if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                // Read first: a monitor that said STOPPED and exited is not lost.
                continue;
            }
            let ended: Vec<String> = fds[1..]
                .iter()
                .zip(&names)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, n)| n.clone())
                .collect();
            drop(fds);
            for name in ended {
                self.monitors.remove(&name);
                if let Some(ev) = self.lost(&name) {
                    return Ok(Some(ev));
                }
            }
        }
    }

    /// An announced change, if of a wanted container (its monitor tracked from RUNNING on).
    fn take(&mut self, ev: Event) -> Option<Event> {
        if !(self.wanted)(&ev.name) {
            return None;
        }
        match ev.state {
            Change::Running => self.track(&ev.name),
            Change::Stopped => {
                self.monitors.remove(&ev.name);
            }
            _ => {}
        }
        self.last.insert(ev.name.clone(), ev.state);
        Some(ev)
    }

    /// `name`'s monitor ended: STOPPED if it did not say so and the container is stopped.
    fn lost(&mut self, name: &str) -> Option<Event> {
        if self.last.get(name) == Some(&Change::Stopped) {
            return None;
        }
        let c = Container::new(&self.sys, name).ok()?;
        if c.state() != State::Stopped {
            return None;
        }
        self.last.insert(name.to_string(), Change::Stopped);
        Some(Event::new(&self.sys.lxcpath, name, Change::Stopped, None))
    }
}
