//! Networking: the managed bridge (netlink, dnsmasq for DHCP and DNS, NAT), container
//! interfaces (veth, macvlan) and what the host can see of a container's addresses.

pub mod bridge;
pub mod dnsmasq;
pub mod firewall;
pub mod link;
pub mod names;
pub mod netlink;
pub mod nic;
pub mod ports;
pub mod reloaded;
pub mod subnet;
pub mod supervisor;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Run a host tool; its stderr becomes the error.
fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("run", cmd, e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Other(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn run_stdin(cmd: &str, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run", cmd, e))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes())
            .map_err(|e| Error::io("write to", cmd, e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("run", cmd, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// An exclusive lock on the file `p` (made if missing), waited for.
fn lock_file(p: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| Error::io("open", p, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("lock", p, e.into()))
}

/// `cmd` found on $PATH (only there: a PATH without it means "not installed").
pub fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}
