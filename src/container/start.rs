//! Start: everything checked that can be before anything is made, the container's
//! lock held throughout, networks prepared, then the runtime given a plan.

use super::Container;
use crate::config::{ContainerConfig, Ipv4Assigned, Ipv4Mode, NetKind, SystemConfig};
use crate::error::{Error, Result};
use crate::net::bridge::Managed;
use crate::runtime::initsys::{self, Chosen, InitInfo};
pub use crate::runtime::RunEnd;
use crate::runtime::StartPlan;

impl Container {
    /// Boot the container; init's pid once it runs, and where to hear how the run ends.
    pub fn start(&self, sys: &SystemConfig) -> Result<(i32, RunEnd)> {
        let s = self.launch(sys, None, false)?;
        Ok((s.pid, s.end))
    }

    /// Boot it with the monitor left in this process's cgroup (`foreground`, see
    /// `rlxc-start -F`) or moved to rlxc's own.
    pub(super) fn start_with(
        &self,
        sys: &SystemConfig,
        foreground: bool,
    ) -> Result<crate::runtime::Started> {
        self.launch(sys, None, foreground)
    }

    /// Start it with `app` (rlxc-execute's command in place of init, when given).
    pub(super) fn launch(
        &self,
        sys: &SystemConfig,
        app: Option<super::execute::AppLaunch>,
        foreground: bool,
    ) -> Result<crate::runtime::Started> {
        self.must_exist()?;
        // One start at a time, and no create or destroy meanwhile: the loser of two
        // starts hears that the container is being started, and touches nothing.
        let _lock = crate::store::lock_name(&self.lxcpath, &self.name, "starting this container")?;
        let mut cfg = self.config()?;
        let exit_status = self.dir().join(super::EXIT_STATUS);
        let app = match app {
            Some(a) => Some(a.apply(&mut cfg)?),
            // An application container (an OCI image without an init): its command runs
            // under rlxc's init with the console as stdio, as rlxc-execute's on a terminal.
            None if cfg.init.app => Some(crate::runtime::App { stdio: None }),
            None => None,
        };
        self.refuse_if_running()?;
        // The last run's status is not this one's.
        let _ = std::fs::remove_file(&exit_status);
        let (init, cgroup_view) = self.preflight(sys, &mut cfg)?;
        let published = self.publish_ports(sys, &cfg)?;
        let after_stop = if cfg.ephemeral {
            self.destroy_command()?
        } else {
            Vec::new()
        };
        let plan = StartPlan {
            name: self.name.clone(),
            key: self.key.clone(),
            lxcpath: self.lxcpath.clone(),
            run_dir: self.run_dir.clone(),
            runpath: sys.runpath.clone(),
            root: self.backing(&cfg).root(&self.dir()),
            config: cfg,
            init,
            cgroup_view,
            network: sys.network.clone(),
            apparmor: crate::apparmor::ensure_loaded()?,
            after_stop,
            app,
            exit_status: Some(exit_status),
            foreground,
        };
        let started = crate::runtime::start(&plan)?;
        if let Some(p) = published {
            p.keep();
        }
        Ok(started)
    }

    /// Everything that can be checked before anything is created; what init the rootfs
    /// has and the cgroup view chosen for it.
    fn preflight(
        &self,
        sys: &SystemConfig,
        cfg: &mut ContainerConfig,
    ) -> Result<(InitInfo, Chosen)> {
        let c = self;
        crate::idmap::check_unshared(sys, &c.name, cfg.idmap.as_ref())?;
        let backing = c.backing(cfg);
        let rootfs = backing.path(&c.dir());
        if !rootfs.is_dir() {
            return Err(Error::Other(format!(
                "the rootfs {} is missing: recreate the container",
                rootfs.display()
            )));
        }
        let init = crate::runtime::init_command(cfg);
        // As init will see it (an overlay merged); dropped before the start mounts it.
        let root = backing.open_tree(&c.dir())?;
        // rlxc-execute's command without a '/' is looked up in PATH inside when it starts.
        if init[0].contains('/') {
            let rel = init[0].trim_start_matches('/');
            if let Err(e) = root.openat(rel.as_bytes(), nix::fcntl::OFlag::O_PATH, 0) {
                return Err(Error::Other(format!(
                    "init {} not found in {} ({e}); set init.cmd in {}",
                    init[0],
                    rootfs.display(),
                    c.config_path().display()
                )));
            }
        }
        let info = initsys::inspect(&root, &init[0]);
        drop(root);
        if let Some(w) = initsys::privileged_warning(&info, cfg.idmap.is_some()) {
            eprintln!("{}: warning: {w}", c.name);
        }
        let view = initsys::choose(cfg.cgroup_layout, &crate::cgroup::Layout::detect()?, &info)
            .map_err(|e| Error::Other(format!("{} cannot start: {e}", c.name)))?;
        prepare_networks(sys, c, cfg)?;
        Ok((info, view))
    }

    /// Remove the run directory of a stopped container: an rlxc-start killed before its
    /// monitor took over leaves one; and the published ports of a run whose monitor was
    /// killed. Only when no start holds the container's lock, no monitor listens and
    /// nothing runs in its cgroup.
    pub fn sweep_run_dir(&self) {
        let c = self;
        let runpath = c.run_dir.parent().unwrap_or(&c.run_dir);
        if !c.run_dir.exists() && !crate::net::ports::Ports::new(runpath).may_have(&c.key) {
            return;
        }
        let Ok(_lock) = crate::store::lock_name(&c.lxcpath, &c.name, "cleaning up after a start")
        else {
            return;
        };
        if c.refuse_if_running().is_ok() {
            let _ = std::fs::remove_dir_all(&c.run_dir);
            crate::net::ports::release(runpath, &c.key);
        }
    }

    /// A monitor that listens (even one too busy to answer), or processes of an earlier run
    /// in the container's cgroup (its monitor was killed): the container is not stopped.
    fn refuse_if_running(&self) -> Result<()> {
        let c = self;
        let busy = |what: String| {
            Err(Error::Busy {
                name: c.name.clone(),
                what,
            })
        };
        if crate::ipc::client::connect(&c.run_dir).is_ok() {
            return busy("it is already running".into());
        }
        let pids = c.cgroup()?.pids();
        if !pids.is_empty() {
            return busy(format!(
                "{} processes of a previous run are still alive (its monitor was killed): \
                 stop them with rlxc-stop -k -n {} first",
                pids.len(),
                c.name
            ));
        }
        Ok(())
    }
}

/// Bridges must exist: the managed one is created (with DHCP, DNS, NAT) when missing.
/// On it, every container MAC gets its DNS name and, for "auto" and fixed addresses, a
/// DHCP reservation; "auto" picks a free address once and records it in config.toml.
fn prepare_networks(sys: &SystemConfig, c: &Container, cfg: &mut ContainerConfig) -> Result<()> {
    let on_managed = |n: &crate::config::Network| n.link_or(&sys.network) == sys.network.bridge;
    for n in cfg.networks.iter().filter(|n| n.kind == NetKind::Veth) {
        if !on_managed(n) {
            crate::net::link::check_bridge(n.link_or(&sys.network))?;
        }
        crate::net::link::check_ports(n.link_or(&sys.network))?;
    }
    if !cfg
        .networks
        .iter()
        .any(|n| n.kind == NetKind::Veth && on_managed(n))
    {
        return Ok(());
    }
    let managed = Managed::new(sys)?;
    let lock = managed.lock()?;
    managed.ensure(&lock)?;
    // It goes into dnsmasq's hosts file: only a DNS label, never whatever a config holds.
    let hostname = cfg
        .hostname
        .clone()
        .filter(|h| crate::name::is_dns_label(h))
        .unwrap_or_else(|| crate::name::hostname_for(&c.name));
    let mut changed = false;
    let mut reserved = false;
    for i in 0..cfg.networks.len() {
        let n = &cfg.networks[i];
        if n.kind != NetKind::Veth || !on_managed(n) {
            continue;
        }
        let Some(mac) = n.hwaddr.as_ref().map(|m| m.to_string()) else {
            continue;
        };
        // Picked once; again only when the subnet changed under the recorded address.
        let recorded =
            crate::net::link::fixed_address(n).filter(|a| managed.subnet.is_host(a.addr));
        if n.ipv4 == Some(Ipv4Mode::Auto) && recorded.is_none() {
            let ip = managed.free_address(&addresses_of_others(c)?)?;
            cfg.networks[i].ipv4_assigned =
                Some(Ipv4Assigned::new(ip, managed.subnet.prefix).map_err(Error::Other)?);
            changed = true;
        }
        let ip = crate::net::link::fixed_address(&cfg.networks[i])
            .map(|s| s.addr)
            .filter(|ip| managed.subnet.is_host(*ip));
        // Only the first interface carries the name in DNS.
        let (name, key) = if i == 0 {
            (hostname.clone(), c.key.clone())
        } else {
            (format!("{hostname}-{i}"), format!("{}-{i}", c.key))
        };
        reserved |= managed.reserve(&key, &mac, ip, &name)?;
    }
    // The claims hold the picked address now: the config's synced save need not keep
    // every other start on the bridge waiting.
    drop(lock);
    if changed {
        cfg.save(&c.config_path())?;
    }
    // After the save, whose sync overlaps the supervisor's pacing.
    if reserved {
        managed.await_reservations();
    }
    Ok(())
}

/// Fixed and recorded addresses of the other containers in the same lxcpath (and of
/// their snapshots, which a restore brings back), from the configs' digests.
fn addresses_of_others(c: &Container) -> Result<Vec<std::net::Ipv4Addr>> {
    Ok(crate::store::digest::scan(&c.lxcpath)?
        .into_iter()
        .filter(|e| e.container != c.name)
        .flat_map(|e| e.digest.ipv4)
        .collect())
}
