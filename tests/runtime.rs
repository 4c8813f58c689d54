//! The runtime end to end, as root, on the busybox fixture image: start, console through
//! a real terminal (tmux), attach, stop, reboot, failure paths, a killed monitor, and
//! cleanup (no mount, veth, cgroup, process or socket left behind).

mod common;

use common::rt::*;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn start_attach_info_stop_and_nothing_left() {
    let rt = Rt::new(
        "basic",
        "[limits]\nmemory = \"256M\"\npids = 200\n\n[[network]]\ntype = \"empty\"\n",
    );
    rt.ok(&["start", "-d"]);
    let info = rt.info();
    assert!(info.contains("RUNNING"), "{info}");
    assert!(
        info.contains("CPU use:") && info.contains("Memory use:"),
        "{info}"
    );
    let pid = rt.init_pid().expect("PID in info");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let env = read(format!("/proc/{pid}/environ")).replace('\0', "\n");
    assert!(env.lines().any(|l| l == "container=lxc"), "{env}");

    let out = rt.attach(&[
        "/bin/sh",
        "-c",
        "hostname; echo $$; cat /proc/1/comm; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], rt.name, "hostname from config");
    assert_ne!(
        lines[1],
        pid.to_string(),
        "attached process is in the container's pid namespace"
    );
    assert_eq!(lines[2], "init");

    // Security defaults: dropped capabilities, seccomp, read-only /proc/sys, devices.
    let out = rt.attach(&["/bin/sh", "-c", "grep -E '^(CapBnd|Seccomp):' /proc/self/status; echo 1 > /proc/sys/kernel/domainname && echo WROTE; mknod /dev/sda1 b 8 1 && head -c1 /dev/sda1 && echo READ; ls /dev"]);
    let o = stdout(&out);
    let capbnd = o
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let caps = u64::from_str_radix(capbnd, 16).unwrap();
    for cap in [16, 17, 25, 32, 33] {
        assert_eq!(
            caps & (1 << cap),
            0,
            "capability {cap} still in the bounding set: {capbnd}"
        );
    }
    assert!(o.contains("Seccomp:\t2"), "{o}");
    assert!(!o.contains("WROTE"), "/proc/sys is writable: {o}");
    assert!(!o.contains("READ"), "a block device is readable: {o}");
    for dev in [
        "console", "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(o.lines().any(|l| l == dev), "/dev/{dev} missing: {o}");
    }
    // The memory limit is in force and not writable from inside.
    let out = rt.attach(&["/bin/sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; echo 1 > /sys/fs/cgroup/pids/pids.max && echo RAISED"]);
    let o = stdout(&out);
    assert!(o.contains(&(256u64 << 20).to_string()), "{o}");
    assert!(!o.contains("RAISED"), "{o}");

    // Every start is a new boot: its own boot id, read-only.
    let out = rt.attach(&["/bin/sh", "-c", "cat /proc/sys/kernel/random/boot_id; echo x > /proc/sys/kernel/random/boot_id && echo WROTE"]);
    let boot = stdout(&out);
    assert_eq!(boot.trim().len(), 36, "{boot}");
    assert_ne!(boot.trim(), read("/proc/sys/kernel/random/boot_id").trim());
    assert!(!boot.contains("WROTE"));

    let ls = rt.env.ok(&["ls", "-f"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&rt.name) && l.contains("RUNNING")),
        "{ls}"
    );
    let e = rt.run(&["destroy"]);
    assert!(
        !e.status.success() && stderr(&e).contains("running"),
        "{}",
        stderr(&e)
    );

    rt.ok(&["stop", "-t", "20"]);
    assert!(rt.info().contains("STOPPED"));
    rt.assert_clean();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn console_login_detach_reattach_through_a_terminal() {
    let rt = Rt::new("console", "");
    let t = rt.tmux(&format!("start -n {}", rt.name));
    rt.log_in(&t);
    t.keys(&["echo the-answer-is-$((6*7))", "Enter"]);
    t.wait_for("the-answer-is-42");
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
    assert!(rt.info().contains("RUNNING"), "detaching leaves it running");
    drop(t);

    // Reattach: recent output is replayed, the session is still logged in.
    let t = rt.tmux(&format!("console -n {}", rt.name));
    t.wait_for("the-answer-is-42");
    t.keys(&["echo again-$((1+1))", "Enter"]);
    t.wait_for("again-2");
    // Window size follows the terminal.
    t.keys(&["stty size", "Enter"]);
    t.wait_for("40 120");
    rt.ok(&["stop", "-t", "20"]);
    t.wait_for("EXIT=0");
    rt.assert_clean();
}

#[test]
fn kill_reboot_and_wait() {
    let rt = Rt::new("reboot", "");
    rt.ok(&["start", "-d"]);
    rt.ok(&["wait", "-s", "RUNNING", "-t", "10"]);
    let (first, second) = rt.reboot();
    assert_ne!(first, second);
    assert_eq!(stdout(&rt.attach(&["/bin/true"])).len(), 0);
    let t0 = Instant::now();
    rt.ok(&["stop", "-k"]);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(
        rt.run(&["wait", "-s", "STOPPED", "-t", "5"]).status.code(),
        Some(0)
    );
    rt.assert_clean();
}

#[test]
fn the_monitor_keeps_no_descriptor_of_rlxc_start() {
    let rt = Rt::new("monfds", "");
    rt.ok(&["start", "-d"]);
    // Every process on the host: none holds the container's lock or its config once
    // rlxc-start is gone (the monitor is a fork of it, not an exec).
    let dir = rt.env.lxcpath();
    let mut held = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                if t.starts_with(&dir) {
                    held.push(format!("{} -> {}", fd.path().display(), t.display()));
                }
            }
        }
    }
    assert!(held.is_empty(), "{held:?}");
    rt.ok(&["stop", "-k"]);
}

#[test]
fn stop_nowait_returns_once_the_monitor_has_the_request() {
    let rt = Rt::new("nowait", "");
    rt.ok(&["start", "-d"]);
    rt.ok(&["wait", "-s", "RUNNING", "-t", "10"]);
    // rlxc-info -p: the bare pid, for `cat /proc/$(rlxc-info -n web1 -p)/uid_map`.
    let pid: i32 = rt.ok(&["info", "-p"]).trim().parse().expect("a bare pid");
    assert_eq!(Some(pid), rt.init_pid());
    // Several at once, as a bulk stop sends them: every one is taken (exit 0 means so).
    let kids: Vec<_> = (0..4)
        .map(|_| {
            rt.env
                .cmd(&["stop", "-W", "-k", "-n", &rt.name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run rlxc-stop")
        })
        .collect();
    let mut taken = 0;
    for k in kids {
        let out = k.wait_with_output().unwrap();
        // A later one may find the container already stopped, and say so.
        match out.status.success() {
            true => taken += 1,
            false => assert!(stderr(&out).contains("not running"), "{}", stderr(&out)),
        }
    }
    assert!(taken >= 1);
    assert_eq!(
        rt.run(&["wait", "-s", "STOPPED", "-t", "10"]).status.code(),
        Some(0)
    );
    let out = rt.run(&["info", "-p"]);
    assert!(!out.status.success() && stderr(&out).contains("not running"));
    let out = rt.run(&["stop", "-W"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not running"),
        "{}",
        stderr(&out)
    );
    rt.assert_clean();
}

/// `rlxc-stop -W` returns once the monitor has taken the request, not once the request
/// is written: with the monitor stopped (SIGSTOP) it is still waiting a second later.
/// Before, it wrote the request from a thread and exited after 100 ms, and under load
/// the request was lost with the thread.
#[test]
fn stop_nowait_waits_for_a_monitor_that_cannot_take_the_request_yet() {
    use nix::sys::signal::{kill, Signal};
    let rt = Rt::new("nowaitheld", "");
    rt.ok(&["start", "-d"]);
    rt.ok(&["wait", "-s", "RUNNING", "-t", "10"]);
    let monitor = nix::unistd::Pid::from_raw(rt.monitor_pid().expect("a monitor"));
    /// The monitor goes on, whatever the test did.
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let resume = Resume(monitor);
    kill(monitor, Signal::SIGSTOP).unwrap();
    wait_until("the monitor stops", Duration::from_secs(10), || {
        let stat = std::fs::read_to_string(format!("/proc/{monitor}/stat")).unwrap_or_default();
        // The state follows the parenthesized command name.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
    });
    let mut stop = rt
        .env
        .cmd(&["stop", "-W", "-k", "-n", &rt.name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run rlxc-stop");
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            stop.try_wait().unwrap().is_none(),
            "rlxc-stop -W returned before the monitor could take its request"
        );
    }
    drop(resume);
    let out = stop.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Taken, so done: the container stops with nothing more asked.
    rt.ok(&["wait", "-s", "STOPPED", "-t", "10"]);
    rt.assert_clean();
}

#[test]
fn start_failures_say_why_and_leave_nothing() {
    // init not found
    let rt = Rt::new(
        "noinit",
        "[init]\ncmd = [\"/sbin/no-such-init\"]\n\n[[network]]\ntype = \"empty\"\n",
    );
    let e = rt.run(&["start", "-d"]);
    assert!(!e.status.success());
    assert!(
        stderr(&e).contains("/sbin/no-such-init") && stderr(&e).contains("not found"),
        "{}",
        stderr(&e)
    );
    rt.assert_clean();

    // missing bridge
    let rt = Rt::new(
        "nobridge",
        "[[network]]\ntype = \"veth\"\nlink = \"rlxcnobr0\"\n",
    );
    let e = rt.run(&["start", "-d"]);
    assert!(
        stderr(&e).contains("bridge rlxcnobr0 does not exist"),
        "{}",
        stderr(&e)
    );
    rt.assert_clean();

    // cgroup refused (a CPU quota below the kernel's minimum)
    let rt = Rt::new(
        "cgroup",
        "[limits]\ncpus = 0.00001\n\n[[network]]\ntype = \"empty\"\n",
    );
    let e = rt.run(&["start", "-d"]);
    assert!(stderr(&e).contains("cgroup"), "{}", stderr(&e));
    rt.assert_clean();

    // bad config
    let rt = Rt::new("badcfg", "");
    let cfgfile = rt.env.lxcpath().join(&rt.name).join("config.toml");
    let text = read(&cfgfile);
    std::fs::write(&cfgfile, format!("{text}\nbogus_key = 1\n")).unwrap();
    let e = rt.run(&["start", "-d"]);
    assert!(
        stderr(&e).contains("config.toml") && stderr(&e).contains("bogus_key"),
        "{}",
        stderr(&e)
    );
    rt.assert_clean();

    // missing rootfs
    let rt = Rt::new("norootfs", "");
    std::fs::remove_dir_all(rt.env.rootfs(&rt.name)).unwrap();
    let e = rt.run(&["start", "-d"]);
    assert!(
        stderr(&e).contains("rootfs") && stderr(&e).contains("missing"),
        "{}",
        stderr(&e)
    );
    rt.assert_clean();
}

#[test]
fn killed_monitor_is_reported_and_recoverable() {
    let rt = Rt::new("orphan", "");
    rt.ok(&["start", "-d"]);
    let mpid = rt.monitor_pid().expect("the container's monitor");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mpid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let info = rt.info();
    assert!(
        info.contains("RUNNING") && info.contains("rlxc-stop -k"),
        "{info}"
    );
    let e = rt.run(&["stop"]);
    assert!(
        !e.status.success() && stderr(&e).contains("rlxc-stop -k"),
        "{}",
        stderr(&e)
    );
    // No second run beside the orphans: the start is refused, saying how to end them,
    // and they run on.
    let e = rt.run(&["start", "-d"]);
    assert!(
        !e.status.success()
            && stderr(&e).contains("previous run")
            && stderr(&e).contains(&format!("rlxc-stop -k -n {}", rt.name)),
        "{}",
        stderr(&e)
    );
    assert!(rt.info().contains("rlxc-stop -k"), "{}", rt.info());
    // The console is the monitor's: say it is gone and how to recover, not "not running".
    let e = rt.run(&["console"]);
    assert!(!e.status.success());
    assert!(
        stderr(&e).contains("monitor is gone")
            && stderr(&e).contains(&format!("rlxc-stop -k -n {}", rt.name))
            && stderr(&e).contains("start it again")
            && !stderr(&e).contains("not running"),
        "{}",
        stderr(&e)
    );
    rt.ok(&["stop", "-k"]);
    assert!(rt.info().contains("STOPPED"));
    rt.assert_clean();
    // And it starts again.
    rt.ok(&["start", "-d"]);
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn veth_on_a_test_bridge() {
    let br = Bridge::new();
    let rt = Rt::new("veth", &format!("[[network]]\ntype = \"veth\"\nlink = \"{}\"\nname = \"eth0\"\nhwaddr = \"00:16:3e:12:34:56\"\n", br.name));
    rt.ok(&["start", "-d"]);
    let ports = br.ports();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let out = rt.attach(&["/bin/cat", "/sys/class/net/eth0/address"]);
    assert_eq!(stdout(&out).trim(), "00:16:3e:12:34:56", "{}", stderr(&out));
    let info = rt.info();
    assert!(info.contains("Link:") && info.contains("eth0"), "{info}");
    rt.ok(&["stop", "-k"]);
    // Gone from the host by the time rlxc-stop returns, not some time later.
    assert!(
        !Path::new("/sys/class/net").join(&ports[0]).exists(),
        "{} still there after rlxc-stop",
        ports[0]
    );
    assert_eq!(br.ports(), Vec::<String>::new());
    rt.assert_clean();

    // The container's own set-up fails (a mount source that does not exist) while the
    // monitor wires the veth: the child's reason is reported, and nothing is left.
    let rt = Rt::new(
        "vethfail",
        &format!(
            "[[network]]\ntype = \"veth\"\nlink = \"{}\"\n\n\
             [[mount]]\nsource = \"/nonexistent-rlxc-source\"\ntarget = \"mnt\"\n\
             options = \"bind\"\n",
            br.name
        ),
    );
    let e = rt.run(&["start", "-d"]);
    assert!(!e.status.success());
    assert!(
        stderr(&e).contains("the source /nonexistent-rlxc-source does not exist"),
        "{}",
        stderr(&e)
    );
    rt.assert_clean();
    assert_eq!(br.ports(), Vec::<String>::new());
}

#[test]
fn fifty_start_stop_cycles_leave_nothing() {
    let rt = Rt::new("cycles", "");
    for i in 0..50 {
        let out = rt.run(&["start", "-d"]);
        assert!(out.status.success(), "cycle {i}: {}", stderr(&out));
        let out = rt.run(&["stop", "-k"]);
        assert!(out.status.success(), "cycle {i}: {}", stderr(&out));
    }
    rt.assert_clean();
}

#[test]
fn debian_boots_systemd_to_running_with_a_console_login() {
    let rt = Rt::with_image("debian", "bookworm", "deb", "");
    rt.ok(&["start", "-d"]);
    rt.assert_system_running();
    assert_eq!(
        stdout(&rt.attach(&["systemd-detect-virt", "--container"])).trim(),
        "lxc"
    );
    rt.console_login_sees_running();
    rt.halt_systemd();
}

#[test]
fn halt_sent_while_systemd_starts_is_not_lost() {
    let rt = Rt::with_image("debian", "bookworm", "early", "");
    rt.ok(&["start", "-d"]);
    // Halted at once: not lost and killed at the timeout.
    rt.halt_systemd();
}
