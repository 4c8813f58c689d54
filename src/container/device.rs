//! rlxc-device: a host device node or network interface given to a running container,
//! or taken back. The monitor grants the node in the cgroup and lends the interface
//! (it owns both, and gives interfaces back at the stop); the node itself is made
//! inside from here.

use std::path::Path;

use super::Container;
use crate::error::{Error, Result};
use crate::ipc::{client, Request};
use crate::runtime::nodes::{self, HostNode};

/// What was given or taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChange {
    /// A node at this path inside, with this cgroup rule.
    Node { target: String, rule: String },
    /// A host interface, and its name inside.
    Nic { host: String, inside: String },
}

/// A source naming a device node (an absolute path) rather than an interface.
fn is_node(source: &str) -> bool {
    source.starts_with('/')
}

impl Container {
    /// Give the container host node or interface `source`, at `target` inside (a path,
    /// or an interface name; default: the same as on the host).
    pub fn device_add(&self, source: &str, target: Option<&str>) -> Result<DeviceChange> {
        let init = self.running_pid()?;
        if !is_node(source) {
            let inside = target.unwrap_or(source);
            self.ask(Request::AddNic {
                host: source.to_string(),
                inside: inside.to_string(),
            })?;
            return Ok(DeviceChange::Nic {
                host: source.to_string(),
                inside: inside.to_string(),
            });
        }
        let node = HostNode::stat(Path::new(source))?;
        let target = target.unwrap_or(source);
        let rule = node.rule();
        self.ask(Request::AllowDevice { rule: rule.clone() })?;
        if let Err(e) = nodes::add_node(init, &node, target) {
            let _ = self.ask(Request::DenyDevice { rule });
            return Err(e);
        }
        Ok(DeviceChange::Node {
            target: target.to_string(),
            rule,
        })
    }

    /// Take back the node at `what` inside, or the lent interface named `what` inside.
    pub fn device_del(&self, what: &str) -> Result<DeviceChange> {
        let init = self.running_pid()?;
        if !is_node(what) {
            self.ask(Request::DelNic {
                inside: what.to_string(),
            })?;
            return Ok(DeviceChange::Nic {
                host: what.to_string(),
                inside: what.to_string(),
            });
        }
        let rule = nodes::remove_node(init, what)?;
        // A node made inside by other means (mknod by the container's root for a
        // standard device) has no grant to take back: its removal is all there is.
        match self.ask(Request::DenyDevice { rule: rule.clone() }) {
            Ok(()) => {}
            Err(Error::Monitor { message, .. }) if message.contains("was not given") => {}
            Err(e) => return Err(e),
        }
        Ok(DeviceChange::Node {
            target: what.to_string(),
            rule,
        })
    }

    /// One request to the monitor, answered Ok.
    fn ask(&self, req: Request) -> Result<()> {
        client::request(
            &self.run_dir,
            &req,
            Some(std::time::Duration::from_secs(30)),
        )
        .map(|_| ())
    }
}
