//! The Container object: what the commands do to one container.

use std::path::{Path, PathBuf};

use crate::config::{ContainerConfig, SystemConfig};
use crate::error::{Error, Result};
use crate::{name, store};

mod attach;
/// rlxc-autostart's plan and waves.
pub mod autostart;
mod cgroup_file;
mod clone;
mod configure;
mod copy;
mod create;
mod destroy;
mod device;
/// State changes as they happen (rlxc-monitor, rlxc-wait).
pub mod events;
mod execute;
mod export;
mod file;
mod foreground;
mod freeze;
/// The host as a whole, for rlxc-checkconfig.
pub mod host;
/// The image caches (`rlxc-image`): what creates read from, listed and pruned.
pub mod images {
    pub use crate::image::catalog::*;
}
mod info;
mod migrate;
/// The managed bridge, for rlxc-net and its dnsmasq supervisor.
pub mod network;
mod own;
mod own_upper;
mod ports;
mod publish;
mod snapshot;
mod start;
mod stop;
/// rlxc-top's figures of the running containers.
pub mod top;
mod tree;

pub use crate::attach::{EnvPolicy as AttachEnv, Options as AttachOptions};
pub use crate::console::Ended;
/// How long steps report progress to a front end.
pub use crate::image::fetch::Progress;
pub use create::{
    download_list, download_plan, resolve_template, templates, Bdev, Chooser, CreateOptions,
    CreateReport, DownloadOptions, OciOptions, Resolved, Source,
};
pub use device::DeviceChange;

/// The file in a container's directory holding its application's last exit status.
pub const EXIT_STATUS: &str = "exit_status";
pub use execute::ExecuteOptions;
pub use export::import;
pub use file::{CopyReport, PullOptions, PushOptions};
pub use foreground::Foreground;
pub use info::Live;
pub use migrate::migrate;
pub use publish::PublishOptions;
pub use stop::{StopMode, StopOutcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Stopped,
    /// The monitor answers: init runs with this (host) pid; `frozen` when every task
    /// of it is frozen (rlxc-freeze). A frozen container still counts as running.
    Running {
        pid: i32,
        frozen: bool,
    },
    /// No monitor answers, but processes live in the container's cgroup: the monitor
    /// was killed. They can still be stopped (rlxc-stop -k).
    Orphaned {
        pids: Vec<i32>,
    },
    /// A monitor listens but gives no answer this rlxc understands (one started by
    /// another rlxc version, or one that hangs): the container is not stopped.
    Unreachable {
        why: String,
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
            State::Running { frozen: true, .. } => "FROZEN",
            State::Running { .. } | State::Orphaned { .. } | State::Unreachable { .. } => "RUNNING",
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

impl Container {
    /// A container of this name; `create` holds new names to the stricter rule.
    pub fn new(sys: &SystemConfig, name: &str) -> Result<Self> {
        name::validate_existing(name)?;
        Ok(Container {
            name: name.to_string(),
            lxcpath: sys.lxcpath.clone(),
            run_dir: sys.runpath.join(host_key(&sys.lxcpath, name)),
            key: host_key(&sys.lxcpath, name),
        })
    }

    pub fn dir(&self) -> PathBuf {
        store::container_dir(&self.lxcpath, &self.name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.toml")
    }

    /// The backing store its config names.
    pub fn backing(&self, cfg: &ContainerConfig) -> Box<dyn store::backing::BackingStore> {
        store::select::open(&cfg.rootfs)
    }

    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    pub(crate) fn must_exist(&self) -> Result<()> {
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
            State::Running { pid, .. } => Ok(pid),
            State::Orphaned { .. } => Err(Error::Other(format!(
                "{}'s monitor is gone (killed?) while its processes still run; stop them \
                 with rlxc-stop -k -n {} and start it again",
                self.name, self.name
            ))),
            State::Unreachable { why } => Err(Error::Other(format!(
                "{}'s monitor does not answer as this rlxc expects ({why}); kill it with \
                 rlxc-stop -k -n {} and start it again",
                self.name, self.name
            ))),
            State::Stopped => Err(Error::Other(format!("{} is not running", self.name))),
        }
    }

    /// Its application's exit status from the last run (128 + N: killed by signal N).
    pub fn exit_status(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir().join(EXIT_STATUS))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The live state, asked of the monitor; never read from a file.
    /// Nothing counts as stopped while a monitor listens, even one that cannot be
    /// understood: that is what keeps a destroy away from a running rootfs.
    pub fn state(&self) -> State {
        if let Ok(s) = crate::ipc::client::connect(&self.run_dir) {
            return match crate::ipc::client::state_on(&s, &self.run_dir) {
                Ok(pid) => State::Running {
                    pid,
                    frozen: self.is_frozen(),
                },
                Err(e) => State::Unreachable {
                    why: crate::error::flatten(&e),
                },
            };
        }
        let pids = self.cgroup().map(|c| c.pids()).unwrap_or_default();
        if pids.is_empty() {
            State::Stopped
        } else {
            State::Orphaned { pids }
        }
    }

    /// The cgroup an rlxc before installation keys gave it (`rlxc/NAME`): a container
    /// whose monitor, in this container's run directory, speaks that rlxc's protocol
    /// is still in it.
    pub fn legacy_cgroup(&self) -> Result<crate::cgroup::Cgroup> {
        Ok(crate::cgroup::Cgroup::new(
            crate::cgroup::Layout::detect()?,
            &self.name,
        ))
    }

    pub fn cgroup(&self) -> Result<crate::cgroup::Cgroup> {
        Ok(crate::cgroup::Cgroup::new(
            crate::cgroup::Layout::detect()?,
            &self.key,
        ))
    }
}

/// The name of a container's objects on the host (run directory, cgroups): `NAME.TAG`,
/// TAG a hash of the lxcpath (`name::installation_tag`). Two installations (two
/// `RLXC_CONFIG`s, or `-P`) may each have a container of one name; keyed by both,
/// neither touches the other's. 73 bytes at most, well within NAME_MAX.
pub fn host_key(lxcpath: &Path, name: &str) -> String {
    format!("{name}.{}", name::installation_tag(lxcpath))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_installation_one_key_however_its_path_is_written() {
        let k = host_key(Path::new("/var/lib/rlxc"), "web1");
        assert_eq!(host_key(Path::new("/var/lib/rlxc/"), "web1"), k);
        assert_eq!(host_key(Path::new("/var/lib/./rlxc"), "web1"), k);
        assert_ne!(host_key(Path::new("/var/lib/other"), "web1"), k);
        assert!(k.starts_with("web1."));
    }
}
