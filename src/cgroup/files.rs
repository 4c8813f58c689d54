//! The controller files rlxc writes and reads, in one table: for each setting, its file(s)
//! on a v1 hierarchy and on cgroup2, and how a value is written there or read back.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// What rlxc sets or reads in a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Setting {
    MemoryLimit,
    CpuQuota,
    PidsMax,
    /// v1 only: cgroup2 has no devices files (see `v2::attach_device_filter`).
    DevicesDeny,
    DevicesAllow,
    CpuUsageNs,
    MemoryUsage,
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
        setting: Setting::PidsMax,
        controller: "pids",
        v1: at("pids", &[write("pids.max", plain)]),
        v2: at("pids", &[write("pids.max", plain)]),
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
        Value::Number(n) => n.to_string(),
        Value::Rule(r) => r.to_string(),
        Value::Cpu { .. } => quota_period(v),
        Value::Frozen(on) => u8::from(*on).to_string(),
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
                Io::Read(_) => None,
            })
            .collect()
    }

    /// The number this setting reads in the cgroup directory `dir`.
    pub fn read(&self, dir: &Path) -> Option<u64> {
        self.files.iter().find_map(|f| match f.io {
            Io::Read(parse) => parse(&std::fs::read_to_string(dir.join(f.name)).ok()?),
            Io::Write(_) => None,
        })
    }
}

/// Make the writes in order; each is one write(2), which cgroup files take as one value.
pub(super) fn apply(writes: &[Write]) -> Result<()> {
    writes.iter().try_for_each(|w| put(&w.path, &w.content))
}

pub(super) fn put(p: &Path, v: &str) -> Result<()> {
    std::fs::write(p, v).ctx("write cgroup file", p)
}

pub(super) fn mkdir(p: &Path) -> Result<()> {
    match std::fs::create_dir(p) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r.ctx("create cgroup", p),
    }
}
