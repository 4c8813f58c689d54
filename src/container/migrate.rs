//! rlxc-migrate: an LXC container (its `config` and a directory rootfs) made an rlxc
//! container of the same name, its keys translated (`image::lxcmigrate`), the rest
//! reported. Its files are copied (`cp -a`, reflinks where the file system has them)
//! into a container built hidden and published with one rename; the LXC container is
//! removed only with `--move`, and only after that.

use std::path::{Path, PathBuf};

use super::copy::{copy_tree, make_tree, NewContainer};
use super::tree::Tree;
use crate::config::{read_text, Backend, SystemConfig};
use crate::error::{Error, Result};
use crate::image::lxcconf::{self, Translation};
use crate::image::lxcmigrate;

/// What a migration did.
pub struct MigrateReport {
    pub dir: PathBuf,
    pub translation: Translation,
    /// The LXC container was removed (`--move`).
    pub moved: bool,
}

/// `name` of LXC's `lxcpath` into `sys`'s installation.
pub fn migrate(
    sys: &SystemConfig,
    name: &str,
    lxcpath: &Path,
    move_it: bool,
) -> Result<MigrateReport> {
    let lxc_dir = lxcpath.join(name);
    let file = lxc_dir.join("config");
    let text = read_text(&file)?;
    let config_error = |msg: String| Error::Config {
        file: file.clone(),
        msg,
    };
    if lxcconf::lines(&text)
        .any(|l| l.text.starts_with("lxc.idmap") || l.text.starts_with("lxc.id_map"))
    {
        return Err(config_error(
            "an unprivileged LXC container (lxc.idmap): its files are owned by host ids on \
             disk, which rlxc does not take over; nothing was migrated"
                .into(),
        ));
    }
    let rootfs = lxcmigrate::rootfs(&text)
        .map_err(|why| config_error(format!("{why}; nothing was migrated")))?
        .map(PathBuf::from)
        .unwrap_or_else(|| lxc_dir.join("rootfs"));
    if !rootfs.is_dir() {
        return Err(config_error(format!(
            "its rootfs {} is not a directory; nothing was migrated",
            rootfs.display()
        )));
    }
    refuse_if_lxc_runs(name, lxcpath)?;
    let mut cfg = sys.container_defaults()?;
    cfg.idmap = None;
    let translation = lxcmigrate::translate(&text, &mut cfg);
    if cfg.hostname.is_none() {
        cfg.hostname = Some(crate::name::hostname_for(name));
    }
    cfg.rootfs = Default::default();
    let mut new = NewContainer::begin(sys, name, None)?;
    cfg.validate(&new.c.config_path())?;
    let staging = new.creating.dir.clone();
    let to = staging.join("rootfs");
    make_tree(Backend::Dir, &to)?;
    copy_tree(&Tree::dir(&rootfs)?, &to)?;
    new.take_ids(sys, &mut cfg)?;
    cfg.save(&staging.join("config.toml"))?;
    let dir = new.publish()?;
    if move_it {
        crate::store::remove_tree(&lxc_dir)?;
    }
    Ok(MigrateReport {
        dir,
        translation,
        moved: move_it,
    })
}

/// A running LXC container's files are changing under the copy: refused, as LXC says.
fn refuse_if_lxc_runs(name: &str, lxcpath: &Path) -> Result<()> {
    let out = std::process::Command::new("lxc-info")
        .args(["-s", "-n", name, "-P"])
        .arg(lxcpath)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    // Without LXC's tools nothing of LXC runs it.
    let Ok(out) = out else { return Ok(()) };
    let state = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && !state.contains("STOPPED") {
        return Err(Error::Busy {
            name: name.to_string(),
            what: format!(
                "LXC says it is {}: stop it first (lxc-stop -n {name} -P {})",
                state.trim().trim_start_matches("State:").trim(),
                lxcpath.display()
            ),
        });
    }
    Ok(())
}
