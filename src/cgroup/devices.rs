//! Which device nodes a container may use: the standard ones (`DEVICES_ALLOW`) and those
//! its config or rlxc-device gives it. v1: a deny-all, then one `devices.allow` line per
//! rule (and `devices.deny` to take one back); cgroup2: a BPF program with the whole list,
//! replaced in one step when the list changes.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::files::{apply, row, Setting, Value, Write};
use super::{v2, Cgroup, DEVICES_ALLOW};
use crate::error::{Error, Result};

/// A running container's device access beyond the standard nodes: kept by the monitor
/// for as long as the cgroup lives.
#[derive(Debug, Default)]
pub struct DeviceAccess {
    /// Rules granted on top of `DEVICES_ALLOW`, once per grant (a node added twice needs
    /// two removals before its rule goes).
    extra: Vec<String>,
    /// The cgroup2 directory and the filter program attached to it.
    filter: Option<(PathBuf, OwnedFd)>,
}

/// The allow rule for one node: `c 10:229 rwm`.
pub fn node_rule(block: bool, major: u64, minor: u64) -> String {
    format!("{} {major}:{minor} rwm", if block { 'b' } else { 'c' })
}

/// Only single nodes may be granted while running (no wildcards, no `a`).
fn check_node_rule(rule: &str) -> Result<()> {
    let f: Vec<&str> = rule.split_whitespace().collect();
    let ok = matches!(f.as_slice(), [k, num, "rwm"]
    if (*k == "c" || *k == "b")
        && num.split_once(':').is_some_and(|(a, b)| {
            a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()
        }));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "device rule {rule:?}: expected one node, as \"c MAJOR:MINOR rwm\""
        )))
    }
}

impl Cgroup {
    /// Deny all, allow the standard nodes and `extra` (the config's `[[device]]` nodes):
    /// v1 files and the cgroup2 filter. A warning for the log when the cgroup2 filter
    /// could not be attached on a host whose v1 controller covers it.
    pub(super) fn configure_devices(
        &self,
        extra: &[String],
    ) -> Result<(Option<String>, DeviceAccess)> {
        for r in extra {
            check_node_rule(r)?;
        }
        let v1_rules = self.device_writes(extra);
        apply(&v1_rules)?;
        let mut access = DeviceAccess {
            extra: extra.to_vec(),
            filter: None,
        };
        let Some(h) = self.layout.find(|h| h.v2) else {
            return Ok((None, access));
        };
        let dir = self.path_in(h);
        let all = all_rules(&access.extra);
        let (warning, prog) = v2::attach_device_filter(&dir, &all, !v1_rules.is_empty())?;
        access.filter = prog.map(|p| (dir, p));
        Ok((warning, access))
    }

    /// v1: deny every device, then allow the standard ones and `extra`, one rule per
    /// write. Empty where no v1 devices controller is mounted.
    pub(super) fn device_writes(&self, extra: &[String]) -> Vec<Write> {
        let mut out = self.writes(Setting::DevicesDeny, &[Value::Rule("a")]);
        let allow: Vec<_> = DEVICES_ALLOW
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .map(Value::Rule)
            .collect();
        out.extend(self.writes(Setting::DevicesAllow, &allow));
        out
    }

    /// Let the container use one more node (`rule` from `node_rule`).
    pub fn allow_device(&self, access: &mut DeviceAccess, rule: &str) -> Result<()> {
        check_node_rule(rule)?;
        apply(&self.writes(Setting::DevicesAllow, &[Value::Rule(rule)]))?;
        access.extra.push(rule.to_string());
        if let Err(e) = self.refilter(access) {
            access.extra.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Take back one grant of `rule`; the rule goes when no grant and no standard node
    /// needs it any more. False when it was never granted.
    pub fn deny_device(&self, access: &mut DeviceAccess, rule: &str) -> Result<bool> {
        let Some(i) = access.extra.iter().position(|r| r == rule) else {
            return Ok(false);
        };
        let taken = access.extra.remove(i);
        if access.extra.iter().any(|r| r == rule) || DEVICES_ALLOW.contains(&rule) {
            return Ok(true);
        }
        // The grant is recorded as gone only once the kernel has it: a failed write
        // leaves the list saying what the cgroup still allows, so a retry does it again.
        let denied = apply(&self.writes(Setting::DevicesDeny, &[Value::Rule(rule)]))
            .and_then(|()| self.refilter(access));
        if let Err(e) = denied {
            access.extra.insert(i, taken);
            return Err(e);
        }
        Ok(true)
    }

    /// The cgroup2 filter replaced by one with the current list.
    fn refilter(&self, access: &mut DeviceAccess) -> Result<()> {
        let Some((dir, old)) = &access.filter else {
            return Ok(());
        };
        let new = v2::replace_device_filter(dir, old, &all_rules(&access.extra))?;
        let dir = dir.clone();
        access.filter = Some((dir, new));
        Ok(())
    }

    /// The writes setting each of `values` in turn, where the setting has files.
    fn writes(&self, s: Setting, values: &[Value]) -> Vec<Write> {
        let Some((h, place)) = self.layout.locate(row(s)) else {
            return Vec::new();
        };
        let dir = self.path_in(h);
        values.iter().flat_map(|v| place.writes(&dir, v)).collect()
    }
}

fn all_rules(extra: &[String]) -> Vec<String> {
    DEVICES_ALLOW
        .iter()
        .map(|r| r.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_recorded_as_gone_only_once_the_deny_is_written() {
        let d = tempfile::tempdir().unwrap();
        let mi = format!(
            "31 30 0:27 / {} rw - cgroup cgroup rw,devices\n",
            d.path().display()
        );
        let cg = Cgroup::new(super::super::parse_mountinfo(&mi), "x.k1");
        // Not a standard node (those stay allowed whatever is taken back).
        let rule = node_rule(true, 7, 3);
        assert!(!DEVICES_ALLOW.contains(&rule.as_str()));
        let mut access = DeviceAccess {
            extra: vec![rule.clone(), rule.clone()],
            filter: None,
        };
        // Granted twice: the first take-back writes nothing.
        assert!(cg.deny_device(&mut access, &rule).unwrap());
        assert_eq!(access.extra, std::slice::from_ref(&rule));
        // No cgroup to write to: the error, and the grant still recorded for a retry.
        assert!(cg.deny_device(&mut access, &rule).is_err());
        assert_eq!(access.extra, std::slice::from_ref(&rule));
        let dir = d.path().join(super::super::BASE).join("x.k1");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(cg.deny_device(&mut access, &rule).unwrap());
        assert!(access.extra.is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.deny")).unwrap(),
            rule
        );
        // Never granted: false, nothing written.
        assert!(!cg.deny_device(&mut access, &rule).unwrap());
    }

    #[test]
    fn only_single_nodes_are_granted() {
        assert!(check_node_rule(&node_rule(true, 7, 3)).is_ok());
        assert!(check_node_rule("c 10:229 rwm").is_ok());
        for bad in [
            "a",
            "c *:* rwm",
            "c 1:* rwm",
            "x 1:2 rwm",
            "c 1:2 r",
            "c 1:2 rwm x",
        ] {
            assert!(check_node_rule(bad).is_err(), "{bad}");
        }
    }
}
