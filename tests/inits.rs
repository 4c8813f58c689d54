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
    t.log_in_as_root(&rt.name, "rlxc");
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

// ---------------------------------------------------------------------------------------
// The init fixtures (tests/fixtures/build-mirror.sh builds them when the Debian archive
// answers). These tests are ignored in a plain `cargo test`: tests/run runs each whose
// image was built and says NOT RUN for the others, so a missing image never passes.

/// A container of fixture image DIST RELEASE VARIANT; a missing image fails the test.
/// A container of the fixture image debian RELEASE VARIANT, unprivileged (as new
/// containers are by default) or privileged.
fn fixture_rt(release: &str, variant: &str, tag: &str) -> Rt {
    fixture_rt_with(release, variant, tag, "")
}

fn fixture_unprivileged(release: &str, variant: &str, tag: &str) -> Rt {
    fixture_rt_with(release, variant, tag, "[idmap]\n")
}

fn fixture_rt_with(release: &str, variant: &str, tag: &str, extra: &str) -> Rt {
    let index = read(fixture_mirror().join("meta/1.0/index-system"));
    let want = format!("debian;{release};{};{variant};", host_arch());
    assert!(
        index.lines().any(|l| l.starts_with(&want)),
        "the fixture image debian {release} {variant} is missing: build-mirror.sh could not \
         build it (no Debian archive?)"
    );
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let name = unique(tag);
    let defaults = env.dir.path().join(format!("{name}.defaults.toml"));
    std::fs::write(&defaults, format!("{extra}[[network]]\ntype = \"empty\"\n")).unwrap();
    env.ok(&[
        "create",
        "-q",
        "-n",
        &name,
        "-t",
        "download",
        "-d",
        "debian",
        "-r",
        release,
        "--variant",
        variant,
        "-f",
        defaults.to_str().unwrap(),
    ]);
    Rt { env, server, name }
}

fn boot_id(rt: &Rt) -> String {
    stdout(&rt.attach(&["cat", "/proc/sys/kernel/random/boot_id"]))
        .trim()
        .to_string()
}

/// `-r`: init comes back as another process, in another boot.
fn reboots(rt: &Rt, ready: impl Fn(&Rt)) {
    let before = boot_id(rt);
    let (first, second) = rt.reboot();
    assert_ne!(first, second);
    ready(rt);
    assert_ne!(boot_id(rt), before, "a reboot is a new boot");
}

/// A root login on tty1, then detach.
fn tty1_login(rt: &Rt) {
    let t = rt.tmux(&format!("console -n {} -t 1", rt.name));
    t.keys(&["Enter"]);
    log_in_on(rt, &t);
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
}

fn systemd_release_boots_everywhere(release: &str, needs_unified: bool) {
    let rt = fixture_unprivileged(release, "default", release);
    rt.ok(&["start", "-d"]);
    rt.assert_system_running();
    let info = rt.info();
    let pure = read("/proc/self/mountinfo")
        .lines()
        .all(|l| !l.contains(" - cgroup cgroup "));
    if needs_unified || pure {
        let layout = info.lines().find(|l| l.starts_with("Cgroup layout:"));
        assert!(layout.is_some_and(|l| l.contains("unified (")), "{info}");
        assert_eq!(cgroup_fs_inside(&rt), "cgroup2fs");
    }
    rt.console_login_sees_running();
    tty1_login(&rt);
    reboots(&rt, |rt| rt.assert_system_running());
    rt.halt_systemd();
}

#[test]
#[ignore = "needs a fixture image from the Debian archive: tests/run runs it"]
fn trixie_boots_logs_in_reboots_and_halts() {
    systemd_release_boots_everywhere("trixie", false);
}

#[test]
#[ignore = "needs a fixture image from the Debian archive: tests/run runs it"]
fn sid_with_systemd_258_or_newer_boots_unified_on_this_host() {
    systemd_release_boots_everywhere("sid", true);
    // Privileged, its services with credentials cannot run (no new mount API there):
    // the start says so and what to do.
    let rt = fixture_rt("sid", "default", "sidpriv");
    let out = rt.run(&["start", "-d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("warning: systemd") && e.contains("credentials") && e.contains("[idmap]"),
        "{e}"
    );
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

/// sysvinit reached runlevel 2.
fn wait_runlevel_2(rt: &Rt) {
    let t0 = std::time::Instant::now();
    loop {
        let out = stdout(&rt.attach(&["/sbin/runlevel"]));
        if out.trim().ends_with(" 2") {
            return;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "no runlevel 2: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs a fixture image from the Debian archive: tests/run runs it"]
fn sysvinit_with_the_stock_inittab_runs_gettys_on_ttys_and_says_why_halt_needed_a_kill() {
    let rt = fixture_rt("bookworm", "sysvinit", "sysv");
    rt.ok(&["start", "-d"]);
    wait_runlevel_2(&rt);
    assert!(rt.info().contains("sysvinit"), "{}", rt.info());
    tty1_login(&rt);
    reboots(&rt, wait_runlevel_2);
    // No powerfail entry: SIGPWR does nothing, and the stop says so.
    let out = rt.run(&["stop", "-t", "3"]);
    let e = stderr(&out);
    assert!(e.contains("Killed") && e.contains("powerfail"), "{e}");
    rt.assert_clean();
}

#[test]
#[ignore = "needs a fixture image from the Debian archive: tests/run runs it"]
fn sysvinit_with_a_powerfail_entry_halts_cleanly_and_logs_in_on_the_console() {
    let rt = fixture_rt("bookworm", "sysvinit-powerfail", "sysvpf");
    rt.ok(&["start", "-d"]);
    wait_runlevel_2(&rt);
    let t = rt.tmux(&format!("console -n {}", rt.name));
    rt.log_in(&t);
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
    drop(t);
    tty1_login(&rt);
    reboots(&rt, wait_runlevel_2);
    let out = rt.run(&["stop", "-t", "60"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Killed"), "{}", stderr(&out));
    rt.assert_clean();
}

#[test]
fn a_foreground_start_stays_on_the_console_across_a_reboot_from_inside() {
    let rt = Rt::new("fgreboot", "");
    let t = rt.tmux(&format!("start -n {}", rt.name));
    rt.log_in(&t);
    let first = rt.init_pid().unwrap();
    t.keys(&["clear; reboot", "Enter"]);
    let t0 = std::time::Instant::now();
    while rt.init_pid().is_none_or(|p| p == first) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "no reboot"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Still attached: the new boot's getty answers on the same terminal.
    t.keys(&["Enter"]);
    t.wait_for(&format!("{} login:", rt.name));
    assert!(!t.screen().contains("EXIT="), "{}", t.screen());
    rt.ok(&["stop", "-t", "20"]);
    t.wait_for("EXIT=0");
    rt.assert_clean();
}
