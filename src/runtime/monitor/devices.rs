//! Devices given to a running container: the monitor owns the cgroup (its device rules
//! and cgroup2 filter) and holds the container's network namespace, so it grants nodes
//! and lends host interfaces, and gives the interfaces back when the run ends, after
//! init is gone too. The config's `[[device]]` entries are resolved before the child
//! exists (their rules go into the cgroup with the standard ones) and given once the
//! child is in its root, before init runs.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::unistd::Pid;

use super::Monitor;
use crate::config::{Device, DeviceSource};
use crate::error::{Error, IoContext, Result};
use crate::net::nic::{self, LentNic};
use crate::runtime::nodes::{self, HostNode};

/// The config's `[[device]]` entries, found on the host.
pub(super) struct BootDevices {
    /// Each node, its path inside and how its entry is shown.
    nodes: Vec<(HostNode, String, String)>,
    /// Each interface's host name, name inside and how its entry is shown.
    nics: Vec<(String, String, String)>,
}

impl BootDevices {
    /// Every entry's device looked up on the host; the first absent one is the error,
    /// naming its entry.
    pub(super) fn resolve(devices: &[Device]) -> Result<Self> {
        let mut out = BootDevices {
            nodes: Vec::new(),
            nics: Vec::new(),
        };
        for (i, d) in devices.iter().enumerate() {
            let shown = d.shown(i);
            let inside = d.inside().to_string();
            match &d.source {
                DeviceSource::Node(p) => {
                    let node = HostNode::stat(Path::new(p)).map_err(|e| entry_error(&shown, &e))?;
                    out.nodes.push((node, inside, shown));
                }
                DeviceSource::Nic(n) => {
                    nic::check_present(n).map_err(|e| entry_error(&shown, &e))?;
                    out.nics.push((n.clone(), inside, shown));
                }
            }
        }
        Ok(out)
    }

    /// The device cgroup rules of the nodes.
    pub(super) fn rules(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _, _)| n.rule()).collect()
    }

    /// Make the nodes in the root of `init` (pivoted, not yet exec'd) and move the
    /// interfaces into `netns`; what was lent comes back if a later one fails.
    pub(super) fn give(&self, init: Pid, netns: Option<BorrowedFd<'_>>) -> Result<Vec<LentNic>> {
        for (node, inside, shown) in &self.nodes {
            nodes::add_node(init.as_raw(), node, inside).map_err(|e| entry_error(shown, &e))?;
        }
        let mut lent = Vec::new();
        for (host, inside, shown) in &self.nics {
            // Checked at load: interfaces only with a namespace of the container's own.
            let Some(ns) = netns else { break };
            match nic::lend(host, ns, inside) {
                Ok(l) => lent.push(l),
                Err(e) => {
                    for l in &lent {
                        let _ = nic::give_back(l, ns);
                    }
                    return Err(entry_error(shown, &e));
                }
            }
        }
        Ok(lent)
    }
}

/// The network namespace of `pid`, held for interfaces lent to it (see
/// `Running::netns`).
pub(super) fn hold_netns(pid: Pid) -> Result<std::os::fd::OwnedFd> {
    let p = format!("/proc/{pid}/ns/net");
    Ok(std::fs::File::open(&p).ctx("open", &p)?.into())
}

/// `e` said of the `[[device]]` entry `shown`.
fn entry_error(shown: &str, e: &Error) -> Error {
    Error::Usage(format!(
        "[[device]] {shown} in config.toml: {}",
        crate::error::flatten(e)
    ))
}

impl Monitor {
    pub(super) fn allow_device(&mut self, rule: &str) -> Result<()> {
        let run = self.run.as_mut().ok_or_else(not_running)?;
        run.cgroup.allow_device(&mut run.devices, rule)
    }

    pub(super) fn deny_device(&mut self, rule: &str) -> Result<()> {
        let run = self.run.as_mut().ok_or_else(not_running)?;
        if run.cgroup.deny_device(&mut run.devices, rule)? {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "{rule} was not given to the container with rlxc-device or [[device]]"
            )))
        }
    }

    pub(super) fn add_nic(&mut self, host: &str, inside: &str) -> Result<()> {
        let run = self.run.as_mut().ok_or_else(not_running)?;
        let ns = run.netns.as_ref().ok_or_else(|| {
            Error::Usage(
                "the container shares the host's network (type \"none\"): there is no \
                 namespace to move an interface into"
                    .into(),
            )
        })?;
        if run.nics.iter().any(|n| n.inside == inside) {
            return Err(Error::Usage(format!(
                "the container already has an interface {inside} from the host"
            )));
        }
        let lent = nic::lend(host, ns.as_fd(), inside)?;
        run.nics.push(lent);
        Ok(())
    }

    pub(super) fn del_nic(&mut self, inside: &str) -> Result<()> {
        let run = self.run.as_mut().ok_or_else(not_running)?;
        let i = run
            .nics
            .iter()
            .position(|n| n.inside == inside)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{inside} is not an interface rlxc-device or [[device]] gave the container"
                ))
            })?;
        let ns = run.netns.as_ref().ok_or_else(not_running)?;
        nic::give_back(&run.nics[i], ns.as_fd())?;
        run.nics.remove(i);
        Ok(())
    }
}

/// Every lent interface back to the host (the end of a run); failures go to the log.
pub(super) fn give_back_all(name: &str, run: &mut super::Running) {
    let ns = run.netns.take();
    give_back(name, &std::mem::take(&mut run.nics), ns.as_ref());
}

/// `nics` back from the namespace `ns` to the host; failures go to the log.
pub(super) fn give_back(name: &str, nics: &[LentNic], ns: Option<&std::os::fd::OwnedFd>) {
    let Some(ns) = ns else { return };
    for n in nics {
        if let Err(e) = nic::give_back(n, ns.as_fd()) {
            eprintln!("{name}: cannot give {} back to the host: {e}", n.host);
        }
    }
}

fn not_running() -> Error {
    Error::Other("the container is not running".into())
}
