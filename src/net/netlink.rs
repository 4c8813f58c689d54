//! Blocking netlink requests for links, addresses and routes: rtnetlink driven by a
//! current-thread tokio runtime that lives exactly as long as a `Netlink` value. No
//! thread is started, so it is safe in the monitor (which forks and clones).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, MacVlanMode};
use rtnetlink::{Handle, LinkBridge, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::error::{Error, IoContext, Result};

pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

/// A MAC address in its netlink form.
pub fn parse_mac(mac: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    (bytes.len() == 6).then_some(bytes)
}

fn nl_err(what: String) -> impl FnOnce(rtnetlink::Error) -> Error {
    move |e| Error::Other(format!("netlink: cannot {what}: {e}"))
}

impl Netlink {
    /// A netlink socket in this process's network namespace.
    pub fn open() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .ctx("start", "a netlink event loop")?;
        let (conn, handle, _) = {
            let _guard = rt.enter();
            rtnetlink::new_connection().ctx("open", "a netlink socket")?
        };
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// A netlink socket in the network namespace of `pid`. A socket stays in the
    /// namespace it was created in, so this process only visits it for the socket call.
    pub fn open_in_netns_of(pid: i32) -> Result<Self> {
        let ns_path = format!("/proc/{pid}/ns/net");
        let theirs = std::fs::File::open(&ns_path).ctx("open", &ns_path)?;
        Self::open_in_netns(theirs.as_fd(), &ns_path)
    }

    /// A netlink socket in the network namespace `ns` (`what` names it in errors).
    pub fn open_in_netns(ns: BorrowedFd<'_>, what: &str) -> Result<Self> {
        let ours = std::fs::File::open("/proc/self/ns/net").ctx("open", "/proc/self/ns/net")?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .ctx("enter the network namespace", what)?;
        let nl = Self::open();
        nix::sched::setns(ours.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .ctx("return to the host network namespace from", what)?;
        nl
    }

    /// Move interface `index` (`ifname` here) into the network namespace `ns`, named
    /// `new_name` there (the kernel renames it on the way, so it never collides).
    pub fn move_to_netns(
        &self,
        index: u32,
        ifname: &str,
        ns: BorrowedFd<'_>,
        new_name: &str,
    ) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .setns_by_fd(ns.as_raw_fd())
            .name(new_name.to_string())
            .build();
        self.run(self.handle.link().set(msg).execute())
            .map_err(nl_err(format!(
                "move {ifname} into another network namespace as {new_name}"
            )))
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The index of interface `name`, if it exists.
    pub fn index(&self, name: &str) -> Result<Option<u32>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match self.run(links.try_next()) {
            Ok(Some(l)) => Ok(Some(l.header.index)),
            Ok(None) => Ok(None),
            // ENODEV: no such interface.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(nl_err(format!("look up interface {name}"))(e)),
        }
    }

    fn require(&self, name: &str) -> Result<u32> {
        self.index(name)?.ok_or_else(|| {
            Error::Other(format!(
                "interface {name} disappeared while it was being set up"
            ))
        })
    }

    /// A bridge that is its segment's IGMP/MLD querier. Without a querier the bridge
    /// floods every multicast frame to every port: each container's IPv6 router
    /// solicitations, DAD probes and MLD reports reached all the others, and at a
    /// thousand containers the flood overran the kernel's receive backlog (2.3 million
    /// packets dropped while they started, DHCP among them). With one, snooping sends
    /// reports to the querier and group traffic to the groups' members (IPv4 224.0.0.x
    /// and IPv6 all-nodes are still flooded): 0.2 million. The group table's limit is
    /// raised from 4096 so snooping does not switch itself off past about 1300
    /// containers (each joins two or three groups).
    pub fn add_bridge(&self, name: &str) -> Result<u32> {
        let msg = LinkBridge::new(name)
            .mcast_snooping(true)
            .mcast_querier(true)
            .mcast_hash_max(16384)
            .build();
        self.run(self.handle.link().add(msg).execute())
            .map_err(nl_err(format!("create bridge {name}")))?;
        self.require(name)
    }

    pub fn add_address(&self, index: u32, ip: IpAddr, prefix: u8, ifname: &str) -> Result<()> {
        self.run(self.handle.address().add(index, ip, prefix).execute())
            .map_err(nl_err(format!("add address {ip}/{prefix} to {ifname}")))
    }

    pub fn set_up(&self, index: u32, ifname: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.run(self.handle.link().set(msg).execute())
            .map_err(nl_err(format!("bring up {ifname}")))
    }

    /// Enslave `index` to the bridge `bridge` (named `bridge_name`) and bring it up.
    pub fn attach_up(
        &self,
        index: u32,
        bridge: u32,
        bridge_name: &str,
        ifname: &str,
    ) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        self.run(self.handle.link().set(msg).execute())
            .map_err(|e| match e {
                rtnetlink::Error::NetlinkError(ref m) if m.raw_code() == -libc::EXFULL => {
                    super::link::bridge_full(bridge_name)
                }
                e => nl_err(format!("attach {ifname} to its bridge"))(e),
            })
    }

    pub fn delete(&self, index: u32, ifname: &str) -> Result<()> {
        self.run(self.handle.link().del(index).execute())
            .map_err(nl_err(format!("delete {ifname}")))
    }

    /// Delete interface `name` if it exists.
    pub fn delete_by_name(&self, name: &str) -> Result<()> {
        match self.index(name)? {
            Some(i) => self.delete(i, name),
            None => Ok(()),
        }
    }

    /// A veth pair: `host` here, `peer` created directly in the network namespace of
    /// `netns_pid` (so its name never collides with a host interface).
    pub fn add_veth(
        &self,
        host: &str,
        peer: &str,
        mac: Option<&str>,
        mtu: Option<u32>,
        netns_pid: i32,
    ) -> Result<()> {
        let mut p = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_pid(netns_pid as u32);
        if let Some(m) = mac.and_then(parse_mac) {
            p = p.address(m);
        }
        if let Some(m) = mtu {
            p = p.mtu(m);
        }
        let mut b =
            LinkVeth::new(host, peer).set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())));
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        self.run(self.handle.link().add(b.build()).execute())
            .map_err(nl_err(format!("create veth pair {host}/{peer}")))
    }

    /// A macvlan on `parent`, created directly in the network namespace of `netns_pid`.
    pub fn add_macvlan(
        &self,
        name: &str,
        parent: &str,
        mode: &str,
        mac: Option<&str>,
        mtu: Option<u32>,
        netns_pid: i32,
    ) -> Result<()> {
        let parent_idx = self.index(parent)?.ok_or_else(|| {
            Error::net(
                format!("macvlan parent interface {parent} does not exist"),
                "set network.link to an existing host interface (ip -br link lists them)",
            )
        })?;
        let mode = match mode {
            "private" => MacVlanMode::Private,
            "vepa" => MacVlanMode::Vepa,
            "passthru" => MacVlanMode::Passthrough,
            _ => MacVlanMode::Bridge,
        };
        let mut b = LinkMacVlan::new(name, parent_idx, mode).setns_by_pid(netns_pid as u32);
        if let Some(m) = mac.and_then(parse_mac) {
            b = b.address(m);
        }
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        self.run(self.handle.link().add(b.build()).execute())
            .map_err(nl_err(format!("create macvlan {name} on {parent}")))
    }

    /// The default route via `gw`.
    pub fn add_default_route(&self, gw: Ipv4Addr) -> Result<()> {
        let msg = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .build();
        self.run(self.handle.route().add(msg).execute())
            .map_err(nl_err(format!("add the default route via {gw}")))
    }

    /// Names of the interfaces enslaved to bridge `bridge`.
    pub fn ports(&self, bridge: u32) -> Result<Vec<String>> {
        let links: Vec<_> = self
            .run(self.handle.link().get().execute().try_collect())
            .map_err(nl_err("list interfaces".into()))?;
        Ok(links
            .into_iter()
            .filter(|l| {
                l.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::Controller(c) if *c == bridge))
            })
            .filter_map(|l| {
                l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:16:3e:0a:bc:ff"),
            Some(vec![0, 0x16, 0x3e, 0x0a, 0xbc, 0xff])
        );
        assert_eq!(parse_mac("00:16:3e:0a:bc"), None);
        assert_eq!(parse_mac("00:16:3e:0a:bc:zz"), None);
    }
}
