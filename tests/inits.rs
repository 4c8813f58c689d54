//! Every init boots: the cgroup view chosen per container (a pure cgroup2 tree on this
//! hybrid host for systemd that needs or is given it), the halt and reboot signals per
//! init family, /dev/tty1..N on ptys the monitor holds, and what a start or stop says
//! when init fails or has to be killed.

mod common;

use common::rt::*;
use common::*;

/// What /sys/fs/cgroup is inside: its file system type.
fn cgroup_fs_inside(rt: &Rt) -> String {
    let out = rt.attach(&["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn debian_boots_on_a_unified_view_of_this_host_when_configured() {
    let hybrid_host = read("/proc/self/mountinfo")
        .lines()
        .any(|l| l.contains(" - cgroup cgroup "));
    let rt = Rt::with_image(
        "debian",
        "bookworm",
        "unified",
        "cgroup_layout = \"unified\"\n\n[[network]]\ntype = \"empty\"\n",
    );
    rt.ok(&["start", "-d"]);
    rt.assert_system_running();
    assert_eq!(cgroup_fs_inside(&rt), "cgroup2fs");
    let info = rt.info();
    assert!(
        info.contains("Cgroup layout:") && info.contains("unified (cgroup_layout = \"unified\")"),
        "{info}"
    );
    assert!(
        info.contains("Init:") && info.contains("systemd 252"),
        "{info}"
    );
    if hybrid_host {
        // The v1 limits still hold: init is in the container's v1 cgroups too.
        let pid = rt.init_pid().unwrap();
        let cg = read(format!("/proc/{pid}/cgroup"));
        assert!(
            cg.lines()
                .any(|l| l.contains(":memory:") && l.contains(&format!("rlxc/{}", rt.name))),
            "{cg}"
        );
    }
    rt.halt_systemd();
}

#[test]
fn busybox_gets_the_hybrid_view_on_a_hybrid_host_and_says_so() {
    let rt = Rt::new("layout", "");
    let stopped = rt.info();
    assert!(
        stopped.contains("Cgroup layout:") && stopped.contains("auto (chosen at each start)"),
        "{stopped}"
    );
    rt.ok(&["start", "-d"]);
    let info = rt.info();
    assert!(info.contains("Init:") && info.contains("busybox"), "{info}");
    let pure = read("/proc/self/mountinfo")
        .lines()
        .all(|l| !l.contains(" - cgroup cgroup "));
    let want = if pure { "unified (" } else { "hybrid (" };
    assert!(info.contains(want), "{info}");
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn a_layout_the_host_cannot_give_is_refused_before_anything_is_made() {
    let pure = read("/proc/self/mountinfo")
        .lines()
        .all(|l| !l.contains(" - cgroup cgroup "));
    if !pure {
        // On a hybrid host both views exist: the refusal is for a pure cgroup2 host
        // (tests/vm/guest.sh runs this there).
        return;
    }
    let rt = Rt::new(
        "nohybrid",
        "cgroup_layout = \"hybrid\"\n\n[[network]]\ntype = \"empty\"\n",
    );
    let out = rt.run(&["start", "-d"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("only cgroup2") && e.contains("unified_cgroup_hierarchy=0"),
        "{e}"
    );
    rt.assert_clean();
}

#[test]
fn a_stop_that_had_to_kill_says_so() {
    // busybox init has no handler for SIGWINCH: PID 1 ignores it.
    let rt = Rt::new(
        "killed",
        "[signals]\nhalt = \"SIGWINCH\"\n\n[[network]]\ntype = \"empty\"\n",
    );
    rt.ok(&["start", "-d"]);
    let out = rt.run(&["stop", "-t", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("Killed") && e.contains("within 1 s of SIGWINCH"),
        "{e}"
    );
    rt.assert_clean();
}

/// Log in as root at the login prompt on `t` (a tty: no replay of the console).
fn log_in_on(rt: &Rt, t: &Tmux) {
    t.wait_for(&format!("{} login:", rt.name));
    t.keys(&["root", "Enter"]);
    t.wait_for("Password:");
    t.keys(&["rlxc", "Enter"]);
    t.wait_for(&format!("root@{}", rt.name));
}

#[test]
fn busybox_logs_in_on_tty1_and_a_missing_tty_is_named() {
    let rt = Rt::new("tty", "");
    // Gettys on the first two ttys, as a sysadmin would add them.
    let inittab = rt.env.rootfs(&rt.name).join("etc/inittab");
    let mut tab = read(&inittab);
    tab += "tty1::respawn:/sbin/getty 38400 tty1\ntty2::respawn:/sbin/getty 38400 tty2\n";
    std::fs::write(&inittab, tab).unwrap();
    rt.ok(&["start", "-d"]);
    assert!(rt.info().contains("TTYs:"), "{}", rt.info());
    let t = rt.tmux(&format!("console -n {} -t 1", rt.name));
    log_in_on(&rt, &t);
    t.keys(&[
        "tty | sed s/^/ON-/; ls /dev/tty1 /dev/tty4 | wc -l",
        "Enter",
    ]);
    t.wait_for("ON-/dev/tty1");
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
    drop(t);
    // tty2 has its own getty; the console still has its own.
    let t = rt.tmux(&format!("console -n {} -t 2", rt.name));
    log_in_on(&rt, &t);
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
    drop(t);
    let e = rt.run(&["console", "-t", "5"]);
    assert!(!e.status.success());
    assert!(
        stderr(&e).contains("no tty 5: its ttys are 1-4"),
        "{}",
        stderr(&e)
    );
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn no_ttys_with_tty_max_zero() {
    let rt = Rt::new("nottys", "tty_max = 0\n\n[[network]]\ntype = \"empty\"\n");
    rt.ok(&["start", "-d"]);
    let out = rt.attach(&["/bin/sh", "-c", "ls /dev"]);
    assert!(
        !stdout(&out).lines().any(|l| l.starts_with("tty1")),
        "{}",
        stdout(&out)
    );
    let e = rt.run(&["console", "-t", "1"]);
    assert!(stderr(&e).contains("tty_max = 0"), "{}", stderr(&e));
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn debian_logs_in_on_tty1_through_systemd_container_getty() {
    let rt = Rt::with_image("debian", "bookworm", "debtty", "");
    rt.ok(&["start", "-d"]);
    rt.assert_system_running();
    let t = rt.tmux(&format!("console -n {} -t 1", rt.name));
    t.keys(&["Enter"]);
    log_in_on(&rt, &t);
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
    drop(t);
    rt.halt_systemd();
}

#[test]
fn a_foreground_start_whose_init_fails_exits_non_zero_with_its_last_lines() {
    let rt = Rt::new(
        "initfails",
        "[init]\ncmd = [\"/bin/sh\", \"-c\", \"echo init-is-broken; sleep 1; exit 3\"]\n\n\
         [[network]]\ntype = \"empty\"\n",
    );
    let out = rt.run(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("exited with status 3")
            && e.contains("last console lines")
            && e.contains("init-is-broken"),
        "{e}"
    );
    rt.assert_clean();
    // A clean end (init exits 0 of its own) is no failure.
    let rt = Rt::new(
        "initdone",
        "[init]\ncmd = [\"/bin/sh\", \"-c\", \"sleep 1\"]\n\n[[network]]\ntype = \"empty\"\n",
    );
    let out = rt.run(&["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    rt.assert_clean();
}
