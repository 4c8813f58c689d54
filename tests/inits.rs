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
