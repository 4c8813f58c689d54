//! A mirror that stops talking: no answer, a body that stops half-way, a body that drips,
//! a connect that hangs, an index that crawls, a redirect loop. Each fails in seconds
//! (the timeouts are made small through the environment, as the module comment of
//! src/image/fetch.rs documents), says "stalled" (or "redirect loop") with the URL, and
//! leaves nothing behind. Runs are bounded, so a hang fails the test instead of blocking it.

mod common;

use common::*;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(40);
/// Loose: each case needs a few seconds with the shortened timeouts.
const QUICK: Duration = Duration::from_secs(25);

/// One image big enough that a stall can hit the middle of it.
fn mirror() -> (Mirror, HttpServer, String) {
    let mut m = Mirror::new();
    let mut img = Image::new("debian", "bookworm", "b1");
    img.rootfs_tar = small_rootfs()
        .file("./usr/blob", 0o644, &pseudo_random(256 * 1024, 1))
        .finish();
    let p = m.add(&img);
    let s = HttpServer::start(m.dir.path());
    (m, s, p)
}

/// Create with these environment overrides; it must fail quickly and leave nothing.
/// Returns stderr.
fn create_fails(env: &Env, vars: &[(&str, &str)]) -> String {
    let mut cmd = env.cmd(&[
        "create", "-n", "c1", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let (out, timed_out) = run_bounded(&cmd, DEADLINE);
    let (took, err) = (t0.elapsed(), stderr(&out));
    assert!(!timed_out, "still running after {DEADLINE:?}: {err}");
    assert!(took < QUICK, "took {took:?}: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    let (left, cached) = (env.lxcpath_entries(), env.cache_files());
    assert!(left.is_empty() && cached.is_empty(), "{left:?} {cached:?}");
    err
}

const WINDOW: (&str, &str) = ("RLXC_STALL_WINDOW_MS", "1500");

#[test]
fn a_server_that_never_answers_is_stalled_and_retried_once() {
    let (_m, s, _) = mirror();
    s.fault("/meta/1.0/index-system", Fault::Silent);
    let env = Env::new(&s.url());
    let e = create_fails(&env, &[WINDOW]);
    assert!(e.contains("/meta/1.0/index-system"), "{e}");
    assert!(e.contains("stalled: no response within 1.5 s"), "{e}");
    assert!(e.contains("retrying (1/1)"), "{e}");
    assert_eq!(s.count("index-system"), 2, "{:?}", s.log());
}

/// Serve rootfs.tar.xz with `fault`; the create must fail naming its URL. Returns
/// stderr and the server.
fn rootfs_fault(fault: Fault, vars: &[(&str, &str)]) -> (String, HttpServer) {
    let (_m, s, p) = mirror();
    let url = format!("{p}rootfs.tar.xz");
    s.fault(&url, fault);
    let e = create_fails(&Env::new(&s.url()), vars);
    assert!(e.contains(&url), "{e}");
    (e, s)
}

#[test]
fn a_body_that_stops_half_way_is_stalled_not_a_decoding_error() {
    let (e, s) = rootfs_fault(Fault::StallAfter(20_000), &[WINDOW]);
    assert!(
        e.contains("stalled: no data for 1.5 s after 20000 bytes"),
        "{e}"
    );
    assert!(!e.contains("error decoding response body"), "{e}");
    assert_eq!(s.count("rootfs.tar.xz"), 2, "{:?}", s.log());
}

#[test]
fn a_dripping_server_is_stalled_by_the_throughput_floor() {
    // A byte every 0.6 s: every read returns well within the per-read wait, so only
    // the bytes-per-window floor can catch it.
    let (e, _s) = rootfs_fault(Fault::Drip(600), &[("RLXC_STALL_WINDOW_MS", "2000")]);
    assert!(
        e.contains("stalled: ") && e.contains("bytes in the last 2"),
        "{e}"
    );
    assert!(e.contains("under the 1024 a working mirror sends"), "{e}");
}

#[test]
fn a_hanging_connect_gives_up_at_the_connect_timeout() {
    let hang = Unaccepting::start();
    let env = Env::new(&hang.url());
    let e = create_fails(&env, &[("RLXC_CONNECT_TIMEOUT_MS", "500")]);
    assert!(e.contains(&hang.url()), "{e}");
    assert!(e.contains("cannot connect within 0.5 s"), "{e}");
}

#[test]
fn a_crawling_index_is_bounded_by_the_metadata_timeout() {
    let (_m, s, _) = mirror();
    // 40 bytes a second: above a floor of 1 byte, but the index (75 bytes) takes 2 s.
    s.fault("/meta/1.0/index-system", Fault::Slow(4));
    let env = Env::new(&s.url());
    let e = create_fails(
        &env,
        &[
            ("RLXC_STALL_MIN_BYTES", "1"),
            ("RLXC_METADATA_TIMEOUT_MS", "1000"),
        ],
    );
    assert!(e.contains("/meta/1.0/index-system"), "{e}");
    assert!(e.contains("stalled: not complete within 1 s"), "{e}");
}

#[test]
fn a_redirect_loop_is_named_and_not_retried() {
    let (_m, s, _) = mirror();
    let index = "/meta/1.0/index-system";
    s.fault(index, Fault::Redirect(index.into()));
    let env = Env::new(&s.url());
    let e = create_fails(&env, &[]);
    assert!(e.contains("redirect loop") && e.contains(index), "{e}");
    assert!(!e.contains("retrying"), "{e}");
    // The first request and the 10 redirects followed, once: no second round.
    assert_eq!(s.count("index-system"), 11, "{:?}", s.log());
}
