//! rlxc-attach's environment and identity options, as lxc-attach's: --clear-env (only
//! container=lxc, plus --keep-var and -v), --keep-env, -v, -u, -g, --cwd; the exit status
//! still comes back (126 or 127 as a shell's when the command cannot run), and a
//! directory that is not there is a clear error. The caller's ignored signals, real-time
//! ones too, stay the caller's.

mod common;

use common::rt::Rt;
use common::*;

fn run_with_env(rt: &Rt, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut c = rt.env.cmd(args);
    c.envs(vars.iter().copied());
    c.output().expect("run rlxc")
}

/// rlxc-attach with options before the command.
fn attach_with(rt: &Rt, opts: &[&str], cmd: &[&str]) -> std::process::Output {
    let mut v = vec!["attach", "-n", &rt.name];
    v.extend(opts);
    v.push("--");
    v.extend(cmd);
    rt.env.run(&v)
}

fn env_of(out: &std::process::Output) -> Vec<String> {
    let mut v: Vec<String> = stdout(out).lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Signal numbers as Linux has them (the tests do not link libc).
const SIGQUIT: u32 = 3;
const SIGUSR2: u32 = 12;
/// SIGRTMIN+3 as glibc numbers it (its SIGRTMIN is 34: it keeps 32 and 33).
const SIGRTMIN_3: u32 = 37;

/// The `SigIgn:` mask in a /proc/PID/status text.
fn ignored_mask(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
}

#[test]
fn environment_identity_and_directory() {
    let rt = Rt::new("attopt", "");
    rt.ok(&["start", "-d"]);
    let n = rt.name.as_str();

    // --clear-env: container=lxc, the kept variable and the set one, nothing else.
    let out = run_with_env(
        &rt,
        &[
            "attach",
            "-n",
            n,
            "--clear-env",
            "--keep-var",
            "RLXC_T_KEEP",
            "-v",
            "A=1",
            "-v",
            "A=2",
            "--",
            "/usr/bin/env",
        ],
        &[("RLXC_T_KEEP", "kept"), ("RLXC_T_OTHER", "x")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env_of(&out), ["A=2", "RLXC_T_KEEP=kept", "container=lxc"]);

    // --keep-env: the caller's variables, and container=lxc.
    let out = run_with_env(
        &rt,
        &["attach", "-n", n, "--keep-env", "--", "/usr/bin/env"],
        &[("RLXC_T_OTHER", "x")],
    );
    let env = env_of(&out);
    assert!(env.iter().any(|e| e == "RLXC_T_OTHER=x"), "{env:?}");
    assert!(env.iter().any(|e| e == "container=lxc"), "{env:?}");

    // Default: the known set, no caller's variable; -v over it.
    let out = run_with_env(
        &rt,
        &["attach", "-n", n, "-v", "HOME=/tmp", "--", "/usr/bin/env"],
        &[("RLXC_T_OTHER", "x")],
    );
    let env = env_of(&out);
    assert!(!env.iter().any(|e| e.starts_with("RLXC_T_")), "{env:?}");
    assert!(env.iter().any(|e| e == "HOME=/tmp"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");

    // -u/-g and --cwd; supplementary groups dropped; the status comes back.
    let out = attach_with(
        &rt,
        &["-u", "33", "-g", "44", "--cwd", "/etc"],
        &["/bin/sh", "-c", "id -u; id -g; id -G; pwd; exit 5"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["33", "44", "44", "/etc"]
    );
    // -u alone: group 0, as lxc-attach.
    let out = attach_with(
        &rt,
        &["-u", "1000"],
        &["/bin/sh", "-c", "id -u; id -g; pwd"],
    );
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), ["1000", "0", "/"]);

    // A directory that is not there, or not the user's to enter.
    let out = attach_with(&rt, &["--cwd", "/nonexistent"], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        stderr(&out).contains("cannot enter /nonexistent in the container"),
        "{}",
        stderr(&out)
    );
    rt.attach(&["/bin/sh", "-c", "mkdir -p /private && chmod 700 /private"]);
    let out = attach_with(&rt, &["-u", "33", "--cwd", "/private"], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));

    // A command that is not there: 127; one there that cannot run (no execute bit, or
    // no format the kernel knows): 126, as a shell says.
    let out = attach_with(&rt, &[], &["/no/such/command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot execute /no/such/command in the container"),
        "{}",
        stderr(&out)
    );
    let out = attach_with(&rt, &[], &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    let made = rt.attach(&[
        "/bin/sh",
        "-c",
        "printf 'RLXC\\001' > /garbage && chmod 755 /garbage",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let out = attach_with(&rt, &[], &["/garbage"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));

    // Signals the caller ignores (as a shell's background job ignores SIGQUIT) are not
    // ignored by the command: no disposition of the caller's crosses. The wrapper shows
    // its own mask on stderr, so the test knows the caller did ignore them.
    let inner = rt
        .env
        .cmd(&["attach", "-n", n, "--", "/bin/cat", "/proc/self/status"]);
    let mut c = std::process::Command::new("/bin/sh");
    c.args([
        "-c",
        "trap '' QUIT USR2 37; grep SigIgn /proc/self/status >&2; exec \"$@\"",
        "sh",
    ])
    .arg(inner.get_program())
    .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().expect("run rlxc");
    assert!(out.status.success(), "{}", stderr(&out));
    let ignored = [SIGQUIT, SIGUSR2, SIGRTMIN_3]
        .iter()
        .fold(0u64, |m, s| m | 1 << (s - 1));
    let (caller, command) = (ignored_mask(&stderr(&out)), ignored_mask(&stdout(&out)));
    assert_eq!(
        caller.map(|m| m & ignored),
        Some(ignored),
        "{}",
        stderr(&out)
    );
    assert_eq!(command.map(|m| m & ignored), Some(0), "{}", stdout(&out));

    // -v without '=' and --keep-var without --clear-env are usage errors.
    let out = rt
        .env
        .run(&["attach", "-n", n, "-v", "NOVALUE", "--", "/bin/true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected VAR=VALUE"),
        "{}",
        stderr(&out)
    );
    let out = rt
        .env
        .run(&["attach", "-n", n, "--keep-var", "X", "--", "/bin/true"]);
    assert!(!out.status.success());
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}
