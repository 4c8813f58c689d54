//! Running rlxc so that a hang or a runaway allocation fails the test, not the machine.

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// `cmd` under a 2 GiB address-space limit (prlimit execs it: same pid), stdout and
/// stderr captured: a step that reads or allocates without end fails the test instead
/// of taking the machine's memory.
pub fn bounded(cmd: &Command) -> Command {
    let mut c = Command::new("prlimit");
    c.arg(format!("--as={}", 2u64 << 30))
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Wait for `child`, killing it after `deadline`. Returns the output and whether the
/// deadline passed.
pub fn wait_bounded(mut child: Child, deadline: Duration) -> (Output, bool) {
    let t0 = Instant::now();
    let mut timed_out = false;
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > deadline {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("wait"), timed_out)
}

/// Run `cmd` bounded in memory (`bounded`) and time (`wait_bounded`).
pub fn run_bounded(cmd: &Command, deadline: Duration) -> (Output, bool) {
    let child = bounded(cmd).spawn().expect("prlimit (util-linux) runs");
    wait_bounded(child, deadline)
}
