//! `[limits]` of a container's config: what its cgroup may use. Applied at start on cgroup
//! v1 and cgroup2 alike (`cgroup::Cgroup::configure` turns each into the files of the
//! host's version); `rlxc-cgroup --persist` writes a live change back here. The values
//! check themselves at load; `Limits::check` holds what spans keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::types::{try_from_string, ByteSize};

/// The smallest memory limit a container may have: less and init is killed (OOM) before
/// or as it starts.
pub const MIN_MEMORY: u64 = 4 << 20;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit with an optional K/M/G suffix, e.g. "512M".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Swap it may use beyond `memory` ("0": none), as cgroup2's memory.swap.max; v1
    /// limits memory plus swap, so there it is written as `memory + memory_swap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<ByteSize>,
    /// CPU bandwidth in CPUs, e.g. 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Its share of CPU time against others, 1-10000, 100 the default (cgroup2's
    /// cpu.weight; v1 cpu.shares as systemd converts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<Weight>,
    /// The CPUs it may run on, e.g. "0-1,3" (cpuset.cpus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<CpuSet>,
    /// Maximum number of tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Its share of disk I/O against others, 1-10000, 100 the default (cgroup2's
    /// io.weight; v1 BFQ's blkio.bfq.weight, which stops at 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<Weight>,
}

impl Limits {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Why these limits cannot start a container, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if let Some(m) = &self.memory {
            if m.bytes() < MIN_MEMORY {
                return Err(format!(
                    "limits.memory = \"{m}\": below {}M no init can start (the kernel \
                     would kill it before it runs); give it at least that, 64M or more \
                     for systemd",
                    MIN_MEMORY >> 20
                ));
            }
        }
        if let (Some(s), None) = (&self.memory_swap, &self.memory) {
            return Err(format!(
                "limits.memory_swap = \"{s}\" is the swap allowed beyond limits.memory, \
                 which is not set; set memory too"
            ));
        }
        if self.pids == Some(0) {
            return Err("limits.pids = 0: init itself is a task; give it 1 or more".into());
        }
        if let Some(c) = self.cpus {
            if !(c > 0.0 && c.is_finite()) {
                return Err(format!(
                    "limits.cpus = {c}: expected a positive number of CPUs"
                ));
            }
        }
        Ok(())
    }

    /// Each limit set, as "memory 512M", for rlxc-info.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push(format!("{key} {v}"));
            }
        };
        add("memory", self.memory.as_ref().map(ToString::to_string));
        add("swap", self.memory_swap.as_ref().map(ToString::to_string));
        add("cpus", self.cpus.map(|c| c.to_string()));
        add("cpu weight", self.cpu_weight.map(|w| w.to_string()));
        add("cpuset", self.cpuset.as_ref().map(ToString::to_string));
        add("pids", self.pids.map(|p| p.to_string()));
        add("io weight", self.io_weight.map(|w| w.to_string()));
        out
    }
}

/// A relative share, 1-10000 with 100 the default: cgroup2's cpu.weight and io.weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Weight(u16);

impl Weight {
    pub const MAX: u64 = 10_000;

    pub fn get(self) -> u64 {
        u64::from(self.0)
    }
}

impl TryFrom<u64> for Weight {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(w) if (1..=Self::MAX).contains(&n) => Ok(Weight(w)),
            _ => Err(format!(
                "{n}: expected a weight from 1 to {} (100 is the default)",
                Self::MAX
            )),
        }
    }
}

impl From<Weight> for u64 {
    fn from(w: Weight) -> u64 {
        w.get()
    }
}

impl FromStr for Weight {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: expected a weight from 1 to {}", Self::MAX))
            .and_then(Weight::try_from)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A CPU list as the kernel writes one: "0-3,5". Kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CpuSet(String);

/// Larger than any kernel's NR_CPUS: a number past it is a typo.
const MAX_CPU: u32 = 8191;

impl CpuSet {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CpuSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected CPU numbers and ranges like \"0-3,5\"");
        let cpu = |n: &str| n.parse::<u32>().ok().filter(|n| *n <= MAX_CPU);
        if s.is_empty() {
            return Err(bad());
        }
        for part in s.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            match (cpu(a), cpu(b)) {
                (Some(a), Some(b)) if a <= b => {}
                _ => return Err(bad()),
            }
        }
        Ok(CpuSet(s.to_string()))
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

try_from_string!(CpuSet);

impl From<CpuSet> for String {
    fn from(c: CpuSet) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;
    use std::path::Path;

    fn load(text: &str) -> crate::error::Result<Limits> {
        parse_toml(Path::new("c.toml"), text)
    }

    #[test]
    fn every_key_reads_checks_and_saves_as_written() {
        let text = "memory = \"512M\"\nmemory_swap = \"1G\"\ncpus = 1.5\ncpu_weight = 200\n\
                    cpuset = \"0-1,3\"\npids = 100\nio_weight = 50\n";
        let l = load(text).unwrap();
        l.check().unwrap();
        assert_eq!(l.cpu_weight.map(Weight::get), Some(200));
        assert_eq!(l.cpuset.as_ref().map(CpuSet::as_str), Some("0-1,3"));
        assert_eq!(l.io_weight.map(Weight::get), Some(50));
        assert_eq!(toml::to_string(&l).unwrap(), text);
        assert_eq!(
            l.describe(),
            [
                "memory 512M",
                "swap 1G",
                "cpus 1.5",
                "cpu weight 200",
                "cpuset 0-1,3",
                "pids 100",
                "io weight 50"
            ]
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, want) in [
            ("cpu_weight = 0", "cpu_weight"),
            ("io_weight = 10001", "io_weight"),
            ("cpuset = \"3-1\"", "cpuset"),
            ("cpuset = \"0,,1\"", "cpuset"),
            ("cpuset = \"a\"", "cpuset"),
            ("cpuset = \"\"", "cpuset"),
            ("cpuset = \"99999\"", "cpuset"),
            ("memory_swap = \"lots\"", "memory_swap"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains("line 1") && e.contains(want), "{text}: {e}");
        }
        for (text, want) in [
            ("memory = \"1M\"", "below 4M"),
            ("memory_swap = \"1G\"", "limits.memory_swap"),
            ("pids = 0", "limits.pids = 0"),
            ("cpus = 0.0", "limits.cpus"),
        ] {
            let e = load(text).unwrap().check().unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn weights_and_cpu_lists_from_text() {
        assert_eq!("100".parse::<Weight>().unwrap().get(), 100);
        assert!("0".parse::<Weight>().is_err());
        assert!("x".parse::<Weight>().is_err());
        assert_eq!("7".parse::<CpuSet>().unwrap().to_string(), "7");
        assert!("1-".parse::<CpuSet>().is_err());
    }
}
