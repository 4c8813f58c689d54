//! A terminal driven through tmux: keys sent, the screen read back.

#[allow(unused_imports)]
use super::*;

/// A detached tmux session, killed on drop even when the test fails.
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn start(cmd: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("rlxc-test-{}-{n}", std::process::id());
        // Two tests starting the first tmux server at once can race: try again.
        let mut last = String::new();
        for _ in 0..5 {
            let out = std::process::Command::new("tmux")
                .args([
                    "new-session",
                    "-d",
                    "-s",
                    &name,
                    "-x",
                    "120",
                    "-y",
                    "40",
                    cmd,
                ])
                .output()
                .expect("tmux is needed for terminal tests (apt-get install tmux)");
            if out.status.success() {
                return Tmux { name };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("tmux new-session failed: {last}");
    }

    pub fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        stdout(&out)
    }

    pub fn keys(&self, keys: &[&str]) {
        let st = std::process::Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Until the screen has not changed for `quiet` (at most 5 s).
    pub fn settle(&self, quiet: std::time::Duration) {
        let t0 = std::time::Instant::now();
        let (mut last, mut since) = (self.screen(), std::time::Instant::now());
        while since.elapsed() < quiet && t0.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let s = self.screen();
            if s != last {
                (last, since) = (s, std::time::Instant::now());
            }
        }
    }

    /// Log in as root with `password` at `host`'s login prompt. A getty that
    /// asks the terminal its size (util-linux 2.41) can get the answer after it stopped
    /// waiting, as typed text: the screen settles and the line is killed (Ctrl-u) first.
    pub fn log_in_as_root(&self, host: &str, password: &str) {
        self.wait_for(&format!("{host} login:"));
        self.settle(std::time::Duration::from_millis(300));
        self.keys(&["C-u", "root", "Enter"]);
        self.wait_for("Password:");
        self.keys(&[password, "Enter"]);
        self.wait_for(&format!("root@{host}"));
    }

    pub fn wait_for(&self, text: &str) -> String {
        let t0 = std::time::Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(30),
                "timed out waiting for {text:?}; screen:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}
