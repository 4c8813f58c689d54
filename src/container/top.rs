//! rlxc-top's figures: every running container of an lxcpath, from its cgroup's files and
//! its init's /proc (network counters), CPU use as a rate between two samples. No monitor
//! is asked and no process started: a container runs while its cgroup holds tasks (what
//! `state` falls back on when no monitor answers), and its init is the pid its monitor
//! wrote at boot, checked against the cgroup it is in.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::str::FromStr;
use std::time::Instant;

use super::Container;
use crate::cgroup::{Layout, UsagePlan};
use crate::config::SystemConfig;
use crate::error::{Error, Result};

/// One running container's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopRow {
    pub name: String,
    /// Percent of one CPU (200 is two busy CPUs) since the last sample; the first time,
    /// the average since its init started.
    pub cpu: Option<f64>,
    pub memory: Option<u64>,
    pub swap: Option<u64>,
    /// Bytes read from and written to block devices since it started.
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
    /// Bytes its interfaces received and sent (loopback aside); None in the host's network.
    pub net_rx: Option<u64>,
    pub net_tx: Option<u64>,
    /// Tasks (processes and threads).
    pub tasks: Option<u64>,
}

/// What rlxc-top sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopSort {
    Cpu,
    Memory,
    Swap,
    Io,
    Net,
    Tasks,
    Name,
}

impl TopSort {
    pub const WORDS: &str = "cpu, memory, swap, io, net, pids, name";

    pub fn as_str(self) -> &'static str {
        match self {
            TopSort::Cpu => "cpu",
            TopSort::Memory => "memory",
            TopSort::Swap => "swap",
            TopSort::Io => "io",
            TopSort::Net => "net",
            TopSort::Tasks => "pids",
            TopSort::Name => "name",
        }
    }
}

impl FromStr for TopSort {
    type Err = String;
    /// The words, and lxc-top's letters (c, m, s, b, n) and p for pids.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "cpu" | "c" => TopSort::Cpu,
            "memory" | "mem" | "m" => TopSort::Memory,
            "swap" | "s" => TopSort::Swap,
            "io" | "blkio" | "b" => TopSort::Io,
            "net" | "network" => TopSort::Net,
            "pids" | "tasks" | "p" => TopSort::Tasks,
            "name" | "n" => TopSort::Name,
            _ => return Err(format!("{s:?}: sort by one of {}", Self::WORDS)),
        })
    }
}

/// Largest first (by name: A to Z); `reverse` turns it round. Ties go by name.
pub fn sort_rows(rows: &mut [TopRow], by: TopSort, reverse: bool) {
    let num = |r: &TopRow| -> f64 {
        let n = |v: Option<u64>| v.map_or(-1.0, |v| v as f64);
        match by {
            TopSort::Cpu => r.cpu.unwrap_or(-1.0),
            TopSort::Memory => n(r.memory),
            TopSort::Swap => n(r.swap),
            TopSort::Io => n(r.io_read.zip(r.io_write).map(|(a, b)| a + b)),
            TopSort::Net => n(r.net_rx.zip(r.net_tx).map(|(a, b)| a + b)),
            TopSort::Tasks => n(r.tasks),
            TopSort::Name => 0.0,
        }
    };
    rows.sort_by(|a, b| {
        let o = num(b).total_cmp(&num(a)).then_with(|| a.name.cmp(&b.name));
        if reverse {
            o.reverse()
        } else {
            o
        }
    });
}

/// What the last sample saw of a container.
struct Seen {
    at: Instant,
    cpu_ns: Option<u64>,
    /// Its init, once checked to be in its cgroup.
    init: Option<i32>,
}

/// Samples the running containers of one lxcpath, round after round.
pub struct Top {
    sys: SystemConfig,
    plan: UsagePlan,
    /// This process's network namespace: a container in it has no counters of its own.
    host_net: Option<u64>,
    clock_ticks: f64,
    seen: HashMap<String, Seen>,
}

impl Top {
    pub fn new(sys: &SystemConfig) -> Result<Self> {
        let clock_ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100.0, |t| t as f64);
        Ok(Top {
            sys: sys.clone(),
            plan: Layout::detect()?.usage_plan(),
            host_net: net_ns("self"),
            clock_ticks,
            seen: HashMap::new(),
        })
    }

    /// The running containers' figures now, by name.
    pub fn sample(&mut self) -> Result<Vec<TopRow>> {
        let mut rows = Vec::new();
        let mut uptime = None;
        let mut seen = HashMap::new();
        for c in Container::list(&self.sys)? {
            let Some(u) = self.plan.read(&c.key) else {
                continue;
            };
            let at = Instant::now();
            let last = self.seen.remove(&c.name);
            let init = self.init_of(&c, last.as_ref().and_then(|s| s.init));
            let cpu = match (&last, u.cpu_ns) {
                (
                    Some(Seen {
                        at: t0,
                        cpu_ns: Some(n0),
                        ..
                    }),
                    Some(n),
                ) => {
                    let secs = at.duration_since(*t0).as_secs_f64();
                    (secs > 0.0).then(|| n.saturating_sub(*n0) as f64 / 1e9 / secs * 100.0)
                }
                (_, Some(n)) => init.and_then(|pid| {
                    let up = *uptime.get_or_insert_with(read_uptime);
                    let ran = up? - self.started(pid)?;
                    (ran > 0.0).then(|| n as f64 / 1e9 / ran * 100.0)
                }),
                _ => None,
            };
            let net = init
                .filter(|pid| net_ns(&pid.to_string()).is_some_and(|ns| Some(ns) != self.host_net))
                .map(|pid| {
                    crate::net::link::link_stats(pid)
                        .iter()
                        .fold((0, 0), |(rx, tx), (_, r, t)| (rx + r, tx + t))
                });
            seen.insert(
                c.name.clone(),
                Seen {
                    at,
                    cpu_ns: u.cpu_ns,
                    init,
                },
            );
            rows.push(TopRow {
                name: c.name,
                cpu,
                memory: u.memory,
                swap: u.swap,
                io_read: u.io_read,
                io_write: u.io_write,
                net_rx: net.map(|n| n.0),
                net_tx: net.map(|n| n.1),
                tasks: u.tasks,
            });
        }
        self.seen = seen;
        Ok(rows)
    }

    /// Its init's pid: the one its monitor wrote, if that process is in its cgroup
    /// (checked once per pid: a reboot writes another).
    fn init_of(&self, c: &Container, known: Option<i32>) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(c.run_dir.join("init.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if known == Some(pid) {
            return Some(pid);
        }
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let own = format!("/rlxc/{}", c.key);
        cgroups
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|p| p == own || p.starts_with(&format!("{own}/")))
            .then_some(pid)
    }

    /// When `pid` started, in seconds since boot (/proc/PID/stat's 22nd field).
    fn started(&self, pid: i32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: count after it.
        let after = &stat[stat.rfind(')')? + 1..];
        let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
        Some(ticks as f64 / self.clock_ticks)
    }
}

/// Seconds since boot.
fn read_uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The network namespace of /proc/`pid` (or "self"), as its inode.
fn net_ns(pid: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// `--delay` checked: rounds closer than this measure little but the sampling itself.
pub fn check_delay(secs: f64) -> Result<std::time::Duration> {
    if !(0.1..=86_400.0).contains(&secs) {
        return Err(Error::Usage(format!(
            "--delay {secs}: give 0.1 to 86400 seconds"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Ctrl-C (or SIGTERM, SIGHUP) arrived: rlxc-top ends its loop.
pub fn interrupted() -> bool {
    crate::sys::interrupted()
}

/// The terminal's size (rows, columns), for the full-screen view.
pub fn terminal_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    crate::sys::get_winsize(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, cpu: Option<f64>, memory: Option<u64>) -> TopRow {
        TopRow {
            name: name.into(),
            cpu,
            memory,
            ..TopRow::default()
        }
    }

    #[test]
    fn sorted_largest_first_unknown_last_ties_by_name() {
        let mut rows = vec![
            row("a", Some(1.0), Some(5)),
            row("b", Some(90.0), None),
            row("c", None, Some(7)),
            row("d", Some(1.0), Some(1)),
        ];
        let names = |rows: &[TopRow]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        sort_rows(&mut rows, TopSort::Cpu, false);
        assert_eq!(names(&rows), ["b", "a", "d", "c"]);
        sort_rows(&mut rows, TopSort::Memory, false);
        assert_eq!(names(&rows), ["c", "a", "d", "b"]);
        sort_rows(&mut rows, TopSort::Name, false);
        assert_eq!(names(&rows), ["a", "b", "c", "d"]);
        sort_rows(&mut rows, TopSort::Name, true);
        assert_eq!(names(&rows), ["d", "c", "b", "a"]);
    }

    #[test]
    fn sort_words_and_letters() {
        assert_eq!("c".parse::<TopSort>(), Ok(TopSort::Cpu));
        assert_eq!("memory".parse::<TopSort>(), Ok(TopSort::Memory));
        assert_eq!("b".parse::<TopSort>(), Ok(TopSort::Io));
        assert_eq!("pids".parse::<TopSort>(), Ok(TopSort::Tasks));
        assert!("k".parse::<TopSort>().unwrap_err().contains("cpu, memory"));
        for s in [TopSort::Cpu, TopSort::Net, TopSort::Tasks, TopSort::Name] {
            assert_eq!(s.as_str().parse::<TopSort>(), Ok(s));
        }
    }

    #[test]
    fn delays_out_of_range_are_refused() {
        assert!(check_delay(0.0).is_err());
        assert!(check_delay(f64::NAN).is_err());
        assert_eq!(check_delay(2.0).unwrap().as_secs(), 2);
    }
}
