//! rlxc-execute end to end on the busybox fixture: the command's exit status (a code, a
//! signal, a command that is not there) becomes rlxc-execute's, stdin, stdout and stderr
//! pass through, orphans are reaped (no zombie while it runs), a SIGTERM sent to
//! rlxc-execute reaches the command, and nothing of the run is left afterwards.

mod common;

use common::rt::Rt;
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
    // there is refused before the start.
    let out = execute(&rt, &["/bin/sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137));
    let out = execute(&rt, &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert_says(&out, "cannot execute no-such-command");
    let out = execute(&rt, &["/no/such/command"]);
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out, "/no/such/command not found");
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
    rt.assert_clean();
}
