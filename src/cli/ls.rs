//! rlxc-ls: container names, or a table with -f.

use std::io::IsTerminal;

use super::Common;
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One name per line.
    #[arg(short = '1', long = "line")]
    line: bool,
    /// A table: NAME STATE AUTOSTART IPV4 IPV6.
    #[arg(short = 'f', long = "fancy")]
    fancy: bool,
    /// Columns for -f, comma-separated (name,state,autostart,ipv4,ipv6,pid,arch,image).
    #[arg(short = 'F', long = "fancy-format", value_name = "COLUMNS")]
    fancy_format: Option<String>,
    /// Only running containers.
    #[arg(long = "running")]
    running: bool,
    /// Only stopped containers.
    #[arg(long = "stopped")]
    stopped: bool,
    #[command(flatten)]
    common: Common,
}

const COLUMNS: &[&str] = &[
    "name",
    "state",
    "autostart",
    "ipv4",
    "ipv6",
    "pid",
    "arch",
    "image",
];

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let mut containers = Vec::new();
    for c in Container::list(&sys)? {
        let running = c.state().is_running();
        if (a.running && !running) || (a.stopped && running) {
            continue;
        }
        containers.push(c);
    }
    if a.fancy || a.fancy_format.is_some() {
        return fancy(&containers, a.fancy_format.as_deref());
    }
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    if a.line || !std::io::stdout().is_terminal() {
        for n in names {
            println!("{n}");
        }
    } else if !names.is_empty() {
        println!("{}", names.join("  "));
    }
    Ok(0)
}

fn fancy(containers: &[Container], format: Option<&str>) -> Result<i32> {
    let cols: Vec<String> = format
        .unwrap_or("name,state,autostart,ipv4,ipv6")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    if let Some(bad) = cols.iter().find(|c| !COLUMNS.contains(&c.as_str())) {
        return Err(Error::Usage(format!(
            "unknown column {bad:?} for -F; choose from {}",
            COLUMNS.join(",")
        )));
    }
    let header: Vec<String> = cols.iter().map(|c| c.to_ascii_uppercase()).collect();
    let mut rows = vec![header];
    for c in containers {
        let cfg = c.config().ok();
        let state = c.state();
        rows.push(
            cols.iter()
                .map(|col| match col.as_str() {
                    "name" => c.name.clone(),
                    "state" => state.to_string(),
                    "autostart" => if cfg.as_ref().is_some_and(|x| x.autostart.enabled) {
                        "1"
                    } else {
                        "0"
                    }
                    .to_string(),
                    "arch" => cfg
                        .as_ref()
                        .and_then(|x| x.arch.clone())
                        .unwrap_or_else(|| "-".into()),
                    "image" => cfg
                        .as_ref()
                        .and_then(|x| x.image.as_ref())
                        .map(|i| format!("{} {}", i.dist, i.release))
                        .unwrap_or_else(|| "-".into()),
                    "pid" => match state {
                        crate::container::State::Running { pid, .. } => pid.to_string(),
                        _ => "-".into(),
                    },
                    "ipv4" | "ipv6" => {
                        let (v4, v6) = c.addresses(&state);
                        let v = if col == "ipv4" { v4 } else { v6 };
                        if v.is_empty() {
                            "-".into()
                        } else {
                            v.join(", ")
                        }
                    }
                    _ => "-".to_string(),
                })
                .collect(),
        );
    }
    super::table::print(&rows[0], &rows[1..], " ");
    Ok(0)
}
