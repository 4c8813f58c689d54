//! Usage figures of many containers at once (rlxc-top): where each figure's file is, on
//! this host's layout, is worked out once; then a container costs only the reads of its
//! own files, each file once, and no process or socket.

use std::path::{Path, PathBuf};

use super::files::{row, Place, Setting};
use super::{collect_pids, Layout, BASE};

/// What a container's cgroup has used; None where this host does not count it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory in use, bytes (as lxc-top: page cache included).
    pub memory: Option<u64>,
    pub swap: Option<u64>,
    /// Bytes read from and written to block devices.
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
    /// Tasks (processes and threads) in the whole subtree.
    pub tasks: Option<u64>,
}

/// Where each figure is read (see `Layout::usage_plan`).
pub struct UsagePlan {
    /// The figure, the `rlxc` directory of the hierarchy that has it, its files there.
    figures: Vec<(Setting, PathBuf, &'static Place)>,
    /// Any hierarchy's `rlxc` directory, to find the tasks where no pids controller counts them.
    any: Option<PathBuf>,
}

const FIGURES: [Setting; 6] = [
    Setting::CpuUsageNs,
    Setting::MemoryUsage,
    Setting::SwapUsage,
    Setting::IoReadBytes,
    Setting::IoWriteBytes,
    Setting::PidsCurrent,
];

impl Layout {
    pub fn usage_plan(&self) -> UsagePlan {
        UsagePlan {
            figures: FIGURES
                .iter()
                .filter_map(|s| {
                    let (h, place) = self.locate(row(*s))?;
                    Some((*s, h.mountpoint.join(BASE), place))
                })
                .collect(),
            any: self.hierarchies.first().map(|h| h.mountpoint.join(BASE)),
        }
    }
}

impl UsagePlan {
    /// The usage of the cgroup `key` (`NAME.TAG`); None when no process is in it (the
    /// container is not running, or its cgroup is gone).
    pub fn read(&self, key: &str) -> Option<Usage> {
        let mut files = Files::default();
        let mut u = Usage::default();
        for (s, base, place) in &self.figures {
            let v = place.read_with(&base.join(key), &mut |p| files.get(p));
            match s {
                Setting::CpuUsageNs => u.cpu_ns = v,
                Setting::MemoryUsage => u.memory = v,
                Setting::SwapUsage => u.swap = v,
                Setting::IoReadBytes => u.io_read = v,
                Setting::IoWriteBytes => u.io_write = v,
                Setting::PidsCurrent => u.tasks = v,
                _ => {}
            }
        }
        let running = match u.tasks {
            // pids.current counts the whole subtree: one read says it.
            Some(n) => n > 0,
            None => self.any.as_ref().is_some_and(|b| {
                let mut pids = Vec::new();
                collect_pids(&b.join(key), &mut pids);
                !pids.is_empty()
            }),
        };
        running.then_some(u)
    }
}

/// The files read for one container, each read once (io.stat and v1's
/// memory.usage_in_bytes serve two figures).
#[derive(Default)]
struct Files(Vec<(PathBuf, Option<String>)>);

impl Files {
    fn get(&mut self, p: &Path) -> Option<String> {
        if let Some((_, text)) = self.0.iter().find(|(q, _)| q == p) {
            return text.clone();
        }
        let text = std::fs::read_to_string(p).ok();
        self.0.push((p.to_path_buf(), text.clone()));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Hierarchy;
    use std::fs;

    fn h(root: &Path, dir: &str, controllers: &[&str], v2: bool) -> Hierarchy {
        Hierarchy {
            mountpoint: root.join(dir),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            v2,
        }
    }

    fn put(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn v1_figures_from_their_hierarchies() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let layout = Layout {
            hierarchies: vec![
                h(r, "cpuacct", &["cpuacct"], false),
                h(r, "memory", &["memory"], false),
                h(r, "blkio", &["blkio"], false),
                h(r, "pids", &["pids"], false),
            ],
        };
        let plan = layout.usage_plan();
        let key = "web1.0123abcd";
        let d = |m: &str| r.join(m).join("rlxc").join(key);
        assert_eq!(plan.read(key), None, "no cgroup: not running");
        put(&d("cpuacct"), "cpuacct.usage", "5000000000\n");
        put(&d("memory"), "memory.usage_in_bytes", "1048576\n");
        put(&d("memory"), "memory.memsw.usage_in_bytes", "1572864\n");
        put(
            &d("blkio"),
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\n8:16 Read 100\n8:16 Write 0\nTotal 4708\n",
        );
        put(&d("pids"), "pids.current", "0\n");
        assert_eq!(plan.read(key), None, "no tasks: not running");
        put(&d("pids"), "pids.current", "3\n");
        assert_eq!(
            plan.read(key),
            Some(Usage {
                cpu_ns: Some(5_000_000_000),
                memory: Some(1 << 20),
                swap: Some(1 << 19),
                io_read: Some(4196),
                io_write: Some(512),
                tasks: Some(3),
            })
        );
    }

    #[test]
    fn v2_figures_from_one_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        put(&r.join("cg"), "cgroup.controllers", "cpu io memory pids\n");
        let layout = Layout {
            hierarchies: vec![h(r, "cg", &[], true)],
        };
        let key = "web1.0123abcd";
        let d = r.join("cg/rlxc").join(key);
        put(&d, "cpu.stat", "usage_usec 1500\nuser_usec 1000\n");
        put(&d, "memory.current", "8192\n");
        put(&d, "memory.swap.current", "0\n");
        put(
            &d,
            "io.stat",
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1\n",
        );
        put(&d, "pids.current", "2\n");
        let u = layout.usage_plan().read(key).unwrap();
        assert_eq!(u.cpu_ns, Some(1_500_000));
        assert_eq!(u.memory, Some(8192));
        assert_eq!(u.swap, Some(0));
        assert_eq!((u.io_read, u.io_write), (Some(101), Some(202)));
        assert_eq!(u.tasks, Some(2));
    }

    #[test]
    fn without_a_pids_controller_the_tasks_are_looked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let layout = Layout {
            hierarchies: vec![h(r, "memory", &["memory"], false)],
        };
        let key = "web1.0123abcd";
        let d = r.join("memory/rlxc").join(key);
        put(&d, "memory.usage_in_bytes", "4096\n");
        put(&d, "cgroup.procs", "");
        assert_eq!(layout.usage_plan().read(key), None);
        put(&d.join("init.scope"), "cgroup.procs", "42\n");
        let u = layout.usage_plan().read(key).unwrap();
        assert_eq!((u.memory, u.tasks), (Some(4096), None));
    }
}
