//! rlxc-monitor and rlxc-wait on the events monitors and verbs announce: a start, a
//! freeze and thaw, a stop, a failed start, a container created after the monitor
//! began, a monitor killed (its orphans killed by rlxc-stop -k), a listener killed
//! (its socket swept by the next announcement), rlxc-wait woken by the change.

mod common;

use common::rt::{Made, Rt};
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A running `rlxc-monitor ARGS` and its stdout, a line at a time.
struct Watcher {
    child: Child,
    lines: Receiver<String>,
}

impl Watcher {
    fn start(env: &Env, args: &[&str]) -> Self {
        let before = listeners(env);
        let mut v = vec!["monitor"];
        v.extend(args);
        let mut child = env.cmd(&v).stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        // Listening once its socket is there.
        let t0 = Instant::now();
        while listeners(env) <= before {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "rlxc-monitor never listens"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Watcher { child, lines }
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from rlxc-monitor within 30 s")
    }

    /// The next lines are these, in this order.
    fn expect(&self, want: &[String]) {
        for w in want {
            assert_eq!(&self.next(), w);
        }
    }

    fn quiet_for(&self, d: Duration) {
        if let Ok(l) = self.lines.recv_timeout(d) {
            panic!("unexpected line {l:?}");
        }
    }
}

impl Drop for Watcher {
    /// Ctrl-C, as a user ends it (it removes its socket), else a kill.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The listeners' sockets of the installation.
fn listeners(env: &Env) -> usize {
    socket_files(env).len()
}

fn socket_files(env: &Env) -> Vec<std::path::PathBuf> {
    let run = env.dir.path().join("run");
    std::fs::read_dir(&run)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("events."))
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect()
}

fn line(name: &str, state: &str) -> String {
    format!("'{name}' changed state to [{state}]")
}

fn lines(name: &str, states: &[&str]) -> Vec<String> {
    states.iter().map(|s| line(name, s)).collect()
}

#[test]
fn monitor_sees_every_change_of_matching_containers_as_it_happens() {
    let rt = Rt::new("ev", "");
    let all = Watcher::start(&rt.env, &["--json"]);
    let only = Watcher::start(&rt.env, &["-n", &format!("{}|nothing", rt.name)]);

    rt.ok(&["start", "-d"]);
    only.expect(&lines(&rt.name, &["STARTING", "RUNNING"]));
    let first: Value = serde_json::from_str(&all.next()).unwrap();
    assert_eq!(first["name"], rt.name.as_str());
    assert_eq!(first["state"], "STARTING");
    assert!(first["time"].as_f64().is_some_and(|t| t > 1.6e9), "{first}");
    let running: Value = serde_json::from_str(&all.next()).unwrap();
    assert_eq!(running["state"], "RUNNING");
    assert_eq!(
        running["pid"].as_i64(),
        rt.init_pid().map(i64::from),
        "{running}"
    );
    rt.ok(&["freeze"]);
    rt.ok(&["unfreeze"]);
    rt.ok(&["stop", "-t", "10"]);
    only.expect(&lines(
        &rt.name,
        &["FROZEN", "RUNNING", "STOPPING", "STOPPED"],
    ));

    // A container made after the monitor began, and whose name the pattern does not
    // match in whole (only `all` hears of it); its start fails.
    let late = Made {
        env: &rt.env,
        name: format!("{}x", rt.name),
    };
    rt.env.create_with(
        &late.name,
        "busybox",
        &busybox_release(),
        "[[network]]\ntype = \"empty\"\n[init]\ncmd = [\"/bin/false\"]\n",
    );
    let _ = rt.env.run(&["start", "-d", "-n", &late.name]);
    let states: Vec<String> = (0..6)
        .map(|_| {
            let v: Value = serde_json::from_str(&all.next()).unwrap();
            format!(
                "{} {}",
                v["name"].as_str().unwrap(),
                v["state"].as_str().unwrap()
            )
        })
        .collect();
    let of = |n: &str| -> Vec<String> {
        states
            .iter()
            .filter(|s| s.split(' ').next() == Some(n))
            .map(|s| s.split(' ').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(of(&rt.name), ["FROZEN", "RUNNING", "STOPPING", "STOPPED"]);
    let late_states = of(&late.name);
    // init /bin/false exits at once: either the start failed, or it ran and ended.
    assert!(
        late_states == ["STARTING", "ABORTING"] || late_states == ["STARTING", "RUNNING"],
        "{states:?}"
    );
    only.quiet_for(Duration::from_millis(500));
}

#[test]
fn a_killed_monitor_and_a_killed_listener_lose_nothing() {
    let rt = Rt::new("evk", "");
    let w = Watcher::start(&rt.env, &["-n", &rt.name]);
    // A listener that is killed leaves its socket; the next announcement removes it.
    let mut dead = Watcher::start(&rt.env, &[]);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    assert_eq!(listeners(&rt.env), 2);
    rt.ok(&["start", "-d"]);
    w.expect(&lines(&rt.name, &["STARTING", "RUNNING"]));
    assert_eq!(listeners(&rt.env), 1, "{:?}", socket_files(&rt.env));

    // The container's monitor is killed: its processes live on, still RUNNING; the
    // kill of the orphans says STOPPED.
    let waiter = rt
        .env
        .cmd(&["wait", "-n", &rt.name, "-s", "STOPPED", "-t", "60"])
        .spawn()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rt.monitor_pid().expect("the container's monitor")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    w.quiet_for(Duration::from_millis(500));
    assert!(rt.info().contains("RUNNING"), "{}", rt.info());
    rt.ok(&["stop", "-k"]);
    w.expect(&[line(&rt.name, "STOPPED")]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "rlxc-wait: {:?}", out.status);
    // The last listener gone (Ctrl-C), nothing of the events is left.
    drop(w);
    rt.assert_clean();
}

#[test]
fn wait_is_woken_by_the_change() {
    let rt = Rt::new("evw", "");
    // A state it is in: at once.
    rt.ok(&["wait", "-s", "STOPPED", "-t", "5"]);
    let wait = |states: &str, t: &str| {
        rt.env
            .cmd(&["wait", "-n", &rt.name, "-s", states, "-t", t])
            .spawn()
            .unwrap()
    };
    let running = wait("RUNNING", "60");
    let frozen = wait("FROZEN|ABORTING", "60");
    let stopping = wait("STOPPING", "60");
    std::thread::sleep(Duration::from_millis(300));
    rt.ok(&["start", "-d"]);
    assert!(running.wait_with_output().unwrap().status.success());
    rt.ok(&["freeze"]);
    assert!(frozen.wait_with_output().unwrap().status.success());
    rt.ok(&["unfreeze"]);
    rt.ok(&["stop", "-k"]);
    assert!(stopping.wait_with_output().unwrap().status.success());
    // Nothing comes: exit 1 at the timeout.
    let out = rt.run(&["wait", "-s", "RUNNING", "-t", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = rt.env.fails(&["wait", "-n", &rt.name, "-s", "UP"]);
    assert!(e.contains("unknown state") && e.contains("STOPPING"), "{e}");
    rt.assert_clean();
}
