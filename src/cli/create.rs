//! rlxc-create: `-t download` with LXC's flags, either right after `-t download` or
//! after `--` as LXC passes them to its template.

use std::path::PathBuf;

use clap::Parser;

use super::{Common, Reporter};
use crate::config::{ContainerConfig, SystemConfig};
use crate::container::Container;
use crate::error::{Error, Result};
use crate::image::arch;
use crate::image::cache::Key;
use crate::image::download::{self, Request};
use crate::image::fetch::{Fetcher, Progress};
use crate::image::index::{Index, Query};
use crate::image::server::Server;
use crate::name;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the new container (default for `-t download`: DIST-RELEASE).
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// Template: `download` fetches an image from an LXC image server.
    #[arg(short = 't', long = "template")]
    template: String,
    /// Backing store: `dir` (a plain directory rootfs).
    #[arg(short = 'B', long = "bdev", default_value = "dir")]
    bdev: String,
    /// Use FILE instead of the defaults for new containers.
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Apply the image's lxc.mount.entry lines that mount from the host (binds of host
    /// paths, devices, file systems other than proc, sysfs, tmpfs, …); refused otherwise.
    #[arg(long = "allow-image-host-mounts")]
    allow_image_host_mounts: bool,
    #[command(flatten)]
    dl: DownloadArgs,
    #[command(flatten)]
    common: Common,
    /// Template options, as LXC passes them: `-- --server … -d … -r …`.
    #[arg(last = true, value_name = "TEMPLATE-ARGS")]
    template_args: Vec<String>,
}

/// The download template's options (LXC's names).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct DownloadArgs {
    /// Distribution, e.g. debian, centos.
    #[arg(short = 'd', long = "dist")]
    dist: Option<String>,
    /// Release, e.g. bookworm, 9-Stream.
    #[arg(short = 'r', long = "release")]
    release: Option<String>,
    /// Architecture (default: the host's; uname names such as x86_64 are accepted).
    #[arg(short = 'a', long = "arch")]
    arch: Option<String>,
    /// Image variant.
    #[arg(long = "variant")]
    variant: Option<String>,
    /// Image server: host[/prefix] (https) or a full http(s):// URL.
    #[arg(long = "server")]
    server: Option<String>,
    /// List the images the server has (filtered by -d/-r/-a/--variant).
    #[arg(short = 'l', long = "list")]
    list: bool,
    /// Remove the cached image first.
    #[arg(long = "flush-cache")]
    flush_cache: bool,
    /// Use the cached image without contacting the server.
    #[arg(long = "force-cache")]
    force_cache: bool,
}

/// LXC's `-- …` form: the same options, parsed on their own.
#[derive(Parser, Debug)]
#[command(name = "download", no_binary_name = true, disable_help_flag = true)]
struct TemplateOnly {
    #[command(flatten)]
    dl: DownloadArgs,
}

fn merge_opt(a: Option<String>, b: Option<String>, flag: &str) -> Result<Option<String>> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(Error::Usage(format!(
            "{flag} given twice with different values ({x:?} and {y:?})"
        ))),
        (x, y) => Ok(x.or(y)),
    }
}

impl DownloadArgs {
    fn merge(self, other: DownloadArgs) -> Result<DownloadArgs> {
        Ok(DownloadArgs {
            dist: merge_opt(self.dist, other.dist, "--dist")?,
            release: merge_opt(self.release, other.release, "--release")?,
            arch: merge_opt(self.arch, other.arch, "--arch")?,
            variant: merge_opt(self.variant, other.variant, "--variant")?,
            server: merge_opt(self.server, other.server, "--server")?,
            list: self.list || other.list,
            flush_cache: self.flush_cache || other.flush_cache,
            force_cache: self.force_cache || other.force_cache,
        })
    }
}

/// LXC's `lxc-local` options, after `--`.
#[derive(Parser, Debug)]
#[command(name = "local", no_binary_name = true, disable_help_flag = true)]
struct LocalArgs {
    /// The image's metadata archive (meta.tar.xz, .gz, .zst or plain).
    #[arg(short = 'm', long = "metadata", value_name = "FILE")]
    metadata: PathBuf,
    /// The image's root file system archive (rootfs.tar.xz, .gz, .zst or plain).
    #[arg(short = 'f', long = "fstree", value_name = "FILE")]
    fstree: PathBuf,
}

pub fn run(a: Args) -> Result<i32> {
    if a.bdev != "dir" {
        return Err(Error::Usage(format!(
            "backing store {:?} is not supported; use -B dir",
            a.bdev
        )));
    }
    match a.template.as_str() {
        "download" => run_download(a),
        "local" => run_local(a),
        other => Err(Error::Usage(format!(
            "unknown template {other:?}; available: download, local"
        ))),
    }
}

/// Template options after `--`, or the first line of clap's complaint about them.
fn template_options<T: Parser>(args: &[String]) -> Result<T> {
    T::try_parse_from(args).map_err(|e| {
        let msg = e.render().to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        Error::Usage(format!("template options after '--': {first}"))
    })
}

/// `-t local -n NAME -- --metadata META --fstree ROOTFS`.
fn run_local(a: Args) -> Result<i32> {
    let opts: LocalArgs = template_options(&a.template_args)?;
    let name = a.name.clone().ok_or_else(|| {
        Error::Usage("-t local needs -n NAME (the archives do not name the container)".into())
    })?;
    let sys = a.common.system()?;
    let c = Container::new(&sys, &name)?;
    let base = base_config(&sys, a.config.as_ref())?;
    let progress = Reporter::new(a.common.quiet);
    let mut template = crate::template::Local::new(
        opts.metadata,
        opts.fstree,
        &sys.cachepath,
        &name,
        sys.max_image_size,
    );
    create_and_report(
        &sys,
        &c,
        &mut template,
        base,
        (a.allow_image_host_mounts, a.common.quiet),
        &progress,
    )
}

fn run_download(a: Args) -> Result<i32> {
    if a.bdev != "dir" {
        return Err(Error::Usage(format!(
            "backing store {:?} is not supported; use -B dir",
            a.bdev
        )));
    }
    let extra: TemplateOnly = template_options(&a.template_args)?;
    let dl = a.dl.merge(extra.dl)?;
    let sys = a.common.system()?;
    let progress = Reporter::new(a.common.quiet);
    let server = Server::parse(dl.server.as_deref().unwrap_or(&sys.download_server))?;
    if dl.list {
        return list(&server, &dl, &progress);
    }
    let fully_specified = dl.dist.is_some() && dl.release.is_some();
    if !fully_specified && !super::stdin_is_tty() {
        return Err(Error::Usage(
            "-d/--dist and -r/--release are needed when not on a terminal; \
             see what the server has with: rlxc-create -t download --list"
                .into(),
        ));
    }
    // Validate the name before any network traffic.
    if let Some(n) = &a.name {
        name::validate(n)?;
    }
    let (key, index) = resolve(&server, &dl, &progress)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => {
            let n = name::default_for_image(&key.dist, &key.release);
            progress.message(&format!("no -n given: naming the container {n}"));
            n
        }
    };
    let c = Container::new(&sys, &name)?;
    let base = base_config(&sys, a.config.as_ref())?;
    let req = Request {
        server,
        key,
        flush_cache: dl.flush_cache,
        force_cache: dl.force_cache,
        max_image_size: sys.max_image_size,
    };
    if !arch::is_compatible_with_host(&req.key.arch) {
        progress.message(&format!(
            "warning: {} containers cannot run on this {} host without emulation",
            req.key.arch,
            arch::host()
        ));
    }
    let mut template = crate::template::Download::new(
        &req,
        crate::image::cache::Cache::new(&sys.cachepath),
        index,
    );
    create_and_report(
        &sys,
        &c,
        &mut template,
        base,
        (a.allow_image_host_mounts, a.common.quiet),
        &progress,
    )
}

fn base_config(sys: &SystemConfig, file: Option<&PathBuf>) -> Result<ContainerConfig> {
    match file {
        Some(f) => ContainerConfig::load(f),
        None => sys.container_defaults(),
    }
}

/// Fill in dist/release/arch/variant: from flags, else by asking on a terminal.
fn resolve(
    server: &Server,
    dl: &DownloadArgs,
    progress: &dyn Progress,
) -> Result<(Key, Option<Index>)> {
    let arch = dl
        .arch
        .as_deref()
        .map(arch::to_debian)
        .unwrap_or_else(arch::host);
    let variant = dl.variant.clone().unwrap_or_else(|| "default".into());
    if let (Some(d), Some(r)) = (&dl.dist, &dl.release) {
        return Ok((download::key(d, r, &arch, &variant), None));
    }
    if dl.force_cache {
        return Err(Error::Usage("--force-cache needs -d and -r".into()));
    }
    let fetcher = Fetcher::new(server)?;
    let idx = download::fetch_index(&fetcher, server, progress)?;
    let dist = match &dl.dist {
        Some(d) => d.clone(),
        None => choose(
            "Distribution",
            idx.entries.iter().map(|e| e.dist.clone()),
            None,
        )?,
    };
    let q = |release: Option<String>| Query {
        dist: Some(dist.clone()),
        release,
        ..Default::default()
    };
    let release = match &dl.release {
        Some(r) => r.clone(),
        None => choose(
            "Release",
            idx.filter(&q(None)).map(|e| e.release.clone()),
            None,
        )?,
    };
    let arch = match &dl.arch {
        Some(_) => arch,
        None => choose(
            "Architecture",
            idx.filter(&q(Some(release.clone())))
                .map(|e| e.arch.clone()),
            Some(&arch),
        )?,
    };
    Ok((download::key(&dist, &release, &arch, &variant), Some(idx)))
}

fn choose(
    what: &str,
    items: impl Iterator<Item = String>,
    default: Option<&str>,
) -> Result<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        return Err(Error::NoImage(format!(
            "the server offers no {} for that choice",
            what.to_lowercase()
        )));
    }
    let start = default
        .and_then(|d| v.iter().position(|x| x == d))
        .unwrap_or(0);
    let i = dialoguer::Select::new()
        .with_prompt(what)
        .items(&v)
        .default(start)
        .interact()
        .map_err(|e| Error::Usage(format!("no {} chosen: {e}", what.to_lowercase())))?;
    Ok(v[i].clone())
}

fn list(server: &Server, dl: &DownloadArgs, progress: &dyn Progress) -> Result<i32> {
    let fetcher = Fetcher::new(server)?;
    let idx = download::fetch_index(&fetcher, server, progress)?;
    let q = Query {
        dist: dl.dist.clone(),
        release: dl.release.clone(),
        arch: dl.arch.as_deref().map(arch::to_debian),
        variant: dl.variant.clone(),
    };
    let mut rows: Vec<[&str; 5]> = idx
        .filter(&q)
        .map(|e| {
            [
                e.dist.as_str(),
                e.release.as_str(),
                e.arch.as_str(),
                e.variant.as_str(),
                e.build.as_str(),
            ]
        })
        .collect();
    if rows.is_empty() {
        let mut msg = format!("{server} has no image matching the filter");
        if q.dist.is_some() {
            msg += &format!("\n{}", idx.explain_miss(&q));
        }
        return Err(Error::NoImage(msg));
    }
    rows.sort();
    super::table::print(
        &["DIST", "RELEASE", "ARCH", "VARIANT", "BUILD"],
        &rows,
        "  ",
    );
    Ok(0)
}

/// Create with `template` and say what was done.
fn create_and_report(
    sys: &SystemConfig,
    c: &Container,
    template: &mut dyn crate::template::Template,
    base: ContainerConfig,
    (allow_host_mounts, quiet): (bool, bool),
    progress: &Reporter,
) -> Result<i32> {
    let t0 = std::time::Instant::now();
    let report = c.create(sys, template, base, allow_host_mounts, progress)?;
    print_report(&c.name, &report, t0, quiet);
    Ok(0)
}

/// What a create did: work directories swept, image lines ignored and mounts added,
/// unpack warnings, the summary and the image's message.
fn print_report(
    name: &str,
    report: &crate::container::CreateReport,
    t0: std::time::Instant,
    quiet: bool,
) {
    if quiet {
        return;
    }
    for d in &report.swept {
        eprintln!(
            "note: removed {}, left by a create or destroy that was killed",
            d.display()
        );
    }
    for l in &report.translation.ignored {
        eprintln!("note: image config line ignored: {l}");
    }
    for m in &report.translation.mounts {
        if m.from_host {
            eprintln!(
                "warning: the image mounts from the host (allowed by --allow-image-host-mounts): {}",
                m.line
            );
        } else {
            eprintln!("note: the image adds a mount: {}", m.line);
        }
    }
    for w in &report.stats.warnings {
        eprintln!("warning: {w}");
    }
    let from = report
        .image
        .as_ref()
        .map(|i| {
            format!(
                " ({} {} {} {}, build {})",
                i.dist, i.release, i.arch, i.variant, i.build
            )
        })
        .unwrap_or_default();
    eprintln!(
        "Created container {name}{from} in {:.2} s: {} files, {} MB, unpacked in {:.2} s",
        t0.elapsed().as_secs_f64(),
        report.stats.entries,
        report.stats.bytes / 1_000_000,
        report.unpack_time.as_secs_f64()
    );
    eprintln!("  rootfs: {}", report.dir.join("rootfs").display());
    if let Some(m) = &report.create_message {
        println!("{}", m.trim_end());
    }
}
