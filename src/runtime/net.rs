//! Container network interfaces. For now the host side is driven with iproute2's `ip`;
//! the managed bridge (and netlink) arrive with the networking work.

use std::process::Command;

use crate::config::Network;
use crate::error::{Error, Result};

/// The bridge must exist and be a bridge.
pub fn check_bridge(link: &str) -> Result<()> {
    let p = std::path::Path::new("/sys/class/net").join(link);
    if !p.exists() {
        return Err(Error::Other(format!(
            "bridge {link} does not exist: create it (ip link add {link} type bridge; ip link set {link} up) \
             or set network.link in the container's config.toml"
        )));
    }
    if !p.join("bridge").is_dir() {
        return Err(Error::Other(format!(
            "{link} is not a bridge; network.link must name a bridge"
        )));
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io("run", "ip (iproute2)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A host-side name nobody else uses: "veth" + 7 random hex digits.
fn host_name() -> String {
    let r = crate::config::random_bytes(4);
    let v = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) & 0x0fff_ffff;
    format!("veth{v:07x}")
}

/// Create the veth pair for `n`: the peer is made directly inside the container's
/// network namespace under its final name, so it never collides with a host interface.
pub fn setup_veth(n: &Network, pid: i32) -> Result<String> {
    let link = n.link.clone().unwrap_or_else(|| "virbr0".into());
    let inner = n.name.clone().unwrap_or_else(|| "eth0".into());
    let host = host_name();
    let pid = pid.to_string();
    let mut args = vec!["link", "add", host.as_str()];
    let mtu;
    if let Some(m) = n.mtu {
        mtu = m.to_string();
        args.extend(["mtu", mtu.as_str()]);
    }
    args.extend(["type", "veth", "peer", "name", inner.as_str()]);
    if let Some(mac) = &n.hwaddr {
        args.extend(["address", mac.as_str()]);
    }
    args.extend(["netns", pid.as_str()]);
    ip(&args)?;
    let undo = |e| {
        let _ = ip(&["link", "del", host.as_str()]);
        e
    };
    ip(&["link", "set", host.as_str(), "master", link.as_str(), "up"]).map_err(undo)?;
    Ok(host)
}

pub fn remove_veth(host: &str) {
    // Gone already when the container's namespace died: that is fine.
    let _ = ip(&["link", "del", host]);
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
