//! A container's published ports at start: where they go (its address, known before
//! it runs), who else holds them (another container, a host process), then its rules
//! (net::ports), removed again if the start fails. The monitor removes them at the
//! end of the run; a stop that finds the monitor gone, or the next start, does when
//! it was killed.

use std::net::Ipv4Addr;

use super::{Container, State};
use crate::config::{ContainerConfig, Ipv4Mode, NetKind, Publish, SystemConfig};
use crate::error::{Error, Result};
use crate::net::ports::{self, Ports, PortsLock, Spec, Taken};

/// The rules of a start under way: removed on drop unless the start succeeded.
pub(super) struct Published {
    ports: Ports,
    key: String,
    armed: bool,
}

impl Published {
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        if self.armed {
            match self.ports.lock() {
                Ok(l) => self.ports.remove(&l, &self.key),
                Err(e) => eprintln!("cannot remove the published ports of {}: {e}", self.key),
            }
        }
    }
}

impl Container {
    /// Publish `cfg`'s ports (the caller holds the container's lock, and found it not
    /// running); first remove what a killed run left.
    pub(super) fn publish_ports(
        &self,
        sys: &SystemConfig,
        cfg: &ContainerConfig,
    ) -> Result<Option<Published>> {
        let ports = Ports::new(&sys.runpath);
        if cfg.publish.is_empty() && !ports.may_have(&self.key) {
            return Ok(None);
        }
        let lock = ports.lock()?;
        if ports.may_have(&self.key) {
            ports.remove(&lock, &self.key);
        }
        if cfg.publish.is_empty() {
            return Ok(None);
        }
        let (bridge, ip, prefix) = self.publish_target(sys, cfg)?;
        let mut tables = ports::tables();
        tables.retain(|t| t.key != self.key);
        self.refuse_taken(sys, cfg, &ports, &lock, &mut tables)?;
        let mut spec = Spec {
            key: self.key.clone(),
            name: self.name.clone(),
            bridge,
            ip,
            prefix,
            entries: cfg.publish.clone(),
            localnet_was: None,
        };
        let loopback = cfg.publish.iter().any(Publish::on_loopback);
        ports.add(&lock, &mut spec, &tables, loopback)?;
        Ok(Some(Published {
            ports,
            key: self.key.clone(),
            armed: true,
        }))
    }

    /// The bridge and address the ports go to: the first veth's, which must be known
    /// before the start and reachable from the host.
    fn publish_target(
        &self,
        sys: &SystemConfig,
        cfg: &ContainerConfig,
    ) -> Result<(String, Ipv4Addr, u8)> {
        let file = self.config_path();
        let veths = || {
            cfg.networks
                .iter()
                .enumerate()
                .filter(|(_, n)| n.kind == NetKind::Veth)
        };
        let Some((i, n, addr)) =
            veths().find_map(|(i, n)| Some((i, n, crate::net::link::fixed_address(n)?)))
        else {
            let why = match veths().next() {
                Some((i, n)) if n.ipv4 == Some(Ipv4Mode::Auto) => format!(
                    "network[{i}] has ipv4 = \"auto\" on {}, which is not the managed bridge \
                     ({}), so it has no address rlxc knows",
                    n.link_or(&sys.network),
                    sys.network.bridge
                ),
                Some((i, n)) => format!(
                    "the address of network[{i}] is not known before it starts (ipv4 = {})",
                    n.ipv4.map_or("unset".into(), |m| format!("\"{m}\""))
                ),
                None => "it has no veth network on a bridge".into(),
            };
            return Err(Error::net(
                format!("{} publishes ports, but {why}", self.name),
                format!(
                    "give a veth network ipv4 = \"auto\" (on the managed bridge) or a fixed \
                     address in {}",
                    file.display()
                ),
            ));
        };
        let bridge = n.link_or(&sys.network).to_string();
        if !ports::plain_ifname(&bridge) {
            return Err(Error::net(
                format!("network[{i}].link = {bridge:?}: rlxc publishes ports only on bridges named with letters, digits, '-', '_' and '.'"),
                "rename the bridge, or remove [[publish]]",
            ));
        }
        let routed = crate::net::bridge::host_routes().iter().any(|(d, p, dev)| {
            *dev == bridge
                && crate::net::subnet::Subnet {
                    addr: *d,
                    prefix: *p,
                }
                .contains(addr.addr)
        });
        if !routed {
            return Err(Error::net(
                format!(
                    "{} publishes ports to {}, which the host has no route to through {bridge}",
                    self.name, addr.addr
                ),
                format!(
                    "give {bridge} an address in {}/{} (ip addr add ... dev {bridge})",
                    addr.addr, addr.prefix
                ),
            ));
        }
        let from_outside = cfg
            .publish
            .iter()
            .any(|p| !p.host_address().is_some_and(|a| a.is_loopback()));
        let forwarding =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1");
        if from_outside && !forwarding {
            return Err(Error::net(
                format!(
                    "{} publishes ports to other hosts, but IPv4 forwarding is off on this host",
                    self.name
                ),
                "turn it on (sysctl -w net.ipv4.ip_forward=1; the managed bridge does it), or \
                 publish to this host only with address = \"127.0.0.1\"",
            ));
        }
        Ok((bridge, addr.addr, addr.prefix))
    }

    /// Refuse a host port another container publishes, or a host process holds. A
    /// table of this installation whose container is stopped (its monitor was killed,
    /// then its processes) is removed from `tables` and the host.
    fn refuse_taken(
        &self,
        sys: &SystemConfig,
        cfg: &ContainerConfig,
        ports: &Ports,
        lock: &PortsLock,
        tables: &mut Vec<Spec>,
    ) -> Result<()> {
        let file = self.config_path();
        let fix =
            |what: &str| format!("{what}, or publish another host port in {}", file.display());
        let mut stale = Vec::new();
        for (i, p) in cfg.publish.iter().enumerate() {
            for t in tables.iter() {
                if stale.contains(&t.key) {
                    continue;
                }
                let Some(o) = t.entries.iter().find(|o| o.overlaps(p)) else {
                    continue;
                };
                let ours = super::host_key(&self.lxcpath, &t.name) == t.key;
                if ours && stopped(sys, &t.name) {
                    ports.remove(lock, &t.key);
                    stale.push(t.key.clone());
                    continue;
                }
                let who = if ours {
                    format!("the container {}", t.name)
                } else {
                    format!("the container {} of another rlxc installation", t.name)
                };
                return Err(Error::net(
                    format!("publish[{i}] ({p}): {who} publishes {o} already"),
                    fix(&format!("stop {} (rlxc-stop -n {})", t.name, t.name)),
                ));
            }
            match ports::first_taken(p.proto, p.host_address(), p.host.ports()) {
                None => {}
                Some(Taken::Process { port, by }) => {
                    let who = by.map_or("a host process".into(), |(pid, comm)| {
                        format!("a host process (pid {pid}, {comm})")
                    });
                    return Err(Error::net(
                        format!(
                            "publish[{i}] ({p}): host port {port}/{} is held by {who}",
                            p.proto
                        ),
                        fix("stop it"),
                    ));
                }
                Some(Taken::NotLocal(a)) => {
                    return Err(Error::net(
                        format!("publish[{i}].address = \"{a}\" is not an address of this host"),
                        format!(
                            "use one of its addresses (ip -4 addr), or leave address out for all \
                             of them, in {}",
                            file.display()
                        ),
                    ));
                }
            }
        }
        tables.retain(|t| !stale.contains(&t.key));
        Ok(())
    }
}

/// A container of this installation that nothing runs of, and no rlxc is starting: its
/// table is a killed run's. A container someone holds the lock of counts as running.
fn stopped(sys: &SystemConfig, name: &str) -> bool {
    let Ok(c) = Container::new(sys, name) else {
        return false;
    };
    if !c.exists() {
        return true;
    }
    let Ok(_lock) = crate::store::lock_name(&c.lxcpath, name, "checking its published ports")
    else {
        return false;
    };
    c.state() == State::Stopped
}
