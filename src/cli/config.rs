//! rlxc-config: print or set keys of a container's config (`-n NAME`) or of rlxc.toml
//! (`--system`). Without KEY every key set is printed (`key = value`, TOML); with KEY
//! its value (a string without quotes); with KEY VALUE it is set, checked as the file
//! would be at load.

use super::Common;
use crate::config::{edit, read_text, write_atomic, SystemConfig};
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container whose config.toml to read or change.
    #[arg(short = 'n', long = "name", required_unless_present = "system")]
    name: Option<String>,
    /// rlxc.toml (`$RLXC_CONFIG`, else /etc/rlxc/rlxc.toml) instead of a container's.
    #[arg(long = "system", conflicts_with = "name")]
    system: bool,
    /// A dotted key: hostname, limits.memory, autostart.enabled, network.0.ipv4,
    /// download.server.
    key: Option<String>,
    /// The new value: true, 10, 1G, /srv (a string unless it is a TOML value the key
    /// takes).
    value: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    match &a.name {
        Some(name) => container(&a, name),
        None => system(&a),
    }
}

fn container(a: &Args, name: &str) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, name)?;
    match (&a.key, &a.value) {
        (None, _) => print_all(c.config_all()?),
        (Some(k), None) => print_one(c.config_get(k)?),
        (Some(k), Some(v)) => {
            let running = c.config_set(k, v)?;
            if running && !a.common.quiet {
                eprintln!("{name} is running: the change takes effect at its next start");
            }
        }
    }
    Ok(0)
}

fn system(a: &Args) -> Result<i32> {
    let file = SystemConfig::path();
    // A missing rlxc.toml is the built-in defaults: an empty file.
    let text = if file.exists() {
        read_text(&file)?
    } else {
        String::new()
    };
    let check = |t: &str| SystemConfig::from_text(&file, t).map(|_| ());
    match (&a.key, &a.value) {
        (None, _) => print_all(edit::listing(&file, &text)?),
        (Some(k), None) => print_one(edit::lookup(&file, &text, k, &check)?),
        (Some(k), Some(v)) => {
            let new = edit::apply(&file, &text, k, v, &check)?;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            }
            write_atomic(&file, new.as_bytes(), 0o644)?;
        }
    }
    Ok(0)
}

fn print_all(keys: Vec<(String, String)>) {
    for (k, v) in keys {
        println!("{k} = {}", super::shown(&v));
    }
}

/// A key that is not set prints nothing (its default applies).
fn print_one(v: Option<String>) {
    if let Some(v) = v {
        println!("{}", super::shown(&v));
    }
}
