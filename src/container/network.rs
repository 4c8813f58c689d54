//! The managed bridge as the commands see it (rlxc-net start, stop, status), and the
//! entry of `__netd`, the supervisor that keeps the bridge's dnsmasq running. Each
//! operation takes the bridge's lock itself, so a caller cannot forget it.

use std::path::Path;

use crate::config::SystemConfig;
use crate::error::Result;
use crate::net::bridge::Managed;
use crate::net::supervisor;

pub struct Network<'a>(Managed<'a>);

impl<'a> Network<'a> {
    /// The bridge `sys` configures.
    pub fn new(sys: &'a SystemConfig) -> Result<Self> {
        Managed::new(sys).map(Network)
    }

    /// Create what is missing (idempotent); says what it did.
    pub fn start(&self) -> Result<String> {
        self.0.ensure(&self.0.lock()?)
    }

    /// Remove what rlxc created; with `force` even while containers are attached.
    pub fn stop(&self, force: bool) -> Result<String> {
        self.0.stop(&self.0.lock()?, force)
    }

    /// What rlxc created, dnsmasq's pid, the leases: lines to show.
    pub fn status(&self) -> String {
        self.0.status()
    }
}

/// Whether a container of the installation has a veth on the managed bridge (what
/// `rlxc-net start --if-used` at boot asks). A config that cannot be read counts: its
/// container may well need the bridge.
pub fn used_by_containers(sys: &SystemConfig) -> Result<bool> {
    for c in super::Container::list(sys)? {
        let Ok(cfg) = c.config() else {
            return Ok(true);
        };
        let on_managed = cfg.networks.iter().any(|n| {
            n.kind == crate::config::NetKind::Veth && n.link_or(&sys.network) == sys.network.bridge
        });
        if on_managed {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Run the supervisor until it is told to stop; its exit code.
pub fn supervise_dnsmasq(own_pidfile: &Path, dnsmasq_pidfile: &Path, argv: &[String]) -> i32 {
    supervisor::supervise(own_pidfile, dnsmasq_pidfile, argv)
}
