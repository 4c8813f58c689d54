//! rlxc-freeze / rlxc-unfreeze on a running busybox container: a counter stops and goes
//! on again, the kernel's freezer files and the processes' states agree, info, ls and wait
//! say FROZEN, attach refuses, stop (halt or kill) of a frozen container works and leaves
//! nothing. rlxc-snapshot of a running container freezes it for the copy and thaws it
//! after, also when rlxc is interrupted or SIGKILLed half-way (its watcher thaws).

mod common;

use common::rt::{cgroup_mounts, Rt};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The counter: a shell in the container writing an ever larger number to /counter.
const COUNTER: &str = "(i=0; while :; do i=$((i+1)); echo $i > /counter; usleep 10000; done) \
                       </dev/null >/dev/null 2>&1 &";

fn started(tag: &str) -> Rt {
    let rt = Rt::new(tag, "");
    rt.ok(&["start", "-d"]);
    let out = rt.attach(&["/bin/sh", "-c", COUNTER]);
    assert!(out.status.success(), "{}", stderr(&out));
    rt
}

fn counter(rt: &Rt) -> u64 {
    let p = rt.env.rootfs(&rt.name).join("counter");
    let t0 = Instant::now();
    loop {
        // Between the truncate and the write of an `echo >` the file is empty.
        if let Some(n) = std::fs::read_to_string(&p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return n;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no counter in {p:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The counter moves within a few seconds.
fn assert_counting(rt: &Rt) {
    let a = counter(rt);
    let t0 = Instant::now();
    while counter(rt) == a {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the counter stays at {a}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state(rt: &Rt) -> String {
    let out = rt.ok(&["info", "-s"]);
    out.trim()
        .strip_prefix("State:")
        .unwrap_or(&out)
        .trim()
        .to_string()
}

/// The container's cgroup directory in the freezer's hierarchy, and whether that is v1.
fn freezer_dir(rt: &Rt) -> (PathBuf, bool) {
    let mounts = cgroup_mounts();
    let v1 = mounts.iter().find(|m| m.ends_with("freezer")).cloned();
    let base = v1.clone().unwrap_or_else(|| {
        mounts
            .iter()
            .find(|m| m.join("cgroup.controllers").exists())
            .expect("a freezer: v1 or cgroup2")
            .clone()
    });
    let prefix = format!("{}.", rt.name);
    let dir = std::fs::read_dir(base.join("rlxc"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no cgroup of {} under {}", rt.name, base.display()));
    (dir, v1.is_some())
}

/// What the kernel says: every task frozen (FROZEN, or `frozen 1`), and on v1 each of the
/// container's processes asleep in the freezer (state D).
fn kernel_frozen(rt: &Rt) -> bool {
    let (dir, v1) = freezer_dir(rt);
    if v1 {
        read(dir.join("freezer.state")).trim() == "FROZEN"
    } else {
        read(dir.join("cgroup.events"))
            .lines()
            .any(|l| l == "frozen 1")
    }
}

fn pids(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = read(dir.join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            v.extend(pids(&e.path()));
        }
    }
    v
}

fn proc_state(pid: i32) -> String {
    read(format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn freeze_stops_a_counter_thaw_resumes_it_and_a_frozen_container_stops() {
    let rt = started("frz");
    assert_counting(&rt);

    let out = rt.run(&["freeze"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Froze"), "{}", stderr(&out));
    assert!(kernel_frozen(&rt));
    let (dir, v1) = freezer_dir(&rt);
    let tasks = pids(&dir);
    assert!(tasks.len() >= 2, "init and the counter: {tasks:?}");
    if v1 {
        for p in &tasks {
            let s = proc_state(*p);
            assert!(s.starts_with('D'), "pid {p} is {s:?}, not in the freezer");
        }
    }
    let a = counter(&rt);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&rt), a, "the counter moved while frozen");
    assert_eq!(state(&rt), "FROZEN");
    let ls = rt.env.ok(&["ls", "-f", "-F", "name,state"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&rt.name) && l.contains("FROZEN")),
        "{ls}"
    );
    rt.ok(&["wait", "-s", "FROZEN", "-t", "5"]);
    assert!(
        rt.ok(&["info"]).contains("PID:"),
        "still running, with a pid"
    );

    // A second freeze changes nothing; attach refuses with the way out.
    let again = rt.run(&["freeze"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("frozen already"),
        "{}",
        stderr(&again)
    );
    let out = rt.attach(&["/bin/true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("frozen") && err.contains(&format!("rlxc-unfreeze -n {}", rt.name)),
        "{err}"
    );

    let out = rt.run(&["unfreeze"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Thawed"), "{}", stderr(&out));
    assert!(!kernel_frozen(&rt));
    assert_eq!(state(&rt), "RUNNING");
    assert_counting(&rt);
    let out = rt.run(&["unfreeze"]);
    assert!(stderr(&out).contains("is not frozen"), "{}", stderr(&out));

    // A clean halt of a frozen container: thawed, halted.
    rt.ok(&["freeze"]);
    let t0 = Instant::now();
    rt.ok(&["stop", "-t", "20"]);
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    rt.assert_clean();

    // A kill of a frozen container (on v1 a frozen task dies only once thawed).
    rt.ok(&["start", "-d"]);
    rt.ok(&["freeze"]);
    assert!(kernel_frozen(&rt));
    rt.ok(&["stop", "-k"]);
    assert_eq!(state(&rt), "STOPPED");
    rt.assert_clean();

    // Stopped: nothing to freeze or thaw, said so.
    for verb in ["freeze", "unfreeze"] {
        let out = rt.run(&[verb]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(&format!("{} is not running", rt.name)),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_snapshot_of_a_running_container_freezes_it_for_the_copy() {
    let rt = started("frzsnap");
    let out = rt.attach(&["/bin/sh", "-c", "echo written-before > /root/mark"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = rt.run(&["snapshot", "-c", "live one"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Took snapshot snap0") && err.contains("frozen for the copy"),
        "{err}"
    );
    let snap = rt.env.lxcpath().join(&rt.name).join("snaps/snap0");
    assert_eq!(read(snap.join("rootfs/root/mark")), "written-before\n");
    assert!(snap.join("rootfs/counter").is_file());
    let list = rt.ok(&["snapshot", "-L"]);
    assert!(
        list.contains("live one (taken live: frozen for the copy"),
        "{list}"
    );
    // Thawed after: running, counting.
    assert_eq!(state(&rt), "RUNNING");
    assert!(!kernel_frozen(&rt));
    assert_counting(&rt);

    // Frozen by its admin before: still frozen after.
    rt.ok(&["freeze"]);
    rt.ok(&["snapshot"]);
    assert_eq!(state(&rt), "FROZEN");
    rt.ok(&["unfreeze"]);
    assert_counting(&rt);

    // A snapshot of a stopped container is not called live.
    rt.ok(&["stop", "-k"]);
    let out = rt.run(&["snapshot", "-c", "cold"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("frozen"), "{}", stderr(&out));
    let list = rt.ok(&["snapshot", "-L"]);
    assert!(
        list.lines()
            .any(|l| l.contains("snap2") && l.trim_end().ends_with("cold")),
        "{list}"
    );
    rt.assert_clean();
}

/// A `cp` first on PATH that says it started and then waits until killed: the copy of
/// a snapshot is held while the test interrupts or kills rlxc.
struct StuckCp {
    dir: tempfile::TempDir,
}

impl StuckCp {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "#!/bin/sh\necho $$ > {0}/pid.tmp && mv {0}/pid.tmp {0}/pid\nwhile :; do sleep 1; done\n",
            dir.path().display()
        );
        let cp = dir.path().join("cp");
        std::fs::write(&cp, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cp, std::fs::Permissions::from_mode(0o755)).unwrap();
        StuckCp { dir }
    }

    fn snapshot(&self, rt: &Rt) -> Child {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let _ = std::fs::remove_file(self.dir.path().join("pid"));
        rt.env
            .cmd(&["snapshot", "-n", &rt.name])
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The stuck cp's pid, once it runs (the container is frozen by then).
    fn wait_started(&self) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Ok(p) = std::fs::read_to_string(self.dir.path().join("pid")) {
                return p.trim().parse().unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "cp never started");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn kill(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Within a few seconds the container runs unfrozen again.
fn assert_thawed_soon(rt: &Rt) {
    let t0 = Instant::now();
    while kernel_frozen(rt) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still frozen after rlxc went"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(state(rt), "RUNNING");
    assert_counting(rt);
}

#[test]
fn a_snapshot_interrupted_or_killed_while_frozen_leaves_the_container_running() {
    let rt = started("frzkill");
    let stuck = StuckCp::new();

    // SIGKILL: nothing of rlxc runs to thaw; its watcher does.
    let mut child = stuck.snapshot(&rt);
    let cp = stuck.wait_started();
    assert!(kernel_frozen(&rt), "frozen for the copy");
    assert_eq!(state(&rt), "FROZEN");
    child.kill().unwrap();
    child.wait().unwrap();
    kill(cp, "KILL");
    assert_thawed_soon(&rt);
    // The watcher (a fork of rlxc, with its command line) is gone too.
    let t0 = Instant::now();
    loop {
        let lingering: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("snapshot") && c.contains(&rt.name))
            .collect();
        if lingering.is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{lingering:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Ctrl-C: rlxc unwinds, thaws and removes its half snapshot.
    let child = stuck.snapshot(&rt);
    let cp = stuck.wait_started();
    assert!(kernel_frozen(&rt));
    kill(child.id() as i32, "INT");
    let out = child.wait_with_output().unwrap();
    kill(cp, "KILL");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_thawed_soon(&rt);
    let list = rt.ok(&["snapshot", "-L"]);
    assert!(list.trim().is_empty(), "no snapshot was taken: {list}");
    let left: Vec<_> = std::fs::read_dir(rt.env.lxcpath().join(&rt.name).join("snaps"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}
