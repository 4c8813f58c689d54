//! rlxc-cgroup: a controller file of a running container's cgroup, read or written live;
//! with `--persist` the value also becomes its `[limits]` key in config.toml, so the
//! next start applies it too.

use super::Container;
use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::store;

/// What `live_cgroup` says a stopped container cannot be.
const LIVE_ONLY: &str = "read or changed with rlxc-cgroup (a stopped one's limits are \
                         [limits] in its config.toml)";

impl Container {
    /// What controller file `key` of the running container reads now.
    pub fn cgroup_read(&self, key: &str) -> Result<String> {
        self.live_cgroup(LIVE_ONLY)?.read_control(key)
    }

    /// Write `value` to controller file `key` of the running container; with `persist`
    /// keep it as its `[limits]` key too. Returns that key as now written
    /// (`limits.pids = 77`), if kept. Nothing changes unless all of it can: a value the
    /// config would refuse is refused before the kernel sees it.
    pub fn cgroup_write(&self, key: &str, value: &str, persist: bool) -> Result<Option<String>> {
        let _lock = store::lock_name(&self.lxcpath, &self.name, "changing its cgroup")?;
        let cg = self.live_cgroup(LIVE_ONLY)?;
        let kept = if persist {
            Some(self.persisted(&cg, key, value)?)
        } else {
            None
        };
        cg.write_control(key, value)?;
        let Some((cfg, said)) = kept else {
            return Ok(None);
        };
        cfg.save(&self.config_path()).map_err(|e| Error::Cgroup {
            msg: format!(
                "{key} is {value} now, but config.toml still has the old limit: {}",
                crate::error::flatten(&e)
            ),
            fix: Some(format!(
                "set {said} in {} by hand",
                self.config_path().display()
            )),
        })?;
        Ok(Some(said))
    }

    /// The config with the change `key` = `value` made, checked, and the key as written.
    fn persisted(
        &self,
        cg: &Cgroup,
        key: &str,
        value: &str,
    ) -> Result<(crate::config::ContainerConfig, String)> {
        let change = cg.limit_change(key, value)?;
        let said = match change.value() {
            Some(v) => format!("limits.{} = {v}", change.key()),
            None => format!("no limits.{}", change.key()),
        };
        let mut cfg = self.config()?;
        change.apply(&mut cfg.limits);
        cfg.validate(&self.config_path()).map_err(|e| match e {
            Error::Config { msg, .. } => Error::Cgroup {
                msg: format!("--persist refused: {msg}"),
                fix: Some("nothing was changed, live or in config.toml".into()),
            },
            e => e,
        })?;
        Ok((cfg, said))
    }
}
