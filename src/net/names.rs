//! A managed bridge's per-container DHCP reservations and DNS names: one small file per
//! container in two directories dnsmasq watches (`--dhcp-hostsdir`, `--hostsdir`), so a
//! new container costs dnsmasq one file read, not a reload of every container's line
//! (a reload per start made a thousand starts quadratic), and a container whose address
//! rlxc knows (`auto` or fixed) resolves by name from its start, DHCP client or not.
//! dnsmasq drops a record from `--hostsdir` when its file changes or goes; a reservation
//! it read stays until SIGHUP, so only a changed or removed reservation reloads it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::dnsmasq::Files;
use crate::error::{IoContext, Result};

impl Files {
    /// Reservations, `MAC,NAME` or `MAC,IP,NAME`, one file per container.
    pub fn dhcp_dir(&self) -> PathBuf {
        self.path("dhcp-hosts.d")
    }
    /// DNS records, `IP NAME`, one file per container with an address rlxc knows.
    pub fn hosts_dir(&self) -> PathBuf {
        self.path("hosts.d")
    }
}

/// Both directories, there before dnsmasq starts watching them.
pub fn make_dirs(f: &Files) -> Result<()> {
    for d in [f.dhcp_dir(), f.hosts_dir()] {
        match std::fs::create_dir(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).ctx("create", &d)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every reservation line, with the container it is for.
fn entries(f: &Files) -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir(f.dhcp_dir()) else {
        return Vec::new();
    };
    let mut v: Vec<(String, String)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            // rlxc's own temporary files (write_atomic) are not reservations.
            if name.starts_with('.') {
                return None;
            }
            let line = std::fs::read_to_string(e.path()).ok()?;
            Some((name, line.trim().to_string()))
        })
        .collect();
    v.sort();
    v
}

/// Reservations: `MAC,NAME` or `MAC,IP,NAME` lines.
pub fn reservations(f: &Files) -> Vec<String> {
    entries(f).into_iter().map(|(_, l)| l).collect()
}

/// Give `mac` the DNS name `name` (and the address `ip`, if any, also as a DNS record),
/// in files named `key` (the container's installation key and interface: two
/// installations' containers of one name never share them); replaces the reservations
/// of other containers for that MAC or address.
pub fn reserve(f: &Files, key: &str, mac: &str, ip: Option<Ipv4Addr>, name: &str) -> Result<()> {
    make_dirs(f)?;
    let mac = mac.to_ascii_lowercase();
    let line = match ip {
        Some(ip) => format!("{mac},{ip},{name}"),
        None => format!("{mac},{name}"),
    };
    let ip_field = ip.map(|i| format!(",{i},"));
    let mut reload = false;
    for (other, l) in entries(f) {
        let clash = l.split(',').next() == Some(mac.as_str())
            || ip_field.as_ref().is_some_and(|i| l.contains(i.as_str()));
        if other != key && clash {
            remove(&f.dhcp_dir().join(&other))?;
            remove(&f.hosts_dir().join(&other))?;
            reload = true;
        }
    }
    let own = f.dhcp_dir().join(key);
    match std::fs::read_to_string(&own) {
        // Every start reserves again: when nothing changed, dnsmasq is left alone.
        Ok(l) if l.trim() == line => {}
        Ok(_) => {
            write(&own, &line)?;
            reload = true;
        }
        Err(_) => write(&own, &line)?,
    }
    let record = f.hosts_dir().join(key);
    match ip {
        Some(ip) => {
            let text = format!("{ip} {name}");
            if std::fs::read_to_string(&record)
                .ok()
                .as_deref()
                .map(str::trim)
                != Some(&text)
            {
                write(&record, &text)?;
            }
        }
        None => remove(&record)?,
    }
    if reload {
        super::dnsmasq::reload(f);
    }
    Ok(())
}

fn write(p: &Path, line: &str) -> Result<()> {
    crate::store::write_atomic(p, format!("{line}\n").as_bytes(), 0o644)
}

fn remove(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("remove", p),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_replace_by_mac_name_and_address() {
        let d = tempfile::tempdir().unwrap();
        let f = Files {
            dir: d.path().to_path_buf(),
            bridge: "br9".into(),
        };
        let add = |mac: &str, ip: Option<&str>, name: &str| {
            let key = format!("{name}.k1");
            reserve(&f, &key, mac, ip.map(|i| i.parse().unwrap()), name).unwrap()
        };
        add("00:16:3E:00:00:01", None, "web1");
        add("00:16:3e:00:00:02", Some("10.0.3.9"), "web2");
        add("00:16:3e:00:00:01", Some("10.0.3.8"), "web1");
        add("00:16:3e:00:00:03", Some("10.0.3.9"), "web3");
        assert_eq!(
            reservations(&f),
            [
                "00:16:3e:00:00:01,10.0.3.8,web1",
                "00:16:3e:00:00:03,10.0.3.9,web3"
            ]
        );
        let record = |n: &str| std::fs::read_to_string(f.hosts_dir().join(format!("{n}.k1"))).ok();
        assert_eq!(record("web1").as_deref(), Some("10.0.3.8 web1\n"));
        assert_eq!(record("web2"), None, "web2's address went to web3");
        // The same reservation again leaves the files (and dnsmasq) alone.
        use std::os::unix::fs::MetadataExt;
        let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
        let before = (
            ino(f.dhcp_dir().join("web3.k1")),
            ino(f.hosts_dir().join("web3.k1")),
        );
        add("00:16:3e:00:00:03", Some("10.0.3.9"), "web3");
        assert_eq!(
            (
                ino(f.dhcp_dir().join("web3.k1")),
                ino(f.hosts_dir().join("web3.k1"))
            ),
            before
        );
    }
}
