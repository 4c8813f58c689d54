//! What there is to know about a container: the names in an lxcpath, the live facts of
//! a running one (addresses, usage, link counters), for rlxc-info and rlxc-ls, and what
//! its files take on disk, for rlxc-info.

use super::{Container, State};
use crate::config::SystemConfig;
use crate::error::Result;

/// What a container's directory takes on disk (allocated blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUse {
    /// Its own files: the tree (`dir`) or upper and work (overlay), its config.
    pub files: u64,
    /// Its snapshots (`snaps/`).
    pub snapshots: u64,
}

/// A running container's live facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    pub pid: i32,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    /// CPU time used, in nanoseconds.
    pub cpu_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Interface, received bytes, sent bytes.
    pub links: Vec<(String, u64, u64)>,
    /// Its published ports in effect, as `0.0.0.0:8080 -> 10.0.3.5:80/tcp`.
    pub published: Vec<String>,
    /// lxcfs's views of /proc are in place (lxcfs ran on the host at its start).
    pub lxcfs: bool,
    /// What its monitor says of this run: init ("systemd 262"), the cgroup view and
    /// why ("unified (systemd 262 needs cgroup2 ...)"), the ttys. None: not known.
    pub init: Option<String>,
    pub cgroup_layout: Option<String>,
    pub ttys: Option<u32>,
}

impl Container {
    /// The containers of the configured lxcpath, sorted by name (a directory whose
    /// name rlxc would refuse is not one of them).
    pub fn list(sys: &SystemConfig) -> Result<Vec<Container>> {
        Ok(crate::store::list(&sys.lxcpath)?
            .iter()
            .filter_map(|n| Container::new(sys, n).ok())
            .collect())
    }

    /// Addresses only (cheap enough for a table of many containers).
    pub fn addresses(&self, state: &State) -> (Vec<String>, Vec<String>) {
        match state {
            State::Running { pid, .. } => crate::net::link::container_addresses(*pid),
            _ => (Vec::new(), Vec::new()),
        }
    }

    /// Memory its cgroup uses, when it runs (one file read: cheap for a listing).
    pub fn memory_use(&self, state: &State) -> Option<u64> {
        match state {
            State::Stopped => None,
            _ => self.cgroup().ok()?.memory_bytes(),
        }
    }

    /// What its directory takes on disk; a shared lower is outside it, not counted. A
    /// walk of every file: for one container's rlxc-info, not a listing of many.
    pub fn disk_use(&self) -> Result<DiskUse> {
        self.must_exist()?;
        let u = crate::store::usage::measure(&self.dir())?;
        let snapshots = u
            .by_entry
            .get(std::ffi::OsStr::new("snaps"))
            .copied()
            .unwrap_or(0);
        Ok(DiskUse {
            files: u.total - snapshots,
            snapshots,
        })
    }

    /// Everything live, when it runs with its monitor.
    pub fn live(&self, state: &State) -> Option<Live> {
        let State::Running { pid, .. } = state else {
            return None;
        };
        let (ipv4, ipv6) = crate::net::link::container_addresses(*pid);
        let cg = self.cgroup().ok();
        let described = crate::ipc::client::request(
            &self.run_dir,
            &crate::ipc::Request::Describe,
            Some(std::time::Duration::from_secs(5)),
        );
        let (init, cgroup_layout, ttys) = match described {
            Ok(crate::ipc::Response::Described {
                init,
                cgroup_layout,
                ttys,
            }) => (Some(init), Some(cgroup_layout), Some(ttys)),
            _ => (None, None, None),
        };
        Some(Live {
            init,
            cgroup_layout,
            ttys,
            pid: *pid,
            ipv4,
            ipv6,
            cpu_ns: cg.as_ref().and_then(|c| c.cpu_ns()),
            memory_bytes: cg.as_ref().and_then(|c| c.memory_bytes()),
            links: crate::net::link::link_stats(*pid),
            published: self.published(),
            lxcfs: crate::runtime::lxcfs::in_use(*pid),
        })
    }

    /// What its table says (not its config, which may have changed since the start).
    fn published(&self) -> Vec<String> {
        let runpath = self.run_dir.parent().unwrap_or(&self.run_dir);
        if !crate::net::ports::Ports::new(runpath).may_have(&self.key) {
            return Vec::new();
        }
        let Some(t) = crate::net::ports::table_of(&self.key) else {
            return Vec::new();
        };
        t.entries
            .iter()
            .map(|p| {
                format!(
                    "{}:{} -> {}:{}/{}",
                    p.address.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    p.host,
                    t.ip,
                    p.container,
                    p.proto
                )
            })
            .collect()
    }
}
