//! rlxc-create: `-t NAME` resolved to a built-in (`download`, `local`, `image`) or a
//! template program; `-t download` takes LXC's flags either right after `-t download` or
//! after `--` as LXC passes them to its template; `-t image` takes a published image's
//! alias (`-t image -n web3 web-base`); every other template gets what follows `--`.

use std::path::PathBuf;

use clap::Parser;

use super::{Common, Reporter};
use crate::config::{ContainerConfig, SystemConfig};
use crate::container::{
    self, Bdev, Container, CreateOptions, DownloadOptions, Progress, Resolved, Source,
};
use crate::error::{Error, Result};
use crate::name;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name of the new container (default for `-t download`: DIST-RELEASE).
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// Template: `download` (an LXC image server), `local` (an image's archives), `image`
    /// (an image rlxc-publish made), the name of a template program (rlxc-NAME, or LXC's
    /// lxc-NAME), or a template file's path.
    #[arg(
        short = 't',
        long = "template",
        required_unless_present = "list_templates"
    )]
    template: Option<String>,
    /// List the templates -t can name, and where each one is.
    #[arg(long = "list-templates")]
    list_templates: bool,
    /// Backing store: `dir` (a plain directory rootfs), `overlay` (layered on the image
    /// build unpacked once and shared: -t download), `btrfs` (a subvolume: the lxcpath on
    /// btrfs), `best` (btrfs on btrfs, else overlay when it can, else dir).
    #[arg(short = 'B', long = "bdev", default_value = "dir")]
    bdev: String,
    /// Use FILE instead of the defaults for new containers.
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Apply the image's lxc.mount.entry lines that mount from the host (binds of host
    /// paths, devices, file systems other than proc, sysfs, tmpfs, …); refused otherwise.
    #[arg(long = "allow-image-host-mounts")]
    allow_image_host_mounts: bool,
    /// A privileged container (root inside is root on the host), even when the defaults
    /// (or -f) give it an [idmap].
    #[arg(long = "privileged", conflicts_with = "allocate")]
    privileged: bool,
    /// If root has no free range of host ids in /etc/subuid and /etc/subgid for the
    /// container, add one (root:START:1000000000, clear of every other line) and say so.
    #[arg(long = "allocate")]
    allocate: bool,
    #[command(flatten)]
    dl: DownloadArgs,
    #[command(flatten)]
    common: Common,
    /// With `-t image`: the published image's alias (rlxc-image ls lists them).
    #[arg(value_name = "ALIAS")]
    alias: Option<String>,
    /// Template options, as LXC passes them: `-- --server … -d … -r …`.
    #[arg(last = true, value_name = "TEMPLATE-ARGS")]
    template_args: Vec<String>,
}

// The download template's options (LXC's names).
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
    fn options(self) -> DownloadOptions {
        DownloadOptions {
            dist: self.dist,
            release: self.release,
            arch: self.arch,
            variant: self.variant,
            server: self.server,
            flush_cache: self.flush_cache,
            force_cache: self.force_cache,
        }
    }

    /// The first download option given, for telling a template program's user where
    /// its options go.
    fn first_given(&self) -> Option<&'static str> {
        [
            (self.dist.is_some(), "-d"),
            (self.release.is_some(), "-r"),
            (self.arch.is_some(), "-a"),
            (self.variant.is_some(), "--variant"),
            (self.server.is_some(), "--server"),
            (self.list, "--list"),
            (self.flush_cache, "--flush-cache"),
            (self.force_cache, "--force-cache"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

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
    let _: Bdev = a.bdev.parse()?;
    let sys = a.common.system()?;
    let Some(tname) = a.template.clone().filter(|_| !a.list_templates) else {
        return list_templates(&sys);
    };
    let resolved = container::resolve_template(&sys, &tname)?;
    if !matches!(resolved, Resolved::Download) {
        let first = match resolved {
            // -a chooses the platform of a multi-arch image.
            Resolved::Oci => a.dl.first_given().filter(|f| *f != "-a"),
            _ => a.dl.first_given(),
        };
        if let Some(flag) = first {
            return Err(Error::Usage(format!(
                "{flag} is an option of -t download; options of -t {tname} go after `--`, \
                 as in: rlxc-create -t {tname} -n NAME -- {flag} …"
            )));
        }
    }
    if let (Some(alias), false) = (&a.alias, resolved == Resolved::Image) {
        return Err(Error::Usage(format!(
            "{alias:?}: only -t image takes an alias; options of -t {tname} go after `--`"
        )));
    }
    match resolved {
        Resolved::Download => run_download(a, &sys),
        Resolved::Local => run_local(a, &sys),
        Resolved::Image => run_image(a, &sys),
        Resolved::Oci => run_oci(a, &sys),
        Resolved::Script { name, path, .. } => run_script(a, &sys, name, path),
    }
}

fn list_templates(sys: &SystemConfig) -> Result<i32> {
    let all = container::templates(sys);
    let rows: Vec<[String; 3]> = all
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.origin.to_string(),
                t.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(in rlxc)".into()),
            ]
        })
        .collect();
    let rows: Vec<[&str; 3]> = rows
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str()])
        .collect();
    super::table::print(&["TEMPLATE", "FROM", "PATH"], &rows, "  ");
    Ok(0)
}

/// `-t NAME -n NAME -- ARGS`: a template program with LXC's protocol.
fn run_script(a: Args, sys: &SystemConfig, tname: String, path: PathBuf) -> Result<i32> {
    let name = a.name.clone().ok_or_else(|| {
        Error::Usage(format!(
            "-t {tname} needs -n NAME (a template program does not name the container)"
        ))
    })?;
    let c = Container::new(sys, &name)?;
    let base = base_config(sys, a.config.as_ref())?;
    let progress = Reporter::new(a.common.quiet);
    let source = Source::Script {
        name: tname,
        path,
        args: a.template_args.clone(),
    };
    create_and_report(sys, &c, source, base, &a, &progress)
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

/// LXC's `lxc-oci` options, after `--`.
#[derive(Parser, Debug)]
#[command(name = "oci", no_binary_name = true, disable_help_flag = true)]
struct OciArgs {
    /// The image: docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST] or oci:PATH[:TAG].
    #[arg(short = 'u', long = "url", value_name = "URL")]
    url: String,
    /// The registry user (the password comes from --password-stdin).
    #[arg(long = "username")]
    username: Option<String>,
    /// Read the registry password from standard input (one line).
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// Talk plain http to the registry (a registry on a trusted local network).
    #[arg(long = "plain-http")]
    plain_http: bool,
}

/// `-t oci -n NAME -- -u URL [--username U --password-stdin] [--plain-http]`; `-a`
/// picks the platform from a multi-arch image (default: the host's).
fn run_oci(a: Args, sys: &SystemConfig) -> Result<i32> {
    let opts: OciArgs = template_options(&a.template_args)?;
    let name = a.name.clone().ok_or_else(|| {
        Error::Usage("-t oci needs -n NAME: rlxc-create -t oci -n NAME -- -u URL".into())
    })?;
    name::validate(&name)?;
    let password = if opts.password_stdin {
        if opts.username.is_none() {
            return Err(Error::Usage(
                "--password-stdin needs --username: the registry's user".into(),
            ));
        }
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| {
            Error::Usage(format!("cannot read the password from standard input: {e}"))
        })?;
        Some(line.trim_end_matches(['\n', '\r']).to_string())
    } else {
        None
    };
    let c = Container::new(sys, &name)?;
    let base = base_config(sys, a.config.as_ref())?;
    let progress = Reporter::new(a.common.quiet);
    let source = Source::Oci(container::OciOptions {
        url: opts.url,
        arch: a.dl.arch.clone(),
        username: opts.username,
        password,
        plain_http: opts.plain_http,
    });
    create_and_report(sys, &c, source, base, &a, &progress)
}

/// `-t local -n NAME -- --metadata META --fstree ROOTFS`.
fn run_local(a: Args, sys: &SystemConfig) -> Result<i32> {
    let opts: LocalArgs = template_options(&a.template_args)?;
    let name = a.name.clone().ok_or_else(|| {
        Error::Usage("-t local needs -n NAME (the archives do not name the container)".into())
    })?;
    let c = Container::new(sys, &name)?;
    let base = base_config(sys, a.config.as_ref())?;
    let progress = Reporter::new(a.common.quiet);
    let source = Source::Local {
        metadata: opts.metadata,
        fstree: opts.fstree,
    };
    create_and_report(sys, &c, source, base, &a, &progress)
}

/// `-t image -n NAME ALIAS` (or `-- ALIAS`): an image rlxc-publish made.
fn run_image(a: Args, sys: &SystemConfig) -> Result<i32> {
    let alias = match (&a.alias, a.template_args.as_slice()) {
        (Some(x), []) => x.clone(),
        (None, [x]) => x.clone(),
        _ => {
            return Err(Error::Usage(
                "-t image takes one published image's alias: rlxc-create -t image -n NAME \
                 ALIAS (rlxc-image ls lists them)"
                    .into(),
            ))
        }
    };
    let name = a.name.clone().ok_or_else(|| {
        Error::Usage(format!(
            "-t image needs -n NAME: rlxc-create -t image -n NAME {alias}"
        ))
    })?;
    let c = Container::new(sys, &name)?;
    let base = base_config(sys, a.config.as_ref())?;
    let progress = Reporter::new(a.common.quiet);
    create_and_report(sys, &c, Source::Image { alias }, base, &a, &progress)
}

fn run_download(a: Args, sys: &SystemConfig) -> Result<i32> {
    let extra: TemplateOnly = template_options(&a.template_args)?;
    let dl = a.dl.clone().merge(extra.dl)?;
    let progress = Reporter::new(a.common.quiet);
    let list = dl.list;
    let opts = dl.options();
    if list {
        return list_images(sys, &opts, &progress);
    }
    let fully_specified = opts.dist.is_some() && opts.release.is_some();
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
    let plan = container::download_plan(sys, &opts, &Menu, &progress)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => {
            let n = name::default_for_image(&plan.key().dist, &plan.key().release);
            progress.message(&format!("no -n given: naming the container {n}"));
            n
        }
    };
    let c = Container::new(sys, &name)?;
    let base = base_config(sys, a.config.as_ref())?;
    if let Some(w) = plan.arch_warning() {
        progress.message(&w);
    }
    create_and_report(
        sys,
        &c,
        Source::Download(Box::new(plan)),
        base,
        &a,
        &progress,
    )
}

fn base_config(sys: &SystemConfig, file: Option<&PathBuf>) -> Result<ContainerConfig> {
    match file {
        Some(f) => ContainerConfig::load(f),
        None => sys.container_defaults(),
    }
}

/// The terminal's menu for what the download options leave open.
struct Menu;

impl container::Chooser for Menu {
    fn choose(&self, what: &str, items: &[String], default: Option<&str>) -> Result<String> {
        let start = default
            .and_then(|d| items.iter().position(|x| x == d))
            .unwrap_or(0);
        let i = dialoguer::Select::new()
            .with_prompt(what)
            .items(items)
            .default(start)
            .interact()
            .map_err(|e| Error::Usage(format!("no {} chosen: {e}", what.to_lowercase())))?;
        Ok(items[i].clone())
    }
}

fn list_images(sys: &SystemConfig, opts: &DownloadOptions, progress: &Reporter) -> Result<i32> {
    let entries = container::download_list(sys, opts, progress)?;
    let rows: Vec<[&str; 5]> = entries
        .iter()
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
    source: Source,
    base: ContainerConfig,
    a: &Args,
    progress: &Reporter,
) -> Result<i32> {
    let t0 = std::time::Instant::now();
    let from = match &source {
        Source::Script { name, .. } => Some(name.clone()),
        _ => None,
    };
    let opts = CreateOptions {
        bdev: a.bdev.parse()?,
        allow_host_mounts: a.allow_image_host_mounts,
        privileged: a.privileged,
        allocate: a.allocate,
    };
    let report = c.create(sys, source, base, opts, progress)?;
    if !a.common.quiet {
        print_report(&c.name, &report, t0, from.as_deref());
    }
    Ok(0)
}

/// What a create did: work directories swept, image lines ignored and mounts added,
/// unpack warnings, the summary and the image's message.
/// `script`: the template program that made it, if one did.
fn print_report(
    name: &str,
    report: &crate::container::CreateReport,
    t0: std::time::Instant,
    script: Option<&str>,
) {
    for d in &report.swept {
        eprintln!(
            "note: removed {}, left by a create or destroy that was killed",
            d.display()
        );
    }
    let lines_of = if script.is_some() {
        "template"
    } else {
        "image"
    };
    for l in &report.translation.ignored {
        eprintln!("note: {lines_of} config line ignored: {l}");
    }
    for m in &report.translation.mounts {
        match (m.from_host, script) {
            (true, Some(t)) => eprintln!(
                "warning: template {t} mounts from the host (allowed by --allow-image-host-mounts): {}",
                m.line
            ),
            (true, None) => eprintln!(
                "warning: the image mounts from the host (allowed by --allow-image-host-mounts): {}",
                m.line
            ),
            (false, _) => eprintln!("note: the {lines_of} adds a mount: {}", m.line),
        }
    }
    for w in report.stats.iter().flat_map(|s| &s.warnings) {
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
    let secs = t0.elapsed().as_secs_f64();
    match (&report.stats, script) {
        (Some(stats), _) => eprintln!(
            "Created container {name}{from} in {secs:.2} s: {} files, {} MB, unpacked in {:.2} s",
            stats.entries,
            stats.bytes / 1_000_000,
            report.unpack_time.as_secs_f64()
        ),
        (None, Some(t)) => eprintln!("Created container {name} with template {t} in {secs:.2} s"),
        (None, None) => eprintln!("Created container {name} in {secs:.2} s"),
    }
    eprintln!("  rootfs: {}", report.rootfs);
    if report.idmap.is_some() {
        eprintln!(
            "  privileged: {}",
            super::info::privileged(report.idmap.as_ref())
        );
    }
    for n in &report.notes {
        eprintln!("  {n}");
    }
    if let Some(m) = &report.create_message {
        println!("{}", m.trim_end());
    }
}
