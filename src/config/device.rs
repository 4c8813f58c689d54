//! `[[device]]` of a container's config: host device nodes and host network interfaces
//! given to it at every start, the two words of `rlxc-device add SOURCE [TARGET]`. A
//! source with a leading '/' is a node (made at TARGET inside, default the same path),
//! anything else an interface (moved into the container's network namespace as TARGET,
//! default the same name, and given back at the stop). Typed at load; whether the host
//! has them is checked at each start, which names the entry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::types::try_from_string;

/// One `[[device]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub source: DeviceSource,
    /// The path (node) or interface name (interface) inside; default: `source`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `source` of a `[[device]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSource {
    /// A host device node, by absolute path.
    Node(String),
    /// A host network interface, by name.
    Nic(String),
}

impl FromStr for DeviceSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with('/') {
            device_path(s)?;
            Ok(DeviceSource::Node(s.to_string()))
        } else {
            interface_name(s).map_err(|why| {
                format!("{why}; a device node is named by its absolute path, like \"/dev/fuse\"")
            })?;
            Ok(DeviceSource::Nic(s.to_string()))
        }
    }
}

impl fmt::Display for DeviceSource {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DeviceSource::Node(s) | DeviceSource::Nic(s) => f.write_str(s),
        }
    }
}
try_from_string!(DeviceSource);
impl From<DeviceSource> for String {
    fn from(v: DeviceSource) -> String {
        v.to_string()
    }
}

impl Device {
    /// Where it is inside: its target, else its source.
    pub fn inside(&self) -> &str {
        match (&self.target, &self.source) {
            (Some(t), _) => t,
            (None, DeviceSource::Node(s) | DeviceSource::Nic(s)) => s,
        }
    }

    /// How it is shown in errors: `device[1] ("/dev/sdb" at "/dev/data")`.
    pub fn shown(&self, i: usize) -> String {
        match &self.target {
            Some(t) => format!("device[{i}] ({:?} as {t:?})", self.source.to_string()),
            None => format!("device[{i}] ({:?})", self.source.to_string()),
        }
    }
}

/// A node's path: absolute, without `..` or NUL.
fn device_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') || s.split('/').any(|c| c == "..") || s.contains('\0') {
        return Err(format!(
            "{s:?}: expected an absolute path without '..', like \"/dev/fuse\""
        ));
    }
    if s.trim_end_matches('/').is_empty() {
        return Err(format!("{s:?} names no file"));
    }
    Ok(())
}

/// A name the kernel takes for an interface (IFNAMSIZ, no slash, colon or blank).
pub fn interface_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a network interface name (1-15 characters, no '/', ':' or blank)"
        ))
    }
}

/// What spans entries: each target right for its kind, no two at one place.
pub fn check(devices: &[Device], own_netns: bool) -> Result<(), String> {
    for (i, d) in devices.iter().enumerate() {
        let shown = d.shown(i);
        match (&d.source, &d.target) {
            (DeviceSource::Node(_), Some(t)) => {
                device_path(t).map_err(|why| format!("{shown}: target {why}"))?
            }
            (DeviceSource::Nic(_), Some(t)) => {
                interface_name(t).map_err(|why| format!("{shown}: target {why}"))?
            }
            _ => {}
        }
        if matches!(d.source, DeviceSource::Nic(_)) && !own_netns {
            return Err(format!(
                "{shown}: the container shares the host's network (a network of type \
                 \"none\"), so there is no namespace to move an interface into"
            ));
        }
        let same_kind = |o: &Device| {
            matches!(
                (&o.source, &d.source),
                (DeviceSource::Node(_), DeviceSource::Node(_))
                    | (DeviceSource::Nic(_), DeviceSource::Nic(_))
            )
        };
        if let Some(j) = devices[..i]
            .iter()
            .position(|o| same_kind(o) && (o.inside() == d.inside() || o.source == d.source))
        {
            return Err(format!(
                "{shown} and {} name the same device or place inside: remove one",
                devices[j].shown(j)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_nodes_or_interfaces() {
        assert_eq!(
            "/dev/fuse".parse::<DeviceSource>(),
            Ok(DeviceSource::Node("/dev/fuse".into()))
        );
        assert_eq!(
            "eth1".parse::<DeviceSource>(),
            Ok(DeviceSource::Nic("eth1".into()))
        );
        for bad in ["", "dev/fuse", "/dev/../etc/passwd", "/", "eth0:1", "a b"] {
            assert!(bad.parse::<DeviceSource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        for good in ["eth1", "enp3s0f1", "a", "x-y_z.1"] {
            assert!(interface_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "eth0:1", "a b", "abcdefghijklmnop"] {
            assert!(interface_name(bad).is_err(), "{bad}");
        }
    }

    fn dev(source: &str, target: Option<&str>) -> Device {
        Device {
            source: source.parse().unwrap(),
            target: target.map(str::to_string),
        }
    }

    #[test]
    fn entries_are_checked_together() {
        let ok = [
            dev("/dev/sdb", Some("/dev/data")),
            dev("eth1", Some("eth9")),
        ];
        check(&ok, true).unwrap();
        let e = check(&ok, false).unwrap_err();
        assert!(e.contains("device[1] (\"eth1\" as \"eth9\")"), "{e}");
        let e = check(&[dev("/dev/sdb", Some("dev"))], true).unwrap_err();
        assert!(e.contains("target") && e.contains("absolute"), "{e}");
        let e = check(&[dev("eth1", Some("a/b"))], true).unwrap_err();
        assert!(e.contains("target"), "{e}");
        let e = check(
            &[
                dev("/dev/sdb", Some("/dev/x")),
                dev("/dev/sdc", Some("/dev/x")),
            ],
            true,
        )
        .unwrap_err();
        assert!(e.contains("device[1]") && e.contains("device[0]"), "{e}");
        let e = check(&[dev("eth1", None), dev("eth1", Some("eth2"))], true).unwrap_err();
        assert!(e.contains("same device"), "{e}");
    }
}
