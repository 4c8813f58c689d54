//! Devices given to a running container: the monitor owns the cgroup (its device rules
//! and cgroup2 filter) and holds the container's network namespace, so it grants nodes
//! and lends host interfaces, and gives the interfaces back when the run ends, after
//! init is gone too.

use std::os::fd::AsFd;

use super::Monitor;
use crate::error::{Error, Result};
use crate::net::nic;

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
    let Some(ns) = run.netns.take() else { return };
    for n in run.nics.drain(..) {
        if let Err(e) = nic::give_back(&n, ns.as_fd()) {
            eprintln!("{name}: cannot give {} back to the host: {e}", n.host);
        }
    }
}

fn not_running() -> Error {
    Error::Other("the container is not running".into())
}
