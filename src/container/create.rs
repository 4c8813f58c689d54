//! Create: a template obtains a rootfs, the configuration is populated, and the
//! container is published atomically under its name.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Container;
use crate::config::{ContainerConfig, ImageSource, SystemConfig};
use crate::error::{Error, Result};
use crate::image::fetch::Progress;
use crate::image::{lxcconf, meta, unpack};
use crate::rootfs::Root;
use crate::template::{Prepared, Template};
use crate::{name, store};

/// Where LXC_TEMPLATE_CONFIG and LXC_HOOK_DIR point in substituted image files.
const TEMPLATE_CONFIG_DIR: &str = "/usr/share/rlxc/config";
const HOOK_DIR: &str = "/usr/share/rlxc/hooks";

/// What a create did, for the CLI to report.
pub struct CreateReport {
    pub dir: PathBuf,
    pub image: Option<ImageSource>,
    pub stats: unpack::Stats,
    pub translation: lxcconf::Translation,
    pub create_message: Option<String>,
    pub unpack_time: Duration,
    /// Work directories of killed creates and destroys that this create removed.
    pub swept: Vec<PathBuf>,
}

impl Container {
    /// Create with `template`: it obtains the rootfs, then the configuration is
    /// populated (defaults or `-f`, the template's LXC lines translated, placeholders
    /// substituted) and the container published under its name, all or nothing.
    /// `allow_host_mounts`: apply the image's mounts of host paths (refused otherwise).
    pub fn create(
        &self,
        sys: &SystemConfig,
        template: &mut dyn Template,
        base: ContainerConfig,
        allow_host_mounts: bool,
        progress: &dyn Progress,
    ) -> Result<CreateReport> {
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
        let swept = store::sweep_stale(&self.lxcpath, &self.name);
        store::mkdir_p(&sys.cachepath, 0o700)?;
        let prepared = template.prepare(progress)?;
        // Before anything is written: a refused image leaves no directory behind.
        let (cfg, translation) = self.initial_config(base, &prepared)?;
        refuse_host_mounts(&translation, allow_host_mounts)?;

        let creating = store::Creating::begin(&self.lxcpath, &self.name)?;
        let backing = self.backing(&cfg);
        let root = Root::open(&backing.create(&creating.dir)?)?;
        let t0 = Instant::now();
        let stats = template.fill(&root, progress)?;
        let unpack_time = t0.elapsed();
        self.substitute(&root, &cfg, &prepared.substitute)?;
        cfg.save(&creating.dir.join("config.toml"))?;
        let dir = creating.publish(&self.lxcpath, &self.name)?;
        Ok(CreateReport {
            dir,
            image: prepared.source,
            stats,
            translation,
            create_message: prepared.create_message,
            unpack_time,
            swept,
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
