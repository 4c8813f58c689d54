//! Container network interfaces: veths on a bridge and macvlans, made through netlink
//! with the container end created directly in its network namespace; fixed addresses
//! set from the host before init runs. Also what the host reads of a container's links.

use std::net::IpAddr;

use super::netlink::Netlink;
use super::subnet::Subnet;
use crate::config::{HwaddrTemplate, Ipv4Gateway, NetKind, Network, NetworkSettings};
use crate::error::{Error, Result};

/// The bridge must exist and be a bridge.
pub fn check_bridge(link: &str) -> Result<()> {
    let p = std::path::Path::new("/sys/class/net").join(link);
    if !p.exists() {
        return Err(Error::net(
            format!("bridge {link} does not exist"),
            format!(
                "create it (ip link add {link} type bridge; ip link set {link} up), set network.link in the \
                 container's config.toml to a bridge you have, or name {link} as network.bridge in the system \
                 config so rlxc manages it"
            ),
        ));
    }
    if !p.join("bridge").is_dir() {
        return Err(Error::net(
            format!("{link} is not a bridge"),
            "network.link of a veth must name a bridge (ip -d link show type bridge lists them); \
             use type = \"macvlan\" to share a plain interface",
        ));
    }
    Ok(())
}

/// The most interfaces one Linux bridge takes: port numbers are 10 bits and 0 is not
/// given out (the kernel's BR_MAX_PORTS, then EXFULL).
pub const BRIDGE_MAX_PORTS: usize = 1023;

/// Bridge `link` has room for one more interface: checked before anything is made (two
/// starts at once may still race for the last port: `bridge_full` is then the error).
pub fn check_ports(link: &str) -> Result<()> {
    let brif = std::path::Path::new("/sys/class/net")
        .join(link)
        .join("brif");
    let ports = std::fs::read_dir(&brif).map_or(0, |rd| rd.count());
    if ports >= BRIDGE_MAX_PORTS {
        return Err(bridge_full(link));
    }
    Ok(())
}

/// Bridge `link` has no port left.
pub fn bridge_full(link: &str) -> Error {
    Error::net(
        format!(
            "bridge {link} has {BRIDGE_MAX_PORTS} interfaces attached, the most a Linux bridge \
             takes"
        ),
        format!(
            "put further containers on a second bridge: create one (ip link add br1 type \
             bridge; ip link set br1 up; with an address and a route of its own) and set \
             network.link = \"br1\" in their config.toml; or stop containers on {link}"
        ),
    )
}

/// A host-side name nobody else uses: "veth" + 7 random hex digits.
fn host_name() -> String {
    let r = crate::config::random_bytes(4);
    let v = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) & 0x0fff_ffff;
    format!("veth{v:07x}")
}

/// The interface name inside the container: `name`, else eth0, eth1, … by position.
pub fn inner_name(n: &Network, i: usize) -> String {
    n.name.clone().unwrap_or_else(|| format!("eth{i}"))
}

/// Create every interface of `networks` for the container whose init is `pid`.
/// Returns the host ends of veths (removed at stop); on error what was made is undone.
pub fn setup_all(networks: &[Network], pid: i32, managed: &NetworkSettings) -> Result<Vec<String>> {
    let nl = Netlink::open()?;
    let mut veths = Vec::new();
    // One default route: the first interface with a gateway's.
    let mut routed = false;
    let res = networks.iter().enumerate().try_for_each(|(i, n)| {
        let inner = inner_name(n, i);
        match n.kind {
            NetKind::Veth => veths.push(setup_veth(&nl, n.link_or(managed), n, &inner, pid)?),
            NetKind::Macvlan => {
                let parent = n.link.as_deref().ok_or_else(|| {
                    Error::net(
                        format!("network[{i}] is a macvlan without a link"),
                        "set link to the host interface it shares",
                    )
                })?;
                nl.add_macvlan(
                    &inner,
                    parent,
                    n.mode.unwrap_or_default().as_str(),
                    n.hwaddr.as_ref().map(HwaddrTemplate::as_str),
                    n.mtu,
                    pid,
                )?;
            }
            NetKind::None | NetKind::Empty => return Ok(()),
        }
        configure_inside(n, &inner, pid, managed, &mut routed)
    });
    if let Err(e) = res {
        for v in &veths {
            let _ = nl.delete_by_name(v);
        }
        return Err(e);
    }
    Ok(veths)
}

fn setup_veth(nl: &Netlink, link: &str, n: &Network, inner: &str, pid: i32) -> Result<String> {
    let bridge = nl.index(link)?.ok_or_else(|| {
        Error::net(
            format!("bridge {link} disappeared during the start"),
            "start the container again",
        )
    })?;
    let host = host_name();
    nl.add_veth(
        &host,
        inner,
        n.hwaddr.as_ref().map(HwaddrTemplate::as_str),
        n.mtu,
        pid,
    )?;
    let attached = nl
        .index(&host)?
        .ok_or_else(|| Error::Other(format!("veth {host} vanished after it was created")))
        .and_then(|idx| nl.attach_up(idx, bridge, link, &host));
    if let Err(e) = attached {
        let _ = nl.delete_by_name(&host);
        return Err(e);
    }
    Ok(host)
}

/// A fixed address (or the one `auto` recorded) goes on the interface before init
/// runs, with a default route via the gateway: the bridge's address on the managed
/// bridge unless `ipv4_gateway` says otherwise. DHCP images get the same address from
/// their reservation. A container has one default route: only the first interface with
/// a gateway sets it (`routed` says whether one did); a second one failed the start.
fn configure_inside(
    n: &Network,
    inner: &str,
    pid: i32,
    managed: &NetworkSettings,
    routed: &mut bool,
) -> Result<()> {
    let Some(addr) = fixed_address(n) else {
        return Ok(());
    };
    let nl = Netlink::open_in_netns_of(pid)?;
    let idx = nl
        .index(inner)?
        .ok_or_else(|| Error::Other(format!("{inner} is missing inside the container")))?;
    nl.add_address(idx, IpAddr::V4(addr.addr), addr.prefix, inner)?;
    nl.set_up(idx, inner)?;
    let on_managed = n.link_or(managed) == managed.bridge;
    let gateway = match n.ipv4_gateway {
        Some(Ipv4Gateway::Addr(g)) => Some(g),
        _ if on_managed => Some(managed.ipv4.addr()),
        _ => None,
    };
    if let Some(gw) = gateway.filter(|_| !*routed) {
        if let Some(lo) = nl.index("lo")? {
            nl.set_up(lo, "lo")?;
        }
        nl.add_default_route(gw)?;
        *routed = true;
    }
    Ok(())
}

/// The address a network entry gives the container itself, if any.
pub fn fixed_address(n: &Network) -> Option<Subnet> {
    let net = n.known_ipv4_net()?;
    Some(Subnet {
        addr: net.ip(),
        prefix: net.prefix(),
    })
}

/// Whether this kernel can create a bridge, a veth pair and a macvlan: tried for real
/// in a child in a network namespace of its own, which vanishes with it. Kernels build
/// these in or as modules, so neither /sys/module nor modules.dep tells reliably.
pub fn probe_kinds() -> Vec<bool> {
    let Ok((rd, wr)) = nix::unistd::pipe() else {
        return Vec::new();
    };
    match crate::sys::fork() {
        Ok(crate::sys::Forked::Child) => {
            drop(rd);
            let ok = |r: Result<()>| if r.is_ok() { b'1' } else { b'0' };
            let res = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::Other(e.to_string()))
                .and_then(|_| Netlink::open())
                .map(|nl| {
                    let me = std::process::id() as i32;
                    [
                        ok(nl.add_bridge("probebr").map(|_| ())),
                        ok(nl.add_veth("probev0", "probev1", None, None, me)),
                        ok(nl.add_macvlan("probemv", "probebr", "bridge", None, None, me)),
                    ]
                })
                .unwrap_or([b'0'; 3]);
            let _ = nix::unistd::write(&wr, &res);
            crate::sys::exit_child(0)
        }
        Ok(crate::sys::Forked::Parent(pid)) => {
            drop(wr);
            let mut buf = [0u8; 3];
            let n = nix::unistd::read(&rd, &mut buf).unwrap_or(0);
            let _ = nix::sys::wait::waitpid(pid, None);
            buf[..n].iter().map(|b| *b == b'1').collect()
        }
        Err(_) => Vec::new(),
    }
}

/// Delete the veth `host` (and its peer) and wait until the kernel has finished.
pub fn remove_veth(host: &str) {
    begin_remove_veth(host).finish();
}

/// A veth being deleted. A delete takes the pair out of the host's view within a few
/// milliseconds, but the call then waits out RCU grace periods (20-40 ms here) before it
/// returns; waiting for a dying network namespace to take the pair is as slow. So the
/// call runs on a thread of its own: the caller waits only until the host end is gone
/// (`wait_gone`), and for the thread (`finish`) before it exits or forks.
pub struct VethRemoval {
    pub name: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn sysfs(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/sys/class/net").join(name)
}

/// Start deleting the veth `host`; nothing to do if it is gone already.
pub fn begin_remove_veth(host: &str) -> VethRemoval {
    let thread = sysfs(host).exists().then(|| {
        let name = host.to_string();
        std::thread::spawn(move || {
            if let Ok(nl) = Netlink::open() {
                // The namespace's teardown may have taken it meanwhile: not an error.
                let _ = nl.delete_by_name(&name);
            }
        })
    });
    VethRemoval {
        name: host.to_string(),
        thread,
    }
}

impl VethRemoval {
    /// Wait (at most `limit`) until the host end has left the host's view.
    pub fn wait_gone(&self, limit: std::time::Duration) -> bool {
        let t0 = std::time::Instant::now();
        let sysfs = sysfs(&self.name);
        while sysfs.exists() {
            if t0.elapsed() > limit {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_micros(250));
        }
        true
    }

    /// Wait for the delete to return: no thread may outlive its process or be copied
    /// into a fork.
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Addresses inside the container's network namespace, read from init's /proc view:
/// (IPv4, IPv6), loopback and link-local left out.
pub fn container_addresses(pid: i32) -> (Vec<String>, Vec<String>) {
    let v4 = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie"))
        .map(|t| parse_fib_trie_locals(&t))
        .unwrap_or_default();
    let v6 = std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6"))
        .map(|t| parse_if_inet6(&t))
        .unwrap_or_default();
    (v4, v6)
}

/// Local addresses are the leaves followed by "/32 host LOCAL".
fn parse_fib_trie_locals(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = Some(addr.to_string());
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last.take() {
                if !a.starts_with("127.") && !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn parse_if_inet6(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let hex = l.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let bytes: Vec<u8> = (0..16)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            let arr: [u8; 16] = bytes.try_into().ok()?;
            let a = std::net::Ipv6Addr::from(arr);
            (!a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80).then(|| a.to_string())
        })
        .collect()
}

/// (interface, rx bytes, tx bytes) from init's /proc/net/dev, loopback left out.
pub fn link_stats(pid: i32) -> Vec<(String, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let name = name.trim();
            (name != "lo" && f.len() >= 9).then(|| (name.to_string(), f[0], f[8]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_trie_locals() {
        let t = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.3.5\n        /32 host LOCAL\n     |-- 10.0.3.255\n        /32 link BROADCAST\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n     |-- 10.0.3.5\n        /32 host LOCAL\n";
        assert_eq!(parse_fib_trie_locals(t), ["10.0.3.5"]);
    }

    #[test]
    fn inet6_skips_loopback_and_link_local() {
        let t = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000216 02 40 20 80 eth0\nfd420000000000000000000000000005 02 40 00 80 eth0\n";
        assert_eq!(parse_if_inet6(t), ["fd42::5"]);
    }
}
