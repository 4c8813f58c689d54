//! rlxc-attach: run a command (default: a shell) inside a running container.

use super::Common;
use crate::container::{AttachEnv, AttachOptions, Container};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Keep this environment (and set container=lxc) instead of a clean one.
    #[arg(long = "keep-env", conflicts_with = "clear_env")]
    keep_env: bool,
    /// Start from an empty environment: container=lxc alone (plus --keep-var and -v).
    #[arg(long = "clear-env")]
    clear_env: bool,
    /// With --clear-env: keep this variable of this environment (repeatable).
    #[arg(long = "keep-var", value_name = "VAR", requires = "clear_env")]
    keep_var: Vec<String>,
    /// Set VAR=VALUE in the command's environment (repeatable).
    #[arg(short = 'v', long = "set-var", value_name = "VAR=VALUE")]
    set_var: Vec<String>,
    /// Run the command as this user id inside the container (default: 0).
    #[arg(short = 'u', long = "uid", value_name = "UID")]
    uid: Option<u32>,
    /// Run the command with this group id inside the container (default: 0).
    #[arg(short = 'g', long = "gid", value_name = "GID")]
    gid: Option<u32>,
    /// The command's working directory inside the container (default: /).
    #[arg(long = "cwd", value_name = "DIR")]
    cwd: Option<String>,
    #[command(flatten)]
    common: Common,
    /// The command and its arguments (default: /bin/sh).
    #[arg(last = true)]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    if let Some(bad) = a
        .set_var
        .iter()
        .find(|v| v.split_once('=').is_none_or(|(k, _)| k.is_empty()))
    {
        return Err(Error::Usage(format!("-v {bad:?}: expected VAR=VALUE")));
    }
    let cmd = if a.cmd.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        a.cmd
    };
    let env = if a.clear_env {
        AttachEnv::Clear { keep: a.keep_var }
    } else if a.keep_env {
        AttachEnv::Keep
    } else {
        AttachEnv::Clean
    };
    c.attach(&AttachOptions {
        cmd,
        env,
        set_env: a.set_var,
        uid: a.uid,
        gid: a.gid,
        cwd: a.cwd,
    })
}
