//! rlxc-execute: an existing container's rootfs run as an application container: the
//! command is the payload, under rlxc's own small init (see runtime::child::app), and its
//! exit status becomes rlxc-execute's. Its stdio is rlxc-execute's; on a terminal it
//! gets the container's console pty instead, relayed as rlxc-start's console is.

use std::path::PathBuf;

use super::Container;
use crate::config::{ContainerConfig, SystemConfig};
use crate::error::{Error, IoContext, Result};

pub struct ExecuteOptions {
    pub cmd: Vec<String>,
    /// A config file used in place of the container's (its rootfs stays the container's).
    pub config: Option<PathBuf>,
    /// Give the command the console pty (relayed to this terminal) instead of this
    /// process's stdio.
    pub terminal: bool,
}

/// What `Container::launch` changes for rlxc-execute.
pub(super) struct AppLaunch {
    cmd: Vec<String>,
    config: Option<PathBuf>,
    terminal: bool,
}

impl AppLaunch {
    /// The config the run uses; the plan's app.
    pub(super) fn apply(self, cfg: &mut ContainerConfig) -> Result<crate::runtime::App> {
        if let Some(path) = &self.config {
            let mut other = ContainerConfig::load(path)?;
            // The container's files, wherever this config says they are.
            other.rootfs = cfg.rootfs.clone();
            *cfg = other;
        }
        cfg.init.cmd = self.cmd;
        // Nothing to keep after an application's run but what the config says.
        cfg.autostart = Default::default();
        let stdio = if self.terminal {
            None
        } else {
            let dup = |n: i32| {
                crate::sys::borrow_fd(n)
                    .try_clone_to_owned()
                    .ctx("pass on", "rlxc-execute's stdio")
            };
            Some([dup(0)?, dup(1)?, dup(2)?])
        };
        Ok(crate::runtime::App { stdio })
    }
}

impl Container {
    /// Run `opts.cmd` as the container's application; its exit status.
    pub fn execute(&self, sys: &SystemConfig, opts: ExecuteOptions) -> Result<i32> {
        if opts.cmd.is_empty() {
            return Err(Error::Usage(
                "rlxc-execute needs a command: rlxc-execute -n NAME -- CMD [ARGS]".into(),
            ));
        }
        let terminal = opts.terminal;
        let app = AppLaunch {
            cmd: opts.cmd,
            config: opts.config,
            terminal,
        };
        let started = self.launch(sys, Some(app), false)?;
        let (pid, run) = (started.pid, started.end);
        if terminal {
            // Relayed until the container stops (or Ctrl-a q leaves it running); a
            // Ctrl-C goes through the pty to the command.
            self.console_now(true)?;
            return run.wait_app(None);
        }
        // Signals sent to rlxc-execute are the command's (through its init).
        run.wait_app(Some(pid))
    }
}
