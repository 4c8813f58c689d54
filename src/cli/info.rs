//! rlxc-info: state and a summary of the configuration.

use super::Common;
use crate::container::Container;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Show only the state.
    #[arg(short = 's', long = "state")]
    state: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys.lxcpath, &a.name)?;
    let cfg = c.config()?;
    let row = |k: &str, v: &str| println!("{:<15} {v}", format!("{k}:"));
    if a.state {
        row("State", &c.state().to_string());
        return Ok(0);
    }
    row("Name", &c.name);
    row("State", &c.state().to_string());
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
    row("Rootfs", &c.rootfs().display().to_string());
    row("Config", &c.config_path().display().to_string());
    for n in &cfg.networks {
        let mut d = n.kind.clone();
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
        row("Network", &d);
    }
    let l = &cfg.limits;
    if l.memory.is_some() || l.cpus.is_some() || l.pids.is_some() {
        let mut parts = Vec::new();
        if let Some(m) = &l.memory {
            parts.push(format!("memory {m}"));
        }
        if let Some(c) = l.cpus {
            parts.push(format!("cpus {c}"));
        }
        if let Some(p) = l.pids {
            parts.push(format!("pids {p}"));
        }
        row("Limits", &parts.join(", "));
    }
    row(
        "Autostart",
        if cfg.autostart.enabled { "yes" } else { "no" },
    );
    Ok(0)
}
