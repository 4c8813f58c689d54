//! rlxc-autostart: start (or stop, kill, reboot) the containers marked `[autostart]`,
//! with LXC's flags; -L only shows the plan (--json for scripts).

use std::time::Duration;

use serde::Serialize;

use super::Common;
use crate::container::autostart::{self, Action, Event, Plan, Selection};
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only show what would be done, in which order, with which delays.
    #[arg(short = 'L', long = "list")]
    list: bool,
    /// Halt cleanly instead, in reverse order; what still runs after -t is killed.
    #[arg(short = 's', long = "shutdown", conflicts_with_all = ["kill", "reboot"])]
    shutdown: bool,
    /// Kill instead.
    #[arg(short = 'k', long = "kill", conflicts_with = "reboot")]
    kill: bool,
    /// Reboot instead.
    #[arg(short = 'r', long = "reboot")]
    reboot: bool,
    /// With -s: seconds the whole shutdown may take before what still runs is killed.
    #[arg(short = 't', long = "timeout", default_value_t = 60)]
    timeout: u64,
    /// Groups, comma-separated, in order (may be repeated); an empty name is the
    /// containers in no group. Default: those in no group.
    #[arg(short = 'g', long = "groups", value_name = "GROUPS")]
    groups: Vec<String>,
    /// Every container marked autostart, whatever its groups.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Ignore `autostart.enabled` (with -a: every container).
    #[arg(short = 'A', long = "ignore-auto")]
    ignore_auto: bool,
    /// With -L: the plan as JSON.
    #[arg(long = "json", requires = "list")]
    json: bool,
    #[command(flatten)]
    common: Common,
}

impl Args {
    fn action(&self) -> Action {
        if self.shutdown {
            Action::Stop {
                timeout: Duration::from_secs(self.timeout),
            }
        } else if self.kill {
            Action::Kill
        } else if self.reboot {
            Action::Reboot
        } else {
            Action::Start
        }
    }
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let sel = Selection {
        all: a.all,
        ignore_enabled: a.ignore_auto,
        groups: crate::config::parse_group_list(&a.groups),
    };
    let action = a.action();
    let plan = autostart::plan(&sys, &sel, action)?;
    if a.list {
        return list(&sys, &plan, action, a.json);
    }
    let quiet = a.common.quiet;
    // Named first: a bad name or config is left out, the others acted on.
    for (name, why) in &plan.unreadable {
        eprintln!("{name}: FAILED: {}", super::shown(why));
    }
    let tell = |e: Event| match e {
        Event::Failed { name, why } => eprintln!("{name}: FAILED: {}", super::shown(&why)),
        _ if quiet => {}
        Event::Wave(w) => eprintln!(
            "order {}{}: {}",
            w.order,
            w.group
                .as_deref()
                .map(|g| format!(" (group {g})"))
                .unwrap_or_default(),
            w.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Event::Skipped(name) => eprintln!("{name}: {}", skipped(action)),
        Event::Done(name) => eprintln!("{name}: {}", done(action)),
        Event::Waiting(s) => eprintln!("waiting {s} s before the next order"),
    };
    let failed = autostart::run(&sys, &plan, action, &tell)?;
    if failed > 0 {
        return Err(Error::Other(format!(
            "{failed} container{} failed (see above); the others were {}",
            if failed == 1 { "" } else { "s" },
            done(action)
        )));
    }
    Ok(0)
}

fn done(action: Action) -> &'static str {
    match action {
        Action::Start => "started",
        Action::Stop { .. } => "stopped",
        Action::Kill => "killed",
        Action::Reboot => "rebooted",
    }
}

fn skipped(action: Action) -> &'static str {
    match action {
        Action::Start => "already running",
        _ => "not running",
    }
}

/// One container of `-L --json`: stable field names for scripts.
#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    /// Waves are acted on one after the other, a wave's containers together.
    wave: usize,
    /// The `-g` group that selected it; null: the containers in no group (or -a).
    group: Option<&'a str>,
    order: i32,
    delay: u32,
    groups: &'a [String],
    state: String,
    /// False when its state makes the action a no-op (a start of a running one).
    acts: bool,
}

#[derive(Serialize)]
struct Unreadable<'a> {
    name: &'a str,
    error: String,
}

#[derive(Serialize)]
struct Listing<'a> {
    action: &'static str,
    containers: Vec<Listed<'a>>,
    unreadable: Vec<Unreadable<'a>>,
}

/// The plan with each container's state; exit status 1 when a container could not be
/// read, after the rest is listed.
fn list(sys: &crate::config::SystemConfig, plan: &Plan, action: Action, json: bool) -> Result<i32> {
    let members: Vec<_> = plan
        .waves
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.members.iter().map(move |m| (i, w, m)))
        .collect();
    // Each monitor asked on one of a few threads, as rlxc-ls -f does.
    let states = crate::par::map(&members, crate::par::MONITOR_QUERIES, |(_, _, m)| {
        Container::new(sys, &m.name)
            .map(|c| c.state())
            .map_err(|e| crate::error::flatten(&e))
    });
    let mut containers = Vec::new();
    let mut unreadable: Vec<Unreadable> = plan
        .unreadable
        .iter()
        .map(|(name, error)| Unreadable {
            name,
            error: error.clone(),
        })
        .collect();
    for (&(wave, w, m), state) in members.iter().zip(states) {
        let state = match state {
            Ok(s) => s,
            Err(error) => {
                unreadable.push(Unreadable {
                    name: &m.name,
                    error,
                });
                continue;
            }
        };
        containers.push(Listed {
            name: &m.name,
            wave,
            group: w.group.as_deref(),
            order: m.order,
            delay: m.delay,
            groups: &m.groups,
            acts: action.applies(state.is_running()),
            state: state.to_string(),
        });
    }
    let listing = Listing {
        action: match action {
            Action::Start => "start",
            Action::Stop { .. } => "stop",
            Action::Kill => "kill",
            Action::Reboot => "reboot",
        },
        containers,
        unreadable,
    };
    let status = i32::from(!listing.unreadable.is_empty());
    if json {
        let text = serde_json::to_string_pretty(&listing)
            .map_err(|e| Error::Other(format!("cannot format the autostart plan: {e}")))?;
        println!("{text}");
        return Ok(status);
    }
    let header = ["WAVE", "ORDER", "NAME", "DELAY", "GROUPS", "STATE"];
    let rows: Vec<Vec<String>> = listing
        .containers
        .iter()
        .map(|c| {
            vec![
                c.wave.to_string(),
                c.order.to_string(),
                c.name.to_string(),
                c.delay.to_string(),
                if c.groups.is_empty() {
                    "-".into()
                } else {
                    c.groups.join(",")
                },
                if c.acts {
                    c.state.clone()
                } else {
                    format!("{} (skipped)", c.state)
                },
            ]
        })
        .collect();
    super::table::print(&header, &rows, " ");
    for u in &listing.unreadable {
        eprintln!("{}: left out: {}", u.name, super::shown(&u.error));
    }
    Ok(status)
}
