//! rlxc-cgroup and rlxc-top on running busybox containers: limits read and set live
//! (the memory limit on this host's layout: memory.limit_in_bytes on v1, memory.max on
//! cgroup2), a memory hog OOM-killed while the container runs on, pids.max holding a
//! fork loop, names outside the container's cgroup and stopped containers refused, the
//! kernel's reason for a value it refuses, --persist landing in config.toml and applied
//! at the next start; rlxc-top --batch listing a busy container above an idle one.

mod common;

use common::rt::{cgroup_mounts, unique, Made, Rt};
use common::*;
use std::path::PathBuf;

const LIMITED: &str = "[[network]]\ntype = \"empty\"\n[limits]\nmemory = \"256M\"\npids = 100\n";

/// This host keeps memory in a v1 hierarchy (hybrid), else in cgroup2.
fn memory_v1() -> bool {
    cgroup_mounts().iter().any(|m| m.ends_with("memory"))
}

/// The memory limit's file on this host's layout.
fn memory_key() -> &'static str {
    if memory_v1() {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    }
}

fn cgroup(rt: &Rt, args: &[&str]) -> String {
    let mut v = vec!["cgroup"];
    v.extend(args);
    rt.ok(&v).trim().to_string()
}

fn cgroup_fails(rt: &Rt, args: &[&str]) -> String {
    let mut v = vec!["cgroup", "-n", &rt.name];
    v.extend(args);
    rt.env.fails(&v)
}

/// A number a controller file's line `NAME N` says (memory.events, pids.events, …).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text:?}"))
}

/// The container's cgroup directory in the hierarchy that has `file`.
fn cgroup_dir(rt: &Rt, file: &str) -> PathBuf {
    let prefix = format!("{}.", rt.name);
    cgroup_mounts()
        .iter()
        .filter_map(|m| std::fs::read_dir(m.join("rlxc")).ok())
        .flat_map(|rd| rd.flatten())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.join(file).exists()
        })
        .unwrap_or_else(|| panic!("no cgroup of {} with {file}", rt.name))
}

#[test]
fn limits_read_and_set_live_and_a_memory_hog_is_oom_killed() {
    let rt = Rt::new("cgmem", LIMITED);
    rt.ok(&["start", "-d"]);
    assert_eq!(cgroup(&rt, &[memory_key()]), "268435456");
    assert_eq!(cgroup(&rt, &["pids.max"]), "100");

    cgroup(&rt, &[memory_key(), "32M"]);
    assert_eq!(cgroup(&rt, &[memory_key()]), "33554432");
    if read("/proc/swaps").lines().count() > 1 {
        // Swap would take the hog's pages instead of the OOM killer: none beyond the limit.
        match memory_v1() {
            true => cgroup(&rt, &["memory.memsw.limit_in_bytes", "32M"]),
            false => cgroup(&rt, &["memory.swap.max", "0"]),
        };
    }
    let events = if memory_v1() {
        "memory.oom_control"
    } else {
        "memory.events"
    };
    let before = counter(&cgroup(&rt, &[events]), "oom_kill ");
    // dd allocates its 64 MiB block and fills it: past the limit, whatever else runs.
    let out = rt.attach(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "dd was not killed: {}",
        stderr(&out)
    );
    assert!(counter(&cgroup(&rt, &[events]), "oom_kill ") > before);
    // The container runs on, and what fits in the limit still runs.
    assert!(rt.ok(&["info", "-s"]).contains("RUNNING"));
    let out = rt.attach(&["dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=1"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn pids_max_holds_a_fork_loop() {
    let rt = Rt::new("cgpid", LIMITED);
    rt.ok(&["start", "-d"]);
    // Room for the attached shell and a few of its sleeps beyond what the container runs
    // once its boot has settled (its rc scripts fork for a moment after the start).
    let settled = settled_pids(&rt);
    let max = settled + 4;
    cgroup(&rt, &["pids.max", &max.to_string()]);
    let events = cgroup_dir(&rt, "pids.events").join("pids.events");
    let refused_before = counter(&read(&events), "max ");
    let out = rt.attach(&[
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 60 </dev/null >/dev/null 2>&1 & done",
    ]);
    assert!(
        stderr(&out).contains("can't fork"),
        "the loop forked all it wanted: {}",
        stderr(&out)
    );
    let current: u64 = cgroup(&rt, &["pids.current"]).parse().unwrap();
    assert!(current <= max, "pids.current = {current}, pids.max = {max}");
    assert!(counter(&read(&events), "max ") > refused_before);
    let sleeps = pids_named(&rt, "sleep");
    assert!((1..10).contains(&sleeps.len()), "{} sleeps", sleeps.len());
    // Raised live, the limit lets a command in again.
    cgroup(&rt, &["pids.max", "max"]);
    let out = rt.attach(&["killall", "sleep"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The container's process count once it has stayed the same for half a second.
fn settled_pids(rt: &Rt) -> u64 {
    let t0 = std::time::Instant::now();
    let mut last = (u64::MAX, 0);
    loop {
        let now: u64 = cgroup(rt, &["pids.current"]).parse().unwrap();
        last = if now == last.0 {
            (now, last.1 + 1)
        } else {
            (now, 0)
        };
        if last.1 >= 5 {
            return now;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "never settled"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The host pids of the container's processes whose command is `comm`.
fn pids_named(rt: &Rt, comm: &str) -> Vec<i32> {
    read(cgroup_dir(rt, "pids.current").join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

#[test]
fn names_outside_the_cgroup_stopped_containers_and_refused_values() {
    let rt = Rt::new("cgref", LIMITED);
    let e = cgroup_fails(&rt, &["pids.max"]);
    assert!(e.contains("is not running"), "{e}");
    let e = cgroup_fails(&rt, &["pids.max", "5"]);
    assert!(e.contains("is not running"), "{e}");
    rt.ok(&["start", "-d"]);

    for key in [
        "../cgroup.procs",
        "memory.max/../x",
        "/etc/passwd",
        "a/b",
        "..",
    ] {
        let e = cgroup_fails(&rt, &[key]);
        assert!(
            e.contains("is not a file name of the container's cgroup"),
            "{key}: {e}"
        );
        let e = cgroup_fails(&rt, &[key, "1"]);
        assert!(e.contains("is not a file name"), "{key}: {e}");
    }
    // Membership files are read, never written: this process stays where it is.
    let me = std::process::id().to_string();
    let mine = read("/proc/self/cgroup");
    for key in ["cgroup.procs", "cgroup.threads", "tasks"] {
        let e = cgroup_fails(&rt, &[key, &me]);
        assert!(e.contains(&format!("does not write {key}")), "{e}");
    }
    assert_eq!(read("/proc/self/cgroup"), mine);
    let procs = cgroup(&rt, &["cgroup.procs"]);
    assert!(!procs.is_empty() && !procs.contains(&me), "{procs}");
    // Freezing is rlxc-freeze's, which waits for it to complete.
    let freezer = if cgroup_mounts().iter().any(|m| m.ends_with("freezer")) {
        "freezer.state"
    } else {
        "cgroup.freeze"
    };
    let e = cgroup_fails(&rt, &[freezer, "FROZEN"]);
    assert!(e.contains("rlxc-freeze"), "{e}");

    let e = cgroup_fails(&rt, &["pids.max", "abc"]);
    assert!(
        e.contains("error: the kernel refused abc for pids.max: Invalid argument"),
        "{e}"
    );
    assert_eq!(cgroup(&rt, &["pids.max"]), "100");
    let e = cgroup_fails(&rt, &["pids.current", "1"]);
    assert!(e.contains("pids.current is read-only"), "{e}");
    let e = cgroup_fails(&rt, &["memory.nosuchfile"]);
    assert!(e.contains("has no file memory.nosuchfile"), "{e}");
    // The other version's name says which one this host has.
    let other = if memory_v1() {
        ("memory.max", "memory.limit_in_bytes")
    } else {
        ("memory.limit_in_bytes", "memory.max")
    };
    let e = cgroup_fails(&rt, &[other.0]);
    assert!(e.contains(&format!("has {} instead", other.1)), "{e}");
    let e = cgroup_fails(&rt, &["nosuchcontroller.max"]);
    assert!(
        e.contains("no file") || e.contains("no cgroup hierarchy"),
        "{e}"
    );
}

#[test]
fn persist_lands_in_config_and_applies_after_a_restart() {
    let rt = Rt::new("cgper", LIMITED);
    rt.ok(&["start", "-d"]);
    let config = rt.env.lxcpath().join(&rt.name).join("config.toml");

    let out = rt.run(&["cgroup", "--persist", "pids.max", "77"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Kept limits.pids = 77 in"),
        "{}",
        stderr(&out)
    );
    cgroup(&rt, &["--persist", memory_key(), "300M"]);
    let text = read(&config);
    assert!(text.lines().any(|l| l == "pids = 77"), "{text}");
    assert!(text.lines().any(|l| l == "memory = \"300M\""), "{text}");

    // What the config would refuse changes nothing, live or on disk.
    let e = cgroup_fails(&rt, &["--persist", memory_key(), "1M"]);
    assert!(
        e.contains("--persist refused") && e.contains("below 4M"),
        "{e}"
    );
    assert_eq!(cgroup(&rt, &[memory_key()]), "314572800");
    assert_eq!(read(&config), text);
    // A file no [limits] key holds cannot be kept.
    let soft = if memory_v1() {
        "memory.soft_limit_in_bytes"
    } else {
        "memory.high"
    };
    let e = cgroup_fails(&rt, &["--persist", soft, "100M"]);
    assert!(e.contains("has no [limits] key"), "{e}");

    rt.ok(&["stop", "-k"]);
    rt.ok(&["start", "-d"]);
    assert_eq!(cgroup(&rt, &["pids.max"]), "77");
    assert_eq!(cgroup(&rt, &[memory_key()]), "314572800");
    let info = rt.info();
    assert!(
        info.contains("memory 300M") && info.contains("pids 77"),
        "{info}"
    );
}

#[test]
fn top_batch_lists_the_busy_container_above_the_idle_one() {
    let rt = Rt::new("topbusy", "");
    let idle = Made {
        env: &rt.env,
        name: unique("topidle"),
    };
    let stopped = Made {
        env: &rt.env,
        name: unique("topstop"),
    };
    for n in [&idle.name, &stopped.name] {
        rt.env.create_with(
            n,
            "busybox",
            &busybox_release(),
            "[[network]]\ntype = \"empty\"\n",
        );
    }
    rt.ok(&["start", "-d"]);
    rt.env.ok(&["start", "-d", "-n", &idle.name]);
    let out = rt.attach(&[
        "/bin/sh",
        "-c",
        "while :; do :; done </dev/null >/dev/null 2>&1 &",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = rt.env.ok(&[
        "top",
        "--batch",
        "--iterations",
        "2",
        "--delay",
        "1",
        "--sort",
        "cpu",
    ]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "TIME", "NAME", "CPU%", "MEMORY", "SWAP", "BLKIO_R", "BLKIO_W", "NET_RX", "NET_TX",
            "PIDS"
        ],
        "{out}"
    );
    assert_eq!(lines.len(), 5, "a header and two rounds of two: {out}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.len() == 10 && l[1] != stopped.name),
        "{out}"
    );
    // The second round: rates over the second between the rounds.
    let (busy, quiet) = (&lines[3], &lines[4]);
    assert_eq!(
        (busy[1], quiet[1]),
        (rt.name.as_str(), idle.name.as_str()),
        "{out}"
    );
    let cpu = |l: &[&str]| l[2].parse::<f64>().unwrap();
    assert!(cpu(busy) > 50.0 && cpu(busy) < 210.0, "{out}");
    assert!(cpu(quiet) < 20.0, "{out}");
    for l in &lines[1..] {
        let memory: u64 = l[3].parse().unwrap();
        assert!(memory > 0 && memory < 1 << 30, "{out}");
        let tasks: u64 = l[9].parse().unwrap();
        assert!((1..100).contains(&tasks), "{out}");
        // Its own network namespace, only loopback: nothing counted.
        assert_eq!((l[7], l[8]), ("0", "0"), "{out}");
    }
    let busy_tasks: u64 = busy[9].parse().unwrap();
    let quiet_tasks: u64 = quiet[9].parse().unwrap();
    assert!(
        busy_tasks > quiet_tasks,
        "the busy loop is a task more: {out}"
    );

    // By name, and reversed.
    let out = rt.env.ok(&["top", "-b", "-i", "1", "-s", "name", "-r"]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let mut want = vec![rt.name.as_str(), idle.name.as_str()];
    want.sort();
    want.reverse();
    assert_eq!(names, want, "{out}");
    let e = rt.env.fails(&["top", "-b", "-s", "kmem"]);
    assert!(e.contains("sort by one of"), "{e}");
}
