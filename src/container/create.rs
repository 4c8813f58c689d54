//! Create: a template obtains a rootfs, the configuration is populated, and the
//! container is published atomically under its name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Container;
use crate::config::{ContainerConfig, ImageSource, Rootfs, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::image::fetch::Progress;
use crate::image::{lxcconf, meta, unpack};
use crate::rootfs::Root;
use crate::template::{self, Filled, LxcConfig, Prepared, Target, Template};

pub use crate::template::{Available, Chooser, DownloadOptions, OciOptions, Plan, Resolved};

/// What a create starts from: `-t NAME` resolved, with what that template needs.
pub enum Source {
    Download(Box<Plan>),
    /// An image's two archives on the local disk (LXC's `lxc-local`).
    Local {
        metadata: PathBuf,
        fstree: PathBuf,
    },
    /// An image `rlxc-publish` made, by its alias.
    Image {
        alias: String,
    },
    /// An OCI image from a registry or a layout (`-t oci`).
    Oci(template::OciOptions),
    /// A template program (LXC's protocol), with its arguments.
    Script {
        name: String,
        path: PathBuf,
        args: Vec<String>,
    },
}

/// What `-t name` means on this installation (see `template::resolve` for the order).
pub fn resolve_template(sys: &SystemConfig, name: &str) -> Result<Resolved> {
    template::resolve(
        name,
        &template::search_dirs(sys),
        std::path::Path::new(template::LXC_TEMPLATES),
    )
}

/// Every template `-t NAME` reaches here.
pub fn templates(sys: &SystemConfig) -> Vec<Available> {
    template::available(
        &template::search_dirs(sys),
        std::path::Path::new(template::LXC_TEMPLATES),
    )
}

/// The image the download options name, `chooser` picking what they leave open.
pub fn download_plan(
    sys: &SystemConfig,
    o: &DownloadOptions,
    chooser: &dyn Chooser,
    progress: &dyn Progress,
) -> Result<Plan> {
    template::download::plan(sys, o, chooser, progress)
}

/// The server's images that match the download options.
pub fn download_list(
    sys: &SystemConfig,
    o: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Vec<crate::image::index::Entry>> {
    template::download::list(sys, o, progress)
}
use crate::{idmap, name, store};

/// Where LXC_TEMPLATE_CONFIG and LXC_HOOK_DIR point in substituted image files.
const TEMPLATE_CONFIG_DIR: &str = "/usr/share/rlxc/config";
const HOOK_DIR: &str = "/usr/share/rlxc/hooks";

/// `-B`: which backing store a create makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bdev {
    Dir,
    /// On the template's shared tree (an image build unpacked once).
    Overlay,
    /// A btrfs subvolume (the lxcpath on btrfs).
    Btrfs,
    /// Btrfs when the lxcpath is on btrfs; else overlay when the kernel has it and the
    /// template shares a tree; else dir.
    Best,
}

impl std::str::FromStr for Bdev {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dir" => Ok(Bdev::Dir),
            "overlay" | "overlayfs" => Ok(Bdev::Overlay),
            "btrfs" => Ok(Bdev::Btrfs),
            "best" => Ok(Bdev::Best),
            _ => Err(Error::Usage(format!(
                "backing store {s:?} is not supported; use -B dir, overlay, btrfs or best"
            ))),
        }
    }
}

/// How a create goes, beyond its template and config.
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    pub bdev: Bdev,
    /// Apply the image's mounts of host paths (refused otherwise).
    pub allow_host_mounts: bool,
    /// `--privileged`: no user namespace, whatever the config's `[idmap]` says.
    pub privileged: bool,
    /// `--allocate`: give root a range of host ids when it has no room for the
    /// container's.
    pub allocate: bool,
}

/// What a create did, for the CLI to report.
pub struct CreateReport {
    /// Its backing store and where the files are, in one line.
    pub rootfs: String,
    pub image: Option<ImageSource>,
    /// Files and bytes, when the template counted them (images do, scripts do not).
    pub stats: Option<unpack::Stats>,
    pub translation: lxcconf::Translation,
    pub create_message: Option<String>,
    pub unpack_time: Duration,
    /// Work directories of killed creates and destroys that this create removed.
    pub swept: Vec<PathBuf>,
    /// The host ids it maps (None: privileged).
    pub idmap: Option<crate::config::IdMap>,
    /// What the template says about the result (an OCI image: system or application).
    pub notes: Vec<String>,
}

impl Container {
    /// Create with `template`: it obtains the rootfs, then the configuration is
    /// populated (defaults or `-f`, the template's LXC lines translated, placeholders
    /// substituted) and the container published under its name, all or nothing.
    /// An `[idmap]` without host ids gets ids of its own (`crate::idmap`).
    pub fn create(
        &self,
        sys: &SystemConfig,
        source: Source,
        mut base: ContainerConfig,
        opts: CreateOptions,
        progress: &dyn Progress,
    ) -> Result<CreateReport> {
        let allow_host_mounts = opts.allow_host_mounts;
        // Until this returns, staging directories exist that only unwinding removes:
        // a second Ctrl-C must not kill half-way through the clean-up (a third does).
        // New names follow today's rule; existing ones only need to be reachable.
        name::validate(&self.name)?;
        let _cleanup = crate::sys::CleanupGuard::hold();
        store::mkdir_p(&self.lxcpath, 0o755)?;
        let _lock = store::lock_name(&self.lxcpath, &self.name, "creating this container")?;
        if self.dir().exists() {
            return Err(Error::Exists {
                name: self.name.clone(),
                lxcpath: self.lxcpath.clone(),
            });
        }
        // Before the template fetches anything: a container that can get no host ids,
        // or no subvolume, is refused here.
        if opts.privileged {
            base.idmap = None;
        }
        let ids = idmap::Origin::Create {
            allocate: opts.allocate,
        };
        let (ids, added) = idmap::Plan::new(sys, &self.name, base.idmap.as_ref(), ids)?;
        for a in added {
            progress.message(&format!(
                "--allocate: added `{}` to {}, a range of host ids for root",
                a.line,
                a.file.display()
            ));
        }
        let bdev = btrfs_or(opts.bdev, &self.lxcpath)?;
        let swept = store::sweep_stale(&self.lxcpath, &self.name);
        store::mkdir_p(&sys.cachepath, 0o700)?;
        let mut template = self.template(sys, source)?;
        let prepared = template.prepare(progress)?;
        // Before anything is written: a refused image leaves no directory behind.
        let (mut cfg, mut translation) = self.initial_config(base, &prepared)?;
        refuse_host_mounts(&translation, allow_host_mounts)?;
        let t0 = Instant::now();
        let lower = choose_backing(&mut cfg, bdev, &mut *template, &sys.cachepath, progress)?;

        let creating = store::Creating::begin(&self.lxcpath, &self.name)?;
        let backing = self.backing(&cfg);
        let rootfs = backing.create(&creating.dir)?;
        // For an overlay, a detached mount: what is written below lands in the upper.
        let root = backing.open_tree(&creating.dir)?;
        let target = Target {
            name: &self.name,
            dir: &creating.dir,
            rootfs: &rootfs,
            root: &root,
        };
        let filled = match lower {
            Some(l) => Filled {
                stats: l.stats,
                lxc_config: None,
            },
            None => template.fill(&target, progress)?,
        };
        let unpack_time = t0.elapsed();
        if let Some(lxc) = filled.lxc_config {
            // A template program is trusted code, but what it writes may come from an
            // image (LXC's lxc-download copies the image's config), so its mounts of
            // host paths are held to the same rule as an image's.
            let more = self.apply_template_config(&mut cfg, &lxc, &creating.dir)?;
            refuse_host_mounts(&more, allow_host_mounts)?;
            translation.extend(more);
            // The template's own LXC file has served; config.toml is the container's.
            std::fs::remove_file(&lxc.file).ctx("remove", &lxc.file)?;
        }
        self.substitute(&root, &cfg, &prepared.substitute)?;
        let notes = template.configure(&mut cfg, &root)?;
        cfg.validate(&self.config_path())?;
        drop(root);
        // Held until the container is published: its ids are then on record.
        let taken = ids.take(sys)?;
        cfg.idmap.clone_from(&taken.idmap);
        cfg.save(&creating.dir.join("config.toml"))?;
        let dir = creating.publish(&self.lxcpath, &self.name)?;
        drop(taken);
        Ok(CreateReport {
            rootfs: backing.describe(&dir),
            image: prepared.source,
            stats: filled.stats,
            translation,
            create_message: prepared.create_message,
            unpack_time,
            swept,
            idmap: cfg.idmap,
            notes,
        })
    }

    /// The template's LXC_NAME, LXC_PATH, … placeholders in the files it lists, as
    /// they will be once the container is published.
    fn substitute(&self, root: &Root, cfg: &ContainerConfig, files: &[String]) -> Result<()> {
        let final_dir = self.dir();
        let final_rootfs = self.backing(cfg).path(&final_dir);
        let vars = meta::TemplateVars {
            name: &self.name,
            path: &final_dir.to_string_lossy(),
            rootfs: &final_rootfs.to_string_lossy(),
            template_config: TEMPLATE_CONFIG_DIR,
            hook_dir: HOOK_DIR,
        };
        meta::apply_templates(root, files, &vars).map(|_| ())
    }

    fn template(&self, sys: &SystemConfig, source: Source) -> Result<Box<dyn Template>> {
        Ok(match source {
            Source::Download(plan) => Box::new(template::Download::new(
                *plan,
                crate::image::cache::Cache::new(&sys.cachepath),
            )),
            Source::Local { metadata, fstree } => Box::new(template::Local::new(
                metadata,
                fstree,
                &sys.cachepath,
                &self.name,
                sys.max_image_size,
            )),
            Source::Image { alias } => Box::new(template::Local::published(
                &alias,
                &sys.cachepath,
                &self.name,
                sys.max_image_size,
            )?),
            Source::Oci(opts) => Box::new(template::Oci::new(
                opts,
                &sys.cachepath,
                sys.max_image_size,
            )?),
            Source::Script { name, path, args } => {
                Box::new(template::Script::new(&name, path, args, &sys.cachepath))
            }
        })
    }

    /// The LXC config a template program wrote: held to `lxc.KEY = VALUE` lines, its
    /// paths of the directory being built turned into the final one, translated on top
    /// of what `cfg` has, and checked again.
    fn apply_template_config(
        &self,
        cfg: &mut ContainerConfig,
        lxc: &LxcConfig,
        staging: &std::path::Path,
    ) -> Result<lxcconf::Translation> {
        if let Some((n, line)) = lxcconf::first_malformed(&lxc.text) {
            return Err(Error::Config {
                file: lxc.file.clone(),
                msg: format!(
                    "line {n} (`{}`): the template wrote a line that is not `lxc.KEY = VALUE`; \
                     nothing was created",
                    line
                ),
            });
        }
        let text = crate::template::relocate(&lxc.text, staging, &self.dir());
        let translation = lxcconf::translate(&text, cfg);
        cfg.validate(&self.config_path())?;
        Ok(translation)
    }

    /// Defaults (or `-f`), then the image's LXC lines, then what rlxc knows for sure.
    fn initial_config(
        &self,
        base: ContainerConfig,
        prepared: &Prepared,
    ) -> Result<(ContainerConfig, lxcconf::Translation)> {
        let mut cfg = base;
        let translation = lxcconf::translate(&prepared.lxc_config, &mut cfg);
        if cfg.hostname.is_none() {
            cfg.hostname = Some(name::hostname_for(&self.name));
        }
        if let Some(source) = &prepared.source {
            cfg.arch = Some(source.arch.clone());
            cfg.image = Some(source.clone());
        }
        cfg.fill_hwaddrs();
        cfg.validate(&self.config_path())?;
        Ok((cfg, translation))
    }
}

/// `-B btrfs`, refused unless the lxcpath is on btrfs; `-B best` is btrfs there.
fn btrfs_or(bdev: Bdev, lxcpath: &Path) -> Result<Bdev> {
    match bdev {
        Bdev::Btrfs => store::btrfs::require(lxcpath, "-B btrfs").map(|()| Bdev::Btrfs),
        Bdev::Best if store::btrfs::is_btrfs(lxcpath) => Ok(Bdev::Btrfs),
        other => Ok(other),
    }
}

/// Record in `cfg` the backing store `bdev` asks for; for an overlay, the template's
/// shared tree (made now if it is new), returned.
fn choose_backing(
    cfg: &mut ContainerConfig,
    bdev: Bdev,
    template: &mut dyn Template,
    cachepath: &Path,
    progress: &dyn Progress,
) -> Result<Option<template::Lower>> {
    let kernel = store::backing::overlay_available();
    let lower =
        match bdev {
            Bdev::Dir => return Ok(None),
            // A subvolume the template fills.
            Bdev::Btrfs => {
                cfg.rootfs = Rootfs::btrfs();
                return Ok(None);
            }
            Bdev::Best if !kernel => return Ok(None),
            Bdev::Overlay if !kernel => return Err(Error::Usage(
                "-B overlay: this kernel has no overlay file system (not in /proc/filesystems; \
                 modprobe overlay), nothing was created; or use -B dir"
                    .into(),
            )),
            _ => template.shared_lower(cachepath, progress)?,
        };
    match (lower, bdev) {
        (Some(l), _) => {
            cfg.rootfs = Rootfs::overlay(l.path.clone());
            Ok(Some(l))
        }
        (None, Bdev::Overlay) => Err(Error::Usage(
            "-B overlay layers a container on an image shared by others (-t download, -t oci); \
             this template (or an OCI image without layers) makes a tree per container: use \
             -B dir or -B best; nothing was created"
                .into(),
        )),
        (None, _) => Ok(None),
    }
}

/// An image's mounts of host paths (`/ hostroot none rbind`) would hand the container
/// the host's files: only the sysadmin can allow that, not the image.
fn refuse_host_mounts(t: &lxcconf::Translation, allowed: bool) -> Result<()> {
    let lines: Vec<&str> = t
        .mounts
        .iter()
        .filter(|m| m.from_host)
        .map(|m| m.line.as_str())
        .collect();
    if allowed || lines.is_empty() {
        return Ok(());
    }
    Err(Error::hostile(format!(
        "its config mounts from the host (a bind of a host path, a device, or a file \
         system other than proc, sysfs, tmpfs, devpts, mqueue, cgroup): `{}`; nothing was \
         created. If you trust this image or template, create it again with \
         --allow-image-host-mounts",
        lines.join("`, `")
    )))
}
