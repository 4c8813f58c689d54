//! rlxc-execute: run a command as a container's application (lxc-execute): the command
//! is the payload under rlxc's small init; its exit status is rlxc-execute's.

use std::path::PathBuf;

use super::Common;
use crate::container::{Container, ExecuteOptions};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name (its rootfs and, unless -f, its config).
    #[arg(short = 'n', long = "name")]
    name: String,
    /// A config.toml to use instead of the container's (the rootfs stays the container's).
    #[arg(short = 'f', long = "rcfile", value_name = "CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    // A terminal on any of stdin, stdout, stderr: the command gets a pty of the
    // container's (its console), relayed here, so the host's terminal never reaches it
    // (TIOCSTI); else this process's own stdio.
    let terminal = [0, 1, 2]
        .into_iter()
        .any(|fd| nix::unistd::isatty(crate::sys::borrow_fd(fd)).unwrap_or(false));
    c.execute(
        &sys,
        ExecuteOptions {
            cmd: a.cmd,
            config: a.config,
            terminal,
        },
    )
}
