//! rlxc-net: the managed bridge (DHCP, DNS, NAT): start, stop, status. Also the hidden
//! `__netd`, the supervisor that keeps the bridge's dnsmasq running.

use std::path::PathBuf;

use super::Common;
use crate::container::network::{self, Network};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// start: create what is missing; stop: remove what rlxc created; status: show it.
    #[arg(value_parser = ["start", "stop", "status"])]
    action: String,
    /// With stop: remove the bridge even though containers are attached to it.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// With start: only when a container's network is on the managed bridge (at boot).
    #[arg(long = "if-used")]
    if_used: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    if a.if_used && a.action == "start" && !network::used_by_containers(&sys)? {
        if !a.common.quiet {
            println!("no container uses {}: nothing to start", sys.network.bridge);
        }
        return Ok(0);
    }
    let net = Network::new(&sys)?;
    let msg = match a.action.as_str() {
        "start" => net.start()?,
        "stop" => net.stop(a.force)?,
        _ => net.status(),
    };
    if !a.common.quiet || a.action == "status" {
        println!("{msg}");
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct NetdArgs {
    supervisor_pid: PathBuf,
    dnsmasq_pid: PathBuf,
    #[arg(last = true, required = true)]
    dnsmasq: Vec<String>,
}

pub fn netd(a: NetdArgs) -> Result<i32> {
    Ok(network::supervise_dnsmasq(
        &a.supervisor_pid,
        &a.dnsmasq_pid,
        &a.dnsmasq,
    ))
}
