//! `rlxc-cgroup --persist`: which `[limits]` key a controller file's value is, on either
//! cgroup version, so that a live change is also the container's next start. v1 files
//! whose value depends on another (memory and swap together, a quota per period) read
//! that other one live.

use std::str::FromStr;

use super::files::weight_to_shares;
use super::Cgroup;
use crate::config::{ByteSize, CpuSet, Limits, Weight};
use crate::error::{Error, Result};

/// A change to one `[limits]` key: its new value, None to remove it (no limit).
#[derive(Debug, Clone, PartialEq)]
pub enum LimitChange {
    Memory(Option<ByteSize>),
    MemorySwap(Option<ByteSize>),
    Cpus(Option<f64>),
    CpuWeight(Option<Weight>),
    Cpuset(Option<CpuSet>),
    Pids(Option<u64>),
    IoWeight(Option<Weight>),
}

/// The files --persist keeps, for the message naming them.
const PERSISTED: &str = "memory.max/memory.limit_in_bytes, memory.swap.max/\
                         memory.memsw.limit_in_bytes, cpu.max/cpu.cfs_quota_us, \
                         cpu.weight/cpu.shares, cpuset.cpus, pids.max, \
                         io.weight/blkio.bfq.weight";

impl LimitChange {
    /// The config key it changes, for messages.
    pub fn key(&self) -> &'static str {
        match self {
            LimitChange::Memory(_) => "memory",
            LimitChange::MemorySwap(_) => "memory_swap",
            LimitChange::Cpus(_) => "cpus",
            LimitChange::CpuWeight(_) => "cpu_weight",
            LimitChange::Cpuset(_) => "cpuset",
            LimitChange::Pids(_) => "pids",
            LimitChange::IoWeight(_) => "io_weight",
        }
    }

    /// The new value as config.toml has it, or None when the key goes.
    pub fn value(&self) -> Option<String> {
        match self {
            LimitChange::Memory(v) | LimitChange::MemorySwap(v) => {
                v.as_ref().map(|b| format!("\"{b}\""))
            }
            LimitChange::Cpus(v) => v.map(|c| c.to_string()),
            LimitChange::CpuWeight(v) | LimitChange::IoWeight(v) => v.map(|w| w.to_string()),
            LimitChange::Cpuset(v) => v.as_ref().map(|c| format!("\"{c}\"")),
            LimitChange::Pids(v) => v.map(|p| p.to_string()),
        }
    }

    pub fn apply(self, l: &mut Limits) {
        match self {
            LimitChange::Memory(v) => l.memory = v,
            LimitChange::MemorySwap(v) => l.memory_swap = v,
            LimitChange::Cpus(v) => l.cpus = v,
            LimitChange::CpuWeight(v) => l.cpu_weight = v,
            LimitChange::Cpuset(v) => l.cpuset = v,
            LimitChange::Pids(v) => l.pids = v,
            LimitChange::IoWeight(v) => l.io_weight = v,
        }
    }
}

impl Cgroup {
    /// The `[limits]` change that writing `value` to `key` amounts to.
    pub fn limit_change(&self, key: &str, value: &str) -> Result<LimitChange> {
        let v = value.trim();
        let bad = |why: String| Error::Cgroup {
            msg: format!("--persist cannot keep {value} for {key}: {why}"),
            fix: Some("set it without --persist, or give a value of that form".into()),
        };
        let unlimited = matches!(v, "max" | "-1");
        Ok(match key {
            "memory.max" | "memory.limit_in_bytes" => {
                LimitChange::Memory(size(v, unlimited).map_err(bad)?)
            }
            "memory.swap.max" => LimitChange::MemorySwap(size(v, unlimited).map_err(bad)?),
            "memory.memsw.limit_in_bytes" if unlimited => LimitChange::MemorySwap(None),
            "memory.memsw.limit_in_bytes" => {
                let total = size(v, false).map_err(bad)?.map_or(0, |b| b.bytes());
                let memory = self.live_number("memory.limit_in_bytes")?;
                let swap = total.checked_sub(memory).ok_or_else(|| {
                    bad(format!(
                        "it is below the memory limit ({memory} bytes), which it includes"
                    ))
                })?;
                LimitChange::MemorySwap(Some(bytes(swap)))
            }
            "cpu.max" => {
                let mut f = v.split_whitespace();
                let quota = f.next().unwrap_or("");
                match (quota, f.next()) {
                    ("max", _) => LimitChange::Cpus(None),
                    (q, period) => {
                        let period = match period {
                            Some(p) => p.parse().map_err(|_| bad("not QUOTA PERIOD".into()))?,
                            None => self.live_cpu_max_period()?,
                        };
                        LimitChange::Cpus(Some(cpus(q, period).map_err(bad)?))
                    }
                }
            }
            "cpu.cfs_quota_us" if unlimited => LimitChange::Cpus(None),
            "cpu.cfs_quota_us" => {
                let period = self.live_number("cpu.cfs_period_us")?;
                LimitChange::Cpus(Some(cpus(v, period).map_err(bad)?))
            }
            "cpu.weight" => LimitChange::CpuWeight(Some(Weight::from_str(v).map_err(bad)?)),
            "cpu.shares" => {
                let shares: u64 = v.parse().map_err(|_| bad("not a number".into()))?;
                LimitChange::CpuWeight(Some(shares_to_weight(shares)))
            }
            "cpuset.cpus" if v.is_empty() => LimitChange::Cpuset(None),
            "cpuset.cpus" => LimitChange::Cpuset(Some(CpuSet::from_str(v).map_err(bad)?)),
            "pids.max" if unlimited => LimitChange::Pids(None),
            "pids.max" => {
                LimitChange::Pids(Some(v.parse().map_err(|_| bad("not a number".into()))?))
            }
            "io.weight" | "blkio.bfq.weight" => {
                // Per-device lines ("8:0 200") are no [limits] key.
                let w = v.strip_prefix("default").unwrap_or(v);
                LimitChange::IoWeight(Some(Weight::from_str(w).map_err(|_| {
                    bad(
                        "only a weight for every device (N or \"default N\") is a [limits] key"
                            .into(),
                    )
                })?))
            }
            _ => {
                return Err(Error::Cgroup {
                    msg: format!("{key} has no [limits] key, so --persist cannot keep it"),
                    fix: Some(format!(
                        "--persist keeps {PERSISTED}; set {key} without it (it lasts until \
                         the container stops)"
                    )),
                })
            }
        })
    }

    /// A number a v1 file of this container reads now.
    fn live_number(&self, key: &str) -> Result<u64> {
        let text = self.read_control(key)?;
        text.trim().parse().map_err(|_| Error::Cgroup {
            msg: format!("{key} reads {:?}, not a number", text.trim()),
            fix: None,
        })
    }

    /// cgroup2 `cpu.max`'s period: "QUOTA PERIOD".
    fn live_cpu_max_period(&self) -> Result<u64> {
        let text = self.read_control("cpu.max")?;
        text.split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::Cgroup {
                msg: format!("cpu.max reads {:?}, not QUOTA PERIOD", text.trim()),
                fix: None,
            })
    }
}

/// A size (bytes or K/M/G/T), None for no limit.
fn size(v: &str, unlimited: bool) -> std::result::Result<Option<ByteSize>, String> {
    if unlimited {
        return Ok(None);
    }
    ByteSize::from_str(v).map(Some)
}

/// Bytes in the largest unit that holds them whole ("256M").
fn bytes(n: u64) -> ByteSize {
    let text = [(40, "T"), (30, "G"), (20, "M"), (10, "K")]
        .iter()
        .find(|(shift, _)| n != 0 && n % (1u64 << shift) == 0)
        .map_or_else(|| n.to_string(), |(shift, u)| format!("{}{u}", n >> shift));
    ByteSize::from_str(&text).unwrap_or_else(|_| unreachable!("{text} is a size"))
}

/// A quota per period as CPUs.
fn cpus(quota: &str, period: u64) -> std::result::Result<f64, String> {
    match quota.parse::<u64>() {
        Ok(q) if q > 0 && period > 0 => Ok(q as f64 / period as f64),
        _ => Err("expected a quota in microseconds per period".into()),
    }
}

/// v1 `cpu.shares` on cgroup2's weight scale: the nearest weight that converts back to
/// it (systemd's conversion the other way, 1024 shares being weight 100).
fn shares_to_weight(shares: u64) -> Weight {
    let w = (shares.saturating_mul(100) + 512) / 1024;
    let w = w.clamp(1, Weight::MAX);
    debug_assert!(weight_to_shares(w) >= 2);
    Weight::try_from(w).unwrap_or_else(|_| unreachable!("{w} is clamped"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{Hierarchy, Layout};

    fn v2_cgroup() -> (tempfile::TempDir, Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        let cg = Cgroup::new(
            Layout {
                hierarchies: vec![Hierarchy {
                    mountpoint: tmp.path().to_path_buf(),
                    controllers: Vec::new(),
                    v2: true,
                }],
            },
            "web1.0123abcd",
        );
        (tmp, cg)
    }

    #[test]
    fn files_map_to_their_limits_keys() {
        let (_tmp, cg) = v2_cgroup();
        let ch = |k: &str, v: &str| cg.limit_change(k, v).unwrap();
        assert_eq!(ch("memory.max", "1G").value().as_deref(), Some("\"1G\""));
        assert_eq!(ch("memory.limit_in_bytes", "-1"), LimitChange::Memory(None));
        assert_eq!(ch("memory.swap.max", "max").key(), "memory_swap");
        assert_eq!(ch("cpu.max", "50000 100000"), LimitChange::Cpus(Some(0.5)));
        assert_eq!(ch("cpu.max", "max 100000"), LimitChange::Cpus(None));
        assert_eq!(ch("cpu.shares", "1024").value().as_deref(), Some("100"));
        assert_eq!(ch("cpu.shares", "2").value().as_deref(), Some("1"));
        assert_eq!(ch("cpu.weight", "300").key(), "cpu_weight");
        assert_eq!(ch("cpuset.cpus", "0-1").value().as_deref(), Some("\"0-1\""));
        assert_eq!(ch("cpuset.cpus", ""), LimitChange::Cpuset(None));
        assert_eq!(ch("pids.max", "max"), LimitChange::Pids(None));
        assert_eq!(ch("pids.max", "77"), LimitChange::Pids(Some(77)));
        assert_eq!(
            ch("io.weight", "default 200").value().as_deref(),
            Some("200")
        );
        let mut l = Limits::default();
        ch("pids.max", "77").apply(&mut l);
        assert_eq!(l.pids, Some(77));
    }

    #[test]
    fn what_no_key_holds_is_refused() {
        let (_tmp, cg) = v2_cgroup();
        for (k, v, want) in [
            ("memory.high", "1G", "has no [limits] key"),
            ("io.weight", "8:0 200", "every device"),
            ("pids.max", "lots", "not a number"),
            ("memory.max", "lots", "cannot keep"),
            ("cpu.weight", "0", "cannot keep"),
            ("cpu.max", "0 100000", "cannot keep"),
        ] {
            let e = cg.limit_change(k, v).unwrap_err().to_string();
            assert!(e.contains(want), "{k} {v}: {e}");
        }
    }

    #[test]
    fn v1_values_that_depend_on_another_file_read_it() {
        let (tmp, cg) = v2_cgroup();
        let dir = tmp.path().join("rlxc/web1.0123abcd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.limit_in_bytes"), "268435456\n").unwrap();
        std::fs::write(dir.join("cpu.cfs_period_us"), "50000\n").unwrap();
        std::fs::write(dir.join("cpu.max"), "max 200000\n").unwrap();
        let ch = |k: &str, v: &str| cg.limit_change(k, v).unwrap();
        assert_eq!(
            ch("memory.memsw.limit_in_bytes", "768M").value().as_deref(),
            Some("\"512M\"")
        );
        assert_eq!(
            ch("cpu.cfs_quota_us", "25000"),
            LimitChange::Cpus(Some(0.5))
        );
        assert_eq!(ch("cpu.max", "100000"), LimitChange::Cpus(Some(0.5)));
        let e = cg
            .limit_change("memory.memsw.limit_in_bytes", "128M")
            .unwrap_err()
            .to_string();
        assert!(e.contains("below the memory limit"), "{e}");
    }

    #[test]
    fn sizes_keep_their_largest_whole_unit() {
        assert_eq!(bytes(512 << 20).to_string(), "512M");
        assert_eq!(bytes(3 << 30).to_string(), "3G");
        assert_eq!(bytes(1000).to_string(), "1000");
        assert_eq!(bytes(0).to_string(), "0");
    }
}
