//! NAT and forwarding for the managed bridge, in nftables when the host has `nft`, else
//! iptables. rlxc's rules live in a table of its own (nft) or carry a comment naming
//! the bridge (iptables), so removing them never touches anybody else's.

use super::{run, run_stdin, which};
use crate::error::{Error, Result};

/// What rlxc added, as recorded in the bridge's state file.
#[derive(Debug, Clone, PartialEq)]
pub enum Rules {
    /// An nftables table of rlxc's own (`ip rlxc_BRIDGE`).
    Nft(String),
    /// iptables rules commented `rlxc:BRIDGE`.
    Iptables(String),
}

impl Rules {
    pub fn record(&self) -> String {
        match self {
            Rules::Nft(t) => format!("nft {t}"),
            Rules::Iptables(c) => format!("iptables {c}"),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(' ')? {
            ("nft", t) => Some(Rules::Nft(t.to_string())),
            ("iptables", c) => Some(Rules::Iptables(c.to_string())),
            _ => None,
        }
    }
}

pub fn table_name(bridge: &str) -> String {
    format!(
        "rlxc_{}",
        bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

/// Masquerade `cidr` leaving the host and accept forwarding through `bridge`.
pub fn add(bridge: &str, cidr: &str, nat: bool) -> Result<Rules> {
    if which("nft").is_some() {
        let t = table_name(bridge);
        let masq = if nat {
            format!("chain postrouting {{ type nat hook postrouting priority srcnat; ip saddr {cidr} ip daddr != {cidr} masquerade; }}\n")
        } else {
            String::new()
        };
        let rules = format!(
            "table ip {t} {{\n{masq}chain forward {{ type filter hook forward priority filter; \
             iifname \"{bridge}\" accept; oifname \"{bridge}\" ct state related,established accept; }}\n}}\n"
        );
        run_stdin("nft", &["-f", "-"], &rules)?;
        return Ok(Rules::Nft(t));
    }
    if which("iptables").is_some() {
        let c = format!("rlxc:{bridge}");
        let r = Rules::Iptables(c.clone());
        let res = iptables_rules(bridge, cidr, nat, &c)
            .iter()
            .try_for_each(|(table, rule)| {
                let mut args: Vec<&str> = vec!["-w", "-t", table, "-A"];
                args.extend(rule.iter().map(String::as_str));
                run("iptables", &args).map(|_| ())
            });
        if let Err(e) = res {
            remove(&r);
            return Err(e);
        }
        return Ok(r);
    }
    Err(Error::net(
        "neither nft nor iptables is installed: rlxc cannot add NAT for the bridge",
        "apt-get install nftables, or set nat = false in [network] of the system config",
    ))
}

/// iptables rules as (table, arguments after -A), each ending in its comment.
fn iptables_rules(
    bridge: &str,
    cidr: &str,
    nat: bool,
    comment: &str,
) -> Vec<(&'static str, Vec<String>)> {
    let mut out: Vec<(&str, Vec<&str>)> = vec![
        ("filter", vec!["FORWARD", "-i", bridge, "-j", "ACCEPT"]),
        (
            "filter",
            vec![
                "FORWARD",
                "-o",
                bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        ),
    ];
    if nat {
        out.push((
            "nat",
            vec![
                "POSTROUTING",
                "-s",
                cidr,
                "!",
                "-d",
                cidr,
                "-j",
                "MASQUERADE",
            ],
        ));
    }
    out.into_iter()
        .map(|(t, mut r)| {
            r.extend(["-m", "comment", "--comment", comment]);
            (t, r.into_iter().map(String::from).collect())
        })
        .collect()
}

/// Remove what `add` created; what is already gone is fine.
pub fn remove(r: &Rules) {
    match r {
        Rules::Nft(t) => {
            let _ = run("nft", &["delete", "table", "ip", t]);
        }
        Rules::Iptables(comment) => {
            // Delete every rule carrying our comment, in both tables.
            for table in ["filter", "nat"] {
                let listing = run("iptables", &["-w", "-t", table, "-S"]).unwrap_or_default();
                for line in listing
                    .lines()
                    .filter(|l| l.contains(comment.as_str()) && l.starts_with("-A "))
                {
                    let mut args = vec!["-w".to_string(), "-t".into(), table.into(), "-D".into()];
                    args.extend(shell_words(&line[3..]));
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    let _ = run("iptables", &refs);
                }
            }
        }
    }
}

/// iptables -S output words (comments are quoted when they contain spaces; ours do not).
fn shell_words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

/// A base chain on the forward hook whose policy drops, and which has no accept rule
/// for `bridge`: forwarded traffic of the bridge's containers would die there.
pub fn forward_blocker(bridge: &str) -> Option<String> {
    if which("nft").is_some() {
        if let Ok(rules) = run("nft", &["list", "ruleset"]) {
            if let Some(b) = nft_forward_blocker(&rules, bridge) {
                return Some(b);
            }
        }
    }
    // iptables-legacy rules are invisible to nft. Only ask when its filter table exists:
    // listing would create it in the kernel.
    let legacy = std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|t| t.lines().any(|l| l == "filter"));
    if legacy && which("iptables-legacy").is_some() {
        if let Ok(s) = run("iptables-legacy", &["-w", "-S", "FORWARD"]) {
            let accepted = s
                .lines()
                .any(|l| l.contains(&format!("-i {bridge} ")) && l.contains("ACCEPT"));
            if s.lines().any(|l| l.trim() == "-P FORWARD DROP") && !accepted {
                return Some("iptables-legacy: the FORWARD policy is DROP".into());
            }
        }
    }
    None
}

fn nft_forward_blocker(ruleset: &str, bridge: &str) -> Option<String> {
    let mut table = "";
    let mut chain = "";
    let mut in_dropping_chain = false;
    let mut accepts = false;
    for line in ruleset.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix("table ") {
            table = t.trim_end_matches(" {");
        } else if let Some(c) = line.strip_prefix("chain ") {
            chain = c.trim_end_matches(" {");
            in_dropping_chain = false;
            accepts = false;
        } else if line.contains("hook forward") && line.contains("policy drop") {
            in_dropping_chain = !table.contains("rlxc_");
        } else if in_dropping_chain
            && line.contains(&format!("iifname \"{bridge}\""))
            && line.contains("accept")
        {
            accepts = true;
        } else if line == "}" && in_dropping_chain {
            in_dropping_chain = false;
            if !accepts {
                return Some(format!("nftables: chain {chain} of table {table} drops forwarded packets (policy drop)"));
            }
        }
    }
    None
}

/// What to run to let `bridge` through a dropping FORWARD chain.
pub fn forward_fix(bridge: &str) -> String {
    format!(
        "allow the bridge's traffic, e.g. iptables -I FORWARD -i {bridge} -j ACCEPT; \
         iptables -I FORWARD -o {bridge} -j ACCEPT (or the same in that nft chain); \
         rlxc-checkconfig shows it again"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERISH: &str = "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t\tcounter packets 0 bytes 0 jump DOCKER-USER\n\t}\n}\ntable ip rlxc_virbr0 {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n";

    #[test]
    fn drop_policy_without_an_accept_is_found() {
        let b = nft_forward_blocker(DOCKERISH, "virbr0").unwrap();
        assert!(b.contains("FORWARD") && b.contains("ip filter"), "{b}");
    }

    #[test]
    fn accept_rule_for_the_bridge_clears_it() {
        let r = DOCKERISH.replace(
            "jump DOCKER-USER\n",
            "jump DOCKER-USER\n\t\tiifname \"virbr0\" counter packets 0 bytes 0 accept\n",
        );
        assert_eq!(nft_forward_blocker(&r, "virbr0"), None);
        assert!(nft_forward_blocker(&r, "br1").is_some());
    }

    #[test]
    fn own_table_and_accepting_chains_are_fine() {
        let r = "table ip rlxc_x {\n chain forward {\n type filter hook forward priority filter; policy drop;\n }\n}\n";
        assert_eq!(nft_forward_blocker(r, "x"), None);
    }

    #[test]
    fn iptables_rules_carry_the_comment() {
        let r = iptables_rules("virbr0", "10.0.3.0/24", true, "rlxc:virbr0");
        assert_eq!(r.len(), 3);
        assert!(r
            .iter()
            .all(|(_, v)| v.last().map(String::as_str) == Some("rlxc:virbr0")));
        assert_eq!(r[2].0, "nat");
        assert_eq!(
            Rules::parse(&Rules::Nft("rlxc_virbr0".into()).record()),
            Some(Rules::Nft("rlxc_virbr0".into()))
        );
    }
}
