//! The contract a scheduler's task driver (Nomad's raw_exec/exec running rlxc) relies on,
//! exercised as such a driver does it (README, "Driven by a scheduler"): subscribe to the
//! event stream, run the task (`rlxc-start` in the foreground, no terminal), wait for
//! readiness (RUNNING with init's pid), read stats (`rlxc-info --json`, `rlxc-ls
//! --json`), stop with a kill timeout, collect the task's exit status; and a task whose
//! init ends by itself exits non-zero, saying how.
//!
//! The task is `rlxc-start -F` (the Nomad job in README): the driver's stop is its
//! kill_signal, SIGTERM, which becomes the container's clean halt.

mod common;

use common::rt::Rt;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// `rlxc-monitor --json -n NAME`: the driver's event stream, one object a line.
struct Events {
    child: Child,
    lines: Receiver<Value>,
}

impl Events {
    fn subscribe(rt: &Rt) -> Self {
        let before = listeners(&rt.env);
        let mut child = rt
            .env
            .cmd(&["monitor", "--json", "-n", &rt.name])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&l).expect("a JSON object a line");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        wait_until("rlxc-monitor listens", Duration::from_secs(10), || {
            listeners(&rt.env) > before
        });
        Events { child, lines }
    }

    /// Events until one in `state`; that one.
    fn until(&self, state: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let left = Duration::from_secs(30).saturating_sub(t0.elapsed());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {state} event within 30 s"));
            if v["state"] == state {
                return v;
            }
        }
    }
}

impl Drop for Events {
    /// Ctrl-C, so it removes its socket.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
    }
}

fn listeners(env: &Env) -> usize {
    std::fs::read_dir(env.dir.path().join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("events."))
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .count()
}

/// The task: the container in the foreground, as a driver runs a command (no terminal,
/// output collected).
fn run_task(rt: &Rt) -> Child {
    rt.env
        .cmd(&["start", "-F", "--halt-timeout", "10", "-n", &rt.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The task's exit status and stderr, within `limit`.
fn collect(task: Child, limit: Duration) -> (Option<i32>, String) {
    let (out, timed_out) = wait_bounded(task, limit);
    assert!(!timed_out, "the task did not end within {limit:?}");
    (out.status.code(), stderr(&out))
}

#[test]
fn a_driver_starts_waits_for_ready_reads_stats_stops_and_collects_the_exit_status() {
    let rt = Rt::new("drv", "");
    let events = Events::subscribe(&rt);
    let task = run_task(&rt);
    // Ready: RUNNING, with init's pid.
    let running = events.until("RUNNING");
    let pid = running["pid"].as_i64().expect("RUNNING carries init's pid");
    assert_eq!(running["name"], rt.name.as_str());
    // Stats.
    let info: Value = serde_json::from_str(&rt.ok(&["info", "--json"])).unwrap();
    assert_eq!(info["state"], "RUNNING");
    assert_eq!(info["pid"].as_i64(), Some(pid));
    assert!(
        info["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{info}"
    );
    assert!(info["cpu_ns"].as_u64().is_some(), "{info}");
    let ls: Value = serde_json::from_str(&rt.env.ok(&["ls", "--json", &rt.name])).unwrap();
    assert_eq!(ls[0]["state"], "RUNNING");
    // Stop: the job's kill_signal; the task halts the container and ends, successfully.
    let task_pid = nix::unistd::Pid::from_raw(task.id() as i32);
    nix::sys::signal::kill(task_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    events.until("STOPPING");
    events.until("STOPPED");
    let (code, err) = collect(task, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    drop(events);
    rt.assert_clean();
}

#[test]
fn a_task_whose_init_ends_by_itself_exits_non_zero_saying_how() {
    let rt = Rt::new(
        "drvexit",
        "[init]\ncmd = [\"/bin/sh\", \"-c\", \"sleep 1; exit 3\"]\n\n[[network]]\ntype = \"empty\"\n",
    );
    let events = Events::subscribe(&rt);
    let task = run_task(&rt);
    events.until("RUNNING");
    events.until("STOPPED");
    let (code, err) = collect(task, Duration::from_secs(30));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains('3'), "the status is told: {err}");
    drop(events);
    rt.assert_clean();
}

/// A monitor that ends before the start returns must not leave the task waiting for
/// ever: its SIGCHLD, arriving before rlxc-start has read that the start went well, is
/// kept for the wait that follows. Made deterministic: the monitor writes init.pid (just
/// before it reports the start) into a FIFO this test holds shut, so rlxc-start is
/// stopped (SIGSTOP) while it still waits for the report, and resumed once its monitor
/// has reported, seen init end and exited.
#[test]
fn a_task_whose_monitor_ends_before_the_start_returns_still_ends() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let rt = Rt::new(
        "drvgap",
        "[init]\ncmd = [\"/bin/sh\", \"-c\", \"while [ ! -e /go ]; do sleep 1; done; exit 3\"]\n\n\
         [[network]]\ntype = \"empty\"\n",
    );
    let fifo = rt.run_dir().join("init.pid");
    std::fs::create_dir_all(rt.run_dir()).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let task = Paused(Some(run_task(&rt)));
    let task_pid = Pid::from_raw(task.0.as_ref().unwrap().id() as i32);
    let mut monitor = None;
    wait_until("the monitor runs", Duration::from_secs(30), || {
        monitor = rt.monitor_pid();
        monitor.is_some()
    });
    let monitor = monitor.unwrap();
    // The monitor cannot report before the FIFO has a reader: rlxc-start is still waiting.
    kill(task_pid, Signal::SIGSTOP).unwrap();
    let mut reader = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    // Written once init has run: only then may it end (an init that ends before the
    // monitor saw it run is a start failure instead).
    let mut written = Vec::new();
    wait_until("init.pid written", Duration::from_secs(30), || {
        let mut buf = [0u8; 32];
        if let Ok(n) = reader.read(&mut buf) {
            written.extend_from_slice(&buf[..n]);
        }
        written.ends_with(b"\n")
    });
    std::fs::write(rt.env.rootfs(&rt.name).join("go"), "").unwrap();
    // The monitor is done (a zombie: its parent, stopped, has not reaped it).
    wait_until("the monitor exits", Duration::from_secs(30), || {
        std::fs::read_to_string(format!("/proc/{monitor}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    });
    drop(reader);
    let task = task.resume(task_pid);
    let (code, err) = collect(task, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains('3'), "the status is told: {err}");
    rt.assert_clean();
}

/// A task stopped with SIGSTOP: killed if the test fails before it resumes it.
struct Paused(Option<Child>);

impl Paused {
    fn resume(mut self, pid: nix::unistd::Pid) -> Child {
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        self.0.take().unwrap()
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
