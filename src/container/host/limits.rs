//! Kernel limits that many containers on one host reach (`rlxc-checkconfig
//! --containers N`): each check names the sysctl, its value here, what N containers need
//! and the line that sets it. Estimates per container are a systemd container's with
//! room to spare (measured: a Debian 12 one holds 9 inotify instances, 29 watches).
//!
//! inotify limits count per host user: every privileged container's root is the host's
//! root and they all share one count, while an unprivileged container's root is a host
//! user of its own, so only privileged containers add up there.

use super::{Check, Section, Verdict};

/// How many containers the host is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub containers: u64,
    /// Of them, privileged.
    pub privileged: u64,
}

/// One limit: `need` for `plan`, what it is for.
struct Limit {
    key: &'static str,
    need: fn(&Plan) -> u64,
    what: &'static str,
}

const LIMITS: [Limit; 6] = [
    Limit {
        key: "fs.inotify.max_user_instances",
        // The host's own services, then each privileged systemd's (shared by root).
        need: |p| 128 + 16 * p.privileged,
        what: "inotify instances of root, shared by privileged containers",
    },
    Limit {
        key: "fs.inotify.max_user_watches",
        need: |p| 8192 + 1024 * p.privileged,
        what: "inotify watches of root, shared by privileged containers",
    },
    Limit {
        key: "net.ipv4.neigh.default.gc_thresh3",
        // One table for all network namespaces: the host's entry for each container on
        // its bridges and each container's for its gateway. Sized for the host's alone,
        // it overflowed at 1000 and containers stopped answering ARP (and ping).
        need: |p| 256 + 2 * p.containers,
        what: "IPv4 neighbour entries (two per container on a bridge: the host's, its own)",
    },
    Limit {
        key: "net.ipv6.neigh.default.gc_thresh3",
        need: |p| 256 + 2 * p.containers,
        what: "IPv6 neighbour entries (two per container on a bridge: the host's, its own)",
    },
    Limit {
        key: "kernel.pid_max",
        need: |p| 4096 + 32 * p.containers,
        what: "process ids (init, its services, each container's monitor)",
    },
    Limit {
        key: "kernel.pty.max",
        // The host's reserved 1024 (kernel.pty.reserve), its own sessions, then each
        // container's console and 4 ttys (tty_max's default).
        need: |p| 1024 + 256 + 5 * p.containers,
        what: "ptys (each container's console and its tty_max ttys)",
    },
];

/// The section, reading each value under /proc/sys.
pub(super) fn section(plan: Plan) -> Section {
    let read = |key: &str| {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
    };
    Section {
        title: "Kernel limits (many containers)",
        checks: limit_checks(&read, plan),
    }
}

fn limit_checks(read: &dyn Fn(&str) -> Option<u64>, plan: Plan) -> Vec<Check> {
    let mut v: Vec<Check> = LIMITS
        .iter()
        .map(|l| {
            let need = (l.need)(&plan);
            let verdict = match read(l.key) {
                None => Verdict::Info(format!("unreadable here ({})", l.what)),
                Some(have) if have >= need => Verdict::Ok(format!(
                    "{have}, enough for {} containers ({} privileged)",
                    plan.containers, plan.privileged
                )),
                Some(have) => Verdict::Missing(format!(
                    "{have}, {} containers ({} privileged) need {need} ({}): sysctl -w \
                     {}={need}, and the same line in /etc/sysctl.d/rlxc.conf",
                    plan.containers, plan.privileged, l.what, l.key
                )),
            };
            Check {
                what: l.key.into(),
                verdict,
            }
        })
        .collect();
    v.push(Check {
        what: "Bridge ports".into(),
        verdict: Verdict::Info(format!(
            "at most {} interfaces on one Linux bridge: more containers need a second \
                 bridge (network.bridge of another installation, or `link` in their config)",
            crate::net::link::BRIDGE_MAX_PORTS
        )),
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_below_the_need_names_the_sysctl_and_the_value() {
        let plan = Plan {
            containers: 800,
            privileged: 10,
        };
        let read = |k: &str| match k {
            "kernel.pid_max" => Some(32768),
            "kernel.pty.max" => Some(4096),
            "fs.inotify.max_user_instances" => Some(128),
            _ => None,
        };
        let checks = limit_checks(&read, plan);
        let by = |k: &str| &checks.iter().find(|c| c.what == k).unwrap().verdict;
        assert_eq!(
            by("kernel.pid_max"),
            &Verdict::Ok("32768, enough for 800 containers (10 privileged)".into())
        );
        assert!(
            matches!(by("fs.inotify.max_user_instances"),
                Verdict::Missing(d) if d.starts_with("128, 800 containers (10 privileged) need 288")
                    && d.contains("sysctl -w fs.inotify.max_user_instances=288")),
            "{:?}",
            by("fs.inotify.max_user_instances")
        );
        assert!(matches!(
            by("net.ipv4.neigh.default.gc_thresh3"),
            Verdict::Info(_)
        ));
        // 800 containers' consoles and ttys pass the default 4096 (1000 did not).
        assert!(
            matches!(by("kernel.pty.max"),
                Verdict::Missing(d) if d.contains("sysctl -w kernel.pty.max=5280")),
            "{:?}",
            by("kernel.pty.max")
        );
        // Unprivileged containers do not share root's inotify count.
        let unpriv = Plan {
            containers: 800,
            privileged: 0,
        };
        let checks = limit_checks(&read, unpriv);
        assert!(matches!(
            checks[0].verdict,
            Verdict::Ok(ref d) if d.starts_with("128, enough")
        ));
    }
}
