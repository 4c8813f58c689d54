//! rlxc-attach: run a command (default: a shell) inside a running container.

use super::Common;
use crate::container::{AttachOptions, Container};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Keep this environment instead of a clean one.
    #[arg(long = "keep-env")]
    keep_env: bool,
    /// Set VAR=VALUE in the command's environment (repeatable).
    #[arg(short = 'v', long = "set-var", value_name = "VAR=VALUE")]
    set_var: Vec<String>,
    #[command(flatten)]
    common: Common,
    /// The command and its arguments (default: /bin/sh).
    #[arg(last = true)]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    if let Some(bad) = a.set_var.iter().find(|v| !v.contains('=')) {
        return Err(Error::Usage(format!("-v {bad:?}: expected VAR=VALUE")));
    }
    let cmd = if a.cmd.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        a.cmd
    };
    c.attach(&AttachOptions {
        cmd,
        keep_env: a.keep_env,
        set_env: a.set_var,
    })
}
