//! The nft text of one container's published ports, and what a ruleset listing says
//! of every container's: both pure, so the rules and their reading are unit-tested.
//!
//! One table per container, `ip rlxc_pub_KEY`: its own base chains on the nat hooks,
//! so adding is one `nft -f` and removing one `delete table`, never touching a rule
//! of anybody else's. The table's comment says whose it is and what to undo; each DNAT
//! rule's comment says which entry it is, so the listing is all there is to read.

use std::net::Ipv4Addr;

use crate::config::{PortRange, Proto, Publish};

pub const TABLE_PREFIX: &str = "rlxc_pub_";
const RULE_TAG: &str = "rlxc-publish";
const TABLE_TAG: &str = "rlxc-ports";

/// What a container's table does.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The container's host key (`NAME.TAG`).
    pub key: String,
    pub name: String,
    pub bridge: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub entries: Vec<Publish>,
    /// The bridge's `route_localnet` before rlxc turned it on, to put back when the
    /// last table that needs it goes; None when this table does not need it.
    pub localnet_was: Option<String>,
}

pub fn table_name(key: &str) -> String {
    format!("{TABLE_PREFIX}{key}")
}

/// The table's text for `nft -f`.
pub fn render(s: &Spec) -> String {
    let ip = s.ip;
    let br = &s.bridge;
    let dnat: String = s
        .entries
        .iter()
        .map(|p| format!("\t\t{}\n", dnat_rule(p, ip)))
        .collect();
    // At most 128 bytes: the name is in the table's (the key).
    let mut comment = format!("{TABLE_TAG} bridge={br} ip={ip}/{}", s.prefix);
    // Host to container, through 127.0.0.1: the answers come back on the bridge to a
    // loopback address, which the kernel drops as martian unless route_localnet is on
    // for the bridge. That would also let the containers reach the host's loopback
    // services, so it comes with the two rules that stop them.
    let guards = match &s.localnet_was {
        Some(was) => {
            comment += &format!(" localnet_was={was}");
            format!(
                "\tchain lo_src {{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\
                 \t\tiifname \"{br}\" ip saddr 127.0.0.0/8 drop\n\t}}\n\
                 \tchain lo_dst {{\n\t\ttype filter hook input priority filter; policy accept;\n\
                 \t\tiifname \"{br}\" ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop\n\t}}\n"
            )
        }
        None => String::new(),
    };
    let net = subnet(ip, s.prefix);
    format!(
        "table ip {table} {{\n\tcomment \"{comment}\"\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n{dnat}\t}}\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n{dnat}\t}}\n\
         \tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{br}\" ip daddr {ip} ct status dnat fib saddr type local masquerade\n\
         \t\toifname \"{br}\" ip daddr {ip} ct status dnat ip saddr {net}/{prefix} masquerade\n\t}}\n\
         {guards}}}\n",
        table = table_name(&s.key),
        prefix = s.prefix,
    )
}

/// The host's own connections (127.0.0.1 among them, with `fib daddr type local`)
/// go the same way as those from outside: output and prerouting share the rules. The
/// masquerade above gives the container an answerable source for them (the host's
/// loopback, another container on the bridge, itself through the host).
fn dnat_rule(p: &Publish, ip: Ipv4Addr) -> String {
    let proto = p.proto.as_str();
    let daddr = p
        .host_address()
        .map(|a| format!(" ip daddr {a}"))
        .unwrap_or_default();
    // `dnat to IP:80-90` would pick any port of the range: a map keeps host port N on
    // container port N - offset.
    let to = if p.host == p.container {
        ip.to_string()
    } else if p.host.len() == 1 {
        format!("{ip}:{}", p.container.first)
    } else {
        let pairs: Vec<String> = p
            .host
            .ports()
            .zip(p.container.ports())
            .map(|(h, c)| format!("{h} : {c}"))
            .collect();
        format!("{ip} : {proto} dport map {{ {} }}", pairs.join(", "))
    };
    format!(
        "fib daddr type local{daddr} {proto} dport {} dnat to {to} comment \"{RULE_TAG} {proto} {} {} {}\"",
        p.host,
        p.address.unwrap_or(Ipv4Addr::UNSPECIFIED),
        p.host,
        p.container
    )
}

fn subnet(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) & mask)
}

/// Every container's table in `ruleset` (`nft list ruleset ip`), of any installation.
pub fn parse(ruleset: &str) -> Vec<Spec> {
    let mut out: Vec<Spec> = Vec::new();
    let mut in_ours = false;
    for line in ruleset.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix("table ip ") {
            let name = t.trim_end_matches('{').trim();
            in_ours = false;
            if let Some(key) = name.strip_prefix(TABLE_PREFIX) {
                in_ours = true;
                out.push(Spec {
                    key: key.to_string(),
                    name: key.rsplit_once('.').map_or(key, |k| k.0).to_string(),
                    bridge: String::new(),
                    ip: Ipv4Addr::UNSPECIFIED,
                    prefix: 32,
                    entries: Vec::new(),
                    localnet_was: None,
                });
            }
            continue;
        }
        let Some(spec) = out.last_mut().filter(|_| in_ours) else {
            continue;
        };
        let Some(text) = line
            .split_once("comment \"")
            .and_then(|(_, c)| c.strip_suffix('"'))
        else {
            continue;
        };
        if let Some(fields) = text.strip_prefix(TABLE_TAG) {
            read_table_comment(spec, fields);
        } else if let Some(p) = text.strip_prefix(RULE_TAG).and_then(read_rule_comment) {
            // Each entry is in both nat chains.
            if !spec.entries.contains(&p) {
                spec.entries.push(p);
            }
        }
    }
    out
}

fn read_table_comment(spec: &mut Spec, fields: &str) {
    for (k, v) in fields.split_whitespace().filter_map(|f| f.split_once('=')) {
        match k {
            "bridge" => spec.bridge = v.to_string(),
            "localnet_was" => spec.localnet_was = Some(v.to_string()),
            "ip" => {
                if let Some((a, p)) = v.split_once('/') {
                    spec.ip = a.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
                    spec.prefix = p.parse().unwrap_or(32);
                }
            }
            _ => {}
        }
    }
}

fn read_rule_comment(fields: &str) -> Option<Publish> {
    let f: Vec<&str> = fields.split_whitespace().collect();
    let [proto, addr, host, container] = f[..] else {
        return None;
    };
    let address: Ipv4Addr = addr.parse().ok()?;
    Some(Publish {
        host: host.parse::<PortRange>().ok()?,
        container: container.parse::<PortRange>().ok()?,
        proto: proto.parse::<Proto>().ok()?,
        address: (!address.is_unspecified()).then_some(address),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, container: &str, proto: Proto, address: Option<&str>) -> Publish {
        Publish {
            host: host.parse().unwrap(),
            container: container.parse().unwrap(),
            proto,
            address: address.map(|a| a.parse().unwrap()),
        }
    }

    fn spec() -> Spec {
        Spec {
            key: "web-1.ab12cd34".into(),
            name: "web-1".into(),
            bridge: "br0".into(),
            ip: "10.0.3.50".parse().unwrap(),
            prefix: 24,
            entries: vec![
                entry("8080", "80", Proto::Tcp, None),
                entry("9000-9001", "90-91", Proto::Tcp, Some("192.0.2.7")),
                entry("5353-5354", "5353-5354", Proto::Udp, Some("127.0.0.1")),
            ],
            localnet_was: Some("0".into()),
        }
    }

    #[test]
    fn one_rule_per_entry_in_both_nat_chains() {
        let t = render(&spec());
        assert!(t.starts_with("table ip rlxc_pub_web-1.ab12cd34 {\n"), "{t}");
        for rule in [
            "fib daddr type local tcp dport 8080 dnat to 10.0.3.50:80 comment \"rlxc-publish tcp 0.0.0.0 8080 80\"",
            "fib daddr type local ip daddr 192.0.2.7 tcp dport 9000-9001 dnat to 10.0.3.50 : tcp dport map { 9000 : 90, 9001 : 91 } comment",
            "fib daddr type local ip daddr 127.0.0.1 udp dport 5353-5354 dnat to 10.0.3.50 comment",
        ] {
            assert_eq!(t.matches(rule).count(), 2, "{rule} in\n{t}");
        }
        assert!(
            t.contains(
                "oifname \"br0\" ip daddr 10.0.3.50 ct status dnat ip saddr 10.0.3.0/24 masquerade"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "iifname \"br0\" ip daddr 127.0.0.0/8 ct state != { established, related } drop"
            ),
            "{t}"
        );
        let mut no_lo = spec();
        no_lo.localnet_was = None;
        assert!(!render(&no_lo).contains("127.0.0.0/8"));
    }

    /// What `render` writes, as nft lists it back (tabs, a listing of other tables
    /// around it, the map's port printed the way nft does), reads back equal.
    #[test]
    fn a_listing_reads_back_what_was_rendered() {
        let mut s = spec();
        let listing = format!(
            "table ip filter {{\n\tchain FORWARD {{\n\t\ttype filter hook forward priority filter; policy drop;\n\t\tcomment \"rlxc-publish tcp 0.0.0.0 1 1\"\n\t}}\n}}\n{}table ip rlxc_virbr0 {{\n}}\n",
            render(&s).replace("10.0.3.50 : tcp", "10.0.3.50:tcp")
        );
        let got = parse(&listing);
        assert_eq!(got, vec![s.clone()]);
        s.localnet_was = None;
        s.entries.truncate(1);
        assert_eq!(parse(&render(&s)), vec![s]);
    }

    #[test]
    fn comments_fit_nfts_128_bytes_whatever_the_names() {
        let mut s = spec();
        s.name = "n".repeat(64);
        s.key = format!("{}.ffffffff", s.name);
        s.bridge = "b".repeat(15);
        s.ip = "255.255.255.254".parse().unwrap();
        s.entries = vec![entry(
            "65534-65535",
            "65534-65535",
            Proto::Udp,
            Some("255.255.255.254"),
        )];
        let t = render(&s);
        for c in t.split("comment \"").skip(1) {
            let len = c.find('"').unwrap();
            assert!(len <= 128, "{len}: {c}");
        }
        assert_eq!(parse(&t), vec![s]);
    }

    #[test]
    fn subnets() {
        let ip = "10.0.3.50".parse().unwrap();
        assert_eq!(subnet(ip, 24).to_string(), "10.0.3.0");
        assert_eq!(subnet(ip, 0).to_string(), "0.0.0.0");
        assert_eq!(subnet(ip, 32).to_string(), "10.0.3.50");
    }
}
