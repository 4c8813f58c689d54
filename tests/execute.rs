//! rlxc-execute end to end on the busybox fixture: the command's exit status (a code, a
//! signal, a command that is not there) becomes rlxc-execute's, stdin, stdout and stderr
//! pass through, orphans are reaped (no zombie while it runs), a SIGTERM sent to
//! rlxc-execute reaches the command, and nothing of the run is left afterwards.

mod common;

use common::rt::Rt;
use common::userns::{base, make_unprivileged};
use common::*;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn assert_says(out: &std::process::Output, what: &str) {
    assert!(stderr(out).contains(what), "{}", stderr(out));
}

fn execute(rt: &Rt, cmd: &[&str]) -> std::process::Output {
    let mut v = vec!["execute", "-n", &rt.name, "--"];
    v.extend(cmd);
    rt.env.run(&v)
}

#[test]
fn exit_status_and_stdio_pass_through() {
    let rt = Rt::new("exec", "");
    let out = execute(&rt, &["/bin/sh", "-c", "echo out; echo err >&2; exit 42"]);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"), "{}", stderr(&out));
    rt.assert_clean();
    assert!(rt.info().contains("STOPPED"), "{}", rt.info());

    // Looked up in the container's PATH; stdin reaches it.
    let mut child = rt
        .env
        .cmd(&["execute", "-n", &rt.name, "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"via stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "via stdin\n");

    // Killed by a signal: 128 + N, as a shell says. Not in PATH: 127; a path that is not
    // there is refused before the start; one that cannot run: 126.
    let out = execute(&rt, &["/bin/sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137));
    let out = execute(&rt, &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert_says(&out, "cannot execute no-such-command");
    let out = execute(&rt, &["/no/such/command"]);
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out, "/no/such/command not found");
    // There but not executable: 126.
    let out = execute(&rt, &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert_says(&out, "cannot execute /etc/passwd in the container");
    // A running container is not executed into (that is rlxc-attach).
    rt.ok(&["start", "-d"]);
    let out = execute(&rt, &["/bin/true"]);
    assert!(!out.status.success());
    assert_says(&out, "already running");
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn orphans_are_reaped_and_signals_reach_the_command() {
    let rt = Rt::new("execz", "");
    // Orphans end while the command runs: the init reaps them, so no zombie is seen.
    let script = "for i in 1 2 3; do (sleep 0.1 &) ; done; sleep 1; \
                  for f in /proc/[0-9]*/stat; do read -r l < $f && echo \"$l\"; done \
                  | awk '$3 == \"Z\"' ; echo PID1=$(cat /proc/1/comm)";
    let out = execute(&rt, &["/bin/sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines.len(), 1, "zombies: {o}");
    assert!(
        lines[0].starts_with("PID1=rlxc"),
        "rlxc's init is PID 1: {o}"
    );

    // SIGTERM to rlxc-execute: the command's trap runs and its status comes back.
    let ready = rt.env.rootfs(&rt.name).join("ready");
    let mut child = rt
        .env
        .cmd(&[
            "execute",
            "-n",
            &rt.name,
            "--",
            "/bin/sh",
            "-c",
            "trap 'exit 7' TERM; touch /ready; while :; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the command has not run", Duration::from_secs(20), || {
        ready.exists()
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7), "the trap's status");
    std::fs::remove_file(&ready).unwrap();
    rt.assert_clean();
}

#[test]
fn on_a_terminal_the_command_gets_the_containers_pty() {
    let rt = Rt::new("exectty", "");
    let t = rt.tmux(&format!(
        "execute -n {} -- /bin/sh -c 'tty; read x; echo got-$x; exit 3'",
        rt.name
    ));
    t.wait_for("/dev/console");
    t.keys(&["hello", "Enter"]);
    t.wait_for("got-hello");
    t.wait_for("EXIT=3");
    drop(t);
    // A terminal on stdout alone (stdin redirected) is still the host's terminal: the
    // command gets the container's pty then too, never the host's tty.
    let t = rt.tmux(&format!(
        "execute -n {} -- /bin/sh -c 'readlink /proc/self/fd/1; exit 4' </dev/null",
        rt.name
    ));
    t.wait_for("/dev/console");
    t.wait_for("EXIT=4");
    rt.assert_clean();
}

/// What the command sees of its init (PID 1): its executable, each file it maps (and
/// whether a write to one went through), PID 1's descriptors and the command's own.
const INSIDE_VIEW: &str = r#"
echo "EXE $(readlink /proc/1/exe)"
for f in /proc/1/map_files/*; do
  t=$(readlink $f) || continue
  echo "MAP $t"
  case $t in /memfd:*) printf '\177' | dd of=$f conv=notrunc 2>/dev/null && echo "WROTE $t" ;; esac
done
printf '\177' | dd of=/proc/1/exe conv=notrunc 2>/dev/null && echo "WROTE /proc/1/exe"
for f in /proc/1/fd/*; do echo "FD1 ${f##*/} $(readlink $f)"; done
"#;

/// Lines of `out` starting with `tag `, without it.
fn tagged<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    let tag = format!("{tag} ");
    out.lines().filter_map(|l| l.strip_prefix(&tag)).collect()
}

/// PID 1 runs from sealed copies and holds nothing of the host's but the stdio it
/// passes on; the command holds only that stdio.
fn assert_sealed_init(out: &std::process::Output, maps_visible: bool) {
    assert!(out.status.success(), "{}", stderr(out));
    let o = stdout(out);
    let exe = tagged(&o, "EXE");
    assert!(
        exe.len() == 1 && exe[0].starts_with("/memfd:rlxc-execute-init"),
        "/proc/1/exe is a sealed copy: {o}"
    );
    let maps = tagged(&o, "MAP");
    if maps_visible {
        assert!(maps.len() > 1, "PID 1's mappings are readable here: {o}");
    }
    for m in &maps {
        assert!(
            m.starts_with("/memfd:rlxc-execute-init"),
            "a host file: {o}"
        );
    }
    assert!(tagged(&o, "WROTE").is_empty(), "a copy was written: {o}");
    for (n, target) in tagged(&o, "FD1").iter().filter_map(|l| l.split_once(' ')) {
        let stdio = ["0", "1", "2"].contains(&n);
        assert!(
            stdio || target == "anon_inode:[signalfd]",
            "PID 1 holds {target}: {o}"
        );
    }
}

/// The command's descriptors as it starts: `ls` as the command lists its own, with
/// the directory it reads (a shell would add its own).
fn assert_only_stdio(rt: &Rt) {
    let out = execute(rt, &["ls", "-l", "/proc/self/fd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let fds: Vec<&str> = o
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter(|(_, target)| !(target.starts_with("/proc/") && target.ends_with("/fd")))
        .filter_map(|(l, _)| l.split_whitespace().last())
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "the command's descriptors: {o}");
}

#[test]
fn the_init_runs_from_sealed_copies_and_passes_on_no_host_descriptor() {
    let rt = Rt::new("execsl", "");
    let out = execute(&rt, &["/bin/sh", "-c", INSIDE_VIEW]);
    assert_sealed_init(&out, true);
    assert_only_stdio(&rt);
    rt.assert_clean();
}

#[test]
fn unprivileged_execute() {
    let rt = Rt::new("execu", "");
    make_unprivileged(&rt.env, &rt.name, base(40));
    let out = execute(
        &rt,
        &[
            "/bin/sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo err >&2; exit 5",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let o = stdout(&out);
    let words: Vec<&str> = o.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &base(40).to_string(), "65536"], "{o}");
    assert!(stderr(&out).contains("err"));
    // Its init runs as the container's root on the host, from sealed copies.
    let out = execute(&rt, &["/bin/sh", "-c", INSIDE_VIEW]);
    assert_sealed_init(&out, false);
    assert_only_stdio(&rt);
    let out = execute(&rt, &["/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + 15));
    rt.assert_clean();
}

#[test]
fn execute_with_another_config() {
    let rt = Rt::new("execf", "");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "hostname = \"elsewhere\"\n[init]\nenv = [\"FROM_F=yes\"]\n\n\
         [[network]]\ntype = \"empty\"\n",
    )
    .unwrap();
    std::fs::write(rt.env.rootfs(&rt.name).join("mine"), "the container's\n").unwrap();
    let f = other.to_str().unwrap();
    let script = "hostname; echo $FROM_F; cat /mine";
    let out = rt
        .env
        .run(&["execute", "-n", &rt.name, "-f", f, "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "elsewhere\nyes\nthe container's\n");
    // The container's own config is untouched; a bad file is named.
    let out = execute(&rt, &["/bin/sh", "-c", "hostname; echo ${FROM_F:-unset}"]);
    assert_eq!(stdout(&out), format!("{}\nunset\n", rt.name));
    std::fs::write(&other, "no_such_key = 1\n").unwrap();
    let e = rt
        .env
        .fails(&["execute", "-n", &rt.name, "-f", f, "--", "true"]);
    assert!(e.contains(f) && e.contains("no_such_key"), "{e}");
    rt.assert_clean();
}
