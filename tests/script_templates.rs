//! Template programs run with LXC's protocol: resolution, the arguments and the shadow
//! config, their own PID and mount namespaces, failures, kills and interrupts that leave
//! nothing, a malformed config, and LXC's own lxc-busybox booting under rlxc.

mod common;

use common::rt::unique;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An installation with no server and `templates_path` = DIR/tpl; containers get no
/// network (net.toml).
fn env_with_templates() -> Env {
    Env::with_templates(None)
}

fn template(env: &Env, name: &str, body: &str) -> PathBuf {
    let p = env.dir.path().join("tpl").join(format!("rlxc-{name}"));
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn net(env: &Env) -> String {
    env.dir.path().join("net.toml").display().to_string()
}

/// No container, no staging directory, no process of the template, no mount below lxcpath.
fn assert_nothing_left(env: &Env, marker: &str) {
    assert!(
        env.lxcpath_entries().is_empty(),
        "left: {:?}",
        env.lxcpath_entries()
    );
    let mounts = read("/proc/self/mountinfo");
    let lib = env.lxcpath().display().to_string();
    assert!(
        !mounts.contains(&lib),
        "a mount below {lib} is left:\n{mounts}"
    );
    let t0 = Instant::now();
    while processes_with(marker) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "a process of the template outlived it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rlxc-create -t TEMPLATE -n NAME` in the background, its stderr captured.
fn start_create(env: &Env, template: &str, name: &str) -> std::process::Child {
    env.cmd(&["create", "-t", template, "-n", name, "-f", &net(env)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait (at most 10 s) until a process whose command line holds `marker` runs.
fn wait_for_process(marker: &str) {
    let t0 = Instant::now();
    while processes_with(marker) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the template did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn a_template_gets_lxcs_arguments_its_own_namespaces_and_its_config_is_translated() {
    let env = env_with_templates();
    let report = env.dir.path().join("report");
    template(
        &env,
        "mine",
        &format!(
            r#"exec > {report} 2>&1
echo "argv: $*"
echo "pid: $$"
echo "config: $(cat "$2/config" | tr '\n' '|')"
echo "cache: $RLXC_CACHE_PATH"
mkdir -p "$6/etc" "$6/mnt"
mount -t tmpfs none "$6/mnt"
echo hello > "$6/etc/greeting"
cat >> "$2/config" <<EOF
# a comment
lxc.arch = x86_64
lxc.signal.halt = "SIGUSR1"
lxc.mount.entry = tmpfs run tmpfs size=1M 0 0
lxc.mount.entry = $2/extra srv none bind 0 0
lxc.cap.drop = sys_time
EOF"#,
            report = report.display()
        ),
    );
    let name = unique("mine");
    // Its bind of a host path is refused like an image's, and nothing is left ...
    let err = env.fails(&["create", "-t", "mine", "-n", &name, "-f", &net(&env)]);
    assert!(
        err.contains("mounts from the host") && err.contains("srv none bind"),
        "{err}"
    );
    assert!(err.contains("--allow-image-host-mounts"), "{err}");
    assert_nothing_left(&env, &name);
    // ... unless the sysadmin allows it.
    let out = env.run(&[
        "create",
        "-t",
        "mine",
        "-n",
        &name,
        "-f",
        &net(&env),
        "--allow-image-host-mounts",
        "--",
        "--flag",
        "v",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Created container {name} with template mine")),
        "{err}"
    );
    assert!(
        err.contains("template config line ignored: lxc.cap.drop = sys_time"),
        "{err}"
    );
    assert!(
        err.contains("warning: template mine mounts from the host"),
        "{err}"
    );

    let r = read(&report);
    let staging = env.lxcpath().join(format!(".{name}.creating"));
    assert!(
        r.contains(&format!(
            "argv: --path {0} --name {name} --rootfs {0}/rootfs --flag v",
            staging.display()
        )),
        "{r}"
    );
    assert!(
        r.contains("pid: 2\n"),
        "the template runs under its own PID namespace's init: {r}"
    );
    assert!(
        r.contains(&format!(
            "config: lxc.rootfs.path = dir:{}/rootfs|lxc.uts.name = {name}|",
            staging.display()
        )),
        "{r}"
    );
    assert!(
        r.contains(&format!("cache: {}", env.cachepath().display())),
        "{r}"
    );

    let dir = env.lxcpath().join(&name);
    assert_eq!(read(dir.join("rootfs/etc/greeting")), "hello\n");
    assert!(
        !dir.join("config").exists(),
        "the LXC config served and went"
    );
    let cfg = read(dir.join("config.toml"));
    assert!(cfg.contains("arch = \"amd64\""), "{cfg}");
    assert!(cfg.contains("halt = \"SIGUSR1\""), "{cfg}");
    // Paths of the directory being built name the published one.
    assert!(
        cfg.contains(&format!("source = \"{}/extra\"", dir.display())),
        "{cfg}"
    );
    // Its tmpfs lived in its mount namespace only.
    assert!(!read("/proc/self/mountinfo").contains(&dir.join("rootfs/mnt").display().to_string()));
}

#[test]
fn a_failing_template_shows_its_stderr_and_leaves_nothing() {
    let env = env_with_templates();
    template(
        &env,
        "broken",
        "mkdir -p \"$6/etc\"; echo 'apt: no such mirror' >&2; exit 3",
    );
    let name = unique("broken");
    let err = env.fails(&["create", "-t", "broken", "-n", &name, "-f", &net(&env)]);
    assert!(err.contains("apt: no such mirror"), "{err}");
    assert!(err.contains("template broken ("), "{err}");
    assert!(
        err.contains("failed with exit code 3; nothing was created"),
        "{err}"
    );
    assert_nothing_left(&env, &name);
}

#[test]
fn a_killed_template_and_everything_it_started_are_gone_and_nothing_is_left() {
    let env = env_with_templates();
    let marker = unique("killme");
    // A child that would go on writing into the rootfs, then the template waits.
    template(
        &env,
        "slow",
        &format!(
            "(while :; do echo x >> \"$6/spin\"; sleep 0.05; done; : {marker}) &\n\
             sh -c 'sleep 30; : {marker}'"
        ),
    );
    let name = unique("slow");
    let child = start_create(&env, "slow", &name);
    wait_for_process(&format!("sleep 30; : {marker}"));
    // The template itself is killed from outside (the OOM killer, a sysadmin).
    let out = std::process::Command::new("pkill")
        .args(["-KILL", "-f", "rlxc-slow"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("was killed by SIGKILL; nothing was created"),
        "{err}"
    );
    assert_nothing_left(&env, &marker);
}

#[test]
fn ctrl_c_during_a_template_stops_it_and_leaves_nothing() {
    let env = env_with_templates();
    let marker = unique("intr");
    // A template that cleans up after itself when told to stop, as rlxc-debian does.
    template(
        &env,
        "waits",
        &format!(
            "trap 'echo cleaned > \"$RLXC_CACHE_PATH/cleaned\"; exit 1' TERM\n\
             mkdir -p \"$6/x\"\n\
             sh -c 'sleep 30; : {marker}' &\n\
             wait"
        ),
    );
    std::fs::create_dir_all(env.cachepath()).unwrap();
    let name = unique("waits");
    let child = start_create(&env, "waits", &name);
    let t0 = Instant::now();
    wait_for_process(&format!("sleep 30; : {marker}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the create waited for the template"
    );
    assert_eq!(
        read(env.cachepath().join("cleaned")),
        "cleaned\n",
        "the template was asked to stop and its clean-up ran"
    );
    assert_nothing_left(&env, &marker);
}

#[test]
fn a_malformed_config_from_a_template_is_an_error_naming_the_line() {
    let env = env_with_templates();
    template(
        &env,
        "garbled",
        "mkdir -p \"$6/etc\"; printf 'lxc.arch = amd64\\nthis is not config\\n' >> \"$2/config\"",
    );
    let name = unique("garbled");
    let err = env.fails(&["create", "-t", "garbled", "-n", &name, "-f", &net(&env)]);
    assert!(err.contains("line 4 (`this is not config`)"), "{err}");
    assert!(err.contains("not `lxc.KEY = VALUE`"), "{err}");
    assert_nothing_left(&env, &name);
    // A bad value in a well-formed line is checked like an image's: reported, not used.
    template(
        &env,
        "badname",
        "printf 'lxc.uts.name = bad_name\\n' >> \"$2/config\"",
    );
    let out = env.run(&["create", "-t", "badname", "-n", &name, "-f", &net(&env)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lxc.uts.name = bad_name (not a valid host name"),
        "{}",
        stderr(&out)
    );
    let cfg = read(env.lxcpath().join(&name).join("config.toml"));
    assert!(cfg.contains(&format!("hostname = \"{name}\"")), "{cfg}");
}

#[test]
fn unknown_templates_list_what_exists_and_the_list_shows_where_each_is() {
    let env = env_with_templates();
    let mine = template(&env, "mine", "exit 0");
    let err = env.fails(&["create", "-t", "nosuch", "-n", "x"]);
    assert!(err.contains("no template \"nosuch\""), "{err}");
    assert!(err.contains("download, local, image, oci, mine"), "{err}");
    let list = env.ok(&["create", "--list-templates"]);
    assert!(
        list.contains("download") && list.contains("built-in"),
        "{list}"
    );
    assert!(list.contains(&mine.display().to_string()), "{list}");
    // Download options given to another template say where they go.
    let err = env.fails(&["create", "-t", "mine", "-n", "x", "-r", "bookworm"]);
    assert!(err.contains("-r is an option of -t download"), "{err}");
    assert!(err.contains("-t mine -n NAME -- -r"), "{err}");
    let err = env.fails(&["create", "-t", "mine"]);
    assert!(err.contains("-t mine needs -n NAME"), "{err}");
}

fn lxc_template(name: &str) -> Option<PathBuf> {
    let p = Path::new("/usr/share/lxc/templates").join(format!("lxc-{name}"));
    p.exists().then_some(p)
}

#[test]
fn lxcs_own_busybox_template_creates_a_container_that_boots() {
    let env = env_with_templates();
    let path = lxc_template("busybox").expect(
        "LXC's templates are installed by packaging/setup.sh --deps (package lxc-templates)",
    );
    let name = unique("lxcbb");
    // It binds the host's /lib (for a dynamic busybox): the sysadmin allows that.
    let out = env.run(&[
        "create",
        "-t",
        path.to_str().unwrap(),
        "-n",
        &name,
        "-f",
        &net(&env),
        "--allow-image-host-mounts",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = read(env.lxcpath().join(&name).join("config.toml"));
    assert!(cfg.contains(&format!("hostname = \"{name}\"")), "{cfg}");
    assert!(cfg.contains("halt = \"SIGUSR1\""), "{cfg}");
    env.ok(&["start", "-d", "-n", &name]);
    let t0 = Instant::now();
    let ps = loop {
        let out = env.run(&["attach", "-n", &name, "--", "ps"]);
        if out.status.success() && stdout(&out).contains("syslogd") {
            break stdout(&out);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "busybox init did not start its services"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("init")),
        "{ps}"
    );
    let out = env.run(&["attach", "-n", &name, "--", "hostname"]);
    assert_eq!(stdout(&out).trim(), name);
    // A clean halt with the signal the template configured.
    let out = env.run(&["stop", "-n", &name, "-t", "10"]);
    assert!(
        stderr(&out).contains(&format!("Stopped {name}")),
        "{}",
        stderr(&out)
    );
    env.ok(&["destroy", "-n", &name]);
}
