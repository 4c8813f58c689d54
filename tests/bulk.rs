//! rlxc-start and rlxc-stop on several containers at once (issue 18): -n repeated,
//! names after the options, --all; each failure named, never in the way of the others,
//! and the exit status non-zero when any failed (one already stopped is no failure).

mod common;

use common::rt::unique;
use common::*;

const EMPTY_NET: &str = "[[network]]\ntype = \"empty\"\n";

struct Many {
    env: Env,
    _server: HttpServer,
    names: Vec<String>,
}

impl Many {
    /// `good` busybox containers, and one whose init is missing when `with_bad`.
    fn new(tag: &str, good: usize, with_bad: bool) -> Self {
        let server = HttpServer::start(&fixture_mirror());
        let env = Env::new(&server.url());
        let rel = busybox_release();
        let mut names: Vec<String> = (0..good).map(|i| unique(&format!("{tag}{i}"))).collect();
        for n in &names {
            env.create_with(n, "busybox", &rel, EMPTY_NET);
        }
        if with_bad {
            let bad = unique(&format!("{tag}bad"));
            let cfg = format!("[init]\ncmd = [\"/sbin/no-such-init\"]\n\n{EMPTY_NET}");
            env.create_with(&bad, "busybox", &rel, &cfg);
            names.push(bad);
        }
        Many {
            env,
            _server: server,
            names,
        }
    }

    fn state(&self, name: &str) -> String {
        let out = self.env.ok(&["info", "-n", name, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["state"].as_str().unwrap().to_string()
    }
}

impl Drop for Many {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.env.run(&["stop", "-k", "-n", n]);
        }
    }
}

#[test]
fn several_names_start_and_stop_together_and_a_failure_is_named_and_blocks_nothing() {
    let m = Many::new("bk", 3, true);
    let (a, b, c, bad) = (&m.names[0], &m.names[1], &m.names[2], &m.names[3]);
    // -n repeated, and names after the options, mixed; the bad one among them.
    let out = m.env.run(&["start", "-n", a, "-n", bad, b, c]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{bad}: ")), "{err}");
    assert!(err.contains("/sbin/no-such-init"), "{err}");
    assert!(err.contains("1 of 4 failed"), "{err}");
    for n in [a, b, c] {
        assert_eq!(m.state(n), "RUNNING", "{n}: {err}");
    }
    assert_eq!(m.state(bad), "STOPPED");
    // --all starts the stopped ones only: the bad one fails again, alone.
    let out = m.env.run(&["start", "--all", "-q"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 of 1 failed"), "{err}");
    // --all stops the running ones, each cleanly (or killed after the timeout).
    let out = m.env.run(&["stop", "--all", "-t", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for n in [a, b, c] {
        assert!(
            stderr(&out).contains(&format!("Stopped {n}")),
            "{}",
            stderr(&out)
        );
        assert_eq!(m.state(n), "STOPPED");
    }
    // Named ones that are not running are where they were asked to be: said, no failure.
    let out = m.env.run(&["stop", "-k", a, b]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for n in [a, b] {
        assert!(err.contains(&format!("{n} is not running")), "{err}");
    }
    assert!(!err.contains("failed"), "{err}");
    // A name that is no container is a failure, named; the others are still done.
    let missing = unique("bknone");
    let out = m.env.run(&["stop", a, &missing]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{missing}: container")), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("1 of 2 failed"), "{err}");
    assert!(err.contains(&format!("{a} is not running")), "{err}");
    // Nothing to do is no failure.
    let out = m.env.run(&["stop", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // One name keeps the one-container behaviour (exit 2: not running).
    assert_eq!(m.env.run(&["stop", "-n", a]).status.code(), Some(2));
}

#[test]
fn a_bounded_pool_starts_more_containers_than_its_width() {
    let m = Many::new("pool", 6, false);
    let mut args = vec!["start", "-j", "2"];
    args.extend(m.names.iter().map(String::as_str));
    m.env.ok(&args);
    for n in &m.names {
        assert_eq!(m.state(n), "RUNNING");
    }
    // Killed, and said so (not "Stopped").
    let out = m.env.run(&["stop", "-k", "--all", "-j", "3"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for n in &m.names {
        assert!(err.contains(&format!("Killed {n}")), "{err}");
        assert_eq!(m.state(n), "STOPPED");
    }
    assert!(!err.contains("Stopped"), "{err}");
}

#[test]
fn names_and_all_do_not_mix_and_f_takes_one_container() {
    let m = Many::new("mix", 2, false);
    let e = m.env.fails(&["start", "--all", "-n", &m.names[0]]);
    assert!(e.contains("--all"), "{e}");
    let e = m.env.fails(&["start", "-F", &m.names[0], &m.names[1]]);
    assert!(e.contains("-F runs one container"), "{e}");
}
