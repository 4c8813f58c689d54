//! Published ports (`[[publish]]`) end to end, as root: busybox containers on a managed
//! bridge each test makes up (names and subnets of this run only), an "outside host"
//! that is a network namespace of the test's own joined to the host by a veth pair.
//! A port answers from the host (127.0.0.1 and the host's addresses), from the outside
//! host and from the container itself through the host; TCP, a range and UDP; the rules
//! go at stop, after a killed monitor too; a port another container or a host process
//! holds is a start error naming it; the containers cannot use what 127.0.0.1 needs
//! (route_localnet) to reach the host's loopback services. Traffic never leaves the
//! machine.
//!
//! The tests change host-wide state (a managed bridge turns IPv4 forwarding on until it
//! goes), so they run one at a time.

mod common;

use common::*;
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").args(["-c", cmd]).output().unwrap()
}

fn sh_ok(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(o.status.success(), "{cmd}: {}", stderr(&o));
    stdout(&o)
}

const PYTHON: &str = "/usr/bin/python3";

/// An rlxc installation whose system config manages a bridge and subnet of this test
/// run; its containers and the bridge go on drop.
struct Host {
    env: Env,
    _server: HttpServer,
    bridge: String,
    prefix: String,
    names: Vec<String>,
}

impl Host {
    fn new(tag: u32) -> Self {
        let (env, server) = net_env();
        let pid = std::process::id();
        // 10.170-199: clear of tests/network.rs (10.210-249).
        let bridge = format!("rlxp{}x{tag}", pid % 100_000);
        let prefix = format!("10.{}.{}", 170 + tag, pid % 200 + 20);
        env.write_config(&format!(
            "[network]\nbridge = \"{bridge}\"\nipv4 = \"{prefix}.1/24\"\nupstream_dns = false\n"
        ));
        Host {
            env,
            _server: server,
            bridge,
            prefix,
            names: Vec::new(),
        }
    }

    fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// A busybox container on the bridge with an "auto" address, `/www` served by the
    /// httpd the test starts, and `publish` (TOML) in its config.
    fn create(&mut self, tag: &str, ipv4: &str, publish: &str) -> String {
        let name = format!("p{}-{tag}", std::process::id());
        let cfg = format!(
            "[[network]]\ntype = \"veth\"\nlink = \"{}\"\nhwaddr = \"00:16:3e:xx:xx:xx\"\nipv4 = \"{ipv4}\"\n{publish}",
            self.bridge
        );
        self.env
            .create_with(&name, "busybox", &busybox_release(), &cfg);
        self.names.push(name.clone());
        let www = self.env.rootfs(&name).join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), format!("hello from {name}\n")).unwrap();
        name
    }

    fn attach(&self, name: &str, cmd: &[&str]) -> std::process::Output {
        let mut v = vec!["attach", "-n", name, "--"];
        v.extend(cmd);
        self.env.run(&v)
    }

    fn info(&self, name: &str) -> String {
        self.env.ok(&["info", "-n", name])
    }

    fn pid(&self, name: &str) -> String {
        self.info(name)
            .lines()
            .find_map(|l| l.strip_prefix("PID:"))
            .map(|p| p.trim().to_string())
            .expect("a PID in rlxc-info")
    }

    /// The address "auto" gave `name`, once its DHCP client (which flushes it first)
    /// has it back, and httpd serving /www on `ports`.
    fn serve(&self, name: &str, ports: &[u16]) -> String {
        let cfg = read(self.env.lxcpath().join(name).join("config.toml"));
        let ip = cfg
            .lines()
            .find_map(|l| l.strip_prefix("ipv4_assigned = \""))
            .and_then(|v| v.split('/').next())
            .expect("ipv4_assigned in the config")
            .to_string();
        eventually(
            Duration::from_secs(30),
            "the address did not settle",
            || {
                stdout(&self.attach(name, &["ip", "-4", "addr", "show", "eth0"]))
                    .contains(&format!("{ip}/"))
            },
        );
        for p in ports {
            let out = self.attach(name, &["httpd", "-p", &p.to_string(), "-h", "/www"]);
            assert!(out.status.success(), "httpd: {}", stderr(&out));
        }
        ip
    }

    /// What `GET /` from inside `name` to `addr:port` reads, headers and all (busybox
    /// nc: its static wget crashes), or the error.
    fn http_get_inside(&self, name: &str, addr: &str, port: u16) -> String {
        let out = self.attach(
            name,
            &[
                "sh",
                "-c",
                &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}"),
            ],
        );
        format!("{}{}", stdout(&out), stderr(&out))
    }

    fn route_localnet(&self) -> String {
        read(format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            self.bridge
        ))
        .trim()
        .to_string()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        tear_down_net(&self.env, &self.names, &self.bridge);
    }
}

/// Another host: a network namespace whose only link is a veth pair to this host.
struct Outside {
    ns: String,
    link: String,
    /// This host's address on the pair, what the outside host connects to.
    host_ip: String,
}

impl Outside {
    fn new(tag: u32) -> Self {
        let pid = std::process::id();
        let ns = format!("rlxpo{pid}x{tag}");
        let link = format!("rlxpo{}x{tag}", pid % 100_000);
        let net = format!("10.{}.{}", 200 + tag, pid % 200 + 20);
        let o = Outside {
            ns,
            link,
            host_ip: format!("{net}.1"),
        };
        sh_ok(&format!(
            "ip netns add {ns} && ip link add {link} type veth peer name eth0 netns {ns} && \
             ip addr add {net}.1/30 dev {link} && ip link set {link} up && \
             ip -n {ns} addr add {net}.2/30 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up && ip -n {ns} route add default via {net}.1",
            ns = o.ns,
            link = o.link
        ));
        o
    }

    fn curl(&self, url: &str) -> Option<String> {
        curl_in(Some(&self.ns), url)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = sh(&format!("ip link del {}", self.link));
        let _ = sh(&format!("ip netns del {}", self.ns));
    }
}

/// The body at `url` (from namespace `ns`), or None when nothing answers in 3 s.
fn curl_in(ns: Option<&str>, url: &str) -> Option<String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd
        .args(["-sS", "-m", "3", "--noproxy", "*", url])
        .output()
        .unwrap();
    out.status.success().then(|| stdout(&out))
}

fn curl(url: &str) -> Option<String> {
    curl_in(None, url)
}

/// A port nothing on the host holds now, over `proto`.
fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// rlxc's port tables of container `name` (any installation).
fn tables_of(name: &str) -> Vec<String> {
    sh_ok("nft list tables")
        .lines()
        .filter_map(|l| l.strip_prefix("table ip "))
        .filter(|t| t.starts_with(&format!("rlxc_pub_{name}.")))
        .map(String::from)
        .collect()
}

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `python3 -m http.server` on 127.0.0.1:`port`, listening once this returns; it
/// serves the test's working directory (nothing of interest).
fn loopback_http_server(port: u16) -> Proc {
    let p = Proc(
        Command::new(PYTHON)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(10), "python3 does not listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

/// A UDP echo server ("echo:" + what came) on port 5353 in the network namespace of
/// the process `pid` (the container's init): busybox has no UDP server of its own.
fn udp_echo_in(pid: &str) -> Proc {
    let script = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  s.bind(('0.0.0.0',5353))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(b'echo:'+d,a)\n";
    Proc(
        Command::new("nsenter")
            .args(["-t", pid, "-n", PYTHON, "-c", script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// What a UDP echo at `addr` answers to `msg` (from namespace `ns`), tried for a while:
/// the server starts asynchronously.
fn udp_ask(ns: Option<&str>, addr: &str, msg: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\n\
         for i in range(15):\n s.sendto(b'{msg}',('{host}',{port}))\n try:\n  print(s.recv(2048).decode()); break\n except OSError: pass\n"
    );
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, PYTHON]);
            c
        }
        None => Command::new(PYTHON),
    };
    cmd.args(["-c", &script]);
    stdout(&cmd.output().unwrap()).trim().to_string()
}

#[test]
fn published_ports_answer_from_the_host_other_hosts_and_the_container_and_go_at_stop() {
    let _s = serial();
    let mut h = Host::new(1);
    let outside = Outside::new(1);
    let (tcp, udp) = (free_port(false), free_port(true));
    let range = free_port(false);
    let range = if range > 60000 { range - 10 } else { range };
    let name = h.create(
        "web",
        "auto",
        &format!(
            "[[publish]]\nhost = {tcp}\ncontainer = \"80\"\n\
             [[publish]]\nhost = \"{range}-{}\"\ncontainer = \"81-82\"\n\
             [[publish]]\nhost = \"{udp}\"\ncontainer = \"5353\"\nproto = \"udp\"\n",
            range + 1
        ),
    );
    h.env.ok(&["start", "-d", "-n", &name]);
    let ip = h.serve(&name, &[80, 81, 82]);
    let hello = format!("hello from {name}\n");

    let info = h.info(&name);
    let shown: Vec<&str> = info
        .lines()
        .filter_map(|l| Some(l.strip_prefix("Published:")?.trim()))
        .collect();
    assert_eq!(
        shown,
        [
            format!("0.0.0.0:{tcp} -> {ip}:80/tcp"),
            format!("0.0.0.0:{range}-{} -> {ip}:81-82/tcp", range + 1),
            format!("0.0.0.0:{udp} -> {ip}:5353/udp"),
        ],
        "{info}"
    );
    assert_eq!(h.route_localnet(), "1");

    // The host itself: its loopback, its address on the bridge, its address towards
    // the outside host; the range, each host port on its own container port.
    for addr in ["127.0.0.1", &h.gateway(), &outside.host_ip] {
        for port in [tcp, range, range + 1] {
            let url = format!("http://{addr}:{port}/");
            assert_eq!(curl(&url).as_deref(), Some(hello.as_str()), "{url}");
        }
    }
    // Another host.
    let url = format!("http://{}:{tcp}/", outside.host_ip);
    assert_eq!(outside.curl(&url).as_deref(), Some(hello.as_str()), "{url}");
    // The container itself, through the host (hairpin).
    let got = h.http_get_inside(&name, &h.gateway(), tcp);
    assert!(got.ends_with(&hello), "{got}");

    // UDP, from the host's loopback and from the outside host.
    let _echo = udp_echo_in(&h.pid(&name));
    assert_eq!(
        udp_ask(None, &format!("127.0.0.1:{udp}"), "ping"),
        "echo:ping"
    );
    assert_eq!(
        udp_ask(
            Some(&outside.ns),
            &format!("{}:{udp}", outside.host_ip),
            "far"
        ),
        "echo:far"
    );

    // A clean stop takes every rule along, and puts route_localnet back.
    assert_eq!(tables_of(&name).len(), 1);
    h.env.ok(&["stop", "-n", &name, "-t", "10"]);
    assert_eq!(tables_of(&name), Vec::<String>::new());
    assert_eq!(h.route_localnet(), "0");
    assert_eq!(curl(&format!("http://127.0.0.1:{tcp}/")), None);
    let marker_dir = h.env.dir.path().join("run/ports");
    assert_eq!(names_without_locks(&marker_dir), ["lock"]);
}

#[test]
fn a_killed_monitors_rules_go_with_stop_k_or_the_next_start() {
    let _s = serial();
    let mut h = Host::new(2);
    let port = free_port(false);
    let publish = format!("[[publish]]\nhost = \"{port}\"\ncontainer = \"80\"\n");
    let name = h.create("killed", "auto", &publish);
    // Start it and kill its monitor, then (`all`) its processes, behind rlxc's back.
    let start_and_kill = |h: &Host, all: bool| {
        h.env.ok(&["start", "-d", "-n", &name]);
        let init = h.pid(&name);
        let monitor = sh_ok(&format!("pgrep -f '^\\[rlxc monitor\\] {name} '"));
        sh_ok(&format!("kill -9 {}", monitor.trim()));
        if all {
            sh_ok(&format!("kill -9 {init}"));
        }
        let want = if all { "STOPPED" } else { "RUNNING" };
        eventually(Duration::from_secs(5), "the kill did not take", || {
            let info = h.info(&name);
            !info.contains("PID:") && info.contains(want)
        });
        assert_eq!(tables_of(&name).len(), 1, "the rules outlive the monitor");
    };
    let serves = |port: u16, who: &str| {
        let body = curl(&format!("http://127.0.0.1:{port}/"));
        assert_eq!(body, Some(format!("hello from {who}\n")));
    };

    // Killed monitor, then stop -k.
    start_and_kill(&h, false);
    h.env.ok(&["stop", "-k", "-n", &name]);
    assert_eq!(tables_of(&name), Vec::<String>::new());
    assert_eq!(h.route_localnet(), "0");

    // Everything killed: the next start of another container publishing the port
    // finds the rules stale and takes the port.
    start_and_kill(&h, true);
    let other = h.create("taker", "auto", &publish);
    h.env.ok(&["start", "-d", "-n", &other]);
    assert_eq!(tables_of(&name), Vec::<String>::new());
    h.serve(&other, &[80]);
    serves(port, &other);
    h.env.ok(&["stop", "-k", "-n", &other]);

    // And its own next start replaces what its killed run left.
    start_and_kill(&h, true);
    h.env.ok(&["start", "-d", "-n", &name]);
    assert_eq!(tables_of(&name).len(), 1);
    h.serve(&name, &[80]);
    serves(port, &name);
    h.env.ok(&["stop", "-k", "-n", &name]);
    assert_eq!(tables_of(&name), Vec::<String>::new());
}

#[test]
fn a_port_someone_holds_is_a_start_error_naming_the_holder() {
    let _s = serial();
    let mut h = Host::new(3);
    let port = free_port(false);
    let publish =
        |p: u16, extra: &str| format!("[[publish]]\nhost = \"{p}\"\ncontainer = \"80\"\n{extra}");
    let first = h.create("first", "auto", &publish(port, ""));
    let second = h.create("second", "auto", &publish(port, ""));
    h.env.ok(&["start", "-d", "-n", &first]);

    // Another container of this installation.
    let err = h.env.fails(&["start", "-d", "-n", &second]);
    assert!(
        err.contains(&format!(
            "the container {first} publishes 0.0.0.0:{port}->80/tcp"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("rlxc-stop -n {first}")), "{err}");
    assert_eq!(tables_of(&second), Vec::<String>::new());
    assert!(h.info(&second).contains("STOPPED"));

    // A host process, on every address or on loopback only.
    let held = free_port(false);
    let server = loopback_http_server(held);
    let cfg = h.env.lxcpath().join(&second).join("config.toml");
    let original = read(&cfg);
    std::fs::write(&cfg, original.replace(&port.to_string(), &held.to_string())).unwrap();
    let err = h.env.fails(&["start", "-d", "-n", &second]);
    assert!(
        err.contains(&format!(
            "host port {held}/tcp is held by a host process (pid {}, python3)",
            server.0.id()
        )),
        "{err}"
    );
    assert_eq!(tables_of(&second), Vec::<String>::new());
    drop(server);

    // An address the host does not have.
    std::fs::write(
        &cfg,
        original
            .replace(&port.to_string(), &held.to_string())
            .replace(
                "container = \"80\"\n",
                "container = \"80\"\naddress = \"192.0.2.1\"\n",
            ),
    )
    .unwrap();
    let err = h.env.fails(&["start", "-d", "-n", &second]);
    assert!(
        err.contains("publish[0].address = \"192.0.2.1\" is not an address of this host"),
        "{err}"
    );

    // An address only DHCP will tell.
    std::fs::write(&cfg, original.replace("ipv4 = \"auto\"", "ipv4 = \"dhcp\"")).unwrap();
    let err = h.env.fails(&["start", "-d", "-n", &second]);
    assert!(
        err.contains("the address of network[0] is not known before it starts (ipv4 = \"dhcp\")")
            && err.contains("ipv4 = \"auto\""),
        "{err}"
    );
    assert_eq!(tables_of(&second), Vec::<String>::new());
    assert!(h.info(&second).contains("STOPPED"));

    // Freed at stop, the port is the second one's; a start that fails once its rules
    // are in (a bind mount of nothing) takes them away again.
    h.env.ok(&["stop", "-k", "-n", &first]);
    let mount =
        "[[mount]]\nsource = \"/nonexistent-rlxc-test\"\ntarget = \"mnt\"\noptions = \"bind\"\n";
    std::fs::write(&cfg, format!("{original}\n{mount}")).unwrap();
    let err = h.env.fails(&["start", "-d", "-n", &second]);
    // (Its reason races with the network set-up the monitor does meanwhile.)
    assert!(err.contains("failed to start"), "{err}");
    assert_eq!(tables_of(&second), Vec::<String>::new());
    assert_eq!(h.route_localnet(), "0");
    std::fs::write(&cfg, &original).unwrap();
    h.env.ok(&["start", "-d", "-n", &second]);
    assert_eq!(tables_of(&second).len(), 1);
    h.env.ok(&["stop", "-k", "-n", &second]);
}

/// route_localnet on the bridge (what 127.0.0.1 needs) would let a container reach
/// the host's loopback services: a container that routes 127.0.0.1 to the host gets
/// nowhere, and without rlxc's guard rule it would have.
#[test]
fn containers_cannot_reach_the_hosts_loopback_services() {
    let _s = serial();
    let mut h = Host::new(4);
    let port = free_port(false);
    let name = h.create(
        "guard",
        "auto",
        &format!("[[publish]]\nhost = \"{port}\"\ncontainer = \"80\"\n"),
    );
    h.env.ok(&["start", "-d", "-n", &name]);
    let ip = h.serve(&name, &[]);
    assert_eq!(h.route_localnet(), "1");
    let secret = free_port(false);
    let _server = loopback_http_server(secret);
    // Inside: loopback routed out of eth0 to the host, as an attacker would.
    let route = format!(
        "sysctl -w net.ipv4.conf.eth0.route_localnet=1 >/dev/null && \
         ip route del 127.0.0.0/8 dev lo table local && \
         ip route del local 127.0.0.1 dev lo table local && \
         ip route add 127.0.0.1/32 via {} dev eth0",
        h.gateway()
    );
    let out = h.attach(&name, &["sh", "-c", &route]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The container's own kernel refuses the answer (from 127.0.0.1), so what shows
    // whether the host's service was reached is the host's side: a half-open
    // connection from the container's address waiting there.

    let reached = || {
        h.http_get_inside(&name, "127.0.0.1", secret);
        let ss = sh_ok(&format!("ss -Htn state syn-recv '( sport = :{secret} )'"));
        ss.contains(&format!("{ip}:"))
    };
    assert!(
        !reached(),
        "the container reached the host's 127.0.0.1:{secret}"
    );
    // Not for want of a route: without the guard the same packets get there.
    let table = tables_of(&name).pop().expect("the container's table");
    sh_ok(&format!("nft delete chain ip {table} lo_dst"));
    assert!(
        reached(),
        "the test's route to the host's loopback does not work"
    );
    h.env.ok(&["stop", "-k", "-n", &name]);
    assert_eq!(h.route_localnet(), "0");
}
