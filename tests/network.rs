//! Networking end to end, as root: the managed bridge with DHCP, DNS and NAT on a bridge
//! name and subnet each test makes up (never virbr0, never a real subnet), two Debian
//! containers that get addresses and reach each other by name, fixed and "auto"
//! addresses, macvlan, the errors that must name their fix, and a host left exactly as
//! it was. Traffic stays between the host and the test's own containers.
//!
//! The tests change host-wide state (bridges, nft tables, a FORWARD drop policy), so they
//! run one at a time.

mod common;

#[path = "network/bed.rs"]
mod bed;

use bed::*;
use common::*;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn two_debian_containers_get_addresses_and_reach_each_other_by_name() {
    let _s = serial();
    let before = host_state();
    {
        let mut h = Host::new(1);
        let a = h.create("debian", "bookworm", "a", &h.veth("ipv4 = \"dhcp\"\n"));
        let b = h.create("debian", "bookworm", "b", &h.veth("ipv4 = \"auto\"\n"));
        assert!(h.env.ok(&["net", "status"]).contains("missing"));
        h.env.ok(&["start", "-d", "-n", &a]);
        h.env.ok(&["start", "-d", "-n", &b]);
        let status = h.env.ok(&["net", "status"]);
        assert!(
            status.contains("rlxc's") && status.contains("running (pid"),
            "{status}"
        );

        let ip_a = h.wait_ipv4(&a, Duration::from_secs(60));
        let ip_b = h.wait_ipv4(&b, Duration::from_secs(60));
        assert!(
            ip_a.starts_with(&h.net.prefix),
            "{ip_a} not in {}",
            h.net.prefix
        );
        // "auto" picked an address once, recorded it, and the DHCP reservation gave it.
        let cfg_b = read(h.env.lxcpath().join(&b).join("config.toml"));
        assert!(
            cfg_b.contains(&format!("ipv4_assigned = \"{ip_b}/24\"")),
            "{ip_b}:\n{cfg_b}"
        );
        assert_ne!(ip_a, ip_b);

        // By name through the bridge's DNS, both ways, and the bridge's address.
        // (The address can show a moment before networkd hands the DNS server to resolved.)
        for (from, to) in [(&a, &b), (&b, &a)] {
            for target in [to.to_string(), format!("{to}.lxc")] {
                let t0 = Instant::now();
                loop {
                    let out = h.attach(from, &["ping", "-4", "-c1", "-W5", &target]);
                    if out.status.success() {
                        break;
                    }
                    let why = format!("{}{}", stdout(&out), stderr(&out));
                    assert!(
                        t0.elapsed() < Duration::from_secs(20),
                        "{from} → {target}: {why}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let out = h.attach(&a, &["ping", "-c1", "-W5", &h.net.gateway()]);
        assert!(out.status.success(), "{}", stdout(&out));
        // From the host, asking the bridge's DNS.
        let answer = h.lookup(&format!("{b}.lxc"));
        assert!(answer.contains(&ip_b), "{answer}");

        // IPv6 from the bridge's router advertisements, on both (each takes its own RA,
        // and the second may come later); ls -f shows the live addresses.
        for c in [&a, &b] {
            eventually(
                Duration::from_secs(30),
                &format!("no IPv6 address on {c} from the bridge's RAs"),
                || h.env.ok(&["info", "-n", c]).contains(&h.net.v6),
            );
        }
        let ls = h.env.ok(&["ls", "-f"]);
        assert!(ls.contains(&ip_a) && ls.contains(&ip_b), "{ls}");
        // The bridge is its segment's MLD/IGMP querier, so multicast goes to the groups'
        // members only: neighbour discovery between two containers must still work.
        let querier = format!("/sys/class/net/{}/bridge/multicast_querier", h.net.bridge);
        assert_eq!(read(&querier).trim(), "1", "{querier}");
        let out = h.attach(&b, &["ip", "-6", "-o", "addr", "show", "scope", "global"]);
        let v6_b = stdout(&out)
            .split_whitespace()
            .find_map(|w| w.strip_suffix("/64").filter(|a| a.starts_with(&h.net.v6)))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no global IPv6 address on {b}: {}", stdout(&out)));
        let out = h.attach(&a, &["ping", "-6", "-c1", "-W5", &v6_b]);
        assert!(out.status.success(), "{a} → {v6_b}: {}", stdout(&out));

        // A running bridge refuses to go; stopped containers take their veths with them.
        assert_eq!(h.ports().len(), 2, "{:?}", h.ports());
        let err = h.env.fails(&["net", "stop"]);
        assert!(err.contains("still has containers attached"), "{err}");
        h.env.ok(&["stop", "-k", "-n", &a]);
        h.env.ok(&["stop", "-n", &b]);
        eventually(Duration::from_secs(5), "veths left on the bridge", || {
            h.ports().is_empty()
        });
        // Starting again keeps b's address.
        h.env.ok(&["start", "-d", "-n", &b]);
        assert_eq!(h.wait_ipv4(&b, Duration::from_secs(60)), ip_b);
        h.env.ok(&["stop", "-k", "-n", &b]);
        let out = h.env.ok(&["net", "stop"]);
        assert!(out.contains("removed"), "{out}");
        assert!(h.env.ok(&["net", "status"]).contains("missing"));
    }
    assert_eq!(before, host_state(), "the host is not as it was");
}

#[test]
fn fixed_address_macvlan_and_several_interfaces() {
    let _s = serial();
    let mut h = Host::new(2);
    let dummy = plain_link();
    let fixed = format!("{}.50", h.net.prefix);
    let cfg = format!(
        "{}[[network]]\ntype = \"macvlan\"\nlink = \"{dummy}\"\nhwaddr = \"00:16:3e:00:00:42\"\n",
        h.veth(&format!("ipv4 = \"{fixed}/24\"\n"))
    );
    let name = h.create("busybox", &busybox_release(), "fixed", &cfg);
    h.env.ok(&["start", "-d", "-n", &name]);
    // Set before init runs; the image's DHCP client (udhcpc) flushes it and gets the
    // same address back from its reservation.
    eventually(
        Duration::from_secs(30),
        "the fixed address and route did not settle",
        || {
            let addr = stdout(&h.attach(&name, &["ip", "-4", "addr", "show", "eth0"]));
            let route = stdout(&h.attach(&name, &["ip", "route"]));
            addr.contains(&format!("{fixed}/24"))
                && route.contains(&format!("default via {}", h.net.gateway()))
        },
    );
    let mac = stdout(&h.attach(&name, &["cat", "/sys/class/net/eth1/address"]));
    assert_eq!(mac.trim(), "00:16:3e:00:00:42");
    let out = h.attach(&name, &["ping", "-c1", "-W5", &h.net.gateway()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // The fixed address is reserved for this container's MAC in the bridge's DHCP, one
    // file per container, named by its installation key (NAME.TAG), not its name alone.
    let dir = h
        .env
        .dir
        .path()
        .join("run/net")
        .join(format!("{}.dhcp-hosts.d", h.net.bridge));
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}.")))
        })
        .expect("a reservation file keyed NAME.TAG");
    let hosts = read(&file);
    assert!(hosts.contains(&format!(",{fixed},")), "{hosts}");
    h.env.ok(&["stop", "-k", "-n", &name]);

    // An "auto" address resolves by name from the start, with no DHCP client in the
    // container to tell dnsmasq (init is a sleep).
    let quiet = h.create(
        "busybox",
        &busybox_release(),
        "quiet",
        &format!(
            "[init]\ncmd = [\"/bin/sleep\", \"600\"]\n{}",
            h.veth("ipv4 = \"auto\"\n")
        ),
    );
    // Started under a strict umask (a hardened host's): dnsmasq, unprivileged, must
    // still read the name file the start writes.
    let rlxc = h.env.cmd(&["start", "-d", "-n", &quiet]);
    let mut start = Command::new("sh");
    start
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(rlxc.get_program())
        .args(rlxc.get_args());
    for (k, v) in rlxc.get_envs() {
        match v {
            Some(v) => start.env(k, v),
            None => start.env_remove(k),
        };
    }
    assert!(start.status().unwrap().success());
    let ip = h.wait_ipv4(&quiet, Duration::from_secs(10));
    let ip = ip.split('/').next().unwrap_or(&ip).to_string();
    eventually(
        Duration::from_secs(10),
        "the auto address does not resolve by name on the bridge's DNS",
        || h.lookup(&format!("{quiet}.lxc")).contains(&ip),
    );
    h.env.ok(&["stop", "-k", "-n", &quiet]);
}

/// A destroyed container takes its names, reservations and claims off the bridge, its
/// second interface's too: its name no longer resolves and its address is free again.
#[test]
fn a_destroyed_container_leaves_no_name_or_address_behind() {
    let _s = serial();
    let mut h = Host::new(8);
    // No DHCP client (init is a sleep): its addresses are rlxc's reservations alone,
    // never leases dnsmasq would keep for an hour. Both interfaces have an address on
    // the bridge; only the first sets the default route (a second one failed the start).
    let sleeper = |nets: &str| format!("[init]\ncmd = [\"/bin/sleep\", \"600\"]\n{nets}");
    let auto = h.veth("ipv4 = \"auto\"\n");
    let cfg = sleeper(&format!("{auto}{auto}"));
    let gone = h.create("busybox", &busybox_release(), "gone", &cfg);
    h.env.ok(&["start", "-d", "-n", &gone]);
    h.wait_ipv4(&gone, Duration::from_secs(10));
    // The name is eth0's: rlxc-info lists the addresses in the kernel's order.
    let eth0 = stdout(&h.attach(&gone, &["ip", "-4", "-o", "addr", "show", "eth0"]));
    let ip = eth0
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("eth0 has no IPv4: {eth0}"))
        .to_string();
    let name = format!("{gone}.lxc");
    eventually(Duration::from_secs(10), "the name does not resolve", || {
        h.lookup(&name)
            .contains(ip.split('/').next().unwrap_or(&ip))
    });
    h.env.ok(&["stop", "-k", "-n", &gone]);

    // Its files in RUNPATH/net, by name (reservations, names) or by target (claims).
    let key = common::rt::host_key(&h.env.lxcpath(), &gone);
    let net = h.env.dir.path().join("run/net");
    let of_gone = |what: &str| -> Vec<String> {
        let dir = net.join(format!("{}.{what}", h.net.bridge));
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let holder = std::fs::read_link(e.path())
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| name.clone());
                holder.starts_with(&key).then_some(name)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(of_gone("dhcp-hosts.d"), [key.clone(), format!("{key}-1")]);
    assert_eq!(of_gone("hosts.d"), [key.clone(), format!("{key}-1")]);
    // Two MACs and two addresses.
    assert_eq!(of_gone("claims.d").len(), 4, "{:?}", of_gone("claims.d"));

    h.env.ok(&["destroy", "-n", &gone]);
    for what in ["dhcp-hosts.d", "hosts.d", "claims.d"] {
        assert_eq!(of_gone(what), Vec::<String>::new(), "left in {what}");
    }
    // Names are read again at a (paced) reload.
    eventually(Duration::from_secs(10), "the name still resolves", || {
        h.lookup(&name).contains("NXDOMAIN")
    });
    // "auto" picks from the top of the subnet: the next container gets the address
    // the destroyed one held.
    let next = h.create("busybox", &busybox_release(), "next", &sleeper(&auto));
    h.env.ok(&["start", "-d", "-n", &next]);
    assert_eq!(h.wait_ipv4(&next, Duration::from_secs(10)), ip);
    h.env.ok(&["stop", "-k", "-n", &next]);
}

#[test]
fn a_bridge_rlxc_did_not_create_is_used_and_never_changed() {
    let _s = serial();
    let h = Host::new(3);
    sh_ok(&format!(
        "ip link add {0} type bridge && ip link set {0} up",
        h.net.bridge
    ));
    let before = host_state();
    let out = h.env.ok(&["net", "start"]);
    assert!(out.contains("not rlxc's"), "{out}");
    assert!(h.env.ok(&["net", "status"]).contains("not rlxc's"));
    let out = h.env.ok(&["net", "stop"]);
    assert!(out.contains("nothing to undo"), "{out}");
    assert_eq!(before, host_state());
    assert!(std::path::Path::new("/sys/class/net")
        .join(&h.net.bridge)
        .exists());
}

/// Each bad setup fails before anything is made, says what to do, and leaves the host
/// as it was.
#[test]
fn network_errors_name_the_fix_and_leave_nothing() {
    let _s = serial();
    let h = Host::new(4);
    let fails_cleanly = |args: &[&str], env: &[(&str, &str)], want: &[&str]| {
        let before = host_state();
        let mut cmd = h.env.cmd(args);
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            stdout(&out)
        );
        let err = stderr(&out);
        for w in want {
            assert!(err.contains(w), "{args:?}: {w:?} missing from:\n{err}");
        }
        assert_eq!(before, host_state(), "{args:?} left something behind");
        let state = h
            .env
            .dir
            .path()
            .join("run/net")
            .join(format!("{}.state", h.net.bridge));
        assert!(!state.exists(), "state file left");
    };

    // A subnet a host route already covers.
    let dummy = plain_link();
    let net16 = h.net.prefix.rsplit_once('.').unwrap().0;
    sh_ok(&format!("ip addr add {net16}.0.1/16 dev {dummy}"));
    fails_cleanly(
        &["net", "start"],
        &[],
        &["overlaps the host route", &dummy.0, "choose a subnet"],
    );

    // A bridge name that is a plain interface.
    h.env
        .write_config(&h.net.config().replace(&h.net.bridge, &dummy.0));
    fails_cleanly(
        &["net", "start"],
        &[],
        &[
            "network.bridge",
            "is not a bridge",
            "so rlxc creates the bridge",
        ],
    );
    drop(dummy);
    h.env.write_config(&h.net.config());

    // dnsmasq missing (a PATH with only the firewall tool on it).
    let bin = h.env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/sbin/nft", bin.join("nft")).unwrap();
    fails_cleanly(
        &["net", "start"],
        &[("PATH", bin.to_str().unwrap())],
        &["dnsmasq is not installed", "apt-get install dnsmasq-base"],
    );

    // The DNS port taken on every address by a process that is not ours.
    {
        let holder = UdpSocket::bind("0.0.0.0:53")
            .expect("this test needs UDP port 53 free on every address of the host");
        fails_cleanly(
            &["net", "start"],
            &[],
            &["cannot listen", "port 53", "stop what holds"],
        );
        drop(holder);
    }

    // A FORWARD chain that drops: the bridge's traffic would die there.
    let table = format!("rlxctest{}", std::process::id());
    sh_ok(&format!(
        "nft add table inet {table} && nft add chain inet {table} blockfwd '{{ type filter hook forward priority 0; policy drop; }}'"
    ));
    struct Table(String);
    impl Drop for Table {
        fn drop(&mut self) {
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", &self.0])
                .output();
        }
    }
    let guard = Table(table.clone());
    fails_cleanly(
        &["net", "start"],
        &[],
        &["policy drop", &table, "iptables -I FORWARD -i"],
    );
    let check = h.env.run(&["checkconfig"]);
    assert!(!check.status.success());
    assert!(
        stdout(&check).contains(&format!("Forwarding through {}", h.net.bridge))
            && stdout(&check).contains("policy drop"),
        "{}",
        stdout(&check)
    );
    drop(guard);
    let check = h.env.run(&["checkconfig"]);
    assert!(check.status.success(), "{}", stdout(&check));

    // And with all of that fixed, it works and goes away without a trace.
    let before = host_state();
    h.env.ok(&["net", "start"]);
    h.env.ok(&["net", "start"]); // idempotent
    h.env.ok(&["net", "stop"]);
    assert_eq!(before, host_state());
}

/// A child that fails after its namespaces are made (a bind mount of a missing host
/// path) takes its network namespace with it while the monitor wires the veth: the start
/// reports the child's reason, never the netlink error that follows, every time.
#[test]
fn a_failing_mount_is_reported_not_the_network_error_it_causes() {
    let _s = serial();
    let mut h = Host::new(7);
    let missing = h.env.dir.path().join("no-such-dir");
    let cfg = format!(
        "{}[[mount]]\nsource = \"{}\"\ntarget = \"mnt\"\noptions = \"bind\"\n",
        h.veth(""),
        missing.display()
    );
    let name = h.create("busybox", &busybox_release(), "failmnt", &cfg);
    // The managed bridge outlives a container's start by design: up before the baseline.
    h.env.ok(&["net", "start"]);
    for _ in 0..5 {
        let before = host_state();
        let err = h.env.fails(&["start", "-d", "-n", &name]);
        assert!(
            err.contains("no-such-dir") && !err.contains("netlink") && !err.contains("netns"),
            "{err}"
        );
        assert_eq!(before, host_state(), "a failed start left something behind");
    }
}

/// A host without nft: NAT and forwarding go in iptables, marked with a comment, and
/// only those rules go at rlxc-net stop.
#[test]
fn iptables_when_the_host_has_no_nft() {
    let _s = serial();
    let h = Host::new(6);
    let bin = h.env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["dnsmasq", "iptables"] {
        std::os::unix::fs::symlink(format!("/usr/sbin/{tool}"), bin.join(tool)).unwrap();
    }
    let path = [("PATH", bin.to_str().unwrap())];
    // iptables-nft leaves the built-in chains it needed as empty nft tables; make them
    // exist first so the comparison sees only rlxc's rules, and remove the ones this
    // test made at the end.
    struct Skeletons(Vec<&'static str>);
    impl Drop for Skeletons {
        fn drop(&mut self) {
            for t in &self.0 {
                let _ = Command::new("nft")
                    .args(["delete", "table", "ip", t])
                    .output();
            }
        }
    }
    let mut made = Skeletons(Vec::new());
    for (table, chain) in [("filter", "FORWARD"), ("nat", "POSTROUTING")] {
        let exists = Command::new("nft")
            .args(["list", "table", "ip", table])
            .output()
            .unwrap();
        if !exists.status.success() {
            made.0.push(table);
        }
        sh_ok(&format!(
            "iptables -t {table} -A {chain} -j RETURN && iptables -t {table} -D {chain} -j RETURN"
        ));
    }
    let before = host_state();
    let mut cmd = h.env.cmd(&["net", "start"]);
    cmd.envs(path);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let comment = format!("rlxc:{}", h.net.bridge);
    let rules = sh("iptables-save");
    assert_eq!(rules.matches(&comment).count(), 3, "{rules}");
    assert!(
        rules.contains(&format!("-s {}.0/24", h.net.prefix)) && rules.contains("MASQUERADE"),
        "{rules}"
    );
    assert!(h
        .env
        .ok(&["net", "status"])
        .contains(&format!("iptables rules commented {comment}")));
    let mut cmd = h.env.cmd(&["net", "stop"]);
    cmd.envs(path);
    assert!(cmd.output().unwrap().status.success());
    assert!(!sh("iptables-save").contains(&comment));
    assert_eq!(before, host_state());
}

#[test]
fn dnsmasq_that_dies_is_restarted() {
    let _s = serial();
    let h = Host::new(5);
    h.env.ok(&["net", "start"]);
    let pidfile = h
        .env
        .dir
        .path()
        .join("run/net")
        .join(format!("{}.dnsmasq.pid", h.net.bridge));
    let first = read(&pidfile).trim().to_string();
    sh_ok(&format!("kill -9 {first}"));
    eventually(Duration::from_secs(10), "dnsmasq was not restarted", || {
        let now = std::fs::read_to_string(&pidfile).unwrap_or_default();
        let now = now.trim();
        !now.is_empty() && now != first && std::path::Path::new(&format!("/proc/{now}")).exists()
    });
    assert!(h.env.ok(&["net", "status"]).contains("running (pid"));

    // A restart that fails (its DNS port taken) is tried again until one works. The
    // port is taken in the back-off before the restart (2 s by now).
    let second = read(&pidfile).trim().to_string();
    sh_ok(&format!("kill -9 {second}"));
    let mut holder = None;
    eventually(
        Duration::from_secs(1),
        "the DNS port did not come free",
        || {
            holder = UdpSocket::bind(format!("{}:53", h.net.gateway())).ok();
            holder.is_some()
        },
    );
    let log = h
        .env
        .dir
        .path()
        .join("run/net")
        .join(format!("{}.log", h.net.bridge));
    eventually(
        Duration::from_secs(10),
        "no failed restart was logged",
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("dnsmasq restart failed")),
    );
    drop(holder);
    eventually(
        Duration::from_secs(30),
        "dnsmasq was not restarted after a failed restart",
        || {
            let now = std::fs::read_to_string(&pidfile).unwrap_or_default();
            let now = now.trim();
            !now.is_empty()
                && now != second
                && std::path::Path::new(&format!("/proc/{now}")).exists()
        },
    );
    assert!(h.env.ok(&["net", "status"]).contains("running (pid"));
    h.env.ok(&["net", "stop"]);
    assert!(sh("pgrep -af '\\[rlxc net\\]'")
        .lines()
        .all(|l| !l.contains(&h.net.bridge)));
}

/// A plain (non-bridge) host interface for the test: one end of a veth pair (this
/// kernel may have no dummy driver); both ends go on drop.
struct PlainLink(String);

fn plain_link() -> PlainLink {
    let name = format!("rlxd{}", std::process::id() % 100_000);
    sh_ok(&format!(
        "ip link add {name} type veth peer name {name}p && ip link set {name} up"
    ));
    PlainLink(name)
}

impl Drop for PlainLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

impl std::fmt::Display for PlainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
