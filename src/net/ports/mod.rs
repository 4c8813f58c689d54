//! Published ports (`[[publish]]`): DNAT from host ports to a container's address, in
//! one nftables table per container (see `rules`), added before its init runs and
//! removed when the run ends. A marker file per container in RUNPATH/ports says a
//! table may exist, so containers that publish nothing never pay for an `nft` call,
//! and a run whose monitor was killed is cleaned up by the next start or stop.
//!
//! Kernel NAT rather than a proxy process per port (Docker's userland proxy): clients'
//! addresses reach the container unchanged, UDP works the same as TCP, and there is
//! nothing to keep running. The price is `route_localnet` on the bridge for 127.0.0.1
//! (see `rules::render`), turned on only while a container on that bridge publishes
//! to loopback and put back as it was after the last one.

mod holder;
pub mod rules;

use std::path::{Path, PathBuf};

pub use holder::{first_taken, Taken};
pub use rules::Spec;

use super::{run, run_stdin, which};
use crate::error::{Error, IoContext, Result};

/// RUNPATH/ports: the lock and the markers.
pub struct Ports {
    dir: PathBuf,
}

/// Held while tables are read and changed: two starts never publish one port, and a
/// route_localnet is never put back under a table that has just been added.
pub struct PortsLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl Ports {
    pub fn new(runpath: &Path) -> Self {
        Ports {
            dir: runpath.join("ports"),
        }
    }

    fn marker(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Whether the container whose host key is `key` may have a table (cheap: a stat).
    pub fn may_have(&self, key: &str) -> bool {
        self.marker(key).exists()
    }

    pub fn lock(&self) -> Result<PortsLock> {
        crate::store::mkdir_p(&self.dir, 0o700)?;
        // Container keys always hold a '.': no marker is called "lock".
        super::lock_file(&self.dir.join("lock")).map(PortsLock)
    }

    /// Add `spec`'s table (its `localnet_was` is filled in here) and turn route_localnet
    /// on for its bridge if it publishes to loopback. `tables` is `tables()` under the
    /// same lock.
    pub fn add(
        &self,
        lock: &PortsLock,
        spec: &mut Spec,
        tables: &[Spec],
        loopback: bool,
    ) -> Result<()> {
        need_nft()?;
        let sysctl = localnet_path(&spec.bridge);
        spec.localnet_was = loopback.then(|| {
            // A table on the same bridge turned it on already: its "before" is the one.
            tables
                .iter()
                .filter(|t| t.bridge == spec.bridge)
                .find_map(|t| t.localnet_was.clone())
                .unwrap_or_else(|| {
                    std::fs::read_to_string(&sysctl).map_or("0".into(), |v| v.trim().to_string())
                })
        });
        crate::store::write_atomic(&self.marker(&spec.key), spec.name.as_bytes(), 0o600)?;
        let added = run_stdin("nft", &["-f", "-"], &rules::render(spec)).and_then(|_| {
            if loopback {
                std::fs::write(&sysctl, "1").ctx("turn on route_localnet in", &sysctl)?;
            }
            Ok(())
        });
        if let Err(e) = added {
            self.remove(lock, &spec.key);
            return Err(Error::net(
                format!("cannot add the published ports of {}: {e}", spec.name),
                "rlxc-checkconfig shows whether nftables works on this host",
            ));
        }
        Ok(())
    }

    /// Remove the table of `key` (if any), and put its bridge's route_localnet back when
    /// no table that needs it is left there. What is gone already is fine.
    pub fn remove(&self, _lock: &PortsLock, key: &str) {
        let tables = tables();
        if let Some(t) = tables.iter().find(|t| t.key == key) {
            let _ = run("nft", &["delete", "table", "ip", &rules::table_name(key)]);
            let still_needed = tables
                .iter()
                .any(|o| o.key != key && o.bridge == t.bridge && o.localnet_was.is_some());
            if let (Some(was), false, true) =
                (&t.localnet_was, still_needed, plain_ifname(&t.bridge))
            {
                // The bridge may be gone (and the setting with it).
                let _ = std::fs::write(localnet_path(&t.bridge), was);
            }
        }
        let _ = std::fs::remove_file(self.marker(key));
    }
}

/// Remove the table of the container `key` of the installation at `runpath`, if it may
/// have one: at the end of its run, and when a stop finds its monitor gone.
pub fn release(runpath: &Path, key: &str) {
    let ports = Ports::new(runpath);
    if !ports.may_have(key) {
        return;
    }
    match ports.lock() {
        Ok(lock) => ports.remove(&lock, key),
        Err(e) => eprintln!("cannot remove the published ports of {key}: {e}"),
    }
}

/// Let the bridge send frames back out of the container's own port: with br_netfilter
/// (bridge-nf-call-iptables), a container's connection to its own published port is
/// DNATed back to it and bridged out of the port it came in on, which a bridge refuses
/// without hairpin mode. Called for each veth of a container that publishes ports.
pub fn hairpin(veths: &[String]) -> Result<()> {
    for v in veths.iter().filter(|v| plain_ifname(v)) {
        let p = Path::new("/sys/class/net")
            .join(v)
            .join("brport/hairpin_mode");
        std::fs::write(&p, "1").ctx("turn on hairpin mode in", &p)?;
    }
    Ok(())
}

/// Interface names rlxc writes into rules and sysctl paths: what `ip link` makes of
/// ordinary names, never a quote or a path.
pub fn plain_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Every container's table on the host (every installation's).
pub fn tables() -> Vec<Spec> {
    if which("nft").is_none() {
        return Vec::new();
    }
    run("nft", &["list", "ruleset", "ip"])
        .map(|r| rules::parse(&r))
        .unwrap_or_default()
}

/// The table of one container, if it has one.
pub fn table_of(key: &str) -> Option<Spec> {
    let t = rules::table_name(key);
    run("nft", &["list", "table", "ip", &t])
        .ok()
        .and_then(|r| rules::parse(&r).into_iter().next())
}

fn need_nft() -> Result<()> {
    if which("nft").is_some() {
        Ok(())
    } else {
        Err(Error::net(
            "publishing ports needs nftables (the nft command), which is not installed",
            "apt-get install nftables, or remove [[publish]] from the container's config",
        ))
    }
}

fn localnet_path(bridge: &str) -> PathBuf {
    Path::new("/proc/sys/net/ipv4/conf")
        .join(bridge)
        .join("route_localnet")
}
