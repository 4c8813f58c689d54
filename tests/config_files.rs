//! Config files are read with limits wherever their path comes from (`RLXC_CONFIG`,
//! `defaults` in rlxc.toml, `rlxc-create -f`): a device, a FIFO or a directory is refused
//! as not a regular file, and a file past 1 MiB as too large, each naming the file.
//! Every run is bounded in memory and time, so a reader without limits fails the test
//! rather than the machine.

mod common;

use common::*;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// Run, require a quick failure, return stderr.
fn fails_quickly(cmd: &std::process::Command) -> String {
    let (out, timed_out) = run_bounded(cmd, DEADLINE);
    let err = stderr(&out);
    assert!(!timed_out, "still running after {DEADLINE:?}: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// `rlxc-create -n c1 -t download -d debian -r bookworm EXTRA…` must fail quickly and
/// leave lxcpath empty; returns stderr.
fn create_fails(env: &Env, extra: &[&str]) -> String {
    let mut args = vec![
        "create", "-n", "c1", "-t", "download", "-d", "debian", "-r", "bookworm",
    ];
    args.extend_from_slice(extra);
    let e = fails_quickly(&env.cmd(&args));
    let left = env.lxcpath_entries();
    assert!(left.is_empty(), "{left:?}");
    e
}

#[test]
fn rlxc_config_naming_a_device_fifo_or_directory_is_refused() {
    // Nothing listens on port 9: no request may be needed to fail.
    let env = Env::new("http://127.0.0.1:9");
    let fifo = env.dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let dir = env.dir.path().join("dir.toml");
    std::fs::create_dir(&dir).unwrap();
    for (path, kind) in [
        ("/dev/zero".to_string(), "a character device"),
        (fifo.display().to_string(), "a FIFO"),
        (dir.display().to_string(), "a directory"),
    ] {
        let mut cmd = env.cmd(&["ls"]);
        cmd.env("RLXC_CONFIG", &path);
        let e = fails_quickly(&cmd);
        assert!(e.contains(&path), "names the file: {e}");
        assert!(
            e.contains(kind) && e.contains("must be a regular file"),
            "{e}"
        );
    }
}

#[test]
fn defaults_naming_dev_zero_is_refused_and_creates_nothing() {
    let env = Env::new("http://127.0.0.1:9");
    env.write_config("defaults = \"/dev/zero\"");
    let e = create_fails(&env, &[]);
    assert!(e.contains("/dev/zero") && e.contains("regular file"), "{e}");
    // Where the path came from.
    assert!(e.contains("`defaults`") && e.contains("rlxc.toml"), "{e}");
}

#[test]
fn create_f_dev_zero_is_refused_and_creates_nothing() {
    let env = Env::new("http://127.0.0.1:9");
    let e = create_fails(&env, &["-f", "/dev/zero"]);
    assert!(e.contains("/dev/zero") && e.contains("regular file"), "{e}");
}

#[test]
fn config_files_past_one_mib_are_refused_with_the_limit() {
    let env = Env::new("http://127.0.0.1:9");
    // Valid TOML all the way: only the size is wrong with it.
    let padding = "# padding\n".repeat(110_000);
    let sys = env.dir.path().join("rlxc.toml");
    let mut text = std::fs::read_to_string(&sys).unwrap();
    text.push_str(&padding);
    std::fs::write(&sys, &text).unwrap();
    let e = fails_quickly(&env.cmd(&["ls"]));
    assert!(e.contains(&sys.display().to_string()), "{e}");
    assert!(e.contains("larger than 1 MiB"), "{e}");

    env.write_config("");
    let big = env.dir.path().join("big.toml");
    std::fs::write(&big, &padding).unwrap();
    let e = create_fails(&env, &["-f", big.to_str().unwrap()]);
    assert!(
        e.contains("big.toml") && e.contains("larger than 1 MiB"),
        "{e}"
    );
    // A config just under the limit is read as before.
    std::fs::write(&sys, {
        let mut t = std::fs::read_to_string(&sys).unwrap();
        t.push_str(&"# padding\n".repeat(100_000));
        t
    })
    .unwrap();
    assert_eq!(env.ok(&["ls"]), "");
}
