//! What this host offers containers, and what would stop them (rlxc-checkconfig), as a
//! typed report for the cli to print. Like lxc-checkconfig, but it also checks what rlxc
//! itself relies on (the managed bridge's tools, the firewall's FORWARD policy) and
//! names the fix for each problem.
//!
//! Each section probes the host, then turns what it found into checks with a pure
//! function, so the wording and the verdicts are unit-tested without the host.

use std::path::Path;

use crate::cgroup::Layout;
use crate::config::SystemConfig;
use crate::error::Result;
use crate::{apparmor, net};

mod limits;
mod userns;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Present; the detail says how (empty: nothing to add).
    Ok(String),
    /// Absent or in the way: a problem; the detail says what to do (may be empty).
    Missing(String),
    /// A fact that is no problem either way (IPv4 forwarding, which rlxc turns on).
    Info(String),
}

pub struct Section {
    pub title: &'static str,
    pub checks: Vec<Check>,
}

pub struct HostReport {
    pub sections: Vec<Section>,
}

impl HostReport {
    pub fn problems(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.checks)
            .filter(|c| matches!(c.verdict, Verdict::Missing(_)))
            .count()
    }
}

impl Check {
    fn ok(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            what: what.into(),
            verdict: Verdict::Ok(detail.into()),
        }
    }

    fn missing(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            what: what.into(),
            verdict: Verdict::Missing(detail.into()),
        }
    }

    /// Present with nothing to add, or missing with `fix` to say.
    fn present(what: impl Into<String>, ok: bool, fix: &str) -> Self {
        if ok {
            Check::ok(what, "")
        } else {
            Check::missing(what, fix)
        }
    }
}

/// Probe the host. `sys` names the bridge whose forwarding is checked, the directories
/// whose file systems must take idmapped mounts, and root's subordinate id files;
/// kernel limits are checked for `containers` (None: as many as the lxcpath holds).
pub fn checkconfig(sys: &SystemConfig, containers: Option<u64>) -> HostReport {
    let bridge = &sys.network.bridge;
    let tools = Tools {
        dnsmasq: net::which("dnsmasq").is_some(),
        firewall: net::which("nft").is_some() || net::which("iptables").is_some(),
    };
    let mut networking = link_checks(&net::link::probe_kinds());
    networking.extend(tool_checks(tools));
    networking.push(forwarding_check(
        bridge,
        net::firewall::forward_blocker(bridge).as_deref(),
    ));
    networking.push(ip_forward_check(
        &std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default(),
    ));
    let seccomp =
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("Seccomp:"));
    HostReport {
        sections: vec![
            Section {
                title: "Namespaces",
                checks: namespace_checks(|ns| Path::new("/proc/self/ns").join(ns).exists()),
            },
            Section {
                title: "Control groups",
                checks: cgroup_checks(Layout::detect()),
            },
            Section {
                title: "Networking",
                checks: networking,
            },
            Section {
                title: "Security",
                checks: vec![
                    Check::present("Seccomp", seccomp, ""),
                    apparmor_check(&AppArmor::probe()),
                ],
            },
            userns::section(sys),
            limits::section(plan(sys, containers)),
        ],
    }
}

/// The containers of the lxcpath (privileged: no `[idmap]`), or `want` of them, the new
/// ones made with the defaults.
fn plan(sys: &SystemConfig, want: Option<u64>) -> limits::Plan {
    let have: Vec<bool> = super::Container::list(sys)
        .unwrap_or_default()
        .iter()
        .map(|c| c.config().is_ok_and(|cfg| cfg.idmap.is_none()))
        .collect();
    let (n, p) = (
        have.len() as u64,
        have.iter().filter(|p| **p).count() as u64,
    );
    let new = want.unwrap_or(n).saturating_sub(n);
    let new_privileged = sys.container_defaults().is_ok_and(|d| d.idmap.is_none());
    limits::Plan {
        containers: n + new,
        privileged: p + if new_privileged { new } else { 0 },
    }
}

fn namespace_checks(exists: impl Fn(&str) -> bool) -> Vec<Check> {
    [
        ("mnt", "Mount namespace"),
        ("pid", "PID namespace"),
        ("uts", "UTS namespace"),
        ("ipc", "IPC namespace"),
        ("net", "Network namespace"),
        ("cgroup", "Cgroup namespace"),
        ("user", "User namespace"),
    ]
    .into_iter()
    .map(|(ns, what)| Check::present(what, exists(ns), ""))
    .collect()
}

fn cgroup_checks(layout: Result<Layout>) -> Vec<Check> {
    let l = match layout {
        Ok(l) => l,
        Err(e) => return vec![Check::missing("Cgroup file system", e.to_string())],
    };
    let kind = if l.is_pure_v2() {
        "cgroup v2 (unified)"
    } else {
        "cgroup v1 controllers with a unified mount (hybrid)"
    };
    let mut checks = vec![Check::ok("Cgroup layout", kind)];
    for c in ["memory", "cpu", "pids", "freezer"] {
        // cgroup2 freezes through cgroup.freeze, with no controller to enable.
        let found = l.controller(c).is_some() || (c == "freezer" && l.is_pure_v2());
        checks.push(Check::present(
            format!("Cgroup controller {c}"),
            found,
            "limits using it are refused",
        ));
    }
    checks
}

/// `probe_kinds` answers bridge, veth, macvlan in that order; a short answer (the probe
/// could not run) counts as missing.
fn link_checks(kinds: &[bool]) -> Vec<Check> {
    ["Bridges", "veth pairs", "macvlan"]
        .into_iter()
        .enumerate()
        .map(|(i, what)| {
            Check::present(
                what,
                kinds.get(i).copied().unwrap_or(false),
                "the kernel cannot create it: load its module (modprobe)",
            )
        })
        .collect()
}

/// The host tools the managed bridge runs.
#[derive(Debug, Clone, Copy)]
struct Tools {
    dnsmasq: bool,
    /// nft or iptables.
    firewall: bool,
}

fn tool_checks(t: Tools) -> Vec<Check> {
    vec![
        Check::present(
            "dnsmasq (managed bridge)",
            t.dnsmasq,
            "apt-get install dnsmasq-base",
        ),
        Check::present(
            "nft or iptables (NAT)",
            t.firewall,
            "apt-get install nftables",
        ),
    ]
}

fn forwarding_check(bridge: &str, blocker: Option<&str>) -> Check {
    let what = format!("Forwarding through {bridge}");
    match blocker {
        Some(b) => Check::missing(what, format!("{b}; {}", net::firewall::forward_fix(bridge))),
        None => Check::ok(what, "no FORWARD chain drops it"),
    }
}

/// `text`: /proc/sys/net/ipv4/ip_forward.
fn ip_forward_check(text: &str) -> Check {
    Check {
        what: "IPv4 forwarding".into(),
        verdict: Verdict::Info(if text.trim() == "1" {
            "on".into()
        } else {
            "off (rlxc turns it on with the managed bridge's NAT)".into()
        }),
    }
}

/// AppArmor as containers meet it: off in the kernel (nothing to do), or on with the
/// profile loaded or loadable; on without apparmor_parser no container can start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AppArmor {
    Off,
    Loaded(String),
    Loadable(String),
    NoParser,
}

impl AppArmor {
    fn probe() -> Self {
        if !apparmor::enabled() {
            return AppArmor::Off;
        }
        let name = apparmor::profile_name();
        if apparmor::is_loaded(&name) {
            AppArmor::Loaded(name)
        } else if apparmor::find_parser().is_some() {
            AppArmor::Loadable(name)
        } else {
            AppArmor::NoParser
        }
    }
}

fn apparmor_check(a: &AppArmor) -> Check {
    match a {
        AppArmor::Off => Check::ok(
            "AppArmor",
            "not enabled in this kernel: containers run without an LSM profile",
        ),
        AppArmor::Loaded(name) => Check::ok("AppArmor", format!("containers run under {name}")),
        AppArmor::Loadable(name) => Check::ok(
            "AppArmor",
            format!("containers run under {name}, loaded at the first start"),
        ),
        AppArmor::NoParser => Check::missing(
            "AppArmor",
            "enabled, but apparmor_parser is missing and no container can start: \
             apt-get install apparmor",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::parse_mountinfo;

    /// A layout whose cgroup2 mount is a temporary directory whose root offers
    /// `v2_controllers`, with v1 hierarchies for `v1` (mounted nowhere real: v1 answers
    /// from the mount options).
    fn layout(tmp: &Path, v2_controllers: &str, v1: &[&str]) -> Layout {
        std::fs::write(tmp.join("cgroup.controllers"), v2_controllers).unwrap();
        let mut text = format!("30 25 0:26 / {} rw - cgroup2 cgroup2 rw\n", tmp.display());
        for (i, c) in v1.iter().enumerate() {
            text += &format!("3{i} 25 0:2{i} / /nonexistent/{c} rw - cgroup cgroup rw,{c}\n");
        }
        parse_mountinfo(&text)
    }

    fn verdicts(checks: &[Check]) -> Vec<(&str, &Verdict)> {
        checks
            .iter()
            .map(|c| (c.what.as_str(), &c.verdict))
            .collect()
    }

    #[test]
    fn a_hybrid_host_without_a_v1_freezer_misses_the_freezer_only() {
        let tmp = tempfile::tempdir().unwrap();
        let checks = cgroup_checks(Ok(layout(tmp.path(), "", &["memory", "cpu", "pids"])));
        let ok = |d: &str| Verdict::Ok(d.into());
        assert_eq!(
            verdicts(&checks),
            [
                (
                    "Cgroup layout",
                    &ok("cgroup v1 controllers with a unified mount (hybrid)")
                ),
                ("Cgroup controller memory", &ok("")),
                ("Cgroup controller cpu", &ok("")),
                ("Cgroup controller pids", &ok("")),
                (
                    "Cgroup controller freezer",
                    &Verdict::Missing("limits using it are refused".into())
                ),
            ]
        );
    }

    #[test]
    fn a_pure_v2_host_freezes_without_a_controller_and_misses_what_its_root_lacks() {
        let tmp = tempfile::tempdir().unwrap();
        let checks = cgroup_checks(Ok(layout(tmp.path(), "cpu pids\n", &[])));
        assert_eq!(checks[0].verdict, Verdict::Ok("cgroup v2 (unified)".into()));
        let missing: Vec<&str> = checks
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Missing(_)))
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(missing, ["Cgroup controller memory"]);
    }

    #[test]
    fn no_cgroup_mount_is_one_problem_that_says_why() {
        let err = crate::error::Error::Other("no cgroup file system is mounted".into());
        let checks = cgroup_checks(Err(err));
        assert_eq!(
            verdicts(&checks),
            [(
                "Cgroup file system",
                &Verdict::Missing("no cgroup file system is mounted".into())
            )]
        );
    }

    #[test]
    fn a_probe_that_could_not_run_misses_every_link_kind() {
        let checks = link_checks(&[]);
        assert_eq!(checks.len(), 3);
        assert!(checks
            .iter()
            .all(|c| matches!(&c.verdict, Verdict::Missing(d) if d.contains("modprobe"))));
        let checks = link_checks(&[true, true, false]);
        assert_eq!(checks[1].verdict, Verdict::Ok(String::new()));
        assert_eq!(checks[2].what, "macvlan");
        assert!(matches!(checks[2].verdict, Verdict::Missing(_)));
    }

    #[test]
    fn problems_count_missing_checks_but_not_facts() {
        let report = HostReport {
            sections: vec![
                Section {
                    title: "Networking",
                    checks: [
                        tool_checks(Tools {
                            dnsmasq: false,
                            firewall: true,
                        }),
                        vec![
                            ip_forward_check("0\n"),
                            forwarding_check("br9", Some("policy drop")),
                        ],
                    ]
                    .concat(),
                },
                Section {
                    title: "Namespaces",
                    checks: namespace_checks(|ns| ns != "user"),
                },
            ],
        };
        assert_eq!(
            report.problems(),
            3,
            "dnsmasq, the FORWARD chain, the user namespace"
        );
        let fwd = &report.sections[0].checks[3];
        assert_eq!(fwd.what, "Forwarding through br9");
        assert!(
            matches!(&fwd.verdict, Verdict::Missing(d) if d.starts_with("policy drop; ") && d.contains("-i br9")),
            "{fwd:?}"
        );
        assert_eq!(ip_forward_check("1\n").verdict, Verdict::Info("on".into()));
    }

    #[test]
    fn apparmor_is_a_problem_only_when_on_without_its_parser() {
        let name = "rlxc-container-default-0".to_string();
        assert!(matches!(
            apparmor_check(&AppArmor::Off).verdict,
            Verdict::Ok(_)
        ));
        assert_eq!(
            apparmor_check(&AppArmor::Loaded(name.clone())).verdict,
            Verdict::Ok(format!("containers run under {name}"))
        );
        assert!(matches!(
            apparmor_check(&AppArmor::Loadable(name)).verdict,
            Verdict::Ok(d) if d.ends_with("loaded at the first start")
        ));
        assert!(matches!(
            apparmor_check(&AppArmor::NoParser).verdict,
            Verdict::Missing(d) if d.ends_with("apt-get install apparmor")
        ));
    }
}
