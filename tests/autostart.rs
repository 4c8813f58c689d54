//! rlxc-autostart on busybox containers of one installation: the plan (-L, --json),
//! starts by order with equal orders together and delays honoured, groups, a container
//! that fails among good ones, a bad config or directory name that is reported while the
//! rest go on, a shutdown in reverse order, one bounded by -t (a
//! container ignoring its halt is killed), and a parallel shutdown's time beside the
//! same stops one by one (printed, never asserted). `rlxc-start -F`: READY=1 on
//! $NOTIFY_SOCKET, SIGTERM and SIGINT halt the container, the monitor stays its child;
//! a detached monitor leaves the starter's cgroup.

mod common;

use common::rt::unique;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// busybox's init would take a halt in a blink: this one takes `secs` after its halt
/// signal (SIGUSR1 from the image's LXC config, else SIGPWR), or ignores it when `secs`
/// is None.
fn slow_init(secs: Option<u32>) -> String {
    // The monitor repeats its halt signal every 500 ms: the first one takes the trap
    // away, or each would start the wait anew.
    let trap = match secs {
        Some(s) => format!("trap 'trap \"\" USR1 PWR; sleep {s}; exit 0' USR1 PWR"),
        None => "trap '' USR1 PWR".to_string(),
    };
    format!("[init]\ncmd = [\"/bin/sh\", \"-c\", '''{trap}; while :; do sleep 1; done''']\n")
}

/// Containers of one installation, killed and destroyed on drop.
struct Fleet {
    env: Env,
    _server: HttpServer,
    names: Vec<String>,
}

impl Fleet {
    fn new() -> Self {
        let server = HttpServer::start(&fixture_mirror());
        Fleet {
            env: Env::new(&server.url()),
            _server: server,
            names: Vec::new(),
        }
    }

    /// A busybox container `tag` with this autostart table (and more config); its name.
    fn add(&mut self, tag: &str, autostart: &str, more: &str) -> String {
        let name = unique(tag);
        let cfg = format!("[[network]]\ntype = \"empty\"\n[autostart]\n{autostart}\n{more}");
        self.env
            .create_with(&name, "busybox", &busybox_release(), &cfg);
        self.names.push(name.clone());
        name
    }

    fn state(&self, name: &str) -> String {
        let out = self.env.ok(&["info", "-s", "-n", name]);
        out.rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Init's host pid, from rlxc-info.
    fn init_pid(&self, name: &str) -> i32 {
        let info = self.env.ok(&["info", "-n", name]);
        info.lines()
            .find_map(|l| l.strip_prefix("PID:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no PID for {name}: {info}"))
    }

    /// When init of `name` started, in clock ticks since boot.
    fn started_at(&self, name: &str) -> u64 {
        let pid = self.init_pid(name);
        let stat = read(format!("/proc/{pid}/stat"));
        // Field 22, counted after the command name (which may hold blanks).
        let after = stat.rsplit_once(')').unwrap().1;
        after.split_whitespace().nth(19).unwrap().parse().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut v = vec!["autostart", "-L", "--json"];
        v.extend(args);
        let text = self.env.ok(&v);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.env.run(&["stop", "-k", "-n", n]);
            let _ = self.env.run(&["destroy", "-f", "-n", n]);
        }
    }
}

fn ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    stdout(&out).trim().parse().unwrap()
}

#[test]
fn starts_by_order_together_with_delays_groups_and_stops_in_reverse() {
    let mut f = Fleet::new();
    let a = f.add("first", "enabled = true\norder = 1\ndelay = 2", "");
    let b1 = f.add("mid1", "enabled = true\norder = 5", "");
    let b2 = f.add("mid2", "enabled = true\norder = 5", "");
    let web = f.add("web", "enabled = true\norder = 0\ngroups = [\"web\"]", "");
    let off = f.add("off", "enabled = false\norder = 0", "");

    // The plan: the NULL group by default, then -g ",web".
    let plan = f.json(&[]);
    assert_eq!(plan["action"], "start");
    let listed: Vec<(&str, u64)> = plan["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["wave"].as_u64().unwrap()))
        .collect();
    let mut mids = [b1.as_str(), b2.as_str()];
    mids.sort();
    assert_eq!(listed, [(a.as_str(), 0), (mids[0], 1), (mids[1], 1)]);
    assert_eq!(plan["containers"][0]["delay"], 2);
    assert_eq!(plan["containers"][0]["state"], "STOPPED");
    assert_eq!(plan["containers"][0]["acts"], true);
    let plan = f.json(&["-g", ",web"]);
    let last = &plan["containers"][3];
    assert_eq!(last["name"], web.as_str());
    assert_eq!(last["group"], "web");
    assert_eq!(last["groups"], serde_json::json!(["web"]));
    let table = f.env.ok(&["autostart", "-L", "-g", ",web"]);
    println!("{table}");
    assert!(table.starts_with("WAVE"), "{table}");

    let out = f.env.run(&["autostart", "-g", ",web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!("{}", stderr(&out));
    for n in [&a, &b1, &b2, &web] {
        assert_eq!(f.state(n), "RUNNING", "{n}");
    }
    assert_eq!(f.state(&off), "STOPPED");
    let hz = ticks_per_second();
    let (ta, tb1, tb2, tw) = (
        f.started_at(&a),
        f.started_at(&b1),
        f.started_at(&b2),
        f.started_at(&web),
    );
    // a's delay of 2 s passed before the next order began (a lower bound, not a timing).
    assert!(
        tb1 >= ta + 2 * hz - hz / 10,
        "a at {ta}, b1 at {tb1} ({hz}/s)"
    );
    assert!(
        tb2 >= ta + 2 * hz - hz / 10,
        "a at {ta}, b2 at {tb2} ({hz}/s)"
    );
    assert!(
        tw >= tb1.max(tb2),
        "web (group web) before the NULL group's"
    );

    // A second run starts nothing: all are running.
    let again = f.env.ok(&["autostart", "-L", "--json"]);
    assert!(again.contains("\"acts\": false"), "{again}");

    // Shutdown of everything, in reverse order: order 5 before order 1.
    let out = f.env.run(&["autostart", "-a", "-s", "-t", "30"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let pos = |s: &str| err.find(s).unwrap_or_else(|| panic!("no {s:?} in {err}"));
    assert!(pos("order 5") < pos("order 1"), "{err}");
    assert!(pos("order 1") < pos("order 0"), "{err}");
    for n in [&a, &b1, &b2, &web] {
        assert_eq!(f.state(n), "STOPPED", "{n}");
    }
}

#[test]
fn a_failing_container_is_reported_and_the_rest_start() {
    let mut f = Fleet::new();
    let g1 = f.add("good1", "enabled = true\norder = 1", "");
    let bad = f.add(
        "bad",
        "enabled = true\norder = 1",
        "[init]\ncmd = [\"/no/such/init\"]\n",
    );
    let g2 = f.add("good2", "enabled = true\norder = 2", "");
    let out = f.env.run(&["autostart"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("{bad}: FAILED")), "{err}");
    assert!(err.contains("/no/such/init"), "{err}");
    assert!(err.contains("1 container failed"), "{err}");
    assert_eq!(f.state(&g1), "RUNNING");
    assert_eq!(f.state(&g2), "RUNNING");
    assert_eq!(f.state(&bad), "STOPPED");
}

#[test]
fn a_bad_name_or_config_is_reported_and_the_rest_go_on() {
    let mut f = Fleet::new();
    let good = f.add("okay", "enabled = true", "");
    let broken = f.add("broken", "enabled = true", "");
    // Its config no longer parses (a key edited in by hand).
    let cfg = f.env.lxcpath().join(&broken).join("config.toml");
    std::fs::write(&cfg, format!("no_such_key = 1\n{}", read(&cfg))).unwrap();
    // A directory with a config whose name is no container name.
    let odd = format!("-{}", unique("odd"));
    std::fs::create_dir(f.env.lxcpath().join(&odd)).unwrap();
    std::fs::write(
        f.env.lxcpath().join(&odd).join("config.toml"),
        "[autostart]\nenabled = true\n",
    )
    .unwrap();

    let out = f.env.run(&["autostart", "-L", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed: Vec<&str> = plan["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [good.as_str()]);
    let mut left_out: Vec<&str> = plan["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    left_out.sort();
    let mut expected = [odd.as_str(), broken.as_str()];
    expected.sort();
    assert_eq!(left_out, expected, "{plan}");
    let out = f.env.run(&["autostart", "-L"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains(&good), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("{odd}: left out")),
        "{}",
        stderr(&out)
    );

    let out = f.env.run(&["autostart"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{broken}: FAILED")), "{err}");
    assert!(err.contains("no_such_key"), "{err}");
    assert!(err.contains(&format!("{odd}: FAILED")), "{err}");
    assert!(err.contains("2 containers failed"), "{err}");
    assert_eq!(f.state(&good), "RUNNING");
}

#[test]
fn a_shutdown_is_bounded_by_its_timeout_and_runs_in_parallel() {
    let mut f = Fleet::new();
    // One that ignores its halt, one after it in the stop order that halts.
    let stuck = f.add("stuck", "enabled = true\norder = 1", &slow_init(None));
    let fine = f.add("fine", "enabled = true\norder = 2", &slow_init(Some(0)));
    f.env.ok(&["autostart"]);
    let out = f.env.run(&["autostart", "-s", "-t", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.state(&stuck), "STOPPED");
    assert_eq!(f.state(&fine), "STOPPED");

    // Six containers each taking 2 s to halt: together, then one by one.
    let mut slow = Vec::new();
    for i in 0..6 {
        slow.push(f.add(
            &format!("slow{i}"),
            "enabled = true\ngroups = [\"slow\"]",
            &slow_init(Some(2)),
        ));
    }
    f.env.ok(&["autostart", "-g", "slow"]);
    let t0 = Instant::now();
    f.env.ok(&["autostart", "-g", "slow", "-s", "-t", "60"]);
    let together = t0.elapsed();
    f.env.ok(&["autostart", "-g", "slow"]);
    let t0 = Instant::now();
    for n in &slow {
        f.env.ok(&["stop", "-t", "60", "-n", n]);
    }
    let one_by_one = t0.elapsed();
    println!(
        "shutdown of 6 containers halting in 2 s each: rlxc-autostart -s {:.1} s, \
         rlxc-stop one by one {:.1} s (ratio {:.1})",
        together.as_secs_f64(),
        one_by_one.as_secs_f64(),
        one_by_one.as_secs_f64() / together.as_secs_f64()
    );
    for n in &slow {
        assert_eq!(f.state(n), "STOPPED", "{n}");
    }
}

/// The cgroup2 (or name=systemd) line of a process's /proc/PID/cgroup.
fn cgroup_of(pid: i32) -> String {
    let text = read(format!("/proc/{pid}/cgroup"));
    text.lines()
        .find(|l| l.starts_with("0::") || l.contains("name=systemd:"))
        .unwrap_or_default()
        .to_string()
}

fn parent_of(pid: i32) -> i32 {
    let stat = read(format!("/proc/{pid}/stat"));
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn start_foreground_notifies_and_halts_on_sigterm_and_sigint() {
    let mut f = Fleet::new();
    let name = f.add("fg", "", &slow_init(Some(0)));
    for sig in ["TERM", "INT"] {
        let sock_path = f.env.dir.path().join("notify");
        let _ = std::fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut child = f
            .env
            .cmd(&["start", "-F", "-n", &name])
            .env("NOTIFY_SOCKET", &sock_path)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("READY=1 within a minute");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(msg.starts_with("READY=1"), "{msg}");
        assert_eq!(f.state(&name), "RUNNING");
        // The monitor is rlxc-start's child and stays in its cgroup (the unit's).
        let monitor = parent_of(f.init_pid(&name));
        assert_eq!(parent_of(monitor), child.id() as i32);
        assert_eq!(cgroup_of(monitor), cgroup_of(child.id() as i32));
        Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "rlxc-start -F still runs"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "SIG{sig}: {status}: {err}");
        assert!(err.contains("halting"), "{err}");
        assert_eq!(f.state(&name), "STOPPED", "after SIG{sig}: {err}");
    }
}

#[test]
fn a_detached_monitor_leaves_the_starters_cgroup() {
    let mut f = Fleet::new();
    let name = f.add("detached", "", "");
    f.env.ok(&["start", "-d", "-n", &name]);
    let monitor = parent_of(f.init_pid(&name));
    let cg = cgroup_of(monitor);
    assert!(cg.contains("/rlxc/monitors-"), "monitor {monitor} in {cg}");
    assert_ne!(cg, cgroup_of(std::process::id() as i32));
    f.env.ok(&["stop", "-k", "-n", &name]);
}
