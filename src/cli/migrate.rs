//! rlxc-migrate: an existing LXC container becomes an rlxc container of the same name;
//! what was translated, what rlxc covers itself and what has no equivalent is printed.

use std::path::PathBuf;

use super::Common;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The LXC container's name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Remove the LXC container once the rlxc one is there (default: left untouched).
    #[arg(long = "move")]
    move_it: bool,
    /// -P LXCPATH here is LXC's lxcpath, where the container is (default /var/lib/lxc);
    /// it becomes a container of rlxc's configured lxcpath.
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = crate::config::SystemConfig::load()?;
    let lxc_path = a
        .common
        .lxcpath
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/lxc"));
    let r = crate::container::migrate(&sys, &a.name, &lxc_path, a.move_it)?;
    if !a.common.quiet {
        let t = &r.translation;
        for (what, lines) in [
            ("translated", &t.applied),
            ("covered by rlxc", &t.covered),
            ("not translated", &t.ignored),
        ] {
            for l in lines.iter() {
                eprintln!("{what}: {}", super::shown(l));
            }
        }
    }
    println!(
        "{} is an rlxc container in {}{}",
        a.name,
        r.dir.display(),
        if r.moved {
            " (the LXC container was removed)"
        } else {
            " (the LXC container is untouched)"
        }
    );
    Ok(0)
}
