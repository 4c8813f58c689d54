//! rlxc-export and rlxc-import: a container as one archive, and back.

use std::path::PathBuf;
use std::time::Duration;

use super::{Common, Reporter};
use crate::container::{self, Container};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Container name (it must be stopped).
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The archive to write (zstd-compressed tar, e.g. web1.tar.zst); must not exist.
    archive: PathBuf,
    /// Its snapshots too (rlxc-import restores them).
    #[arg(long = "snapshots")]
    snapshots: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// An archive rlxc-export wrote.
    archive: PathBuf,
    /// Name of the new container (default: the name it was exported under). Another
    /// name makes a copy: its own hostname, MAC addresses and `auto` address.
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// Keep mounts of host paths the archive's config has (refused otherwise).
    #[arg(long = "allow-host-mounts")]
    allow_host_mounts: bool,
    #[command(flatten)]
    common: Common,
}

pub fn export(a: ExportArgs) -> Result<i32> {
    let sys = a.common.system()?;
    let c = Container::new(&sys, &a.name)?;
    let progress = Reporter::new(a.common.quiet);
    let r = c.export(&a.archive, a.snapshots, &progress)?;
    if !a.common.quiet {
        eprintln!(
            "Exported {}{} to {} in {:.2} s: {} MB of files as {} MB, {}",
            c.name,
            with_snapshots(&r.snapshots),
            r.archive.display(),
            r.elapsed.as_secs_f64(),
            r.tree_bytes / 1_000_000,
            r.archive_bytes / 1_000_000,
            throughput(r.tree_bytes, r.elapsed)
        );
    }
    Ok(0)
}

pub fn import(a: ImportArgs) -> Result<i32> {
    let sys = a.common.system()?;
    let progress = Reporter::new(a.common.quiet);
    let r = container::import(
        &sys,
        &a.archive,
        a.name.as_deref(),
        a.allow_host_mounts,
        &progress,
    )?;
    if a.common.quiet {
        return Ok(0);
    }
    for d in &r.swept {
        eprintln!(
            "removed {} (left by a killed create or destroy)",
            d.display()
        );
    }
    for w in &r.stats.warnings {
        eprintln!("warning: {w}");
    }
    let from = if r.manifest.name == r.name {
        String::new()
    } else {
        format!(" (a copy of {})", r.manifest.name)
    };
    eprintln!(
        "Imported container {}{from}{} from {} in {:.2} s: {} files, {} MB, {} (exported by rlxc {})",
        r.name,
        with_snapshots(&r.snapshots),
        a.archive.display(),
        r.elapsed.as_secs_f64(),
        r.stats.entries,
        r.tree_bytes / 1_000_000,
        throughput(r.tree_bytes, r.elapsed),
        r.manifest.rlxc_version
    );
    eprintln!("  dir: {}", r.dir.display());
    Ok(0)
}

/// "123.4 MB/s" of the uncompressed stream.
pub(super) fn throughput(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-3);
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs)
}

/// " with snapshots snap0, snap1", or nothing.
fn with_snapshots(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" with snapshots {}", names.join(", "))
    }
}
