//! rlxc-info: state and a summary of the configuration.

use super::Common;
use crate::config::Backend;
use crate::container::Container;
use crate::error::Result;

mod json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Show only the state.
    #[arg(short = 's', long = "state")]
    state: bool,
    /// Only init's host pid, bare (`cat /proc/$(rlxc-info -n web1 -p)/uid_map`).
    #[arg(short = 'p', long = "pid", conflicts_with_all = ["state", "ips"])]
    pid: bool,
    /// Only its IP addresses, bare, one per line.
    #[arg(short = 'i', long = "ips", conflicts_with = "state")]
    ips: bool,
    /// Everything as one JSON object (keys: README, "Output for scripts").
    #[arg(long = "json", conflicts_with_all = ["state", "pid", "ips"])]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let cfg = c.config()?;
    if a.json {
        json::print(&c, &cfg)?;
        return Ok(0);
    }
    if a.pid || a.ips {
        return bare(&c, a.pid);
    }
    let row = |k: &str, v: &str| println!("{:<15} {v}", format!("{k}:"));
    if a.state {
        row("State", &c.state().to_string());
        return Ok(0);
    }
    row("Name", &c.name);
    let state = c.state();
    row("State", &state.to_string());
    match &state {
        crate::container::State::Running { .. } => {
            if let Some(l) = c.live(&state) {
                live(&l, &row);
            }
        }
        crate::container::State::Orphaned { pids } => {
            row(
                "Monitor",
                &format!(
                    "gone (killed?) while {} processes run: rlxc-stop -k -n {} stops them",
                    pids.len(),
                    c.name
                ),
            );
        }
        crate::container::State::Unreachable { why } => row(
            "Monitor",
            &format!(
                "does not answer as this rlxc expects ({why}): rlxc-stop -k -n {} kills it",
                c.name
            ),
        ),
        crate::container::State::Stopped => {}
    }
    if let Some(h) = &cfg.hostname {
        row("Hostname", h);
    }
    if let Some(a) = &cfg.arch {
        row("Arch", a);
    }
    if let Some(i) = &cfg.image {
        row(
            "Image",
            &format!(
                "{} {} {} {} build {}",
                i.dist, i.release, i.arch, i.variant, i.build
            ),
        );
        row("Image server", &i.server);
    }
    if cfg.init.app {
        row("Application", &format!("{:?}", cfg.init.cmd));
        if let Some(code) = c.exit_status() {
            row("Exit status", &code.to_string());
        }
    }
    if let Some(i) = cfg.image.as_ref().filter(|i| !i.exposed_ports.is_empty()) {
        row("Exposed ports", &i.exposed_ports.join(", "));
    }
    row("Privileged", &privileged(cfg.idmap.as_ref()));
    if !state.is_running() {
        // Running, the monitor says what this run chose (in `live`).
        row(
            "Cgroup layout",
            &format!("{} (chosen at each start)", cfg.cgroup_layout),
        );
    }
    row("Backing store", &c.backing(&cfg).describe(&c.dir()));
    storage(&c, cfg.rootfs.backend != Backend::Dir, &row);
    row("Config", &c.config_path().display().to_string());
    for n in &cfg.networks {
        let mut d = n.kind.to_string();
        if let Some(l) = &n.link {
            d += &format!(" on {l}");
        }
        if let Some(name) = &n.name {
            d += &format!(" as {name}");
        }
        if let Some(m) = &n.hwaddr {
            d += &format!(", hwaddr {m}");
        }
        if let Some(v4) = &n.ipv4 {
            d += &format!(", ipv4 {v4}");
        }
        if let Some(a) = &n.ipv4_assigned {
            d += &format!(" ({a})");
        }
        row("Network", &d);
    }
    let limits = cfg.limits.describe();
    if !limits.is_empty() {
        row("Limits", &limits.join(", "));
    }
    row("Autostart", &autostart(&cfg.autostart));
    Ok(0)
}

/// `yes (order 10, delay 5 s, groups onboot,web)`, as rlxc-autostart would use it.
fn autostart(a: &crate::config::Autostart) -> String {
    let groups = if a.groups.is_empty() {
        "no groups".to_string()
    } else {
        format!("groups {}", a.groups.join(","))
    };
    format!(
        "{} (order {}, delay {} s, {groups})",
        if a.enabled { "yes" } else { "no" },
        a.order,
        a.delay
    )
}

/// What its files take on disk, and its snapshots.
fn storage(c: &Container, shared_lower: bool, row: &dyn Fn(&str, &str)) {
    match c.disk_use() {
        Ok(u) => row(
            "Disk use",
            &format!(
                "{} ({} own files, {} snapshots{})",
                human(u.files + u.snapshots),
                human(u.files),
                human(u.snapshots),
                if shared_lower {
                    "; shared layers outside its directory not counted"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => row("Disk use", &format!("unknown: {e}")),
    }
    match c.snapshots() {
        Ok(s) if s.is_empty() => row("Snapshots", "none"),
        Ok(s) => {
            let list: Vec<String> = s
                .iter()
                .map(|s| format!("{} ({} UTC)", s.name, crate::config::format_utc(s.taken)))
                .collect();
            row("Snapshots", &format!("{}: {}", s.len(), list.join(", ")));
        }
        Err(e) => row("Snapshots", &format!("unknown: {e}")),
    }
}

/// PID, addresses, CPU, memory and link counters of a running container.
/// `-p` or `-i`: the value alone, for a shell; an error when it is not running.
fn bare(c: &Container, pid: bool) -> Result<i32> {
    let state = c.state();
    let l = c
        .live(&state)
        .ok_or_else(|| crate::error::Error::Other(format!("{} is not running", c.name)))?;
    if pid {
        println!("{}", l.pid);
    } else {
        for a in l.ipv4.iter().chain(&l.ipv6) {
            println!("{}", a.split('/').next().unwrap_or(a));
        }
    }
    Ok(0)
}

fn live(l: &crate::container::Live, row: &dyn Fn(&str, &str)) {
    row("PID", &l.pid.to_string());
    if let Some(i) = &l.init {
        row("Init", i);
    }
    if let Some(c) = &l.cgroup_layout {
        row("Cgroup layout", c);
    }
    if let Some(n) = l.ttys {
        row("TTYs", &n.to_string());
    }
    for a in l.ipv4.iter().chain(&l.ipv6) {
        row("IP", a);
    }
    for p in &l.published {
        row("Published", p);
    }
    if let Some(ns) = l.cpu_ns {
        row("CPU use", &format!("{:.2} seconds", ns as f64 / 1e9));
    }
    if let Some(b) = l.memory_bytes {
        row("Memory use", &human(b));
    }
    row(
        "lxcfs views",
        if l.lxcfs {
            "on (free, uptime, nproc inside describe the container)"
        } else {
            "off (no lxcfs ran on the host at its start)"
        },
    );
    for (name, rx, tx) in &l.links {
        row("Link", name);
        row(" TX bytes", &human(*tx));
        row(" RX bytes", &human(*rx));
    }
}

fn human(b: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

/// "yes", or the ids it runs as: `no, ids 1000000-1065535 -> 0-65535` (gids when they
/// differ).
pub(super) fn privileged(m: Option<&crate::config::IdMap>) -> String {
    let Some(m) = m else {
        return "yes (root inside is root on the host)".into();
    };
    let Some((u, g)) = m.ranges() else {
        return "no, but no host ids are allocated (fix [idmap] in its config)".into();
    };
    let span = |r: crate::config::IdRange| format!("{}-{}", r.host, r.last());
    let mut out = format!("no, ids {} -> 0-{}", span(u), u.count - 1);
    if g != u {
        out += &format!(", gids {} -> 0-{}", span(g), g.count - 1);
    }
    out
}
