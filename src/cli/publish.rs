//! rlxc-publish: a stopped container becomes an image (`docker commit`, `incus
//! publish`) that `rlxc-create -t image -n NAME ALIAS` makes containers from.

use super::export::throughput;
use super::{Common, Reporter};
use crate::container::{Container, PublishOptions};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container to publish (stopped); it is not changed.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The image's name, for rlxc-create -t image -n NAME ALIAS: 1-64 letters, digits, '-', '_'
    /// and '.', starting with a letter or digit.
    #[arg(long = "alias", value_name = "ALIAS")]
    alias: String,
    /// One line describing the image, shown by rlxc-image ls.
    #[arg(long = "description", value_name = "TEXT")]
    description: Option<String>,
    /// Replace the image published under this alias.
    #[arg(short = 'f', long = "force")]
    force: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let progress = Reporter::new(a.common.quiet);
    let opts = PublishOptions {
        alias: &a.alias,
        description: a.description.as_deref(),
        replace: a.force,
    };
    let r = c.publish(&sys, &opts, &progress)?;
    if a.common.quiet {
        return Ok(0);
    }
    for d in &r.swept {
        eprintln!(
            "removed {} (left by a process that was killed)",
            d.display()
        );
    }
    for f in &r.left_out {
        eprintln!("note: left {f} out of the image (it belongs to {})", c.name);
    }
    let replaced = if r.replaced {
        " (replacing the image of that name)"
    } else {
        ""
    };
    eprintln!(
        "Published {} as image {}{replaced} in {:.2} s: {} MB of files as {} MB, {}",
        c.name,
        a.alias,
        r.elapsed.as_secs_f64(),
        r.tree_bytes / 1_000_000,
        r.image_bytes / 1_000_000,
        throughput(r.tree_bytes, r.elapsed)
    );
    eprintln!("  image: {}", r.dir.display());
    eprintln!("  create from it: rlxc-create -t image -n NAME {}", a.alias);
    Ok(0)
}
