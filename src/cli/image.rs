//! rlxc-image: the image cache and the published images. `ls` (`list`), `rm` (`remove`,
//! `rmi`), `prune`.

use std::time::Duration;

use super::{Common, Reporter};
use crate::config::{format_size, format_utc};
use crate::container::images::{self as catalog, CachedImage, Catalog, ImageRef, Kind};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// List the cached images (source, dist, release, arch, variant, build, size, last
    /// use, expiry), then the published ones (alias, container, size, date, description).
    #[command(visible_alias = "list")]
    Ls {
        /// One JSON array, sizes in bytes and times in unix seconds.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached images: REF is [SOURCE:]DIST/RELEASE[/ARCH[/VARIANT]], SOURCE
    /// `download`, `download:HOST` or a template's name (every match is removed), a
    /// published image's ALIAS, or an OCI image's docker://… or oci:… reference (with
    /// the blobs no other OCI image holds).
    #[command(visible_aliases = ["remove", "rmi"])]
    Rm {
        #[arg(required = true, value_name = "REF")]
        refs: Vec<ImageRef>,
        /// How long to wait for a create that is reading an image (0: do not wait).
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        timeout: u64,
    },
    /// Remove expired images, OCI blobs no image holds, and what killed creates and
    /// pulls left; --all: every cached image not in use. Published images stay: rm
    /// ALIAS removes one.
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
    },
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let catalog = Catalog::new(&sys.cachepath).with_containers_in(&sys.lxcpath);
    match a.action {
        Action::Ls { json } => ls(&catalog, json),
        Action::Rm { refs, timeout } => rm(&catalog, &refs, timeout, a.common.quiet),
        Action::Prune { all } => prune(&catalog, all, a.common.quiet),
    }
}

fn ls(catalog: &Catalog, json: bool) -> Result<i32> {
    let images = catalog.list()?;
    if json {
        let text = serde_json::to_string_pretty(&images)
            .map_err(|e| Error::Other(format!("cannot format the image list: {e}")))?;
        println!("{text}");
        return Ok(0);
    }
    let now = catalog::now();
    let (blobs, images): (Vec<CachedImage>, Vec<CachedImage>) =
        images.into_iter().partition(|i| i.kind == Kind::Blob);
    let (published, cached): (Vec<CachedImage>, Vec<CachedImage>) =
        images.into_iter().partition(|i| i.kind == Kind::Published);
    if !cached.is_empty() || (published.is_empty() && blobs.is_empty()) {
        print_cached(&cached, now);
    }
    let mut first = cached.is_empty() && !published.is_empty();
    for (table, print) in [
        (&published, print_published as fn(&[CachedImage], i64)),
        (&blobs, print_blobs),
    ] {
        if table.is_empty() {
            continue;
        }
        if !first {
            println!();
        }
        first = false;
        print(table, now);
    }
    Ok(0)
}

/// `sha256:0123456789ab`: enough of a digest to tell blobs apart on a terminal.
fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// The OCI cache's blobs: digest, type, size, last use, the images and containers
/// holding each (none: `prune` removes it).
fn print_blobs(blobs: &[CachedImage], now: i64) {
    let header = ["BLOB", "TYPE", "SIZE", "LAST USED", "IMAGES", "CONTAINERS"];
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let rows: Vec<Vec<String>> = blobs
        .iter()
        .filter_map(|i| Some((i, i.blob.as_ref()?)))
        .map(|(i, b)| {
            [
                short(&b.digest),
                b.kind.clone(),
                format_size(i.size),
                i.last_used.map_or("-".into(), |t| ago(now - t)),
                list(&b.images),
                list(&b.containers),
            ]
            .iter()
            .map(|c| super::shown(c))
            .collect()
        })
        .collect();
    super::table::print(&header, &rows, "  ");
}

fn print_cached(images: &[CachedImage], now: i64) {
    let header = [
        "SOURCE",
        "DIST",
        "RELEASE",
        "ARCH",
        "VARIANT",
        "BUILD",
        "SIZE",
        "LAST USED",
        "EXPIRES",
    ];
    // What an image.conf says is a template's text: no escape sequence reaches the terminal.
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| row(i, now).iter().map(|c| super::shown(c)).collect())
        .collect();
    super::table::print(&header, &rows, "  ");
}

fn print_published(images: &[CachedImage], now: i64) {
    let header = [
        "PUBLISHED",
        "FROM",
        "IMAGE",
        "ARCH",
        "SIZE",
        "CREATED",
        "LAST USED",
        "DESCRIPTION",
    ];
    let rows: Vec<Vec<String>> = images
        .iter()
        .filter_map(|i| Some((i, i.published.as_ref()?)))
        .map(|(i, p)| {
            let image = match &p.image {
                Some(src) => format!("{} {}", src.dist, src.release),
                None => "-".into(),
            };
            [
                p.alias.clone(),
                p.container.clone(),
                image,
                p.arch.clone(),
                format_size(i.size),
                format_utc(p.created),
                i.last_used.map_or("-".into(), |t| ago(now - t)),
                p.description.clone().unwrap_or_else(|| "-".into()),
            ]
            .iter()
            .map(|c| super::shown(c))
            .collect()
        })
        .collect();
    super::table::print(&header, &rows, "  ");
}

fn row(i: &CachedImage, now: i64) -> Vec<String> {
    let source = match (i.kind, i.host(), &i.oci) {
        (Kind::Download, Some(h), _) => format!("download:{h}"),
        (Kind::Oci, _, Some(o)) => o.server.clone(),
        _ => i.source.clone(),
    };
    let build = match i.kind {
        Kind::Oci => short(&i.build),
        _ => i.build.clone(),
    };
    vec![
        source,
        i.dist.clone(),
        i.release.clone(),
        i.arch.clone(),
        i.variant.clone(),
        build,
        format_size(i.size),
        i.last_used.map_or("-".into(), |t| ago(now - t)),
        i.expires.map_or("-".into(), |t| until(t - now)),
    ]
}

fn rm(catalog: &Catalog, refs: &[ImageRef], timeout: u64, quiet: bool) -> Result<i32> {
    let progress = Reporter::new(quiet);
    let report = catalog.remove(refs, Duration::from_secs(timeout), &progress)?;
    if !quiet {
        for l in &report.leftovers {
            println!(
                "removed leftover {} ({})",
                l.path.display(),
                format_size(l.size)
            );
        }
        for i in &report.removed {
            println!("removed {} ({})", described(i), format_size(i.size));
        }
    }
    let mut busy = report.busy;
    match busy.pop() {
        None => Ok(0),
        Some(last) => {
            for e in &busy {
                super::report("rlxc-image", e);
            }
            Err(last)
        }
    }
}

fn prune(catalog: &Catalog, all: bool, quiet: bool) -> Result<i32> {
    let report = catalog.prune(all)?;
    for (i, holder) in &report.in_use {
        eprintln!("kept {}: in use by {holder}", i.reference());
    }
    if quiet {
        return Ok(0);
    }
    for l in &report.leftovers {
        println!(
            "removed leftover {} ({})",
            l.path.display(),
            format_size(l.size)
        );
    }
    for (i, why) in &report.removed {
        println!("removed {} ({why}, {})", described(i), format_size(i.size));
    }
    let n = report.removed.len() + report.leftovers.len();
    if n == 0 {
        println!("nothing to prune");
    } else {
        println!("freed {}", format_size(report.freed()));
    }
    Ok(0)
}

/// `download:debian/bookworm/amd64/default build 20261201_05:24 from HOST`, or
/// `published image web-base (from container web1)`.
fn described(i: &CachedImage) -> String {
    if let Some(p) = &i.published {
        return format!(
            "published image {} (from container {})",
            p.alias, p.container
        );
    }
    match (&i.oci, &i.blob) {
        (Some(o), _) => return format!("OCI image {} ({})", o.reference, short(&o.manifest)),
        (_, Some(b)) => return format!("{} blob {}", b.kind, short(&b.digest)),
        _ => {}
    }
    let from = i.host().map(|h| format!(" from {h}")).unwrap_or_default();
    format!("{} build {}{from}", i.reference(), i.build)
}

/// Seconds ago → "just now", "5 minutes ago", "3 hours ago", "2 days ago".
fn ago(secs: i64) -> String {
    if secs < 60 {
        return "just now".into();
    }
    format!("{} ago", span(secs))
}

/// Seconds until expiry → "in 29 days", or "expired 2 hours ago".
fn until(secs: i64) -> String {
    if secs <= 0 {
        return format!("expired {}", ago(-secs));
    }
    format!("in {}", span(secs.max(60)))
}

/// A positive span in its largest whole unit: "1 minute", "5 hours", "12 days".
fn span(secs: i64) -> String {
    let (n, unit) = match secs {
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s => (s / 86400, "day"),
    };
    let n = n.max(1);
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(7200 + 5), "2 hours ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(until(29 * 86400 + 100), "in 29 days");
        assert_eq!(until(10), "in 1 minute");
        assert_eq!(until(0), "expired just now");
        assert_eq!(until(-2 * 86400), "expired 2 days ago");
    }

    #[test]
    fn a_download_row_names_its_server_and_a_template_row_its_template() {
        let mut i = CachedImage {
            kind: Kind::Download,
            source: "download".into(),
            origin: Some("http://127.0.0.1:8080".into()),
            dist: "debian".into(),
            release: "bookworm".into(),
            arch: "amd64".into(),
            variant: "default".into(),
            build: "20261201_05:24".into(),
            size: 3 << 20,
            last_used: Some(1000),
            expires: None,
            path: "/var/cache/rlxc/download/debian/bookworm/amd64/default".into(),
            published: None,
            oci: None,
            blob: None,
        };
        let r = row(&i, 1000 + 120);
        assert_eq!(r[0], "download:127.0.0.1:8080");
        assert_eq!(&r[6..], ["3 MiB", "2 minutes ago", "-"]);
        i.kind = Kind::Template;
        i.source = "debian".into();
        i.last_used = None;
        i.expires = Some(1000);
        let r = row(&i, 1000);
        assert_eq!(r[0], "debian");
        assert_eq!(&r[7..], ["-", "expired just now"]);
    }
}
