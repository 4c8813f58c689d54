//! A container's root, or an ordinary mistake, must not do damage through rlxc itself:
//! attach hands the container nothing of the caller's (terminal, descriptors), one
//! start wins a race, host objects are keyed by installation, a vanished rlxc-start or
//! a child that dies before exec is handled. Real processes, real terminals (tmux).

mod common;

use common::rt::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hostile helper (tests/hardening/inject.c), built static and put in the rootfs.
fn install_injector(rt: &Rt) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hardening/inject.c");
    let dest = rt.env.rootfs(&rt.name).join("bin/inject");
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&dest)
        .arg(&src)
        .output()
        .expect("gcc is needed (packaging/setup.sh --deps installs build-essential)");
    assert!(out.status.success(), "gcc: {}", stderr(&out));
}

/// A bash on a real terminal that runs `script` and then waits for more input.
fn shell_on_a_terminal(env: &Env, script: &str) -> (Tmux, PathBuf) {
    let file = env.dir.path().join("session.sh");
    std::fs::write(
        &file,
        format!(
            "export RLXC_CONFIG={}\n{script}\necho \"SCRIPT-DONE rc=$?\"\n",
            env.dir.path().join("rlxc.toml").display()
        ),
    )
    .unwrap();
    let t = Tmux::start("bash --norc --noprofile");
    t.keys(&[&format!("bash {}", file.display()), "Enter"]);
    (t, file)
}

#[test]
fn attach_keystrokes_injected_by_the_container_never_reach_the_callers_terminal() {
    let rt = Rt::new("tiocsti", "");
    install_injector(&rt);
    rt.ok(&["start", "-d"]);
    let pwned = rt.env.dir.path().join("PWNED");
    let bin = env!("CARGO_BIN_EXE_rlxc");
    // The container pushes a command line into its stdio; with the caller's terminal
    // it would run in the host shell once attach returns.
    let inject = format!("touch {}", pwned.display());
    let (t, _) = shell_on_a_terminal(
        &rt.env,
        &format!(
            "{bin} attach -n {} -- /bin/inject '{inject}\n'\necho \"ATTACH-RC=$?\"\nstty size",
            rt.name
        ),
    );
    let screen = t.wait_for("SCRIPT-DONE");
    // The keystrokes went into the container's own pty (it is a terminal), and the
    // command's exit status came back.
    assert!(screen.contains("injected-through=3"), "{screen}");
    assert!(screen.contains("ATTACH-RC=0"), "{screen}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !pwned.exists(),
        "the container ran a command in the host shell:\n{}",
        t.screen()
    );
    // The terminal is ours again: cooked, and the same size.
    let (t2, _) = shell_on_a_terminal(
        &rt.env,
        &format!("{bin} attach -n {} -- stty size", rt.name),
    );
    let s = t2.wait_for("SCRIPT-DONE");
    assert!(s.contains("40 120"), "window size not passed on:\n{s}");
}

#[test]
fn a_bystander_in_the_container_cannot_type_into_an_attach() {
    let rt = Rt::new("bystander", "");
    install_injector(&rt);
    rt.ok(&["start", "-d"]);
    let pwned = rt.env.dir.path().join("PWNED");
    // A root process inside watches /proc/*/fd/0 for terminals and types into them.
    let watcher = Command::new(env!("CARGO_BIN_EXE_rlxc"))
        .args([
            "attach",
            "-n",
            &rt.name,
            "--",
            "/bin/inject",
            "--watch",
            "6",
        ])
        .arg(format!("touch {}\n", pwned.display()))
        .env("RLXC_CONFIG", rt.env.dir.path().join("rlxc.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let bin = env!("CARGO_BIN_EXE_rlxc");
    let (t, _) = shell_on_a_terminal(&rt.env, &format!("{bin} attach -n {} -- sleep 2", rt.name));
    t.wait_for("SCRIPT-DONE");
    let out = watcher.wait_with_output().unwrap();
    // It found terminals (the attached sleep's, the console) and typed into them...
    let hits: u32 = stdout(&out)
        .trim()
        .strip_prefix("injected-through=")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(hits >= 1, "{}", stdout(&out));
    std::thread::sleep(Duration::from_millis(500));
    // ...which is not the host's.
    assert!(!pwned.exists(), "the bystander typed into the host shell");
}

#[test]
fn attach_passes_no_descriptor_of_the_caller_into_the_container() {
    let rt = Rt::new("fds", "");
    rt.ok(&["start", "-d"]);
    let bin = env!("CARGO_BIN_EXE_rlxc");
    // The caller holds the host's / open without close-on-exec, as shells leak fds.
    let list = |tty: bool| -> String {
        let script = format!(
            "exec 7</; {bin} attach -n {} -- ls -C /proc/self/fd; \
             {bin} attach -n {} -- ls /proc/self/fd/7/",
            rt.name, rt.name
        );
        if tty {
            let (t, _) = shell_on_a_terminal(&rt.env, &script);
            t.wait_for("SCRIPT-DONE")
        } else {
            let out = Command::new("bash")
                .args(["-c", &script])
                .env("RLXC_CONFIG", rt.env.dir.path().join("rlxc.toml"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(stderr(&out).contains("No such file"), "{}", stderr(&out));
            stdout(&out)
        }
    };
    // The command's stdio and the directory ls itself reads: nothing of the caller's.
    let piped = list(false);
    assert_eq!(
        piped.trim(),
        "0  1  2  3",
        "descriptors seen inside: {piped}"
    );
    let on_tty = list(true);
    assert!(
        on_tty.contains("\n0  1  2  3\n") && on_tty.contains("No such file"),
        "descriptors seen inside (terminal): {on_tty}"
    );
    // Exit status and stderr survive the pipes.
    let out = rt.attach(&["sh", "-c", "echo oops >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stderr(&out).trim(), "oops");
    let out = rt
        .env
        .cmd(&["attach", "-n", &rt.name, "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"through the pipe\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(stdout(&out), "through the pipe\n");
}

#[test]
fn of_two_concurrent_starts_exactly_one_wins() {
    let rt = Rt::new("race", "");
    for trial in 0..8 {
        let spawn = || {
            rt.env
                .cmd(&["start", "-d", "-n", &rt.name])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let won: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(won.len(), 1, "trial {trial}: {} won", won.len());
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        let e = stderr(lost);
        assert!(
            e.contains("already running") || e.contains("starting this container"),
            "trial {trial}: the loser says {e}"
        );
        // One monitor, one init, and the winner's run directory intact.
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let monitors = stdout(&ps)
            .lines()
            .filter(|l| l.starts_with(&format!("[rlxc monitor] {} ", rt.name)))
            .count();
        assert_eq!(monitors, 1, "trial {trial}");
        assert!(rt.init_pid().is_some(), "trial {trial}: {}", rt.info());
        assert!(rt.attach(&["true"]).status.success(), "trial {trial}");
        rt.ok(&["stop", "-k"]);
        rt.assert_clean();
    }
}

/// A second installation (its own config, lxcpath and runpath) with a container of the
/// same name on the same host.
#[test]
fn two_installations_with_one_name_never_touch_each_other() {
    let a = Rt::new("twin", "");
    let b_env = Env::new(&a.server.url());
    b_env.create_with(
        &a.name,
        "busybox",
        &busybox_release(),
        "[[network]]\ntype = \"empty\"\n",
    );
    let b = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["-n", &a.name]);
        b_env.run(&v)
    };
    a.ok(&["start", "-d"]);
    // B's twin never started: it is not reported running.
    let info = stdout(&b(&["info"]));
    assert!(info.contains("STOPPED"), "{info}");
    assert_eq!(b(&["stop", "-k"]).status.code(), Some(2));
    assert!(
        a.init_pid().is_some(),
        "B's stop -k touched A: {}",
        a.info()
    );
    assert!(b(&["start", "-d"]).status.success());
    // Killing and destroying B's leaves A's running.
    assert!(b(&["stop", "-k"]).status.success());
    assert!(b(&["start", "-d"]).status.success());
    assert!(b(&["destroy", "-f"]).status.success());
    assert!(
        a.init_pid().is_some(),
        "B's destroy touched A: {}",
        a.info()
    );
    assert!(a.attach(&["true"]).status.success());
    a.ok(&["stop", "-k"]);
    a.assert_clean();
}

#[test]
fn a_killed_rlxc_start_leaves_a_monitored_container_or_none() {
    let rt = Rt::new("killstart", "");
    for delay_us in [0u64, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 12000, 20000] {
        let mut c = rt
            .env
            .cmd(&["start", "-d", "-n", &rt.name])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = c.kill();
        let _ = c.wait();
        // Whatever the moment: the monitor carries the start through (running, with a
        // monitor that answers), or nothing started. Never a container without monitor.
        let t0 = Instant::now();
        loop {
            let info = rt.info();
            if info.contains("Monitor:") {
                panic!("delay {delay_us} us: orphaned: {info}");
            }
            if rt.init_pid().is_some() || t0.elapsed() > Duration::from_secs(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_dir(rt.env.dir.path().join("run"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("monitor.log"))
            .find(|p| p.exists())
            .map(read)
            .unwrap_or_default();
        assert!(!log.contains("panicked"), "delay {delay_us} us: {log}");
        let _ = rt.run(&["stop", "-k"]);
        rt.assert_clean();
    }
}

#[test]
fn a_memory_limit_no_init_can_live_with_is_refused_before_anything_runs() {
    let rt = Rt::new("oom", "");
    let cfg = rt.env.lxcpath().join(&rt.name).join("config.toml");
    let text = read(&cfg);
    std::fs::write(&cfg, format!("{text}\n[limits]\nmemory = \"1\"\n")).unwrap();
    let out = rt.run(&["start", "-d"]);
    assert!(!out.status.success(), "started with a 1-byte memory limit");
    let e = stderr(&out);
    assert!(
        e.contains("limits.memory") && e.contains("config.toml"),
        "{e}"
    );
    assert!(!e.contains("Started"), "{e}");
    rt.assert_clean();
}

#[test]
fn concurrent_stops_all_report_the_container_stopped() {
    let rt = Rt::new("stops", "");
    for trial in 0..10 {
        rt.ok(&["start", "-d"]);
        // One kill, then stops arriving all through the monitor's teardown: some
        // connect before its socket goes and are still waiting when it exits.
        let mut stops = Vec::new();
        for _ in 0..30 {
            stops.push(
                rt.env
                    .cmd(&["stop", "-k", "-q", "-n", &rt.name])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            std::thread::sleep(Duration::from_micros(700));
        }
        for s in stops {
            let out = s.wait_with_output().unwrap();
            let e = stderr(&out);
            // Stopped by this one (0) or already stopped (2), never an error.
            assert!(
                matches!(out.status.code(), Some(0) | Some(2)),
                "trial {trial}: {e}"
            );
            assert!(!e.contains("error"), "trial {trial}: {e}");
        }
        rt.assert_clean();
    }
}

#[test]
fn a_container_gets_at_most_1024_ptys() {
    let rt = Rt::new("ptys", "");
    install_injector(&rt);
    rt.ok(&["start", "-d"]);
    // Pipes, so attach itself takes no pty of the container's.
    let out = rt.attach(&["/bin/inject", "--ptys"]);
    let n: u32 = stdout(&out)
        .trim()
        .strip_prefix("ptys=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}{}", stdout(&out), stderr(&out)));
    assert_eq!(n, 1024, "the container's devpts handed out {n} ptys");
    // They were the container's: gone with the command, the host still has its own.
    let t = Tmux::start("sh");
    t.keys(&["echo pty-ok", "Enter"]);
    t.wait_for("pty-ok");
}

#[test]
fn forced_unmounts_are_refused_plain_ones_work() {
    let rt = Rt::new("umountf", "");
    rt.ok(&["start", "-d"]);
    rt.attach(&["sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs t /mnt/t"]);
    let out = rt.attach(&["umount", "-f", "/mnt/t"]);
    assert!(!out.status.success(), "umount -f was allowed");
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert!(rt.attach(&["umount", "/mnt/t"]).status.success());
}

/// A container started by the rlxc before the typed protocol: its monitor answers every
/// request with a text line, and its processes are in the old `rlxc/NAME` cgroup. The
/// new rlxc must not take it for stopped (a destroy would delete a running rootfs).
#[test]
fn a_container_of_the_previous_rlxc_is_not_taken_for_stopped() {
    use std::io::{BufRead, Write};
    let rt = Rt::new("oldmon", "");
    let run = rt.run_dir();
    std::fs::create_dir_all(&run).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(run.join("command")).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = std::io::BufReader::new(&s).read_line(&mut line);
            let _ = writeln!(&s, "ERR unknown request {:?}", line.trim());
        }
    });
    // Its init, in the cgroup the old rlxc made.
    let cg = read("/proc/self/mountinfo")
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .expect("a cgroup2 mount");
    let old = cg.join("rlxc").join(&rt.name);
    std::fs::create_dir_all(&old).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    std::fs::write(old.join("cgroup.procs"), sleeper.id().to_string()).unwrap();

    let info = rt.info();
    assert!(
        info.contains("RUNNING") && info.contains("another version"),
        "{info}"
    );
    let out = rt.run(&["destroy"]);
    assert!(!out.status.success(), "destroyed a running container");
    assert!(rt.env.rootfs(&rt.name).is_dir());
    let out = rt.run(&["stop", "-t", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rlxc-stop -k"), "{}", stderr(&out));
    // A kill needs no monitor: the old cgroup's processes go.
    let out = rt.run(&["stop", "-k"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = sleeper.wait().unwrap();
    assert!(
        !status.success(),
        "the old container's process survived the kill"
    );
    assert!(!old.exists(), "the old cgroup is left");
}

/// With the host's network (type "none") /proc/sys/net is the host's: read-only inside,
/// where a container with a network of its own may write its knobs.
#[test]
fn host_network_knobs_stay_read_only_with_network_none() {
    // Writing back the value read changes nothing, and shows whether it may be written.
    let rewrite = [
        "sh",
        "-c",
        "v=$(cat /proc/sys/net/ipv4/ip_forward); echo $v > /proc/sys/net/ipv4/ip_forward",
    ];
    let own = Rt::new("ownnet", "");
    own.ok(&["start", "-d"]);
    let out = own.attach(&rewrite);
    assert!(out.status.success(), "own netns: {}", stderr(&out));
    let host = Rt::new("hostnet", "[[network]]\ntype = \"none\"\n");
    host.ok(&["start", "-d"]);
    let out = host.attach(&rewrite);
    assert!(
        !out.status.success(),
        "the host's net sysctls were writable"
    );
    assert!(stderr(&out).contains("Read-only"), "{}", stderr(&out));
}

/// A container whose name the earlier rule allowed (`_web`) stays reachable; only new
/// names follow today's rule.
#[test]
fn names_of_the_earlier_rule_stay_reachable() {
    let rt = Rt::new("legacy", "");
    let old = format!("_{}", rt.name);
    std::fs::rename(rt.env.lxcpath().join(&rt.name), rt.env.lxcpath().join(&old)).unwrap();
    let info = rt.env.ok(&["info", "-n", &old]);
    assert!(info.contains("STOPPED"), "{info}");
    rt.env.ok(&["start", "-d", "-n", &old]);
    rt.env.ok(&["stop", "-k", "-n", &old]);
    let e = rt.env.fails(&[
        "create", "-n", "_new", "-t", "local", "--", "-m", "x", "-f", "y",
    ]);
    assert!(e.contains("not a letter or digit"), "{e}");
    rt.env.ok(&["destroy", "-n", &old]);
}

/// Between its fork into the container's PID namespace and the exec, rlxc-attach's
/// child runs rlxc's code: it is not dumpable, so container root can neither read its
/// exe (the host's rlxc binary: runc exec's CVE-2019-5736) nor open its memory. The
/// window is widened by a long PATH through symlink chains, searched before the exec.
/// Also with fs.suid_dumpable = 1, which makes a process dumpable again when it changes
/// ids (entering an unprivileged container's user namespace as its root).
#[test]
fn container_root_cannot_reach_an_attach_on_its_way_to_exec() {
    let rt = Rt::new("dumpable", "");
    common::userns::make_unprivileged(&rt.env, &rt.name, common::userns::base(44));
    install_injector(&rt);
    // /l0 → /l1 → … → /l40 (missing): each PATH entry costs the search 40 links.
    let root = rt.env.rootfs(&rt.name);
    for i in 0..40 {
        std::os::unix::fs::symlink(format!("/l{}", i + 1), root.join(format!("l{i}"))).unwrap();
    }
    rt.ok(&["start", "-d"]);
    let path = format!("PATH={}/bin", "/l0:".repeat(15_000));
    // The container's root watches /proc while attaches run, until it sees one.
    let peek = |ids: &[&str]| {
        let mut peeker = rt
            .env
            .cmd(&[
                "attach",
                "-n",
                &rt.name,
                "--",
                "/bin/inject",
                "--peek",
                "60",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while peeker.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(60) {
            let mut args = vec!["attach", "-n", &rt.name, "-v", &path];
            args.extend(ids);
            args.extend(["--", "true"]);
            let out = rt.env.run(&args);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        stdout(&peeker.wait_with_output().unwrap())
            .trim()
            .to_string()
    };
    let refused = "seen exe=refused mem=refused";
    assert_eq!(peek(&[]), refused);
    let _setting = SuidDumpable::set("1");
    assert_eq!(peek(&[]), refused, "fs.suid_dumpable = 1");
    // Its ids changed once more in the container (-u), before the exec.
    let ids = ["-u", "1000", "-g", "1000"];
    assert_eq!(peek(&ids), refused, "fs.suid_dumpable = 1, -u 1000");
}

/// fs.suid_dumpable set for as long as this lives, then as it was.
struct SuidDumpable(String);

const SUID_DUMPABLE: &str = "/proc/sys/fs/suid_dumpable";

impl SuidDumpable {
    fn set(value: &str) -> Self {
        let was = read(SUID_DUMPABLE);
        std::fs::write(SUID_DUMPABLE, value).unwrap();
        SuidDumpable(was)
    }
}

impl Drop for SuidDumpable {
    fn drop(&mut self) {
        let _ = std::fs::write(SUID_DUMPABLE, self.0.trim());
    }
}
