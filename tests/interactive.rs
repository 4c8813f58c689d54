//! rlxc-create on a real terminal (tmux): the interactive choice of distribution,
//! release and architecture, and the progress display.

mod common;

use common::*;

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
