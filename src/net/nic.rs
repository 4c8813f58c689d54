//! Host interfaces lent to a running container (rlxc-device add eth1, `[[device]]`):
//! moved into its network namespace under the name it is to have there, and moved back
//! under their host name when taken away or when the container stops. The monitor holds
//! the container's network namespace open, so an interface can come back even after
//! init is gone (a virtual one would otherwise die with the namespace, a physical one
//! come back under whatever name the kernel picks).

use std::os::fd::{AsFd, BorrowedFd};

use super::netlink::Netlink;
use crate::error::{Error, IoContext, Result};

/// One interface in the container: `host` is its name on the host, `inside` in there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LentNic {
    pub host: String,
    pub inside: String,
}

/// A name the kernel takes for an interface (IFNAMSIZ, no slash or blank).
pub fn check_name(name: &str) -> Result<()> {
    crate::config::validate::interface_name(name).map_err(Error::Usage)
}

/// `host`'s index; a clear error when the host has no such interface.
fn host_index(nl: &Netlink, host: &str) -> Result<u32> {
    nl.index(host)?.ok_or_else(|| {
        Error::net(
            format!("there is no network interface {host} on the host"),
            "name one that `ip -br link` lists",
        )
    })
}

/// Whether host interface `host` is there to be lent (checked before a start).
pub fn check_present(host: &str) -> Result<()> {
    check_name(host)?;
    host_index(&Netlink::open()?, host).map(|_| ())
}

/// Move host interface `host` into the network namespace `ns`, as `inside`.
pub fn lend(host: &str, ns: BorrowedFd<'_>, inside: &str) -> Result<LentNic> {
    check_name(host)?;
    check_name(inside)?;
    if host == "lo" {
        return Err(Error::Usage(
            "the host's loopback interface cannot be given to a container".into(),
        ));
    }
    let nl = Netlink::open()?;
    let index = host_index(&nl, host)?;
    nl.move_to_netns(index, host, ns, inside)?;
    Ok(LentNic {
        host: host.to_string(),
        inside: inside.to_string(),
    })
}

/// Move `nic` from the network namespace `ns` back to this process's, under its host name.
pub fn give_back(nic: &LentNic, ns: BorrowedFd<'_>) -> Result<()> {
    let nl = Netlink::open_in_netns(ns, "the container's network namespace")?;
    let index = nl.index(&nic.inside)?.ok_or_else(|| {
        Error::Other(format!(
            "{} (host {}) is no longer in the container: something inside deleted or \
             renamed it",
            nic.inside, nic.host
        ))
    })?;
    let host_ns = std::fs::File::open("/proc/self/ns/net").ctx("open", "/proc/self/ns/net")?;
    nl.move_to_netns(index, &nic.inside, host_ns.as_fd(), &nic.host)
}
