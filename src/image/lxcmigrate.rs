//! An existing LXC container's `config` as rlxc's (rlxc-migrate): on top of what an
//! image's lines translate to (`lxcconf`), the keys only a container of one's own has:
//! its networks, limits, start settings, AppArmor. Every line ends up applied, covered
//! or reported.

use serde::de::DeserializeOwned;

use super::lxcconf::{self, Translation};
use crate::config::{ByteSize, ContainerConfig, Network};

/// The container's rootfs as its config names it (`dir:/path` or `/path`); another
/// kind of storage (`overlay:`, `lvm:`, `zfs:`, `loop:`) is the error.
pub fn rootfs(text: &str) -> Result<Option<String>, String> {
    let Some(v) = lxcconf::lines(text)
        .filter_map(|l| l.entry)
        .filter(|(k, _)| *k == "lxc.rootfs.path" || *k == "lxc.rootfs")
        .map(|(_, v)| v)
        .last()
    else {
        return Ok(None);
    };
    match v.split_once(':') {
        Some(("dir", p)) => Ok(Some(p.to_string())),
        None if v.starts_with('/') => Ok(Some(v.to_string())),
        _ => Err(format!(
            "its rootfs is `{v}`: only a directory (`dir:` or a plain path) can be migrated"
        )),
    }
}

fn typed<T: DeserializeOwned>(v: &str) -> Result<T, String> {
    toml::Value::String(v.to_string())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

/// Translate the container's `text` into `cfg`. Its networks replace the defaults' when
/// it has any `lxc.net.*` line.
pub fn translate(text: &str, cfg: &mut ContainerConfig) -> Translation {
    let mut t = Translation::default();
    let mut rest = String::new();
    let mut nets: Vec<Network> = Vec::new();
    for line in lxcconf::lines(text) {
        // The image translation reads (and reports) the lines that are not this one's.
        let mut pass_on = || {
            rest.push_str(line.text);
            rest.push('\n');
        };
        let Some((key, value)) = line.entry else {
            pass_on();
            continue;
        };
        let shown = format!("{key} = {value}");
        let outcome = if let Some(net) = key.strip_prefix("lxc.net.") {
            network(net, value, &mut nets)
        } else {
            own_key(key, value, cfg)
        };
        match outcome {
            Some(Ok(true)) => t.applied.push(shown),
            Some(Ok(false)) => t.covered.push(shown),
            Some(Err(why)) => t.ignored.push(format!("{shown} ({why})")),
            None => pass_on(),
        }
    }
    if !nets.is_empty() {
        cfg.networks = nets;
    }
    t.extend(lxcconf::translate(&rest, cfg));
    t
}

/// `lxc.net.N.KEY`: Some(Ok(applied?)), Some(Err(why)), never None (every such key is
/// this function's).
fn network(key: &str, value: &str, nets: &mut Vec<Network>) -> Option<Result<bool, String>> {
    let (index, field) = key.split_once('.')?;
    let Ok(i) = index.parse::<usize>() else {
        return Some(Err("not lxc.net.N.KEY".into()));
    };
    if i > 16 {
        return Some(Err("more networks than rlxc takes".into()));
    }
    while nets.len() <= i {
        nets.push(Network::default());
    }
    let n = &mut nets[i];
    let r = match field {
        "type" => match value {
            "phys" | "vlan" | "ipvlan" => Err(format!("type {value} has no rlxc equivalent")),
            v => typed(v).map(|k| n.kind = k),
        },
        "link" => {
            n.link = Some(value.to_string());
            Ok(())
        }
        "name" => {
            n.name = Some(value.to_string());
            Ok(())
        }
        "hwaddr" => typed(value).map(|h| n.hwaddr = Some(h)),
        "mtu" => value
            .parse()
            .map(|m| n.mtu = Some(m))
            .map_err(|_| "not a number".into()),
        "ipv4.address" => typed(value).map(|a| n.ipv4 = Some(a)),
        "ipv4.gateway" => typed(value).map(|g| n.ipv4_gateway = Some(g)),
        "ipv6.address" => {
            n.ipv6 = Some(value.to_string());
            Ok(())
        }
        "macvlan.mode" => typed(value).map(|m| n.mode = Some(m)),
        // rlxc brings its interfaces up.
        "flags" if value == "up" => return Some(Ok(false)),
        _ => Err("no rlxc equivalent".into()),
    };
    Some(r.map(|()| true))
}

/// The container-only keys outside networks; None for the image translation's.
fn own_key(key: &str, value: &str, cfg: &mut ContainerConfig) -> Option<Result<bool, String>> {
    let size = |v: &str| typed::<ByteSize>(v);
    let number = |v: &str| v.parse::<u64>().map_err(|_| "not a number".to_string());
    let r = match key {
        "lxc.rootfs.path" | "lxc.rootfs" => return Some(Ok(false)),
        "lxc.start.auto" => {
            cfg.autostart.enabled = value == "1";
            Ok(())
        }
        "lxc.start.order" => value
            .parse()
            .map(|o| cfg.autostart.order = o)
            .map_err(|_| "not a number".into()),
        "lxc.start.delay" => value
            .parse()
            .map(|d| cfg.autostart.delay = d)
            .map_err(|_| "not a number".into()),
        "lxc.group" => Err("autostart groups are not in this rlxc yet".into()),
        "lxc.cgroup2.memory.max" | "lxc.cgroup.memory.limit_in_bytes" => {
            size(value).map(|m| cfg.limits.memory = Some(m))
        }
        "lxc.cgroup2.memory.swap.max" => size(value).map(|m| cfg.limits.memory_swap = Some(m)),
        "lxc.cgroup2.pids.max" | "lxc.cgroup.pids.max" => {
            number(value).map(|p| cfg.limits.pids = Some(p))
        }
        "lxc.cgroup2.cpuset.cpus" | "lxc.cgroup.cpuset.cpus" => {
            typed(value).map(|c| cfg.limits.cpuset = Some(c))
        }
        "lxc.cgroup2.cpu.max" => cpus(value).map(|c| cfg.limits.cpus = Some(c)),
        // rlxc confines every container with its own generated profile.
        "lxc.apparmor.profile" | "lxc.aa_profile" if value == "generated" => {
            return Some(Ok(false))
        }
        "lxc.apparmor.profile" | "lxc.aa_profile" => {
            Err("rlxc confines every container with its own generated profile".into())
        }
        "lxc.apparmor.allow_nesting" | "lxc.apparmor.allow_incomplete" => {
            Err("no rlxc equivalent".into())
        }
        // Mapped ids mean a rootfs owned by host ids on disk; rlxc keeps the
        // container's own ids on disk (it idmaps the mount), so these are refused
        // before anything is translated (see container::migrate).
        "lxc.idmap" | "lxc.id_map" => Err("unprivileged LXC containers are refused".into()),
        _ => return None,
    };
    Some(r.map(|()| true))
}

/// cgroup2's `cpu.max` (`QUOTA PERIOD`) as CPUs.
fn cpus(v: &str) -> Result<f64, String> {
    let mut it = v.split_whitespace();
    let quota: f64 = it
        .next()
        .and_then(|q| q.parse().ok())
        .ok_or("not QUOTA PERIOD")?;
    let period: f64 = it.next().and_then(|p| p.parse().ok()).unwrap_or(100_000.0);
    Ok(quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
lxc.include = /usr/share/lxc/config/common.conf
lxc.arch = x86_64
lxc.rootfs.path = dir:/var/lib/lxc/old/rootfs
lxc.uts.name = oldbox
lxc.net.0.type = veth
lxc.net.0.link = lxcbr0
lxc.net.0.flags = up
lxc.net.0.hwaddr = 00:16:3e:12:34:56
lxc.net.0.ipv4.address = 10.0.3.50/24
lxc.net.0.ipv4.gateway = 10.0.3.1
lxc.start.auto = 1
lxc.start.order = 5
lxc.start.delay = 3
lxc.group = web
lxc.cgroup2.memory.max = 512M
lxc.cgroup2.pids.max = 300
lxc.cgroup2.cpu.max = 150000 100000
lxc.apparmor.profile = generated
lxc.mount.entry = /srv/data srv/data none bind,create=dir 0 0
lxc.tty.max = 4
";

    #[test]
    fn a_containers_keys_are_translated_and_the_rest_reported() {
        let mut cfg = ContainerConfig::default();
        let t = translate(CONFIG, &mut cfg);
        assert_eq!(
            rootfs(CONFIG).unwrap().as_deref(),
            Some("/var/lib/lxc/old/rootfs")
        );
        assert_eq!(cfg.hostname.as_deref(), Some("oldbox"));
        assert_eq!(cfg.arch.as_deref(), Some("amd64"));
        assert_eq!(cfg.networks.len(), 1);
        let n = &cfg.networks[0];
        assert_eq!(n.link.as_deref(), Some("lxcbr0"));
        assert!(n.ipv4.is_some() && n.ipv4_gateway.is_some() && n.hwaddr.is_some());
        assert!(cfg.autostart.enabled);
        assert_eq!((cfg.autostart.order, cfg.autostart.delay), (5, 3));
        assert_eq!(
            cfg.limits.memory.as_ref().map(|m| m.bytes()),
            Some(512 << 20)
        );
        assert_eq!(cfg.limits.pids, Some(300));
        assert_eq!(cfg.limits.cpus, Some(1.5));
        assert_eq!(cfg.mounts.len(), 1);
        let ignored = t.ignored.join("\n");
        assert!(ignored.contains("lxc.group = web"), "{ignored}");
        assert_eq!(cfg.tty_max, Some(4), "{ignored}");
        assert!(t.covered.iter().any(|c| c.starts_with("lxc.net.0.flags")));
        assert!(t
            .covered
            .iter()
            .any(|c| c.starts_with("lxc.apparmor.profile")));
        assert!(t.applied.iter().any(|c| c.starts_with("lxc.start.order")));
    }

    #[test]
    fn lines_are_read_as_lxc_reads_them() {
        let text = "# c\n\n  lxc.net.0.link = 'lxcbr0'\nlxc.uts.name = \"box\"\ngarbage\n";
        let mut cfg = ContainerConfig::default();
        let t = translate(text, &mut cfg);
        assert_eq!(cfg.networks[0].link.as_deref(), Some("lxcbr0"));
        assert_eq!(cfg.hostname.as_deref(), Some("box"));
        assert_eq!(t.ignored, ["garbage (not a key = value line)"], "{t:?}");
        assert_eq!(
            rootfs("lxc.rootfs.path = 'dir:/srv/r'\n")
                .unwrap()
                .as_deref(),
            Some("/srv/r")
        );
    }

    #[test]
    fn other_storage_is_refused() {
        let e = rootfs("lxc.rootfs.path = overlay:/a:/b\n").unwrap_err();
        assert!(e.contains("overlay:/a:/b"), "{e}");
        let e = rootfs("lxc.rootfs.path = lvm:/dev/vg/x\n").unwrap_err();
        assert!(e.contains("only a directory"), "{e}");
    }
}
