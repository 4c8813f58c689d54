//! The controller files rlxc writes and reads, in one table: for each setting, its file(s)
//! on a v1 hierarchy and on cgroup2, and how a value is written there or read back.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// What rlxc sets or reads in a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Setting {
    MemoryLimit,
    /// Swap beyond the memory limit (`Value::Swap`).
    SwapLimit,
    CpuQuota,
    /// Relative CPU share (`Value::Weight`, cgroup2's scale).
    CpuWeight,
    /// The CPUs it may run on (`Value::List`).
    Cpuset,
    PidsMax,
    /// Relative disk I/O share (`Value::Weight`, cgroup2's scale).
    IoWeight,
    /// v1 only: cgroup2 has no devices files (see `v2::attach_device_filter`).
    DevicesDeny,
    DevicesAllow,
    CpuUsageNs,
    MemoryUsage,
    /// Swap in use (v1: memory and swap, less memory).
    SwapUsage,
    /// Tasks in the whole subtree.
    PidsCurrent,
    /// Bytes read from and written to block devices, summed over them.
    IoReadBytes,
    IoWriteBytes,
    /// Freezing: written with `Value::Frozen`, read back as 1 once every task is frozen.
    Freeze,
}

/// A value to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Number(u64),
    /// CPU bandwidth: `quota` microseconds of CPU time per `period`.
    Cpu {
        quota: u64,
        period: u64,
    },
    /// A device rule, `TYPE MAJOR:MINOR ACCESS`.
    Rule(&'a str),
    /// A CPU list, "0-3,5".
    List(&'a str),
    /// A share on cgroup2's scale: 1-10000, 100 the default.
    Weight(u64),
    /// `swap` bytes of swap beyond a memory limit of `memory` bytes.
    Swap {
        memory: u64,
        swap: u64,
    },
    /// Frozen (true) or thawed.
    Frozen(bool),
}

/// What is done with one file of a setting.
#[derive(Clone, Copy)]
pub(super) enum Io {
    /// Written with this content.
    Write(fn(&Value) -> String),
    /// Read and parsed to this number.
    Read(fn(&str) -> Option<u64>),
    /// Read, parsed, and taken off the number the files before it read.
    Less(fn(&str) -> Option<u64>),
}

pub(super) struct File {
    pub name: &'static str,
    pub io: Io,
}

/// A setting's files on one version.
pub(super) struct Place {
    /// The controller whose hierarchy (v1) or whose being available (cgroup2) the files
    /// need; None for cgroup2 core files, present whichever controllers are enabled.
    pub controller: Option<&'static str>,
    /// Written in this order.
    pub files: &'static [File],
}

pub(super) struct Row {
    pub setting: Setting,
    /// The controller to name when a limit cannot be set.
    pub controller: &'static str,
    pub v1: Option<Place>,
    pub v2: Option<Place>,
}

const fn write(name: &'static str, render: fn(&Value) -> String) -> File {
    File {
        name,
        io: Io::Write(render),
    }
}

const fn read(name: &'static str, parse: fn(&str) -> Option<u64>) -> File {
    File {
        name,
        io: Io::Read(parse),
    }
}

const fn less(name: &'static str, parse: fn(&str) -> Option<u64>) -> File {
    File {
        name,
        io: Io::Less(parse),
    }
}

const fn at(controller: &'static str, files: &'static [File]) -> Option<Place> {
    Some(Place {
        controller: Some(controller),
        files,
    })
}

pub(super) const TABLE: &[Row] = &[
    Row {
        setting: Setting::MemoryLimit,
        controller: "memory",
        v1: at("memory", &[write("memory.limit_in_bytes", plain)]),
        v2: at("memory", &[write("memory.max", plain)]),
    },
    Row {
        setting: Setting::SwapLimit,
        controller: "memory",
        // v1 limits memory and swap together (swap accounting: swapaccount=1).
        v1: at("memory", &[write("memory.memsw.limit_in_bytes", memsw)]),
        v2: at("memory", &[write("memory.swap.max", plain)]),
    },
    Row {
        setting: Setting::CpuQuota,
        controller: "cpu",
        v1: at(
            "cpu",
            &[
                write("cpu.cfs_period_us", cfs_period),
                write("cpu.cfs_quota_us", cfs_quota),
            ],
        ),
        v2: at("cpu", &[write("cpu.max", quota_period)]),
    },
    Row {
        setting: Setting::CpuWeight,
        controller: "cpu",
        v1: at("cpu", &[write("cpu.shares", cpu_shares)]),
        v2: at("cpu", &[write("cpu.weight", plain)]),
    },
    Row {
        setting: Setting::Cpuset,
        controller: "cpuset",
        v1: at("cpuset", &[write("cpuset.cpus", plain)]),
        v2: at("cpuset", &[write("cpuset.cpus", plain)]),
    },
    Row {
        setting: Setting::PidsMax,
        controller: "pids",
        v1: at("pids", &[write("pids.max", plain)]),
        v2: at("pids", &[write("pids.max", plain)]),
    },
    Row {
        setting: Setting::IoWeight,
        controller: "io",
        // v1 has a weight only with the BFQ scheduler (CFQ's blkio.weight left in 5.0).
        v1: at("blkio", &[write("blkio.bfq.weight", bfq_weight)]),
        v2: at("io", &[write("io.weight", io_weight)]),
    },
    Row {
        setting: Setting::DevicesDeny,
        controller: "devices",
        v1: at("devices", &[write("devices.deny", plain)]),
        v2: None,
    },
    Row {
        setting: Setting::DevicesAllow,
        controller: "devices",
        v1: at("devices", &[write("devices.allow", plain)]),
        v2: None,
    },
    Row {
        setting: Setting::CpuUsageNs,
        controller: "cpuacct",
        v1: at("cpuacct", &[read("cpuacct.usage", number)]),
        v2: Some(Place {
            controller: None,
            files: &[read("cpu.stat", usage_usec_as_ns)],
        }),
    },
    Row {
        setting: Setting::MemoryUsage,
        controller: "memory",
        v1: at("memory", &[read("memory.usage_in_bytes", number)]),
        v2: at("memory", &[read("memory.current", number)]),
    },
    Row {
        setting: Setting::SwapUsage,
        controller: "memory",
        v1: at(
            "memory",
            &[
                read("memory.memsw.usage_in_bytes", number),
                less("memory.usage_in_bytes", number),
            ],
        ),
        v2: at("memory", &[read("memory.swap.current", number)]),
    },
    Row {
        setting: Setting::PidsCurrent,
        controller: "pids",
        v1: at("pids", &[read("pids.current", number)]),
        v2: at("pids", &[read("pids.current", number)]),
    },
    Row {
        setting: Setting::IoReadBytes,
        controller: "blkio",
        // The plain file counts only the cgroup's own tasks, not systemd's below it.
        v1: at(
            "blkio",
            &[read(
                "blkio.throttle.io_service_bytes_recursive",
                blkio_read,
            )],
        ),
        v2: at("io", &[read("io.stat", io_stat_rbytes)]),
    },
    Row {
        setting: Setting::IoWriteBytes,
        controller: "blkio",
        v1: at(
            "blkio",
            &[read(
                "blkio.throttle.io_service_bytes_recursive",
                blkio_write,
            )],
        ),
        v2: at("io", &[read("io.stat", io_stat_wbytes)]),
    },
    Row {
        setting: Setting::Freeze,
        controller: "freezer",
        v1: at(
            "freezer",
            &[
                write("freezer.state", freezer_state),
                read("freezer.state", v1_frozen),
            ],
        ),
        // Core files of every non-root cgroup2 directory since Linux 5.2.
        v2: Some(Place {
            controller: None,
            files: &[
                write("cgroup.freeze", plain),
                read("cgroup.events", v2_frozen),
            ],
        }),
    },
];

/// The table's row for a setting.
pub(super) fn row(s: Setting) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.setting == s)
        .expect("every Setting has a row in TABLE (unit-tested)")
}

fn plain(v: &Value) -> String {
    match v {
        Value::Number(n) | Value::Weight(n) => n.to_string(),
        Value::Rule(r) | Value::List(r) => r.to_string(),
        Value::Cpu { .. } => quota_period(v),
        Value::Frozen(on) => u8::from(*on).to_string(),
        Value::Swap { swap, .. } => swap.to_string(),
    }
}

/// v1 `memory.memsw.limit_in_bytes` limits memory and swap together.
fn memsw(v: &Value) -> String {
    match v {
        Value::Swap { memory, swap } => memory.saturating_add(*swap).to_string(),
        _ => plain(v),
    }
}

/// cgroup2's weight (1-10000, default 100) as v1 `cpu.shares` (2-262144, default
/// 1024), converted as systemd converts it.
pub(super) fn weight_to_shares(w: u64) -> u64 {
    (w.saturating_mul(1024) / 100).clamp(2, 262_144)
}

fn cpu_shares(v: &Value) -> String {
    match v {
        Value::Weight(w) => weight_to_shares(*w).to_string(),
        _ => plain(v),
    }
}

/// BFQ's weights go from 1 to 1000, 100 the default as cgroup2's.
fn bfq_weight(v: &Value) -> String {
    match v {
        Value::Weight(w) => (*w).clamp(1, 1000).to_string(),
        _ => plain(v),
    }
}

/// cgroup2 `io.weight`: the default for every device (per-device lines are left alone).
fn io_weight(v: &Value) -> String {
    match v {
        Value::Weight(w) => format!("default {w}"),
        _ => plain(v),
    }
}

/// v1 `freezer.state` takes FROZEN or THAWED.
fn freezer_state(v: &Value) -> String {
    match v {
        Value::Frozen(true) => "FROZEN".into(),
        Value::Frozen(false) => "THAWED".into(),
        _ => plain(v),
    }
}

/// v1 `freezer.state` reads FREEZING until the last task is frozen: only FROZEN is 1.
fn v1_frozen(s: &str) -> Option<u64> {
    match s.trim() {
        "FROZEN" => Some(1),
        "FREEZING" | "THAWED" => Some(0),
        _ => None,
    }
}

/// cgroup2 `cgroup.events` says `frozen 1` once every task below is frozen.
fn v2_frozen(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .and_then(number)
}

/// cgroup2 `cpu.max`: both on one line.
fn quota_period(v: &Value) -> String {
    match v {
        Value::Cpu { quota, period } => format!("{quota} {period}"),
        _ => plain(v),
    }
}

fn cfs_period(v: &Value) -> String {
    match v {
        Value::Cpu { period, .. } => period.to_string(),
        _ => plain(v),
    }
}

fn cfs_quota(v: &Value) -> String {
    match v {
        Value::Cpu { quota, .. } => quota.to_string(),
        _ => plain(v),
    }
}

fn number(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// v1 `blkio.throttle.io_service_bytes*`: "MAJ:MIN Read N" lines, per device (the last
/// line, "Total N", sums every kind).
fn blkio_sum(s: &str, kind: &str) -> Option<u64> {
    Some(
        s.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, k, n) = (f.next()?, f.next()?, f.next()?);
                (k == kind).then(|| n.parse::<u64>().ok()).flatten()
            })
            .sum(),
    )
}

fn blkio_read(s: &str) -> Option<u64> {
    blkio_sum(s, "Read")
}

fn blkio_write(s: &str) -> Option<u64> {
    blkio_sum(s, "Write")
}

/// cgroup2 `io.stat`: "MAJ:MIN rbytes=N wbytes=N rios=N …" per device.
fn io_stat_sum(s: &str, field: &str) -> Option<u64> {
    Some(
        s.split_whitespace()
            .filter_map(|w| {
                w.strip_prefix(field)?
                    .strip_prefix('=')?
                    .parse::<u64>()
                    .ok()
            })
            .sum(),
    )
}

fn io_stat_rbytes(s: &str) -> Option<u64> {
    io_stat_sum(s, "rbytes")
}

fn io_stat_wbytes(s: &str) -> Option<u64> {
    io_stat_sum(s, "wbytes")
}

/// cgroup2 `cpu.stat` counts microseconds; rlxc reports nanoseconds as v1 does.
fn usage_usec_as_ns(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(number)
        .map(|us| us * 1000)
}

/// One write to a controller file, planned before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Write {
    pub path: PathBuf,
    pub content: String,
}

impl Place {
    /// The writes that set `v` in the cgroup directory `dir`.
    pub fn writes(&self, dir: &Path, v: &Value) -> Vec<Write> {
        self.files
            .iter()
            .filter_map(|f| match f.io {
                Io::Write(render) => Some(Write {
                    path: dir.join(f.name),
                    content: render(v),
                }),
                Io::Read(_) | Io::Less(_) => None,
            })
            .collect()
    }

    /// The number this setting reads in the cgroup directory `dir`.
    pub fn read(&self, dir: &Path) -> Option<u64> {
        self.read_with(dir, &mut |p| std::fs::read_to_string(p).ok())
    }

    /// `read`, with the files' contents from `file` (a caller reading many settings of
    /// one cgroup reads each file once).
    pub fn read_with(
        &self,
        dir: &Path,
        file: &mut dyn FnMut(&Path) -> Option<String>,
    ) -> Option<u64> {
        let mut value = None;
        for f in self.files {
            match f.io {
                Io::Read(parse) if value.is_none() => value = parse(&file(&dir.join(f.name))?),
                Io::Less(parse) => {
                    value = Some(value?.saturating_sub(parse(&file(&dir.join(f.name))?)?))
                }
                Io::Read(_) | Io::Write(_) => {}
            }
        }
        value
    }
}

/// Make the writes in order; each is one write(2), which cgroup files take as one value.
pub(super) fn apply(writes: &[Write]) -> Result<()> {
    writes.iter().try_for_each(|w| put(&w.path, &w.content))
}

pub(super) fn put(p: &Path, v: &str) -> Result<()> {
    std::fs::write(p, v).ctx("write cgroup file", p)
}

pub(super) fn mkdir(p: &Path) -> Result<bool> {
    match std::fs::create_dir(p) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        r => r.ctx("create cgroup", p).map(|()| true),
    }
}
