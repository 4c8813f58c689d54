//! systemd integration of a run: the container's cgroup as its own scope on systemd
//! hosts (`cgroup::scope`), and its registration with systemd-machined, as nspawn and
//! libvirt's LXC driver do, so `machinectl list` and `machinectl status NAME` show it.
//! Neither is ever a start failure: a host where systemd does not answer gets the
//! container in `rlxc/NAME.TAG`, unregistered, with a warning; hosts without systemd
//! see no change at all.

use std::path::Path;

use nix::unistd::Pid;

use crate::cgroup::{Cgroup, Holder, Layout};
use crate::error::Result;
use crate::store::backing::RootSource;
use crate::sys::dbus;

const MACHINED: &str = "org.freedesktop.machine1";
const MACHINED_PATH: &str = "/org/freedesktop/machine1";
const MACHINED_IFACE: &str = "org.freedesktop.machine1.Manager";

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

/// machined takes host names as machine names: letters, digits, `-` and `.`.
fn machine_name_ok(name: &str) -> bool {
    name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Register the running container (leader `init`, in its scope) with machined; true if
/// it is registered. Failures are warnings: the container runs on unregistered.
pub(super) fn register(name: &str, cgroup: &Cgroup, init: Pid, root: &RootSource) -> bool {
    if cgroup.scope().is_none() || !machined_available() {
        return false;
    }
    if !machine_name_ok(name) {
        eprintln!(
            "{name}: warning: not registered with systemd-machined: a machine name has \
             only letters, digits, '-' and '.'"
        );
        return false;
    }
    let root = match root {
        RootSource::Bind(p) => p,
        RootSource::Overlay { at, .. } => at,
    };
    let args = [
        name.to_string(),
        "0".into(),
        "rlxc".into(),
        "container".into(),
        init.to_string(),
        root.display().to_string(),
    ];
    let r = dbus::call(
        MACHINED,
        MACHINED_PATH,
        MACHINED_IFACE,
        "RegisterMachine",
        "sayssus",
        &args,
    );
    match r {
        Ok(_) => true,
        Err(e) => {
            eprintln!("{name}: warning: not registered with systemd-machined: {e}");
            false
        }
    }
}

/// Forget the machine at the end of a run (machined would notice its scope is gone,
/// a moment later).
pub(super) fn unregister(name: &str) {
    let r = dbus::call(
        MACHINED,
        MACHINED_PATH,
        MACHINED_IFACE,
        "UnregisterMachine",
        "s",
        &[name.to_string()],
    );
    if let Err(e) = r {
        // Already gone with its scope: nothing to say.
        if !e.contains("No machine") {
            eprintln!("{name}: warning: systemd-machined did not unregister it: {e}");
        }
    }
}
