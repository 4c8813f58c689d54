//! rlxc-create on a real terminal (tmux): the interactive choice of distribution,
//! release and architecture, and the progress display.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A detached tmux session, killed on drop even when the test fails.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(cmd: &str) -> Self {
        let name = format!("rlxc-test-{}", std::process::id());
        let st = Command::new("tmux")
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
            .status()
            .expect("tmux is needed for terminal tests (apt-get install tmux)");
        assert!(st.success());
        Tmux { name }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        stdout(&out)
    }

    fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn wait_for(&self, text: &str) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timed out waiting for {text:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn interactive_choice_on_a_terminal() {
    let mut m = Mirror::new();
    m.add(&Image::new("centos", "9-Stream", "b1"));
    m.add(&Image::new("debian", "bookworm", "b1"));
    m.add(&Image::new("debian", "trixie", "b1"));
    let s = HttpServer::start(m.dir.path());
    let env = Env::new(&s.url());
    let cmd = format!(
        "RLXC_CONFIG={} {} create -n pick -t download; echo EXIT=$?; sleep 60",
        env.dir.path().join("rlxc.toml").display(),
        env!("CARGO_BIN_EXE_rlxc")
    );
    let t = Tmux::start(&cmd);
    let screen = t.wait_for("Distribution");
    assert!(
        screen.contains("centos") && screen.contains("debian"),
        "{screen}"
    );
    t.keys(&["Down", "Enter"]); // debian
    let screen = t.wait_for("Release");
    assert!(
        screen.contains("bookworm") && screen.contains("trixie"),
        "{screen}"
    );
    t.keys(&["Down", "Enter"]); // trixie
    t.wait_for("Architecture");
    t.keys(&["Enter"]); // the host's, preselected
    let screen = t.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("Created container pick"), "{screen}");
    let cfg = read(env.lxcpath().join("pick/config.toml"));
    assert!(cfg.contains("release = \"trixie\""), "{cfg}");
    assert!(
        cfg.contains(&format!("arch = \"{}\"", host_arch())),
        "{cfg}"
    );
}
