//! rlxc-create -t download's network side against a real HTTP server on 127.0.0.1: the
//! cache (reused, flushed, forced, never poisoned), retries, checksums, HTTP errors,
//! rotated builds, redirects, malformed indexes, concurrency, interrupts, a proxy and TLS.

mod common;

use common::*;

#[test]
fn cache_is_reused_flushed_and_forced() {
    let (mut m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    assert!(env.create("a", "debian", "bookworm").status.success());
    assert_eq!(s.count("rootfs.tar.xz"), 1);
    let files = env.cache_files();
    let arch = host_arch();
    let d = format!("download/debian/bookworm/{arch}/default");
    for f in [
        "build_id",
        "rootfs.tar",
        "meta/config",
        "meta/templates",
        "meta/expiry",
    ] {
        assert!(
            files.contains(&format!("{d}/{f}")),
            "{f} missing from {files:?}"
        );
    }
    assert_eq!(
        read(env.cachepath().join(&d).join("build_id")).trim(),
        "20261120_05:24"
    );

    // Second create: index only, no image download.
    assert!(env.create("b", "debian", "bookworm").status.success());
    assert_eq!(s.count("rootfs.tar.xz"), 1, "{:?}", s.log());

    // --flush-cache downloads again.
    env.ok(&[
        "create",
        "-n",
        "c",
        "-t",
        "download",
        "-d",
        "debian",
        "-r",
        "bookworm",
        "--flush-cache",
    ]);
    assert_eq!(s.count("rootfs.tar.xz"), 2);

    // A new build on the server replaces the cached one.
    m.remove_index_line("debian;bookworm");
    m.add(&Image::new("debian", "bookworm", "20261121_05:24"));
    assert!(env.create("d", "debian", "bookworm").status.success());
    assert_eq!(
        read(env.cachepath().join(&d).join("build_id")).trim(),
        "20261121_05:24"
    );
    assert!(read(env.lxcpath().join("d/config.toml")).contains("20261121_05:24"));

    // --force-cache works with the server gone.
    let env2 = Env::new("http://127.0.0.1:9");
    std::fs::rename(env.cachepath(), env2.cachepath()).unwrap();
    env2.ok(&[
        "create",
        "-n",
        "e",
        "-t",
        "download",
        "-d",
        "debian",
        "-r",
        "bookworm",
        "--force-cache",
    ]);
    // Without it, an unreachable server falls back to the fresh cache with a warning.
    let out = env2.create("f", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("using the cached build"),
        "{}",
        stderr(&out)
    );
    // Nothing cached for another release: the error names the URL.
    let e = env2.fails(&[
        "create", "-n", "g", "-t", "download", "-d", "centos", "-r", "9-Stream",
    ]);
    assert!(
        e.contains("127.0.0.1:9") && e.contains("index-system"),
        "{e}"
    );
}

#[test]
fn transient_errors_are_retried() {
    let (m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let path = format!(
        "/images/debian/bookworm/{}/default/20261120_05:24/rootfs.tar.xz",
        host_arch()
    );
    s.fault(&path, Fault::Status(503, 2));
    let out = env.create("r", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("503"),
        "retries are visible: {}",
        stderr(&out)
    );
    assert_eq!(s.count("rootfs.tar.xz"), 3);
    drop(m);
}

#[test]
fn truncated_download_never_poisons_the_cache() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let path = format!(
        "/images/debian/bookworm/{}/default/20261120_05:24/rootfs.tar.xz",
        host_arch()
    );
    s.fault(&path, Fault::Truncate(100, 10));
    let e = env.fails(&[
        "create", "-n", "t", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    assert!(e.contains(&path) && e.contains("100"), "{e}");
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
    // The server recovers: the next create downloads a good copy.
    s.clear_faults();
    assert!(env.create("t", "debian", "bookworm").status.success());
}

#[test]
fn checksum_mismatch_and_non_xz_are_refused() {
    let mut m = Mirror::new();
    let img = Image::new("debian", "bookworm", "b1");
    let p = m.add(&img);
    // Corrupt the published image after SHA256SUMS was written.
    let f = m.build_dir(&p).join("rootfs.tar.xz");
    let good = std::fs::read(&f).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    std::fs::write(&f, &bad).unwrap();
    let s = HttpServer::start(m.dir.path());
    let env = Env::new(&s.url());
    let e = env.fails(&[
        "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    assert!(e.contains("checksum mismatch") || e.contains("xz"), "{e}");
    assert!(env.cache_files().is_empty() && env.lxcpath_entries().is_empty());

    // Garbage instead of xz, with matching checksums: the xz decoder refuses it.
    let mut m2 = Mirror::new();
    m2.add_raw(
        &Image::new("debian", "bookworm", "b2"),
        b"<html>not an image</html>".to_vec(),
        xz(&default_meta()),
    );
    let s2 = HttpServer::start(m2.dir.path());
    let env2 = Env::new(&s2.url());
    let e = env2.fails(&[
        "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    assert!(e.contains("not a valid xz stream"), "{e}");
    assert!(env2.cache_files().is_empty() && env2.lxcpath_entries().is_empty());

    // Truncated xz (consistent checksum): the stream end is missing.
    let mut m3 = Mirror::new();
    let whole = xz(&small_rootfs().finish());
    m3.add_raw(
        &Image::new("debian", "bookworm", "b3"),
        whole[..whole.len() - 20].to_vec(),
        xz(&default_meta()),
    );
    let s3 = HttpServer::start(m3.dir.path());
    let env3 = Env::new(&s3.url());
    let e = env3.fails(&[
        "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    assert!(e.contains("xz"), "{e}");
    assert!(env3.cache_files().is_empty() && env3.lxcpath_entries().is_empty());
}

#[test]
fn missing_sha256sums_warns_but_works() {
    let mut m = Mirror::new();
    let mut img = Image::new("debian", "bookworm", "b1");
    img.sums = false;
    m.add(&img);
    let s = HttpServer::start(m.dir.path());
    let env = Env::new(&s.url());
    let out = env.create("x", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no SHA256SUMS"), "{}", stderr(&out));
}

#[test]
fn http_404_names_url_and_status() {
    let (m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let p = format!(
        "/images/debian/bookworm/{}/default/20261120_05:24/",
        host_arch()
    );
    std::fs::remove_file(m.build_dir(&p).join("rootfs.tar.xz")).unwrap();
    let e = env.fails(&[
        "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    assert!(
        e.contains(&format!("{}rootfs.tar.xz", p)) && e.contains("404"),
        "{e}"
    );
    // The index was re-read once, in case the build had rotated out.
    assert_eq!(s.count("index-system"), 2, "{:?}", s.log());
    assert!(env.cache_files().is_empty() && env.lxcpath_entries().is_empty());

    let env2 = Env::new(&format!("{}/no-such-prefix", s.url()));
    let e = env2.fails(&[
        "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm",
    ]);
    assert!(
        e.contains("/no-such-prefix/meta/1.0/index-system") && e.contains("404"),
        "{e}"
    );
}

#[test]
fn rotated_build_is_found_by_rereading_the_index() {
    let (mut m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    // The first index names a build that is gone by download time; the second, the new one.
    m.add(&Image::new("debian", "bookworm", "20261121_00:00"));
    let first = read(m.dir.path().join("meta/1.0/index-system"));
    let old_only: Vec<&str> = first
        .lines()
        .filter(|l| !l.contains("20261121_00:00"))
        .collect();
    let new_only: Vec<&str> = first
        .lines()
        .filter(|l| !l.contains("20261120_05:24"))
        .collect();
    std::fs::write(
        m.dir.path().join("meta/1.0/index-system"),
        old_only.join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(
        m.dir.path().join("meta/1.0/index-new"),
        new_only.join("\n") + "\n",
    )
    .unwrap();
    s.fault(
        "/meta/1.0/index-system",
        Fault::SwapAfter(1, "meta/1.0/index-new".into()),
    );
    let old = format!(
        "/images/debian/bookworm/{}/default/20261120_05:24/rootfs.tar.xz",
        host_arch()
    );
    s.fault(&old, Fault::Status(404, 100));
    let out = env.create("x", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("re-reading the index"),
        "{}",
        stderr(&out)
    );
    assert!(read(env.lxcpath().join("x/config.toml")).contains("20261121_00:00"));
}

#[test]
fn redirects_are_followed() {
    let (m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let p = format!(
        "/images/debian/bookworm/{}/default/20261120_05:24/",
        host_arch()
    );
    let d = m.build_dir(&p);
    std::fs::copy(d.join("meta.tar.xz"), d.join("meta-moved.tar.xz")).unwrap();
    s.fault(
        &format!("{p}meta.tar.xz"),
        Fault::Redirect(format!("{p}meta-moved.tar.xz")),
    );
    let out = env.create("y", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        s.log().iter().any(|l| l.ends_with("meta-moved.tar.xz")),
        "{:?}",
        s.log()
    );
}

#[test]
fn malformed_index_lines_are_skipped_with_a_warning() {
    let (mut m, s) = mirror_with_debian();
    m.add_index_line("evil;1;amd64;default;b1;/images/../../../etc/");
    m.add_index_line("short;line");
    let env = Env::new(&s.url());
    let out = env.create("x", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("skipped 2 malformed line(s)"),
        "{}",
        stderr(&out)
    );
    let e = env.fails(&[
        "create", "-n", "y", "-t", "download", "-d", "evil", "-r", "1",
    ]);
    assert!(e.contains("no distribution \"evil\""), "{e}");
}

#[test]
fn bad_system_config_names_file_line_and_key() {
    let env = Env::new("http://127.0.0.1:9");
    env.write_config("lxcpaht = \"/tmp/x\"");
    let e = env.fails(&["ls"]);
    assert!(
        e.contains("rlxc.toml") && e.contains("line 4") && e.contains("lxcpaht"),
        "{e}"
    );
    env.write_config("");
    std::fs::write(env.dir.path().join("rlxc.toml"), "lxcpath = 42\n").unwrap();
    let e = env.fails(&["ls"]);
    assert!(e.contains("line 1") && e.contains("lxcpath"), "{e}");
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_rlxc"))
        .arg("ls")
        .env("RLXC_CONFIG", "/nonexistent/rlxc.toml")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent/rlxc.toml"));
}

#[test]
fn concurrent_creates_of_one_name_one_wins() {
    let mut m = Mirror::new();
    // A big enough image that the two creates overlap.
    let mut t = small_rootfs();
    for i in 0..300 {
        t = t.file(&format!("./usr/share/f{i}"), 0o644, &vec![b'x'; 20_000]);
    }
    let mut img = Image::new("debian", "bookworm", "b1");
    img.rootfs_tar = t.finish();
    m.add(&img);
    let s = HttpServer::start(m.dir.path());
    let env = Env::new(&s.url());
    // Pre-fill the cache so both race on the container, not the download.
    assert!(env.create("warm", "debian", "bookworm").status.success());
    let spawn = || {
        env.cmd(&[
            "create", "-n", "race", "-t", "download", "-d", "debian", "-r", "bookworm",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "a: {}\nb: {}", stderr(&a), stderr(&b));
    let loser = if a.status.success() { &b } else { &a };
    let e = stderr(loser);
    assert!(e.contains("busy") || e.contains("already exists"), "{e}");
    assert_eq!(env.lxcpath_entries(), ["race", "warm"]);
    assert_eq!(
        std::fs::read_dir(env.rootfs("race").join("usr/share"))
            .unwrap()
            .count(),
        300
    );
}

#[test]
fn interrupted_create_leaves_nothing() {
    let mut m = Mirror::new();
    let mut t = small_rootfs();
    for i in 0..8u8 {
        t = t.file(&format!("./usr/f{i}"), 0o644, &pseudo_random(128 * 1024, i));
    }
    let mut img = Image::new("debian", "bookworm", "b1");
    img.rootfs_tar = t.finish();
    let p = m.add(&img);
    let s = HttpServer::start(m.dir.path());
    s.fault(&format!("{p}rootfs.tar.xz"), Fault::Slow(2000));
    let env = Env::new(&s.url());
    let child = env
        .cmd(&[
            "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while s.count("rootfs.tar.xz") == 0 && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = interrupt(child);
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[test]
fn http_proxy_from_the_environment_is_used() {
    let (_m, s) = mirror_with_debian();
    // The mirror "lives" at a closed port; only the proxy can reach it. (No made-up host
    // names: resolving one would send a DNS query off this machine.)
    let env = Env::new("http://127.0.0.1:9");
    let out = env
        .cmd(&[
            "create", "-n", "p", "-t", "download", "-d", "debian", "-r", "bookworm",
        ])
        .env("http_proxy", s.url())
        .env_remove("NO_PROXY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        s.log().iter().any(|l| l == "proxy:/meta/1.0/index-system"),
        "{:?}",
        s.log()
    );
    assert!(s
        .log()
        .iter()
        .any(|l| l.starts_with("proxy:") && l.ends_with("rootfs.tar.xz")));
    // no_proxy sends it direct again, which fails (nothing listens there): the fresh
    // cache is used, with a warning naming the server.
    let out = env
        .cmd(&[
            "create", "-n", "q", "-t", "download", "-d", "debian", "-r", "bookworm",
        ])
        .env("http_proxy", s.url())
        .env_remove("NO_PROXY")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("127.0.0.1:9") && e.contains("using the cached build"),
        "{e}"
    );
}

/// A TLS front for `root` on 127.0.0.1 (Python's ssl server), with a certificate signed
/// by a CA made for the test; returns the server, its https URL and the CA's PEM path.
struct TlsMirror {
    child: std::process::Child,
    url: String,
    ca: std::path::PathBuf,
    _keys: TestCa,
}

impl Drop for TlsMirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_mirror(root: &std::path::Path) -> TlsMirror {
    let keys = TestCa::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = "import http.server, ssl, sys, functools
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
s = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), h)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain(sys.argv[3], sys.argv[4])
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()";
    let child = std::process::Command::new("python3")
        .args(["-c", server, &port.to_string()])
        .arg(root)
        .arg(&keys.cert)
        .arg(&keys.key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    TlsMirror {
        child,
        url: format!("https://127.0.0.1:{port}"),
        ca: keys.ca.clone(),
        _keys: keys,
    }
}

#[test]
fn https_mirror_is_verified_and_an_untrusted_one_fails_at_once() {
    let mut m = Mirror::new();
    m.add(&Image::new("debian", "bookworm", "20261120_05:24"));
    let tls = tls_mirror(m.dir.path());
    let env = Env::new(&tls.url);

    // Unknown CA: a final error naming the fix, no retries, nothing created or cached.
    let out = env.create("web1", "debian", "bookworm");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("SSL_CERT_FILE"), "{err}");
    assert!(!err.contains("retrying"), "not retried: {err}");
    assert!(!env.lxcpath().join("web1").exists());

    // Trusted through SSL_CERT_FILE: the same mirror works over TLS.
    let out = env
        .cmd(&[
            "create", "-n", "web1", "-t", "download", "-d", "debian", "-r", "bookworm",
        ])
        .env("SSL_CERT_FILE", &tls.ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(env.rootfs("web1").join("etc/hostname")), "web1\n");
}
