//! The managed bridge (`[network]` of rlxc.toml): created through netlink when missing,
//! with its address, DHCP and DNS (dnsmasq), IP forwarding and NAT. What rlxc did is
//! recorded in RUNPATH/net/BRIDGE.state so `rlxc-net stop` undoes exactly that; a bridge
//! rlxc did not create is only used, never changed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::dnsmasq::{self, Files};
use super::firewall::{self, Rules};
use super::netlink::Netlink;
use super::subnet::{self, Subnet};
use crate::config::{NetworkSettings, SystemConfig};
use crate::error::{Error, IoContext, Result};

const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// What rlxc created for a bridge.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct State {
    pub created_bridge: bool,
    pub dnsmasq: bool,
    pub rules: Option<Rules>,
    /// ip_forward before rlxc turned it on.
    pub forward_was: Option<String>,
}

impl State {
    fn parse(text: &str) -> Self {
        let mut s = State::default();
        for l in text.lines() {
            match l.split_once(' ').unwrap_or((l, "")) {
                ("bridge", _) => s.created_bridge = true,
                ("dnsmasq", _) => s.dnsmasq = true,
                ("rules", r) => s.rules = Rules::parse(r),
                ("forward_was", v) => s.forward_was = Some(v.to_string()),
                _ => {}
            }
        }
        s
    }

    fn render(&self) -> String {
        let mut t = String::new();
        if self.created_bridge {
            t += "bridge\n";
        }
        if self.dnsmasq {
            t += "dnsmasq\n";
        }
        if let Some(r) = &self.rules {
            t += &format!("rules {}\n", r.record());
        }
        if let Some(f) = &self.forward_was {
            t += &format!("forward_was {f}\n");
        }
        t
    }
}

/// How a bridge stands: missing, someone else's, or rlxc's.
#[derive(Debug, PartialEq)]
pub enum Kind {
    Missing,
    Foreign,
    Managed(State),
}

pub struct Managed<'a> {
    pub settings: &'a NetworkSettings,
    pub subnet: Subnet,
    pub files: Files,
    config_file: String,
}

/// A lock on one bridge's set-up: concurrent starts create it once.
pub struct BridgeLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl BridgeLock {
    fn take(files: &Files) -> Result<Self> {
        super::lock_file(&files.path("lock")).map(BridgeLock)
    }
}

/// Release a destroyed container's reservations and names (`names::release`) on every
/// bridge rlxc keeps them for in `runpath`, each under its lock. Found by the key, not
/// the container's config: the config may name another bridge now than the one it was
/// started on, or no longer load at all, and the bridge may be stopped.
pub fn release(runpath: &Path, key: &str) -> Result<()> {
    let dir = runpath.join("net");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("read", &dir),
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(bridge) = name
            .to_str()
            .and_then(|n| n.strip_suffix(super::names::DHCP_DIR)?.strip_suffix('.'))
        else {
            continue;
        };
        let files = Files {
            dir: dir.clone(),
            bridge: bridge.to_string(),
        };
        let _lock = BridgeLock::take(&files)?;
        super::names::release(&files, key)?;
    }
    Ok(())
}

impl<'a> Managed<'a> {
    pub fn new(sys: &'a SystemConfig) -> Result<Self> {
        let config_file = sys
            .file
            .as_ref()
            .map_or("the system config".to_string(), |f| f.display().to_string());
        let subnet = Subnet::from(sys.network.ipv4);
        Ok(Managed {
            settings: &sys.network,
            subnet,
            files: Files {
                dir: sys.runpath.join("net"),
                bridge: sys.network.bridge.clone(),
            },
            config_file,
        })
    }

    pub fn bridge(&self) -> &str {
        &self.settings.bridge
    }

    fn exists(&self) -> bool {
        Path::new("/sys/class/net").join(self.bridge()).exists()
    }

    fn state(&self) -> Option<State> {
        std::fs::read_to_string(self.files.path("state"))
            .ok()
            .map(|t| State::parse(&t))
    }

    fn save(&self, st: &State) -> Result<()> {
        crate::store::write_atomic(&self.files.path("state"), st.render().as_bytes(), 0o644)
    }

    pub fn kind(&self) -> Kind {
        match (self.exists(), self.state()) {
            (_, Some(st)) => Kind::Managed(st),
            (true, None) => Kind::Foreign,
            (false, None) => Kind::Missing,
        }
    }

    pub fn lock(&self) -> Result<BridgeLock> {
        // dnsmasq, running unprivileged, re-reads the hosts file here.
        if let Some(runpath) = self.files.dir.parent() {
            crate::store::mkdir_p(runpath, 0o755)?;
        }
        super::names::make_dir(&self.files.dir)?;
        BridgeLock::take(&self.files)
    }

    /// Make the bridge usable: create what is missing (idempotent). A bridge that
    /// exists without rlxc's state is someone else's: checked, never changed.
    pub fn ensure(&self, _lock: &BridgeLock) -> Result<String> {
        match self.kind() {
            Kind::Foreign => {
                if !Path::new("/sys/class/net")
                    .join(self.bridge())
                    .join("bridge")
                    .is_dir()
                {
                    return Err(Error::net(
                        format!(
                            "network.bridge = {:?} in {}: {0} exists and is not a bridge",
                            self.bridge(),
                            self.config_file
                        ),
                        "name an existing bridge, or a name no interface has so rlxc creates the bridge",
                    ));
                }
                Ok(format!(
                    "{} exists and is not rlxc's: containers are attached to it as it is",
                    self.bridge()
                ))
            }
            Kind::Managed(st) if self.exists() => {
                if st.dnsmasq && dnsmasq::live_pid(&self.files.supervisor_pid(), "rlxc").is_none() {
                    // A dnsmasq orphaned by a killed supervisor would hold the ports.
                    dnsmasq::stop(&self.files);
                    self.start_dnsmasq()?;
                    return Ok(format!(
                        "{}: dnsmasq was not running; started it again",
                        self.bridge()
                    ));
                }
                Ok(format!("{} is up ({})", self.bridge(), self.settings.ipv4))
            }
            Kind::Managed(st) => {
                // Deleted behind rlxc's back: clear the rest, then build it again.
                self.teardown(&st);
                self.create()
            }
            Kind::Missing => self.create(),
        }
    }

    fn create(&self) -> Result<String> {
        self.preflight()?;
        let mut st = State::default();
        if let Err(e) = self.build(&mut st) {
            self.teardown(&st);
            return Err(e);
        }
        Ok(format!(
            "created {} ({}) with DHCP and DNS (.{}){}",
            self.bridge(),
            self.settings.ipv4,
            self.settings.domain,
            if self.settings.nat { " and NAT" } else { "" }
        ))
    }

    /// Each step is recorded before the next, so a failure (or a crash) undoes exactly
    /// what was done.
    fn build(&self, st: &mut State) -> Result<()> {
        let br = self.bridge();
        let nl = Netlink::open()?;
        let idx = nl.add_bridge(br)?;
        st.created_bridge = true;
        self.save(st)?;
        nl.add_address(idx, IpAddr::V4(self.subnet.addr), self.subnet.prefix, br)?;
        if let Some(v6) = &self.settings.ipv6 {
            nl.add_address(idx, IpAddr::V6(v6.0.ip()), v6.0.prefix(), br)?;
        }
        nl.set_up(idx, br)?;
        super::names::make_dirs(&self.files)?;
        st.dnsmasq = true;
        self.save(st)?;
        self.start_dnsmasq()?;
        let fwd = std::fs::read_to_string(FORWARD)
            .unwrap_or_default()
            .trim()
            .to_string();
        if fwd != "1" {
            st.forward_was = Some(fwd);
            self.save(st)?;
            std::fs::write(FORWARD, "1").ctx("enable IPv4 forwarding in", FORWARD)?;
        }
        st.rules = Some(firewall::add(br, &self.subnet.cidr(), self.settings.nat)?);
        self.save(st)
    }

    /// The errors worth finding before anything is created, each with its fix.
    pub fn preflight(&self) -> Result<()> {
        let br = self.bridge();
        if let Some((dest, prefix, dev)) = host_routes()
            .into_iter()
            .find(|(d, p, dev)| dev != br && self.subnet.overlaps(*d, *p))
        {
            return Err(Error::net(
                format!(
                    "the bridge subnet {} ({} in [network] of {}) overlaps the host route {dest}/{prefix} on {dev}",
                    self.subnet.cidr(),
                    self.settings.ipv4,
                    self.config_file
                ),
                format!("choose a subnet no host route covers (ip route shows them) in network.ipv4 of {}", self.config_file),
            ));
        }
        if let Some(r) = &self.settings.dhcp_range {
            subnet::check_range(r, &self.subnet).map_err(|why| {
                Error::net(
                    format!("network.dhcp_range = \"{r}\": {why}"),
                    format!("fix it in {}", self.config_file),
                )
            })?;
        }
        if let Some(d) = untraversable(&self.files.dir) {
            return Err(Error::net(
                format!(
                    "{} is not searchable by others, so dnsmasq (which drops root) cannot re-read \
                     the DHCP reservations in {}",
                    d.display(),
                    self.files.dir.display()
                ),
                format!("chmod o+x {}, or point runpath elsewhere", d.display()),
            ));
        }
        if super::which("dnsmasq").is_none() {
            return Err(Error::net(
                format!("dnsmasq is not installed: rlxc runs it for the DHCP and DNS of {br}"),
                "apt-get install dnsmasq-base (or dnf install dnsmasq)",
            ));
        }
        if super::which("nft").is_none() && super::which("iptables").is_none() {
            return Err(Error::net(
                format!("neither nft nor iptables is installed: rlxc needs one for the forwarding and NAT of {br}"),
                "apt-get install nftables (or iptables)",
            ));
        }
        if self.forwarding_matters() {
            if let Some(b) = firewall::forward_blocker(br) {
                return Err(Error::net(
                    format!("{b}: the containers' traffic through {br} would be dropped"),
                    firewall::forward_fix(br),
                ));
            }
        }
        Ok(())
    }

    /// Forwarded traffic exists with NAT, and between containers when bridged frames
    /// go through iptables (br_netfilter).
    fn forwarding_matters(&self) -> bool {
        self.settings.nat
            || std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .is_ok_and(|v| v.trim() == "1")
    }

    fn dnsmasq_options(&self) -> dnsmasq::Options<'_> {
        let range = self
            .settings
            .dhcp_range
            .and_then(|r| subnet::check_range(&r, &self.subnet).ok())
            .unwrap_or_else(|| self.subnet.host_range());
        dnsmasq::Options {
            bridge: self.bridge(),
            listen: self.subnet.addr,
            range,
            netmask: Ipv4Addr::from(u32::MAX << (32 - u32::from(self.subnet.prefix))),
            domain: &self.settings.domain,
            ipv6: self.settings.ipv6.is_some(),
            upstream_dns: self.settings.upstream_dns,
        }
    }

    fn start_dnsmasq(&self) -> Result<()> {
        dnsmasq::start(&self.dnsmasq_options(), &self.files)
    }

    /// Remove exactly what rlxc created. Refuses while containers are attached.
    pub fn stop(&self, _lock: &BridgeLock, force: bool) -> Result<String> {
        let st = match self.kind() {
            Kind::Managed(st) => st,
            Kind::Foreign => {
                return Ok(format!("{} is not rlxc's: nothing to undo", self.bridge()))
            }
            Kind::Missing => {
                return Ok(format!("{} does not exist: nothing to undo", self.bridge()))
            }
        };
        if self.exists() && !force {
            let nl = Netlink::open()?;
            if let Some(idx) = nl.index(self.bridge())? {
                let ports = nl.ports(idx)?;
                if !ports.is_empty() {
                    return Err(Error::net(
                        format!("{} still has containers attached ({})", self.bridge(), ports.join(", ")),
                        "stop them first (rlxc-ls -f --running), or rlxc-net stop -f to cut them off",
                    ));
                }
            }
        }
        self.teardown(&st);
        Ok(format!("removed what rlxc created for {}", self.bridge()))
    }

    fn teardown(&self, st: &State) {
        if let Some(r) = &st.rules {
            firewall::remove(r);
        }
        if let Some(f) = &st.forward_was {
            let _ = std::fs::write(FORWARD, f);
        }
        if st.dnsmasq {
            dnsmasq::stop(&self.files);
        }
        if st.created_bridge {
            if let Ok(nl) = Netlink::open() {
                let _ = nl.delete_by_name(self.bridge());
            }
        }
        for ext in [
            "state",
            "supervisor.pid",
            "dnsmasq.pid",
            "dnsmasq.reloaded",
            "leases",
            "dhcp-hosts",
            "hosts",
            "log",
        ] {
            let _ = std::fs::remove_file(self.files.path(ext));
        }
        for d in [
            self.files.dhcp_dir(),
            self.files.hosts_dir(),
            self.files.claims_dir(),
        ] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// Give a container's MAC its DNS name and, for "auto" and fixed addresses, its
    /// address as a DHCP reservation, which every image's own DHCP client honours.
    /// True when dnsmasq must read it before the container's DHCP client asks: see
    /// `await_reservations`.
    pub fn reserve(&self, key: &str, mac: &str, ip: Option<Ipv4Addr>, name: &str) -> Result<bool> {
        super::names::reserve(&self.files, key, mac, ip, name)
    }

    /// Have dnsmasq read the reservations written so far and wait (without the bridge's
    /// lock) until it has been told to: at most the supervisor's pace, under a second.
    pub fn await_reservations(&self) {
        dnsmasq::reload_and_wait(&self.files)
    }

    /// An address of the subnet nobody holds: not the bridge's, not in `taken` (other
    /// containers' fixed and recorded addresses), not reserved, not leased. Picked from
    /// the top down, away from where DHCP starts handing out.
    pub fn free_address(&self, taken: &[Ipv4Addr]) -> Result<Ipv4Addr> {
        let leased: Vec<Ipv4Addr> = dnsmasq::leases(&self.files)
            .iter()
            .filter_map(|l| l.1.parse().ok())
            .collect();
        let (first, last) = self.subnet.host_range();
        let pick = |mut held: std::collections::HashSet<Ipv4Addr>| {
            held.extend(leased.iter().chain(taken));
            (u32::from(first)..=u32::from(last))
                .rev()
                .map(Ipv4Addr::from)
                .find(|ip| !held.contains(ip))
        };
        // The claims' names as they are; only a subnet that looks full is worth reading
        // every claim's reservation for those left behind.
        let found = match pick(super::names::claimed_addresses(&self.files, false)?) {
            Some(ip) => Some(ip),
            None => pick(super::names::claimed_addresses(&self.files, true)?),
        };
        found.ok_or_else(|| {
            let hosts = u32::from(last) - u32::from(first) + 1;
            Error::net(
                format!(
                    "no free address left for ipv4 = \"auto\" in the managed subnet {} of \
                         bridge {}: other containers (fixed or recorded) and DHCP leases hold \
                         all {} addresses it has for containers",
                    self.subnet.cidr(),
                    self.bridge(),
                    hosts
                ),
                format!(
                    "give the bridge a larger subnet in network.ipv4 of {} (e.g. ipv4 = \
                         \"10.0.16.1/20\": 4093 addresses), then rlxc-net stop -f and start \
                         the containers again; or destroy containers you no longer need",
                    self.config_file
                ),
            )
        })
    }

    pub fn status(&self) -> String {
        let kind = self.kind();
        let mut out = vec![format!(
            "bridge:     {} ({})",
            self.bridge(),
            match (&kind, self.exists()) {
                (Kind::Missing, _) =>
                    "missing: created by rlxc-net start or the next container start",
                (Kind::Foreign, _) => "exists, not rlxc's: used as it is",
                (Kind::Managed(_), true) => "rlxc's",
                (Kind::Managed(_), false) => "rlxc's, but deleted: rlxc-net start builds it again",
            }
        )];
        let Kind::Managed(st) = kind else {
            return out.join("\n");
        };
        out.push(format!("address:    {}", self.settings.ipv4));
        if let Some(v6) = &self.settings.ipv6 {
            out.push(format!("ipv6:       {v6} (router advertisements)"));
        }
        let (a, b) = self.dnsmasq_options().range;
        out.push(format!("dhcp:       {a} - {b}"));
        out.push(format!(
            "dnsmasq:    {}",
            dnsmasq::live_pid(&self.files.dnsmasq_pid(), "dnsmasq")
                .map_or("not running".to_string(), |p| format!("running (pid {p})"))
        ));
        out.push(format!(
            "dns:        *.{} at {}",
            self.settings.domain, self.subnet.addr
        ));
        out.push(format!(
            "firewall:   {}",
            match &st.rules {
                Some(Rules::Nft(t)) => format!(
                    "nftables table ip {t}{}",
                    if self.settings.nat { " (NAT)" } else { "" }
                ),
                Some(Rules::Iptables(c)) => format!("iptables rules commented {c}"),
                None => "none".into(),
            }
        ));
        for (mac, ip, host) in dnsmasq::leases(&self.files) {
            out.push(format!("lease:      {ip} {mac} {host}"));
        }
        out.join("\n")
    }
}

/// The first directory on the way to `dir` that others may not search.
fn untraversable(dir: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .filter_map(|d| Some((d, std::fs::metadata(d).ok()?)))
        .find(|(_, m)| m.permissions().mode() & 0o001 == 0)
        .map(|(d, _)| d.to_path_buf())
}

/// Host routes (destination, prefix, device) from /proc/net/route, the default left out.
pub(crate) fn host_routes() -> Vec<(Ipv4Addr, u8, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_routes(&text)
}

fn parse_routes(text: &str) -> Vec<(Ipv4Addr, u8, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the address in memory order (little-endian hosts).
            let dest = Ipv4Addr::from(dest.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            // The default route overlaps everything and is no conflict.
            (prefix > 0).then(|| (dest, prefix, f[0].to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let s = State {
            created_bridge: true,
            dnsmasq: true,
            rules: Some(Rules::Nft("rlxc_virbr0".into())),
            forward_was: Some("0".into()),
        };
        assert_eq!(State::parse(&s.render()), s);
        assert_eq!(State::parse(""), State::default());
    }

    #[test]
    fn routes_from_proc() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            parse_routes(t),
            [(Ipv4Addr::new(192, 0, 2, 0), 24, "eth0".to_string())]
        );
    }
}
