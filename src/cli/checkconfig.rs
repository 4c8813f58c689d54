//! rlxc-checkconfig: what this host offers containers, and what would stop them.
//! Like lxc-checkconfig, but it also checks what rlxc itself relies on (the managed
//! bridge's tools, the firewall's FORWARD policy) and names the fix for each problem.

use std::path::Path;

use super::Common;
use crate::error::Result;
use crate::net::firewall;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: Common,
}

struct Report {
    problems: usize,
}

impl Report {
    fn line(&mut self, what: &str, ok: bool, detail: &str) {
        if !ok {
            self.problems += 1;
        }
        let mark = if ok { "ok" } else { "MISSING" };
        if detail.is_empty() {
            println!("{what:<34} {mark}");
        } else {
            println!("{what:<34} {mark}: {detail}");
        }
    }
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let mut r = Report { problems: 0 };
    println!("--- Namespaces ---");
    for (ns, what) in [
        ("mnt", "Mount namespace"),
        ("pid", "PID namespace"),
        ("uts", "UTS namespace"),
        ("ipc", "IPC namespace"),
        ("net", "Network namespace"),
        ("cgroup", "Cgroup namespace"),
        ("user", "User namespace"),
    ] {
        r.line(what, Path::new("/proc/self/ns").join(ns).exists(), "");
    }
    println!("--- Control groups ---");
    match crate::cgroup::Layout::detect() {
        Ok(l) => {
            let kind = if l.is_pure_v2() {
                "cgroup v2 (unified)"
            } else {
                "cgroup v1 controllers with a unified mount (hybrid)"
            };
            r.line("Cgroup layout", true, kind);
            for c in ["memory", "cpu", "pids", "freezer"] {
                let found = l.controller(c).is_some() || (c == "freezer" && l.is_pure_v2());
                r.line(
                    &format!("Cgroup controller {c}"),
                    found,
                    if found {
                        ""
                    } else {
                        "limits using it are refused"
                    },
                );
            }
        }
        Err(e) => r.line("Cgroup file system", false, &e.to_string()),
    }
    println!("--- Networking ---");
    let links = crate::net::link::probe_kinds();
    for (i, what) in ["Bridges", "veth pairs", "macvlan"].into_iter().enumerate() {
        let ok = links.get(i).copied().unwrap_or(false);
        r.line(
            what,
            ok,
            if ok {
                ""
            } else {
                "the kernel cannot create it: load its module (modprobe)"
            },
        );
    }
    let br = &sys.network.bridge;
    let dnsmasq = crate::net::which("dnsmasq").is_some();
    r.line(
        "dnsmasq (managed bridge)",
        dnsmasq,
        if dnsmasq {
            ""
        } else {
            "apt-get install dnsmasq-base"
        },
    );
    let fw = crate::net::which("nft").is_some() || crate::net::which("iptables").is_some();
    r.line(
        "nft or iptables (NAT)",
        fw,
        if fw { "" } else { "apt-get install nftables" },
    );
    match firewall::forward_blocker(br) {
        Some(b) => r.line(
            &format!("Forwarding through {br}"),
            false,
            &format!("{b}; {}", firewall::forward_fix(br)),
        ),
        None => r.line(
            &format!("Forwarding through {br}"),
            true,
            "no FORWARD chain drops it",
        ),
    }
    let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    println!(
        "{:<34} {}",
        "IPv4 forwarding",
        if fwd.trim() == "1" {
            "on"
        } else {
            "off (rlxc turns it on with the managed bridge's NAT)"
        }
    );
    println!("--- Security ---");
    let seccomp =
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("Seccomp:"));
    r.line("Seccomp", seccomp, "");
    apparmor(&mut r);
    if r.problems > 0 {
        println!("\n{} problem(s) found", r.problems);
        return Ok(1);
    }
    Ok(0)
}

/// AppArmor: off in the kernel (nothing to do), or on with the profile loaded or
/// loadable; on without apparmor_parser no container can start, which is a problem.
fn apparmor(r: &mut Report) {
    use crate::apparmor;
    if !apparmor::enabled() {
        r.line(
            "AppArmor",
            true,
            "not enabled in this kernel: containers run without an LSM profile",
        );
        return;
    }
    let name = apparmor::profile_name();
    if apparmor::is_loaded(&name) {
        r.line("AppArmor", true, &format!("containers run under {name}"));
    } else if apparmor::find_parser().is_some() {
        r.line(
            "AppArmor",
            true,
            &format!("containers run under {name}, loaded at the first start"),
        );
    } else {
        r.line(
            "AppArmor",
            false,
            "enabled, but apparmor_parser is missing and no container can start: \
             apt-get install apparmor",
        );
    }
}
