//! systemd integration of a run: the container's cgroup as its own scope on systemd
//! hosts (`cgroup::scope`), and its registration with systemd-machined, as nspawn and
//! libvirt's LXC driver do, so `machinectl list` and `machinectl status NAME` show it
//! (`NAME.TAG` for an installation other than the default one: `machine_name`).
//! Neither is ever a start failure: a host where systemd does not answer gets the
//! container in `rlxc/NAME.TAG`, unregistered, with a warning; hosts without systemd
//! see no change at all.

use std::path::Path;

use nix::unistd::Pid;

use crate::cgroup::{Cgroup, Holder, Layout};
use crate::config::DEFAULT_LXCPATH;
use crate::error::Result;
use crate::store::backing::RootSource;
use crate::sys::dbus;

const MACHINED: &str = "org.freedesktop.machine1";
const MACHINED_PATH: &str = "/org/freedesktop/machine1";
const MACHINED_IFACE: &str = "org.freedesktop.machine1.Manager";
/// Linux's HOST_NAME_MAX, machined's limit.
const MACHINE_NAME_MAX: usize = 64;

/// The container's new cgroup: its scope where systemd runs (and a holder to release
/// once init is in it), else `rlxc/NAME.TAG`.
pub(super) fn make_cgroup(
    layout: &Layout,
    key: &str,
    name: &str,
) -> Result<(Cgroup, Option<Holder>)> {
    if crate::cgroup::scopes_usable(layout) {
        // Stopped only after the units that halt containers (at shutdown, systemd
        // would otherwise stop the scope, killing the container, alongside them).
        let mut before = vec!["rlxc.service".to_string()];
        before.extend(crate::cgroup::own_service());
        match Cgroup::in_scope(layout.clone(), key, name, &before) {
            Ok((cg, holder)) => return Ok((cg, Some(holder))),
            Err(e) => eprintln!(
                "{name}: warning: its cgroup is not a systemd scope ({e}); it runs in \
                 rlxc/{key} and systemd-machined will not list it"
            ),
        }
    }
    let cg = Cgroup::new(layout.clone(), key);
    cg.create()?;
    Ok((cg, None))
}

/// Whether systemd-machined runs or can be started by a call (D-Bus activation).
fn machined_available() -> bool {
    Path::new("/run/systemd/machines").is_dir()
        || Path::new("/usr/share/dbus-1/system-services/org.freedesktop.machine1.service").exists()
}

/// The name machined knows the container of `lxcpath` by: its bare name for the default
/// installation (what `machinectl status NAME` users expect), `NAME.TAG` (TAG from
/// `name::installation_tag`, as in its cgroup's name) for any other, so that two
/// installations' containers of one name never meet there. (A default installation's
/// container literally named `NAME.TAG` would: the second registration fails, with a
/// warning, and touches nothing of the first.) Err: why no name fits machined's rule.
pub(super) fn machine_name(name: &str, lxcpath: &Path) -> std::result::Result<String, String> {
    // The paths themselves (Path's == compares components: a trailing '/' is no other
    // installation), not their tags: another installation's may equal the default's.
    let machine = if lxcpath == Path::new(DEFAULT_LXCPATH) {
        name.to_string()
    } else {
        format!("{name}.{}", crate::name::installation_tag(lxcpath))
    };
    if machine.len() > MACHINE_NAME_MAX {
        return Err(format!(
            "its machine name {machine} is longer than machined's {MACHINE_NAME_MAX} bytes"
        ));
    }
    if !host_name_ok(&machine) {
        return Err(format!(
            "its machine name {machine} is no host name (dot-separated labels of letters, \
             digits and inner '-')"
        ));
    }
    Ok(machine)
}

/// machined's rule for machine names (systemd's `hostname_is_valid`): labels of
/// letters, digits and '-', none empty, none starting or ending with '-'.
fn host_name_ok(name: &str) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

impl super::Monitor {
    /// Register the running container (init the leader, in its scope) with machined.
    /// Called once Started was reported: a registration is never a start failure, so
    /// it need not delay one. Failures are warnings: the container runs on unregistered.
    pub(super) fn register_machine(&mut self) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.cgroup.scope().is_none() || !machined_available() {
            return;
        }
        let registered = machine_name(&self.name, &self.lxcpath)
            .and_then(|machine| register(&machine, run.init, &self.root).map(|_| machine));
        match registered {
            Ok(machine) => run.registered = Some(machine),
            Err(why) => eprintln!(
                "{}: warning: not registered with systemd-machined: {why}",
                self.name
            ),
        }
    }
}

/// machined's RegisterMachine for `machine`, leader `init`, root directory `root`.
fn register(machine: &str, init: Pid, root: &RootSource) -> std::result::Result<(), String> {
    let root = match root {
        RootSource::Bind(p) => p,
        RootSource::Overlay { at, .. } => at,
    };
    let args = [
        machine.to_string(),
        "0".into(),
        "rlxc".into(),
        "container".into(),
        init.to_string(),
        root.display().to_string(),
    ];
    dbus::call(
        MACHINED,
        MACHINED_PATH,
        MACHINED_IFACE,
        "RegisterMachine",
        "sayssus",
        &args,
    )
    .map(|_| ())
}

/// Forget the machine at the end of a run (machined would notice its scope is gone,
/// a moment later).
pub(super) fn unregister(machine: &str) {
    let r = dbus::call(
        MACHINED,
        MACHINED_PATH,
        MACHINED_IFACE,
        "UnregisterMachine",
        "s",
        &[machine.to_string()],
    );
    if let Err(e) = r {
        // Already gone with its scope: nothing to say.
        if !e.contains("No machine") {
            eprintln!("{machine}: warning: systemd-machined did not unregister it: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_installation_keeps_bare_names_others_are_keyed() {
        let default = machine_name("web1", Path::new(DEFAULT_LXCPATH)).unwrap();
        assert_eq!(default, "web1");
        assert_eq!(
            machine_name("web1", Path::new("/var/lib/rlxc/")),
            Ok(default)
        );
        let other = Path::new("/srv/rlxc");
        let keyed = machine_name("web1", other).unwrap();
        assert_eq!(
            keyed,
            format!("web1.{}", crate::name::installation_tag(other))
        );
        assert_ne!(
            keyed,
            machine_name("web1", Path::new("/srv/rlxc2")).unwrap()
        );
        // Another path of the default's tag (found by search) is still another one.
        let twin = Path::new("/srv/rlxc-90g0bkb");
        let tag = crate::name::installation_tag(twin);
        assert_eq!(
            tag,
            crate::name::installation_tag(Path::new(DEFAULT_LXCPATH))
        );
        assert_eq!(machine_name("web1", twin), Ok(format!("web1.{tag}")));
        assert_eq!(
            machine_name("web1", Path::new("/var/lib/./rlxc//")),
            Ok("web1".into())
        );
    }

    #[test]
    fn names_machined_refuses_are_not_registered() {
        let other = Path::new("/srv/rlxc");
        // 55 bytes keyed make 64: the most machined takes.
        let long = "a".repeat(55);
        assert_eq!(machine_name(&long, other).unwrap().len(), 64);
        let e = machine_name(&format!("{long}b"), other).unwrap_err();
        assert!(e.contains("64 bytes"), "{e}");
        assert!(machine_name(&"a".repeat(64), Path::new(DEFAULT_LXCPATH)).is_ok());
        for bad in ["web_1", "web-", "web-.x", "a..b"] {
            let e = machine_name(bad, Path::new(DEFAULT_LXCPATH)).unwrap_err();
            assert!(e.contains("no host name"), "{bad}: {e}");
        }
        assert!(machine_name("web-1.x", Path::new(DEFAULT_LXCPATH)).is_ok());
    }
}
