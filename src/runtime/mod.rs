//! Running containers: start orchestration (validate, spawn the monitor, report), the
//! monitor process, the child's setup, and the monitor's command protocol.

mod boot;
pub mod child;
pub mod monitor;
pub mod proto;

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::config::{ContainerConfig, Ipv4Assigned, Ipv4Mode, NetKind, SystemConfig};
use crate::container::Container;
use crate::error::{Error, IoContext, Result};
use crate::net::bridge::Managed;
use crate::rootfs::Root;

/// The name of a container's objects on the host (run directory, cgroups): `NAME.TAG`,
/// TAG a hash of the lxcpath. Two installations (two `RLXC_CONFIG`s, or `-P`) may each
/// have a container of one name; keyed by both, neither touches the other's. 73 bytes
/// at most, well within NAME_MAX.
pub fn host_key(lxcpath: &Path, name: &str) -> String {
    let tag: u64 = lxcpath
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
    format!("{name}.{:08x}", tag as u32)
}

/// `RUNPATH/NAME.TAG`: the monitor's socket, init's pid (for recovery) and the monitor log.
pub fn run_dir(sys: &SystemConfig, lxcpath: &Path, name: &str) -> PathBuf {
    sys.runpath.join(host_key(lxcpath, name))
}

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("command")
}

/// Everything that can be checked before anything is created.
pub fn preflight(
    sys: &SystemConfig,
    c: &Container,
    cfg: &mut ContainerConfig,
) -> Result<Vec<String>> {
    let rootfs = c.rootfs();
    if !rootfs.is_dir() {
        return Err(Error::Other(format!(
            "the rootfs {} is missing: recreate the container",
            rootfs.display()
        )));
    }
    let init = init_command(cfg);
    let root = Root::open(&rootfs)?;
    let rel = init[0].trim_start_matches('/');
    match root.openat(rel.as_bytes(), nix::fcntl::OFlag::O_PATH, 0) {
        Ok(_) => {}
        Err(e) => {
            return Err(Error::Other(format!(
                "init {} not found in {} ({e}); set init.cmd in {}",
                init[0],
                rootfs.display(),
                c.config_path().display()
            )))
        }
    }
    prepare_networks(sys, c, cfg)?;
    Ok(init)
}

pub fn init_command(cfg: &ContainerConfig) -> Vec<String> {
    if cfg.init.cmd.is_empty() {
        vec!["/sbin/init".to_string()]
    } else {
        cfg.init.cmd.clone()
    }
}

/// Start the monitor for `c` and wait until init runs (its pid) or the start failed
/// (the real reason, from the monitor).
pub fn start(sys: &SystemConfig, c: &Container) -> Result<i32> {
    // One start at a time, and no create or destroy meanwhile: the loser of two starts
    // hears that the container is being started, and touches nothing of the winner's.
    if !c.exists() {
        return Err(Error::NotFound {
            name: c.name.clone(),
            lxcpath: c.lxcpath.clone(),
        });
    }
    let _lock = crate::store::lock_name(&c.lxcpath, &c.name, "starting this container")?;
    let mut cfg = c.config()?;
    refuse_if_running(c)?;
    preflight(sys, c, &mut cfg)?;
    let apparmor = crate::apparmor::ensure_loaded()?;
    let dir = &c.run_dir;
    // RUNPATH itself stays searchable (the bridge's unprivileged dnsmasq reads below it);
    // each container's directory is private.
    crate::store::mkdir_p(&sys.runpath, 0o755)?;
    let made_dir = !dir.exists();
    crate::store::mkdir_p(dir, 0o700)?;
    let log = dir.join("monitor.log");
    let logf = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log)
        .ctx("open", &log)?;
    let (monitor, status) = spawn_monitor(c, sys, logf, apparmor)?;
    let mut line = String::new();
    BufReader::new(status)
        .read_line(&mut line)
        .ctx("read the monitor's status", &log)?;
    let line = line.trim();
    if let Some(pid) = line.strip_prefix("ok ") {
        // The monitor lives on (it setsid()s); init reaps it when this process is gone.
        return pid
            .parse()
            .map_err(|_| Error::Other(format!("monitor said {line:?}")));
    }
    let _ = nix::sys::wait::waitpid(monitor, None);
    let why = line.strip_prefix("err ").unwrap_or(line);
    if why.is_empty() {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        return Err(Error::Other(format!(
            "the monitor died during the start; its log {} ends with: {}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    // The monitor said why and undid its work. Under the lock, with no monitor found
    // before it, what is left in the run directory is this start's.
    let _ = std::fs::remove_file(socket_path(dir));
    if made_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Err(Error::Other(format!("{} failed to start: {why}", c.name)))
}

/// Remove the run directory of a stopped container: an rlxc-start killed before its
/// monitor took over leaves one. Only when no start holds the container's lock, no
/// monitor listens and nothing runs in its cgroup.
pub fn sweep_run_dir(c: &Container) {
    if !c.run_dir.exists() {
        return;
    }
    let Ok(_lock) = crate::store::lock_name(&c.lxcpath, &c.name, "cleaning up after a start")
    else {
        return;
    };
    if refuse_if_running(c).is_ok() {
        let _ = std::fs::remove_dir_all(&c.run_dir);
    }
}

/// A monitor that listens (even one too busy to answer), or processes of an earlier run
/// in the container's cgroup (its monitor was killed): the container is not stopped.
fn refuse_if_running(c: &Container) -> Result<()> {
    let busy = |what: String| {
        Err(Error::Busy {
            name: c.name.clone(),
            what,
        })
    };
    if proto::connect(&c.run_dir).is_ok() {
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

/// Fork the monitor, as LXC does: it already has the parsed configuration, where
/// exec'ing rlxc again would load and parse everything anew (about 2 ms of each start).
/// Its stdout is the returned status pipe ("ok PID" or "err WHY"), its stderr `log`.
fn spawn_monitor(
    c: &Container,
    sys: &SystemConfig,
    log: std::fs::File,
    apparmor: Option<String>,
) -> Result<(nix::unistd::Pid, std::fs::File)> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .ctx("create", "the monitor's status pipe")?;
    let null = std::fs::File::options()
        .read(true)
        .open("/dev/null")
        .ctx("open", "/dev/null")?;
    // Whatever rlxc-start buffered must not be written again by the child.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match crate::sys::fork().ctx("fork", "the monitor")? {
        crate::sys::Forked::Child => {
            let ready = crate::sys::dup_onto(null.as_fd(), 0)
                .and_then(|_| crate::sys::dup_onto(wr.as_fd(), 1))
                .and_then(|_| crate::sys::dup_onto(log.as_fd(), 2))
                // Nothing else of rlxc-start's: no lock or socket may outlive it here.
                .and_then(|_| crate::sys::close_fds_from(3));
            if let Err(e) = ready {
                eprintln!("monitor set-up: {e}");
                crate::sys::exit_now(1);
            }
            crate::sys::ignore_sigpipe();
            crate::sys::default_interrupts();
            crate::sys::set_comm("rlxc-monitor");
            if let Err(e) = crate::sys::set_cmdline(&format!(
                "[rlxc monitor] {} {}",
                c.name,
                c.lxcpath.display()
            )) {
                eprintln!("{}: cannot set the monitor's command line: {e}", c.name);
            }
            crate::sys::exit_now(monitor::main(sys, c, apparmor))
        }
        crate::sys::Forked::Parent(child) => {
            drop(wr);
            Ok((child, std::fs::File::from(rd)))
        }
    }
}

/// Bridges must exist: the managed one is created (with DHCP, DNS, NAT) when missing.
/// On it, every container MAC gets its DNS name and, for "auto" and fixed addresses, a
/// DHCP reservation; "auto" picks a free address once and records it in config.toml.
fn prepare_networks(sys: &SystemConfig, c: &Container, cfg: &mut ContainerConfig) -> Result<()> {
    let on_managed = |n: &crate::config::Network| n.link_or(&sys.network) == sys.network.bridge;
    for n in cfg
        .networks
        .iter()
        .filter(|n| n.kind == NetKind::Veth && !on_managed(n))
    {
        crate::net::link::check_bridge(n.link_or(&sys.network))?;
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
            let ip = managed.free_address(&addresses_of_others(sys, c))?;
            cfg.networks[i].ipv4_assigned =
                Some(Ipv4Assigned::new(ip, managed.subnet.prefix).map_err(Error::Other)?);
            changed = true;
        }
        let ip = crate::net::link::fixed_address(&cfg.networks[i])
            .map(|s| s.addr)
            .filter(|ip| managed.subnet.is_host(*ip));
        // Only the first interface carries the name in DNS.
        let name = if i == 0 {
            hostname.clone()
        } else {
            format!("{hostname}-{i}")
        };
        managed.reserve(&mac, ip, &name)?;
    }
    if changed {
        cfg.save(&c.config_path())?;
    }
    Ok(())
}

/// Fixed and recorded addresses of the other containers in the same lxcpath.
fn addresses_of_others(sys: &SystemConfig, c: &Container) -> Vec<std::net::Ipv4Addr> {
    let names = crate::store::list(&c.lxcpath).unwrap_or_default();
    names
        .iter()
        .filter(|n| **n != c.name)
        .filter_map(|n| Container::new(sys, n).ok()?.config().ok())
        .flat_map(|cfg| cfg.networks)
        .filter_map(|n| crate::net::link::fixed_address(&n).map(|s| s.addr))
        .collect()
}
