//! Destroy: the container and everything of it, and nothing of another.

use super::{Container, State};
use crate::error::{Error, IoContext, Result};
use crate::store;

impl Container {
    /// Remove the container and everything of it; `force` kills it first if it runs.
    pub fn destroy_forced(&self, force: bool) -> Result<()> {
        if force {
            match self.state() {
                State::Running { .. } | State::Unreachable { .. } => {
                    self.kill()?;
                }
                State::Orphaned { .. } => self.cgroup()?.destroy()?,
                State::Stopped => {}
            }
        }
        self.destroy()
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
        let deps = self.dependants()?;
        if !deps.is_empty() {
            return Err(Error::Busy {
                name: self.name.clone(),
                what: format!(
                    "{} {} layered on its tree (rlxc-copy -s or -e); destroy {} first, or \
                     make a full copy of {} (rlxc-copy without -s) and destroy the clone",
                    deps.join(", "),
                    if deps.len() == 1 { "is" } else { "are" },
                    if deps.len() == 1 { "it" } else { "them" },
                    if deps.len() == 1 { "it" } else { "each" },
                ),
            });
        }
        // A config that no longer loads does not keep its container: the default store
        // is a directory inside it, which the removal below takes anyway.
        let backing = self.backing(&self.config().unwrap_or_default());
        // Its name and address on the managed bridge go with it, so the name no longer
        // resolves and the address is free. Before the container does: a destroy that
        // fails after leaves a container whose next start reserves them again.
        let runpath = self.run_dir.parent().unwrap_or(&self.run_dir);
        crate::net::bridge::release(runpath, &self.key)?;
        let doomed = store::destroying_dir(&self.lxcpath, &self.name);
        store::remove_tree(&doomed)?;
        std::fs::rename(self.dir(), &doomed).ctx("rename", self.dir())?;
        backing.destroy(&doomed)?;
        store::remove_tree(&doomed)?;
        let _ = std::fs::remove_file(self.lxcpath.join(".locks").join(&self.name));
        Ok(())
    }

    /// The command that destroys this container, for its monitor to run when an
    /// ephemeral one stops.
    pub(super) fn destroy_command(&self) -> Result<Vec<std::ffi::OsString>> {
        let exe = std::env::current_exe().ctx("find", "this rlxc binary")?;
        Ok(vec![
            exe.into(),
            "destroy".into(),
            "-q".into(),
            "-n".into(),
            self.name.clone().into(),
            "-P".into(),
            self.lxcpath.clone().into(),
        ])
    }
}
