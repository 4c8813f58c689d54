//! rlxc-autostart: the containers to start at boot (or stop at shutdown), in waves (see
//! `plan`), each wave's containers at once. Each start or stop runs in an rlxc process
//! of its own: a start forks a monitor, which a process with threads must not do, and a
//! failing container then fails alone, with its own message, while the rest go on.

mod plan;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use plan::{Selection, Wave};

use super::Container;
use crate::config::{Autostart, SystemConfig};
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    /// A clean halt; whatever still runs when `timeout` (for the whole run) is over is
    /// killed, so twenty containers stop in one timeout, not twenty.
    Stop {
        timeout: Duration,
    },
    Kill,
    Reboot,
}

impl Action {
    /// Stops go in reverse order.
    fn reverse(self) -> bool {
        !matches!(self, Action::Start)
    }

    /// Whether a container in this state is acted on (a start skips running ones, the
    /// others skip stopped ones).
    pub fn applies(self, running: bool) -> bool {
        (self == Action::Start) != running
    }
}

/// The waves, and the containers whose config could not be read (name, why).
#[derive(Debug, Default)]
pub struct Plan {
    pub waves: Vec<Wave>,
    pub unreadable: Vec<(String, String)>,
}

/// What happens, as it happens.
pub enum Event<'a> {
    Wave(&'a Wave),
    /// Left alone: already running (start) or not running (the others).
    Skipped(&'a str),
    Done(&'a str),
    Failed {
        name: &'a str,
        why: String,
    },
    Waiting(u32),
}

/// Which containers `sel` picks, in the waves `action` takes them. A directory whose
/// name is no container name, or whose config does not parse, is left out and named in
/// `unreadable`: one bad container must not keep the others from starting at boot.
pub fn plan(sys: &SystemConfig, sel: &Selection, action: Action) -> Result<Plan> {
    let mut settings = Vec::new();
    let mut unreadable = Vec::new();
    for name in crate::store::list(&sys.lxcpath)? {
        let c = match Container::new(sys, &name) {
            Ok(c) => c,
            Err(e) => {
                unreadable.push((name, crate::error::flatten(&e)));
                continue;
            }
        };
        match c.config() {
            Ok(cfg) => settings.push((c.name, cfg.autostart)),
            // -a -A takes every container: one whose config is broken is still stopped.
            Err(_) if sel.all && sel.ignore_enabled => {
                settings.push((c.name, Autostart::default()))
            }
            Err(e) => unreadable.push((c.name, crate::error::flatten(&e))),
        }
    }
    Ok(Plan {
        waves: plan::waves(&settings, sel, action.reverse()),
        unreadable,
    })
}

/// Act on the plan; the number of containers that failed (unreadable configs count).
pub fn run(sys: &SystemConfig, plan: &Plan, action: Action, tell: &dyn Fn(Event)) -> Result<usize> {
    let mut failed = plan.unreadable.len();
    let deadline = match action {
        Action::Stop { timeout } => Some(Instant::now() + timeout),
        _ => None,
    };
    for (i, wave) in plan.waves.iter().enumerate() {
        if crate::sys::interrupted() {
            return Err(Error::Interrupted);
        }
        tell(Event::Wave(wave));
        let mut running = Vec::new();
        for m in &wave.members {
            let c = match Container::new(sys, &m.name) {
                Ok(c) => c,
                Err(e) => {
                    failed += 1;
                    tell(Event::Failed {
                        name: &m.name,
                        why: crate::error::flatten(&e),
                    });
                    continue;
                }
            };
            if !action.applies(c.state().is_running()) {
                tell(Event::Skipped(&m.name));
                continue;
            }
            match spawn(sys, action, &m.name, deadline) {
                Ok(child) => running.push((m, child)),
                Err(e) => {
                    failed += 1;
                    tell(Event::Failed {
                        name: &m.name,
                        why: e.to_string(),
                    });
                }
            }
        }
        let mut delay = 0;
        for (m, child) in running {
            match outcome(action, child) {
                Ok(()) => {
                    delay = delay.max(m.delay);
                    tell(Event::Done(&m.name));
                }
                Err(why) => {
                    failed += 1;
                    tell(Event::Failed { name: &m.name, why });
                }
            }
        }
        if action == Action::Start && delay > 0 && i + 1 < plan.waves.len() {
            tell(Event::Waiting(delay));
            pause(Duration::from_secs(delay.into()))?;
        }
    }
    Ok(failed)
}

/// `rlxc start -d` (or stop) for one container, its errors on a pipe.
fn spawn(
    sys: &SystemConfig,
    action: Action,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Child> {
    let exe = std::env::current_exe().ctx("find", "this rlxc binary")?;
    let mut cmd = Command::new(exe);
    match action {
        Action::Start => cmd.args(["start", "-d"]),
        Action::Kill => cmd.args(["stop", "-k"]),
        Action::Reboot => cmd.args(["stop", "-r"]),
        Action::Stop { .. } => {
            // What is left of the run's timeout, rounded up; none left: a kill.
            let left = deadline.map_or(0, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .div_ceil(1000)
            });
            cmd.args(["stop", "-t", &left.to_string()])
        }
    };
    cmd.args(["-q", "-n", name, "-P"])
        .arg(&sys.lxcpath)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().ctx("run", format!("rlxc for {name}"))
}

/// Ok, or what the rlxc process said (its last lines) and how it ended.
fn outcome(action: Action, child: Child) -> std::result::Result<(), String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    // rlxc-stop exits 2 for a container that stopped meanwhile: nothing left to do.
    let stopped_meanwhile = action != Action::Start && out.status.code() == Some(2);
    if out.status.success() || stopped_meanwhile {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
    Err(if tail.is_empty() {
        format!("rlxc ended with {}", out.status)
    } else {
        tail
    })
}

/// A delay, cut short by an interrupt.
fn pause(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if crate::sys::interrupted() {
            return Err(Error::Interrupted);
        }
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::plan::Member;
    use super::*;

    const ENABLED: &str = "[autostart]\nenabled = true\n";

    /// An installation in a temporary directory with these containers (name, config).
    fn installation(containers: &[(&str, &str)]) -> (tempfile::TempDir, SystemConfig) {
        let dir = tempfile::tempdir().unwrap();
        let lxcpath = dir.path().join("lxc");
        for (name, cfg) in containers {
            std::fs::create_dir_all(lxcpath.join(name)).unwrap();
            std::fs::write(lxcpath.join(name).join("config.toml"), cfg).unwrap();
        }
        let text = format!(
            "lxcpath = {:?}\nrunpath = {:?}\n",
            lxcpath,
            dir.path().join("run")
        );
        let sys = SystemConfig::from_text(&dir.path().join("rlxc.toml"), &text).unwrap();
        (dir, sys)
    }

    #[test]
    fn a_bad_name_or_config_is_named_and_the_others_planned() {
        let (_dir, sys) = installation(&[
            ("good", ENABLED),
            ("-x", ENABLED),
            ("broken", "[autostart]\nenabled = yes\n"),
        ]);
        let p = plan(&sys, &Selection::default(), Action::Start).unwrap();
        let planned: Vec<&str> = p
            .waves
            .iter()
            .flat_map(|w| &w.members)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(planned, ["good"]);
        let bad: Vec<&str> = p.unreadable.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(bad, ["-x", "broken"], "{:?}", p.unreadable);
        assert!(
            p.unreadable[0].1.contains("starts with '-'"),
            "{:?}",
            p.unreadable
        );
        assert!(p.unreadable[1].1.contains("enabled"), "{:?}", p.unreadable);
    }

    #[test]
    fn a_member_that_is_no_container_fails_alone() {
        let (_dir, sys) = installation(&[("good", ENABLED)]);
        let member = |name: &str| Member {
            name: name.into(),
            order: 0,
            delay: 0,
            groups: Vec::new(),
        };
        let p = Plan {
            waves: vec![Wave {
                group: None,
                order: 0,
                members: vec![member("a..b"), member("good")],
            }],
            unreadable: Vec::new(),
        };
        let seen = RefCell::new(Vec::new());
        let tell = |e: Event| {
            seen.borrow_mut().push(match e {
                Event::Failed { name, .. } => format!("failed {name}"),
                Event::Skipped(name) => format!("skipped {name}"),
                Event::Done(name) => format!("done {name}"),
                Event::Wave(_) | Event::Waiting(_) => return,
            })
        };
        // A kill: "good" does not run, so nothing is spawned.
        assert_eq!(run(&sys, &p, Action::Kill, &tell).unwrap(), 1);
        assert_eq!(*seen.borrow(), ["failed a..b", "skipped good"]);
    }
}
