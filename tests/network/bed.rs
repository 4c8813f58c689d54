//! The test bed of tests/network.rs: a bridge name and subnets of the run's own, an
//! rlxc installation managing them, and what the host looked like.

use super::common::*;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn sh_ok(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// What the tests may change on the host: links, addresses, firewall, forwarding,
/// dnsmasq processes.
pub fn host_state() -> String {
    let links = sh("ip -o link show | awk -F': ' '{print $2}' | sort");
    let addrs = sh("ip -o addr show | awk '{print $2, $4}' | sort");
    let nft = sh("nft list ruleset 2>/dev/null");
    let ipt = sh("iptables-save 2>/dev/null | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'");
    let fwd = sh("cat /proc/sys/net/ipv4/ip_forward");
    let dnsmasq = sh("pgrep -a dnsmasq; pgrep -af '\\[rlxc net\\]'");
    format!("links:\n{links}\naddrs:\n{addrs}\nnft:\n{nft}\niptables:\n{ipt}\nip_forward {fwd}\nprocs:\n{dnsmasq}")
}

/// A bridge name and an IPv4/IPv6 subnet of this test run, unlikely to exist anywhere.
pub struct Net {
    pub bridge: String,
    pub prefix: String,
    pub v6: String,
}

impl Net {
    pub fn new(tag: u32) -> Self {
        let id = (std::process::id() * 7 + tag) % 200;
        Net {
            bridge: format!("rlxn{}x{tag}", std::process::id() % 100_000),
            prefix: format!("10.{}.{}", 210 + tag % 40, id + 20),
            v6: format!("fd42:7e57:{tag:x}:{id:x}"),
        }
    }

    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    pub fn config(&self) -> String {
        format!(
            "[network]\nbridge = \"{}\"\nipv4 = \"{}/24\"\nipv6 = \"{}::1/64\"\ndomain = \"lxc\"\nupstream_dns = false\n",
            self.bridge,
            self.gateway(),
            self.v6
        )
    }
}

/// An rlxc environment whose system config manages the test's bridge; everything it
/// made is stopped and removed on drop, whatever the test did.
pub struct Host {
    pub env: Env,
    _server: HttpServer,
    pub net: Net,
    pub names: Vec<String>,
}

impl Host {
    pub fn new(tag: u32) -> Self {
        let (env, server) = net_env();
        let net = Net::new(tag);
        env.write_config(&net.config());
        Host {
            env,
            _server: server,
            net,
            names: Vec::new(),
        }
    }

    pub fn create(&mut self, dist: &str, release: &str, tag: &str, config: &str) -> String {
        let name = format!("n{}-{tag}", std::process::id());
        self.env.create_with(&name, dist, release, config);
        self.names.push(name.clone());
        name
    }

    pub fn veth(&self, extra: &str) -> String {
        format!(
            "[[network]]\ntype = \"veth\"\nlink = \"{}\"\nhwaddr = \"00:16:3e:xx:xx:xx\"\n{extra}",
            self.net.bridge
        )
    }

    pub fn attach(&self, name: &str, cmd: &[&str]) -> std::process::Output {
        let mut v = vec!["attach", "-n", name, "--"];
        v.extend(cmd);
        self.env.run(&v)
    }

    /// The first IPv4 `rlxc-info` shows, waiting up to `limit` for one.
    pub fn wait_ipv4(&self, name: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let info = self.env.ok(&["info", "-n", name]);
            if let Some(ip) = info
                .lines()
                .filter_map(|l| l.strip_prefix("IP:"))
                .map(str::trim)
                .find(|a| a.contains('.'))
            {
                return ip.to_string();
            }
            assert!(
                t0.elapsed() < limit,
                "{name} got no IPv4 in {limit:?}:\n{info}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the bridge's DNS answers for `name`, asked from the host.
    pub fn lookup(&self, name: &str) -> String {
        let out = Command::new("busybox")
            .args(["nslookup", name, &self.net.gateway()])
            .output()
            .unwrap();
        format!("{}{}", stdout(&out), stderr(&out))
    }

    pub fn ports(&self) -> Vec<String> {
        super::common::rt::bridge_ports(&self.net.bridge)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        tear_down_net(&self.env, &self.names, &self.net.bridge);
    }
}

/// Wait for `cond`, failing with `what` after `limit`.
pub fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
