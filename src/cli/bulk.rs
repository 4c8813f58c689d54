//! Several containers at once for rlxc-start and rlxc-stop: `-n` repeated, names after
//! the options, or `--all`; done on a bounded pool, each container's failure reported
//! on its own and never in the way of the others.

use super::Common;
use crate::config::SystemConfig;
use crate::container::{Container, State};
use crate::error::{Error, Result};

/// Default width of the pool: a start is mostly the kernel's work (namespaces, mounts,
/// veths) on a few cores, and a stop mostly waiting for inits to halt.
pub const DEFAULT_JOBS: usize = 16;

/// Waiting for stops already asked for costs a connection each and no work: wide.
pub const WAIT_JOBS: usize = 128;

// Which containers a command acts on.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Targets {
    /// Container name (repeat it, or list names after the options, for several).
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// More container names.
    #[arg(value_name = "NAME")]
    pub more: Vec<String>,
    /// Every container of the lxcpath (rlxc-start: those stopped; rlxc-stop: those running).
    #[arg(long = "all", conflicts_with_all = ["names", "more"])]
    pub all: bool,
    /// With several containers: how many at a time.
    #[arg(short = 'j', long = "jobs", default_value_t = DEFAULT_JOBS, value_name = "N")]
    pub jobs: usize,
}

impl Targets {
    /// The one container named, when exactly one is and not --all.
    pub fn single(&self) -> Option<&str> {
        match (self.all, self.names.as_slice(), self.more.as_slice()) {
            (false, [n], []) | (false, [], [n]) => Some(n),
            _ => None,
        }
    }

    /// The names given, each once, in the order given; or with --all every container of
    /// the lxcpath whose state `wanted` accepts.
    pub fn resolve(&self, sys: &SystemConfig, wanted: fn(&State) -> bool) -> Result<Vec<String>> {
        if !self.all {
            let mut seen = std::collections::HashSet::new();
            let names: Vec<String> = self
                .names
                .iter()
                .chain(&self.more)
                .filter(|n| seen.insert(n.as_str()))
                .cloned()
                .collect();
            if names.is_empty() {
                return Err(Error::Usage(
                    "name a container (-n NAME, several names, or --all)".into(),
                ));
            }
            return Ok(names);
        }
        let all = Container::list(sys)?;
        let picked = crate::par::map(&all, self.jobs.max(1), |c| wanted(&c.state()));
        Ok(all
            .into_iter()
            .zip(picked)
            .filter_map(|(c, p)| p.then_some(c.name))
            .collect())
    }
}

/// One container's outcome: `Ok(message)` (printed unless -q), or what went wrong.
pub type Outcome = std::result::Result<Option<String>, String>;

/// Run `one` for each name on up to `jobs` threads, print each outcome as it is known
/// (failures always, named), then a summary; the exit code: 0 when all went well, 1 when
/// any failed.
pub fn run_all(
    verb: &str,
    names: &[String],
    jobs: usize,
    common: &Common,
    one: impl Fn(&str) -> Outcome + Sync,
) -> i32 {
    if names.is_empty() {
        if !common.quiet {
            eprintln!("No container to {verb}");
        }
        return 0;
    }
    let outcomes = crate::par::map(names, jobs.max(1), |n| {
        let o = one(n);
        // Said as each finishes: a thousand containers take a while.
        match &o {
            Ok(Some(msg)) if !common.quiet => eprintln!("{msg}"),
            Err(why) => eprintln!("{n}: {why}"),
            _ => {}
        }
        o
    });
    let failed: Vec<&str> = names
        .iter()
        .zip(&outcomes)
        .filter_map(|(n, o)| o.is_err().then_some(n.as_str()))
        .collect();
    if failed.is_empty() {
        if !common.quiet && names.len() > 1 {
            eprintln!("{verb}: all {} done", names.len());
        }
        return 0;
    }
    let shown = if failed.len() > 10 {
        format!("{} and {} more", failed[..10].join(", "), failed.len() - 10)
    } else {
        failed.join(", ")
    };
    eprintln!(
        "{verb}: {} of {} failed ({shown}); the others were done",
        failed.len(),
        names.len()
    );
    1
}

/// `rlxc start -d -n NAME` as a process of its own: a start forks the container's
/// monitor, which must not happen from a process with other threads running.
pub fn start_one(sys: &SystemConfig, name: &str) -> Outcome {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find rlxc itself: {e}"))?;
    let out = std::process::Command::new(exe)
        .args(["start", "-d", "-P"])
        .arg(&sys.lxcpath)
        .args(["-n", name])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rlxc start: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    if out.status.success() {
        return Ok(Some(text).filter(|t| !t.is_empty()));
    }
    // Its report, without the program name each line of it would repeat.
    let text = text.replace("rlxc-start: error: ", "");
    Err(if text.is_empty() {
        format!("rlxc start failed ({})", out.status)
    } else {
        text.replace('\n', "\n  ")
    })
}
