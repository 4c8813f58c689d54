//! The Container object: what the commands do to one container.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{ContainerConfig, ImageSource, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::image::cache::Cache;
use crate::image::download::{self, Request};
use crate::image::fetch::Progress;
use crate::image::index::Index;
use crate::image::{lxcconf, meta, unpack};
use crate::rootfs::Root;
use crate::{name, store};

/// Where LXC_TEMPLATE_CONFIG and LXC_HOOK_DIR point in substituted image files.
const TEMPLATE_CONFIG_DIR: &str = "/usr/share/rlxc/config";
const HOOK_DIR: &str = "/usr/share/rlxc/hooks";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Stopped,
    /// The monitor answers: init runs with this (host) pid.
    Running {
        pid: i32,
    },
    /// No monitor answers, but processes live in the container's cgroup: the monitor
    /// was killed. They can still be stopped (rlxc-stop -k).
    Orphaned {
        pids: Vec<i32>,
    },
}

impl State {
    pub fn is_running(&self) -> bool {
        !matches!(self, State::Stopped)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Stopped => "STOPPED",
            State::Running { .. } | State::Orphaned { .. } => "RUNNING",
        })
    }
}

pub struct Container {
    pub name: String,
    pub lxcpath: PathBuf,
    /// RUNPATH/NAME.TAG: the monitor's socket and state.
    pub run_dir: PathBuf,
    /// `NAME.TAG`: what its host objects (cgroups, run directory) are called.
    pub key: String,
}

/// What a create did, for the CLI to report.
pub struct CreateReport {
    pub dir: PathBuf,
    pub image: ImageSource,
    pub stats: unpack::Stats,
    pub translation: lxcconf::Translation,
    pub create_message: Option<String>,
    pub unpack_time: Duration,
    /// Work directories of killed creates and destroys that this create removed.
    pub swept: Vec<PathBuf>,
}

impl Container {
    pub fn new(sys: &SystemConfig, name: &str) -> Result<Self> {
        name::validate(name)?;
        Ok(Container {
            name: name.to_string(),
            lxcpath: sys.lxcpath.clone(),
            run_dir: crate::runtime::run_dir(sys, &sys.lxcpath, name),
            key: crate::runtime::host_key(&sys.lxcpath, name),
        })
    }

    pub fn dir(&self) -> PathBuf {
        store::container_dir(&self.lxcpath, &self.name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.toml")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    fn must_exist(&self) -> Result<()> {
        if self.exists() {
            Ok(())
        } else {
            Err(Error::NotFound {
                name: self.name.clone(),
                lxcpath: self.lxcpath.clone(),
            })
        }
    }

    pub fn config(&self) -> Result<ContainerConfig> {
        self.must_exist()?;
        ContainerConfig::load(&self.config_path())
    }

    /// Init's pid, for commands that need a live monitor (console, attach); the error
    /// says how to recover when the monitor is gone.
    pub fn running_pid(&self) -> Result<i32> {
        match self.state() {
            State::Running { pid } => Ok(pid),
            State::Orphaned { .. } => Err(Error::Other(format!(
                "{}'s monitor is gone (killed?) while its processes still run; stop them \
                 with rlxc-stop -k -n {} and start it again",
                self.name, self.name
            ))),
            State::Stopped => Err(Error::Other(format!("{} is not running", self.name))),
        }
    }

    /// The live state, asked of the monitor; never read from a file.
    pub fn state(&self) -> State {
        if let Ok((_, pid)) = crate::runtime::proto::state(&self.run_dir) {
            return State::Running { pid };
        }
        let pids = self.cgroup().map(|c| c.pids()).unwrap_or_default();
        if pids.is_empty() {
            State::Stopped
        } else {
            State::Orphaned { pids }
        }
    }

    pub fn cgroup(&self) -> Result<crate::cgroup::Cgroup> {
        Ok(crate::cgroup::Cgroup::new(
            crate::cgroup::Layout::detect()?,
            &self.key,
        ))
    }

    /// Create from the download template: image → cache → rootfs → config, atomically.
    /// `allow_host_mounts`: apply the image's mounts of host paths (refused otherwise).
    pub fn create_from_download(
        &self,
        sys: &SystemConfig,
        req: &Request,
        index: Option<Index>,
        base: ContainerConfig,
        allow_host_mounts: bool,
        progress: &dyn Progress,
    ) -> Result<CreateReport> {
        // Until this returns, staging directories exist that only unwinding removes:
        // a second Ctrl-C must not kill half-way through the clean-up (a third does).
        let _cleanup = crate::sys::CleanupGuard::hold();
        store::mkdir_p(&self.lxcpath, 0o755)?;
        let _lock = store::lock_name(&self.lxcpath, &self.name, "creating this container")?;
        if self.dir().exists() {
            return Err(Error::Exists {
                name: self.name.clone(),
                lxcpath: self.lxcpath.clone(),
            });
        }
        let swept = store::sweep_stale(&self.lxcpath, &self.name);
        let cache = Cache::new(&sys.cachepath);
        store::mkdir_p(&sys.cachepath, 0o700)?;
        let image = download::obtain(req, &cache, index, progress)?;
        let source = ImageSource {
            server: image.server.clone(),
            dist: req.key.dist.clone(),
            release: req.key.release.clone(),
            arch: req.key.arch.clone(),
            variant: req.key.variant.clone(),
            build: image.build.clone(),
        };
        // Before anything is written: a refused image leaves no directory behind.
        let (cfg, translation) = self.initial_config(base, &image.meta.config, &source)?;
        refuse_host_mounts(&translation, allow_host_mounts)?;

        let creating = store::Creating::begin(&self.lxcpath, &self.name)?;
        let rootfs = creating.rootfs();
        std::fs::create_dir(&rootfs).ctx("create", &rootfs)?;
        let root = Root::open(&rootfs)?;

        // LXC applies excludes-user only to unprivileged creates; as root, device nodes stay.
        let excludes = if nix::unistd::geteuid().is_root() {
            Vec::new()
        } else {
            unpack::parse_excludes(&image.meta.excludes_user)?
        };
        progress.message(&format!("unpacking {} build {}", req.key, image.build));
        let t0 = Instant::now();
        let stats = unpack::unpack_file(&image.rootfs_tar(), &root, &excludes)?;
        let unpack_time = t0.elapsed();

        let final_dir = self.dir();
        let final_rootfs = final_dir.join("rootfs");
        let vars = meta::TemplateVars {
            name: &self.name,
            path: &final_dir.to_string_lossy(),
            rootfs: &final_rootfs.to_string_lossy(),
            template_config: TEMPLATE_CONFIG_DIR,
            hook_dir: HOOK_DIR,
        };
        meta::apply_templates(&root, &image.meta.templates, &vars)?;
        cfg.save(&creating.dir.join("config.toml"))?;
        let dir = creating.publish(&self.lxcpath, &self.name)?;
        Ok(CreateReport {
            dir,
            image: source,
            stats,
            translation,
            create_message: image.meta.create_message.clone(),
            unpack_time,
            swept,
        })
    }

    /// Defaults (or `-f`), then the image's LXC lines, then what rlxc knows for sure.
    fn initial_config(
        &self,
        base: ContainerConfig,
        image_config: &str,
        source: &ImageSource,
    ) -> Result<(ContainerConfig, lxcconf::Translation)> {
        let mut cfg = base;
        let translation = lxcconf::translate(image_config, &mut cfg);
        if cfg.hostname.is_none() {
            cfg.hostname = Some(name::hostname_for(&self.name));
        }
        cfg.arch = Some(source.arch.clone());
        cfg.image = Some(source.clone());
        cfg.fill_hwaddrs();
        cfg.validate(&self.config_path())?;
        Ok((cfg, translation))
    }

    /// Remove the container and everything of it. It is first renamed to a hidden name,
    /// so a removal that fails half-way never leaves a half container under its name.
    pub fn destroy(&self) -> Result<()> {
        self.must_exist()?;
        let _lock = store::lock_name(&self.lxcpath, &self.name, "destroying this container")?;
        if self.state().is_running() {
            return Err(Error::Busy {
                name: self.name.clone(),
                what: format!(
                    "it is running; stop it first (rlxc-stop -n {}) or use -f",
                    self.name
                ),
            });
        }
        let doomed = store::destroying_dir(&self.lxcpath, &self.name);
        store::remove_tree(&doomed)?;
        std::fs::rename(self.dir(), &doomed).ctx("rename", self.dir())?;
        store::remove_tree(&doomed)?;
        let _ = std::fs::remove_file(self.lxcpath.join(".locks").join(&self.name));
        Ok(())
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
         created. If you trust this image, create it again with --allow-image-host-mounts",
        lines.join("`, `")
    )))
}
