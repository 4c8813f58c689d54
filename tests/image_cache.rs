//! rlxc-image ls|rm|prune against a cache filled by real creates from the fixture
//! mirror (tests/fixtures/build-mirror.sh) served on 127.0.0.1.

mod common;

use common::*;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// An installation whose cache holds the fixture busybox image, put there by a create.
struct Cached {
    env: Env,
    server: HttpServer,
    release: String,
}

impl Cached {
    fn new() -> Self {
        let server = HttpServer::start(&fixture_mirror());
        let env = Env::new(&server.url());
        let release = busybox_release();
        let out = env.create("bb1", "busybox", &release);
        assert!(out.status.success(), "{}", stderr(&out));
        Cached {
            env,
            server,
            release,
        }
    }

    /// `busybox/RELEASE`, the short reference.
    fn short_ref(&self) -> String {
        format!("busybox/{}", self.release)
    }

    fn reference(&self) -> String {
        format!("download:busybox/{}/{}/default", self.release, host_arch())
    }

    fn entry(&self) -> PathBuf {
        self.env
            .cachepath()
            .join("download/busybox")
            .join(&self.release)
            .join(host_arch())
            .join("default")
    }

    /// The entry's lock held shared, as a create holds it while it unpacks.
    fn hold_as_a_create(&self) -> Flock<File> {
        let path = self.entry().with_file_name(".default.lock");
        let f = File::options().write(true).open(&path).unwrap();
        Flock::lock(f, FlockArg::LockShared)
            .map_err(|(_, e)| e)
            .unwrap()
    }

    fn json(&self) -> Vec<serde_json::Value> {
        let text = self.env.ok(&["image", "ls", "--json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Hidden directories an rm or a download leaves while it works.
    fn work_dirs(&self) -> Vec<String> {
        self.env
            .cache_files()
            .into_iter()
            .filter(|p| p.contains(".removing.") || p.contains(".partial."))
            .collect()
    }
}

fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()))
        .map(|cells| cells.map(String::from).collect())
        .collect()
}

/// A pid that is certainly not running: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn dir_with_data(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::write(p.join("data"), vec![1u8; 64 << 10]).unwrap();
}

#[test]
fn ls_shows_the_downloaded_image_and_rm_makes_the_next_create_download_again() {
    let c = Cached::new();
    let table = c.env.ok(&["image", "ls"]);
    let rows = rows(&table);
    assert_eq!(
        rows[0],
        [
            "SOURCE",
            "DIST",
            "RELEASE",
            "ARCH",
            "VARIANT",
            "BUILD",
            "SIZE",
            "LAST USED",
            "EXPIRES"
        ]
    );
    assert_eq!(rows.len(), 2, "{table}");
    let host = c.server.url().trim_start_matches("http://").to_string();
    assert_eq!(
        rows[1][..5],
        [
            format!("download:{host}"),
            "busybox".into(),
            c.release.clone(),
            host_arch().into(),
            "default".into()
        ]
    );
    assert!(rows[1][6].ends_with("MiB"), "a size: {table}");
    assert_eq!(rows[1][7], "just now", "{table}");
    assert!(rows[1][8].starts_with("in "), "not expired: {table}");

    let json = c.json();
    assert_eq!(json.len(), 1);
    let img = &json[0];
    assert_eq!(img["kind"], "download");
    assert_eq!(img["origin"], c.server.url().as_str());
    let build = read(c.entry().join("build_id"));
    assert_eq!(img["build"], build.trim());
    let tar = std::fs::metadata(c.entry().join("rootfs.tar"))
        .unwrap()
        .len();
    let size = img["size"].as_u64().unwrap();
    assert!(size >= tar && size < tar + (1 << 20), "{size} vs {tar}");
    let used = img["last_used"].as_i64().unwrap();
    assert!((now() - used).abs() < 60, "{used}");
    let expiry: i64 = read(c.entry().join("meta/expiry")).trim().parse().unwrap();
    assert_eq!(img["expires"].as_i64(), Some(expiry));

    // The multi-call name works as rlxc-image.
    let link = c.env.dir.path().join("rlxc-image");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlxc"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .args(["list", "--json"])
        .env("RLXC_CONFIG", c.env.dir.path().join("rlxc.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"busybox\""));

    let out = c.env.ok(&["image", "rm", &c.short_ref()]);
    assert!(
        out.contains(&format!("removed {} build {}", c.reference(), build.trim())),
        "{out}"
    );
    assert!(!c.entry().exists());
    assert!(c.work_dirs().is_empty(), "{:?}", c.work_dirs());
    assert_eq!(c.env.ok(&["image", "ls", "--json"]).trim(), "[]");

    let err = c.env.fails(&["image", "rm", &c.short_ref()]);
    assert!(err.contains("no cached image matches"), "{err}");
    assert!(err.contains("the image cache is empty"), "{err}");

    c.server.clear_log();
    let out = c.env.create("bb2", "busybox", &c.release);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.server.count("rootfs.tar.xz"), 1, "downloaded again");
    let err = c.env.fails(&["image", "rm", "download:busybox/0.1"]);
    assert!(
        err.contains(&c.reference()),
        "the miss lists the cache: {err}"
    );
    assert!(
        c.entry().join("build_id").is_file(),
        "a miss removes nothing"
    );
}

#[test]
fn prune_removes_expired_images_and_what_dead_processes_left() {
    let c = Cached::new();
    let cache = c.env.cachepath();
    // A template's cached tree, laid out as the templates' cache does; it never expires.
    let tpl = cache.join("template/debian/bookworm-amd64-minbase");
    dir_with_data(&tpl.join("rootfs"));
    std::fs::write(
        tpl.join("image.conf"),
        "dist=debian\nrelease=bookworm\narch=amd64\nvariant=minbase\nbuild=20261201\n",
    )
    .unwrap();
    let dead = dead_pid();
    let stale = c.entry().with_file_name(format!(".default.partial.{dead}"));
    let stale_tpl = cache.join(format!("template/debian/.other.staging.{dead}"));
    let stale_rm = cache.join(format!("template/debian/.gone.removing.{dead}"));
    for d in [&stale, &stale_tpl, &stale_rm] {
        dir_with_data(d);
    }

    let out = c.env.ok(&["image", "prune"]);
    assert!(!out.contains(&c.reference()), "{out}");
    assert!(!stale.exists() && !stale_tpl.exists() && !stale_rm.exists());
    assert!(c.entry().is_dir(), "not expired: kept");
    assert!(
        out.contains("removed leftover") && out.contains("freed"),
        "{out}"
    );

    std::fs::write(c.entry().join("meta/expiry"), format!("{}\n", now() - 60)).unwrap();
    let table = c.env.ok(&["image", "ls"]);
    assert!(table.contains("expired"), "{table}");
    let out = c.env.ok(&["image", "prune"]);
    assert!(out.contains(&format!("removed {}", c.reference())), "{out}");
    assert!(out.contains("(expired, "), "{out}");
    assert!(out.contains("freed") && out.contains("MiB"), "{out}");
    assert!(!c.entry().exists() && tpl.is_dir());

    let out = c.env.ok(&["image", "prune", "--all"]);
    assert!(
        out.contains("removed debian:debian/bookworm/amd64/minbase build 20261201 (unused"),
        "{out}"
    );
    assert!(!tpl.exists());
    assert_eq!(c.env.ok(&["image", "ls", "--json"]).trim(), "[]");
    assert_eq!(c.env.ok(&["image", "prune"]).trim(), "nothing to prune");
    assert!(c.work_dirs().is_empty(), "{:?}", c.work_dirs());
}

#[test]
fn rm_of_an_image_a_create_is_reading_waits_then_refuses_and_leaves_it_whole() {
    let c = Cached::new();
    let tar = std::fs::metadata(c.entry().join("rootfs.tar"))
        .unwrap()
        .len();
    let reading = c.hold_as_a_create();

    let t0 = Instant::now();
    let err = c
        .env
        .fails(&["image", "rm", "--timeout", "1", &c.short_ref()]);
    assert!(t0.elapsed() >= Duration::from_secs(1), "it waited");
    assert!(err.contains("waiting up to 1 s"), "{err}");
    assert!(err.contains(&c.reference()), "{err}");
    let me = format!("in use by pid {}", std::process::id());
    assert!(err.contains(&me), "the holder is named: {err}");
    assert!(err.contains("gave up after waiting 1 s"), "{err}");
    assert!(err.contains("--timeout"), "the hint: {err}");
    assert!(c.entry().join("build_id").is_file());
    let still = std::fs::metadata(c.entry().join("rootfs.tar"))
        .unwrap()
        .len();
    assert_eq!(still, tar, "the entry is whole");
    assert!(c.work_dirs().is_empty(), "{:?}", c.work_dirs());

    // prune --all does not wait: it keeps the entry and says why.
    let out = c.env.run(&["image", "prune", "--all"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains(&format!("kept {}", c.reference())),
        "{}",
        stderr(&out)
    );
    assert!(c.entry().join("build_id").is_file());

    // A create may read it meanwhile (shared with the test's lock) and is not disturbed.
    let out = c.env.create("bb2", "busybox", &c.release);
    assert!(out.status.success(), "{}", stderr(&out));

    // An rm that outlasts the reader removes the entry once it is let go.
    let rm = c
        .env
        .cmd(&["image", "rm", "--timeout", "20", &c.short_ref()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(c.entry().join("build_id").is_file(), "untouched while read");
    drop(reading);
    let out = rm.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting up to 20 s"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(&format!("removed {}", c.reference())));
    assert!(!c.entry().exists());
    assert!(c.work_dirs().is_empty(), "{:?}", c.work_dirs());
}

#[test]
fn bad_references_are_refused_before_anything_is_removed() {
    let c = Cached::new();
    for bad in ["../../etc/passwd", "download::busybox/1", ".busybox"] {
        let err = c.env.fails(&["image", "rm", bad]);
        assert!(err.contains("DIST/RELEASE"), "{bad}: {err}");
    }
    // A name without '/' is a published image's alias: none here.
    let err = c.env.fails(&["image", "rm", "busybox"]);
    assert!(err.contains("no cached image matches \"busybox\""), "{err}");
    let err = c
        .env
        .fails(&["image", "rm", &c.short_ref(), "debian:debian/bookworm"]);
    assert!(
        err.contains("no cached image matches \"debian:debian/bookworm\""),
        "{err}"
    );
    assert!(
        c.entry().join("build_id").is_file(),
        "all refs checked first"
    );
    // A source picks the cache: the busybox image is no template's.
    let err = c
        .env
        .fails(&["image", "rm", &format!("busybox:{}", c.short_ref())]);
    assert!(err.contains("no cached image matches"), "{err}");
    let out = c
        .env
        .ok(&["image", "rm", &format!("download:{}", c.short_ref())]);
    assert!(out.contains("removed"), "{out}");
}

/// A create stopped by the test; killed if the test fails before it lets it go on.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Start a create of the cached busybox image and catch it while it holds the entry's
/// shared lock (unpacking): stop it there. Returns the stopped create, or None when it
/// finished before it was caught.
fn catch_a_create_reading(c: &Cached, name: &str) -> Option<Stopped> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let child = c
        .env
        .cmd(&[
            "create", "-q", "-n", name, "-t", "download", "-d", "busybox", "-r",
        ])
        .arg(&c.release)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Stopped(child);
    let pid = Pid::from_raw(child.0.id() as i32);
    let lock = c.entry().with_file_name(".default.lock");
    loop {
        if child.0.try_wait().unwrap().is_some() {
            return None;
        }
        kill(pid, Signal::SIGSTOP).unwrap();
        // Stopped, it cannot let go meanwhile: is the entry's lock taken?
        let f = File::options().write(true).open(&lock).unwrap();
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Some(child),
            Err((_, e)) => panic!("flock {}: {e}", lock.display()),
            Ok(free) => drop(free),
        }
        kill(pid, Signal::SIGCONT).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn rm_racing_a_real_create_names_it_and_the_create_still_succeeds() {
    let c = Cached::new();
    let (n, mut stopped) = (1..=20)
        .find_map(|n| {
            let name = format!("race{n}");
            catch_a_create_reading(&c, &name).map(|ch| (name, ch))
        })
        .expect("a create caught while it reads the cache, in 20 tries");
    let create = &mut stopped.0;
    let err = c
        .env
        .fails(&["image", "rm", "--timeout", "1", &c.short_ref()]);
    let holder = format!("in use by pid {} (", create.id());
    assert!(err.contains(&holder), "{err}");
    assert!(
        err.contains(" create ") && err.contains(&n),
        "its command line: {err}"
    );
    assert!(c.entry().join("build_id").is_file());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(create.id() as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let status = create.wait().unwrap();
    let mut why = String::new();
    if let Some(mut e) = create.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut why).unwrap();
    }
    assert!(status.success(), "the create went on: {why}");
    assert!(c.env.rootfs(&n).join("bin/busybox").exists());
    c.env.ok(&["image", "rm", &c.short_ref()]);
    assert!(!c.entry().exists());
    assert!(c.work_dirs().is_empty(), "{:?}", c.work_dirs());
}
