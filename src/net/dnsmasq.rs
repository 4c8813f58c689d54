//! dnsmasq for a managed bridge: DHCP (with per-container reservations) and DNS for the
//! containers' names. rlxc runs it in the foreground under a small supervisor process
//! (`[rlxc net] BRIDGE`, net::supervisor) that restarts it if it dies and stops it on
//! SIGTERM.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::ipc::Status;

/// The files of one bridge's dnsmasq, all in RUNPATH/net.
pub struct Files {
    pub dir: PathBuf,
    pub bridge: String,
}

impl Files {
    pub fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.bridge))
    }
    pub fn leases(&self) -> PathBuf {
        self.path("leases")
    }
    pub fn dnsmasq_pid(&self) -> PathBuf {
        self.path("dnsmasq.pid")
    }
    pub fn supervisor_pid(&self) -> PathBuf {
        self.path("supervisor.pid")
    }
    /// When the supervisor last had dnsmasq read the reservations (`net::reloaded`).
    pub fn reloaded(&self) -> PathBuf {
        reloaded_next_to(&self.dnsmasq_pid())
    }
    pub fn log(&self) -> PathBuf {
        self.path("log")
    }
}

/// What dnsmasq is told.
pub struct Options<'a> {
    pub bridge: &'a str,
    pub listen: std::net::Ipv4Addr,
    pub range: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    pub netmask: std::net::Ipv4Addr,
    pub domain: &'a str,
    pub ipv6: bool,
    pub upstream_dns: bool,
}

/// The unprivileged user dnsmasq drops to.
fn dnsmasq_user() -> &'static str {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if passwd.lines().any(|l| l.starts_with("dnsmasq:")) {
        "dnsmasq"
    } else {
        "nobody"
    }
}

pub fn args(o: &Options, f: &Files) -> Vec<String> {
    let (a, b) = o.range;
    let mut v = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--log-facility=-".into(),
        format!("--user={}", dnsmasq_user()),
        "--strict-order".into(),
        // Only the bridge's address: never the host's other interfaces.
        "--bind-interfaces".into(),
        "--except-interface=lo".into(),
        format!("--interface={}", o.bridge),
        format!("--listen-address={}", o.listen),
        format!("--dhcp-range={a},{b},{},1h", o.netmask),
        // As many leases as the range has addresses: dnsmasq's default of 1000 left the
        // last containers of a thousand unanswered ("no leases left"), and a stopped
        // container's lease counts until it expires.
        format!("--dhcp-lease-max={}", lease_max(o.range)),
        "--dhcp-no-override".into(),
        "--dhcp-authoritative".into(),
        "--dhcp-rapid-commit".into(),
        // dnsmasq pings an address (up to 3 s) before offering it. On rlxc's bridge every
        // fixed address is a reservation, so the ping only delays every container's boot.
        "--no-ping".into(),
        // Routine DHCP and RA lines would grow the log in RUNPATH (tmpfs) for ever;
        // errors are still logged.
        "--quiet-dhcp".into(),
        "--quiet-dhcp6".into(),
        "--quiet-ra".into(),
        format!("--dhcp-leasefile={}", f.leases().display()),
        // Reservations and names, gathered from one file per container (see
        // net::names) and read at each SIGHUP, which the supervisor paces
        // (`reloaded::Pacer`); a start waits for the one after its reservation (see
        // net::reloaded).
        format!("--dhcp-hostsfile={}", f.dhcp_file().display()),
        format!("--addn-hosts={}", f.hosts_file().display()),
        format!("--pid-file={}", f.dnsmasq_pid().display()),
        // Containers' names under the domain, answered here and never sent upstream.
        format!("--domain={}", o.domain),
        format!("--local=/{}/", o.domain),
        "--expand-hosts".into(),
        "--domain-needed".into(),
        "--bogus-priv".into(),
        // The host's /etc/hosts is not the containers' business.
        "--no-hosts".into(),
    ];
    if !o.upstream_dns {
        v.push("--no-resolv".into());
    }
    if o.ipv6 {
        v.push("--enable-ra".into());
        v.push(format!(
            "--dhcp-range=::,constructor:{},ra-stateless,ra-names",
            o.bridge
        ));
    }
    v
}

/// The number of addresses from `a` to `b`, at least 1.
fn lease_max((a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr)) -> u32 {
    u32::from(b).saturating_sub(u32::from(a)).saturating_add(1)
}

/// Start the supervisor (which starts dnsmasq) and wait until dnsmasq serves or fails.
pub fn start(o: &Options, f: &Files) -> Result<()> {
    let exe = std::env::current_exe().ctx("find", "the rlxc binary")?;
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(f.log())
        .ctx("open", f.log())?;
    let mut cmd = Command::new(&exe);
    std::os::unix::process::CommandExt::arg0(&mut cmd, format!("[rlxc net] {}", o.bridge));
    cmd.arg("__netd")
        .arg(f.supervisor_pid())
        .arg(f.dnsmasq_pid())
        .arg("--")
        .arg(super::which("dnsmasq").unwrap_or_else(|| "dnsmasq".into()))
        .args(args(o, f))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    let mut child = cmd.spawn().ctx("start the dnsmasq supervisor", &exe)?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| Error::Other("dnsmasq supervisor has no status pipe".into()))?;
    let why = match crate::ipc::read_msg(&mut BufReader::new(out)) {
        Ok(Status::Started { .. }) => {
            // It setsid()s and lives on; init reaps it.
            std::mem::forget(child);
            return Ok(());
        }
        Ok(Status::Failed { reason }) => reason,
        Ok(Status::Exited { code }) => format!("the supervisor exited ({code}) before starting"),
        Ok(Status::Ended { .. }) => "the supervisor ended at once".to_string(),
        Err(e) => format!("the supervisor ended without a status ({e})"),
    };
    let _ = child.wait();
    Err(start_error(o, &why))
}

fn start_error(o: &Options, why: &str) -> Error {
    if why.contains("in use") {
        let holders: Vec<String> = [(53, "tcp"), (53, "udp"), (67, "udp")]
            .into_iter()
            .flat_map(|(port, proto)| {
                port_holders(port, proto)
                    .into_iter()
                    .map(move |(pid, comm)| format!("{comm} (pid {pid}) on {proto} port {port}"))
            })
            .collect();
        let who = if holders.is_empty() {
            String::new()
        } else {
            format!("; held by {}", holders.join(", "))
        };
        return Error::net(
            format!(
                "dnsmasq for {} cannot listen on {}: {why}{who}",
                o.bridge, o.listen
            ),
            "stop what holds the DNS (53) or DHCP (67) port on all addresses, or make it bind \
             only its own interfaces (dnsmasq: bind-interfaces), then start again",
        );
    }
    Error::net(
        format!("dnsmasq for {} did not start: {why}", o.bridge),
        "its log is RUNPATH/net/BRIDGE.log; rlxc-net status shows the bridge",
    )
}

/// Stop the supervisor (and so dnsmasq) and wait for both to go; what does not go in
/// 5 s is killed.
pub fn stop(f: &Files) {
    for (pidfile, comm) in [(f.supervisor_pid(), "rlxc"), (f.dnsmasq_pid(), "dnsmasq")] {
        let Some(pid) = live_pid(&pidfile, comm) else {
            continue;
        };
        let _ = crate::sys::kill_raw(pid, libc::SIGTERM);
        let t0 = Instant::now();
        while crate::sys::pid_alive(pid) && live_pid(&pidfile, comm) == Some(pid) {
            if t0.elapsed() > Duration::from_secs(5) {
                let _ = crate::sys::kill_raw(pid, libc::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The pid in `pidfile` if that process is alive and is `comm`.
pub fn live_pid(pidfile: &Path, comm: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (c.trim() == comm).then_some(pid)
}

/// Ask dnsmasq to re-read the reservations and names, through its supervisor, which
/// paces the reloads (`reloaded::Pacer`). Without a supervisor, no dnsmasq runs to
/// tell: the next one reads them all when it starts.
pub fn reload(f: &Files) {
    if let Some(pid) = live_pid(&f.supervisor_pid(), "rlxc") {
        let _ = crate::sys::kill_raw(pid, libc::SIGHUP);
    }
}

/// The supervisor knows dnsmasq's pid file; the stamp is beside it.
pub(super) fn reloaded_next_to(dnsmasq_pidfile: &Path) -> PathBuf {
    dnsmasq_pidfile.with_extension("reloaded")
}

/// Have dnsmasq read the reservations, and wait until it has been told to (after this
/// call began): the caller wrote a reservation its container's DHCP client is about to
/// ask for. Without a supervisor there is no dnsmasq: the next one reads everything.
pub fn reload_and_wait(f: &Files) {
    let Some(pid) = live_pid(&f.supervisor_pid(), "rlxc") else {
        return;
    };
    let since = super::reloaded::now();
    let _ = crate::sys::kill_raw(pid, libc::SIGHUP);
    // A supervisor of an older rlxc writes no stamp; its dnsmasq reads reservations
    // as they appear.
    if !f.reloaded().exists() {
        return;
    }
    // The pace is at most a second; more means a supervisor that cannot signal (its
    // dnsmasq is being restarted): the container then starts, and its client asks again.
    super::reloaded::wait(&f.reloaded(), since, Duration::from_secs(3));
}

/// Processes with a listening `proto` socket on `port` (any address).
pub fn port_holders(port: u16, proto: &str) -> Vec<(i32, String)> {
    let mut inodes = Vec::new();
    for file in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // TCP: LISTEN (0A); UDP: unconnected (07).
            let listening = if proto == "tcp" {
                *st == "0A"
            } else {
                *st == "07"
            };
            if p == Some(port) && listening {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()));
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// A lease: (MAC, IPv4, hostname).
pub fn leases(f: &Files) -> Vec<(String, String, String)> {
    std::fs::read_to_string(f.leases())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            Some((
                v.get(1)?.to_string(),
                v.get(2)?.to_string(),
                v.get(3)?.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A test bridge's files in `dir` (also for net::names's tests).
    pub(in crate::net) fn files(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
            bridge: "br9".into(),
        }
    }

    fn options() -> Options<'static> {
        Options {
            bridge: "br9",
            listen: "10.9.0.1".parse().unwrap(),
            range: ("10.9.0.2".parse().unwrap(), "10.9.0.254".parse().unwrap()),
            netmask: "255.255.255.0".parse().unwrap(),
            domain: "lxc",
            ipv6: false,
            upstream_dns: false,
        }
    }

    #[test]
    fn dnsmasq_is_bound_to_the_bridge_only() {
        let d = tempfile::tempdir().unwrap();
        let o = options();
        let a = args(&o, &files(d.path()));
        for want in [
            "--bind-interfaces",
            "--interface=br9",
            "--listen-address=10.9.0.1",
            "--no-resolv",
            "--local=/lxc/",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        assert!(a
            .iter()
            .any(|x| x.starts_with("--dhcp-range=10.9.0.2,10.9.0.254,")));
        // Every address of the range can be leased (dnsmasq's default stops at 1000).
        assert!(a.iter().any(|x| x == "--dhcp-lease-max=253"), "{a:?}");
        let r = |a: &str, b: &str| lease_max((a.parse().unwrap(), b.parse().unwrap()));
        assert_eq!(r("10.236.16.2", "10.236.31.254"), 4093);
        assert_eq!(r("10.0.0.5", "10.0.0.5"), 1);
    }

    #[test]
    fn a_stale_supervisor_pid_file_signals_nobody() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        // The pid of a live process that is not rlxc: what a reused pid looks like.
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(f.supervisor_pid(), format!("{}\n", other.id())).unwrap();
        std::fs::write(f.reloaded(), "0\n").unwrap();
        reload(&f);
        let t0 = Instant::now();
        reload_and_wait(&f);
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "it waited for nobody"
        );
        std::thread::sleep(Duration::from_millis(100));
        // SIGHUP would have ended sleep.
        assert!(
            other.try_wait().unwrap().is_none(),
            "the other process was signalled"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn the_supervisor_finds_the_bridges_files_from_dnsmasqs_pid_file() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let found = Files::of_dnsmasq_pid(&f.dnsmasq_pid()).unwrap();
        assert_eq!((found.dir, found.bridge), (f.dir.clone(), f.bridge.clone()));
        assert!(Files::of_dnsmasq_pid(Path::new("/run/x.pid")).is_none());
        // What dnsmasq is told to read is what the supervisor gathers into.
        let a = args(&options(), &f);
        for want in [
            format!("--dhcp-hostsfile={}", f.dhcp_file().display()),
            format!("--addn-hosts={}", f.hosts_file().display()),
        ] {
            assert!(a.contains(&want), "{want} missing from {a:?}");
        }
    }
}
