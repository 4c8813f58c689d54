//! Shared test support: a real HTTP server on 127.0.0.1 serving an LXC-format mirror
//! (with fault injection), mirrors built from in-memory images, and an isolated rlxc
//! environment (its own config, lxcpath, cachepath and runpath in a temp dir).
#![allow(dead_code)]

pub mod deb;
pub mod overlay;
pub mod rt;
pub mod tree;
pub mod userns;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

mod bounded;
mod http;
mod mounted;
mod tarball;
mod tls;
mod tmux;
#[allow(unused_imports)] // not every test binary uses each
pub use {bounded::*, http::*, mounted::*, tarball::*, tls::*, tmux::*};

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Incompressible bytes (xorshift), so a slow server really is slow.
pub fn pseudo_random(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An LXC-format mirror in a temp dir, built from in-memory images.
pub struct Mirror {
    pub dir: tempfile::TempDir,
    index: Vec<String>,
}

pub struct Image<'a> {
    pub dist: &'a str,
    pub release: &'a str,
    pub build: &'a str,
    pub rootfs_tar: Vec<u8>,
    pub meta_tar: Vec<u8>,
    pub sums: bool,
}

impl<'a> Image<'a> {
    pub fn new(dist: &'a str, release: &'a str, build: &'a str) -> Self {
        Image {
            dist,
            release,
            build,
            rootfs_tar: small_rootfs().finish(),
            meta_tar: default_meta(),
            sums: true,
        }
    }
}

impl Default for Mirror {
    fn default() -> Self {
        Self::new()
    }
}

/// A mirror with Debian bookworm and two CentOS Streams, served on 127.0.0.1.
pub fn mirror_with_debian() -> (Mirror, HttpServer) {
    let mut m = Mirror::new();
    m.add(&Image::new("debian", "bookworm", "20261120_05:24"));
    m.add(&Image::new("centos", "9-Stream", "20261122_07:08"));
    m.add(&Image::new("centos", "10-Stream", "20261122_07:10"));
    let s = HttpServer::start(m.dir.path());
    (m, s)
}

impl Mirror {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("meta/1.0")).unwrap();
        Mirror {
            dir,
            index: Vec::new(),
        }
    }

    pub fn build_dir(&self, img_path: &str) -> PathBuf {
        self.dir.path().join(img_path.trim_start_matches('/'))
    }

    /// Add an image with raw (already compressed or not) file contents.
    pub fn add_raw(&mut self, img: &Image, rootfs_xz: Vec<u8>, meta_xz: Vec<u8>) -> String {
        let arch = host_arch();
        let path = format!(
            "/images/{}/{}/{arch}/default/{}/",
            img.dist, img.release, img.build
        );
        let d = self.build_dir(&path);
        std::fs::create_dir_all(&d).unwrap();
        if img.sums {
            let sums = format!(
                "{}  rootfs.tar.xz\n{}  meta.tar.xz\n",
                sha256_hex(&rootfs_xz),
                sha256_hex(&meta_xz)
            );
            std::fs::write(d.join("SHA256SUMS"), sums).unwrap();
        }
        std::fs::write(d.join("rootfs.tar.xz"), rootfs_xz).unwrap();
        std::fs::write(d.join("meta.tar.xz"), meta_xz).unwrap();
        self.index.push(format!(
            "{};{};{arch};default;{};{path}",
            img.dist, img.release, img.build
        ));
        self.write_index();
        path
    }

    pub fn add(&mut self, img: &Image) -> String {
        let (r, m) = (xz(&img.rootfs_tar), xz(&img.meta_tar));
        self.add_raw(img, r, m)
    }

    pub fn add_index_line(&mut self, line: &str) {
        self.index.push(line.to_string());
        self.write_index();
    }

    pub fn remove_index_line(&mut self, contains: &str) {
        self.index.retain(|l| !l.contains(contains));
        self.write_index();
    }

    fn write_index(&self) {
        let text = self.index.join("\n") + "\n";
        for f in ["index-system", "index-user"] {
            std::fs::write(self.dir.path().join("meta/1.0").join(f), &text).unwrap();
        }
    }
}

/// An isolated rlxc installation: config, lxcpath, cachepath, runpath in a temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub server: String,
}

impl Env {
    pub fn new(server: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rlxc-test-")
            .tempdir()
            .unwrap();
        let e = Env {
            dir,
            server: server.to_string(),
        };
        e.write_config("");
        e
    }

    /// (Re)write the config file; `extra` goes before the [download] table.
    pub fn write_config(&self, extra: &str) {
        self.write_config_with(extra, "");
    }

    /// (Re)write the config file with `extra` before the [download] table and
    /// `download` (keys) in it.
    pub fn write_config_with(&self, extra: &str, download: &str) {
        let p = self.dir.path();
        let text = format!(
            "lxcpath = \"{}\"\ncachepath = \"{}\"\nrunpath = \"{}\"\n{extra}\n[download]\nserver = \"{}\"\n{download}\n",
            p.join("lib").display(),
            p.join("cache").display(),
            p.join("run").display(),
            self.server
        );
        std::fs::write(p.join("rlxc.toml"), text + &self.own_subids(extra)).unwrap();
    }

    /// New containers are unprivileged by default: the installation's root ranges come
    /// from files of the test (the host's /etc/subuid is never read or written), unless
    /// `extra` has an `[idmap]` table of its own.
    fn own_subids(&self, extra: &str) -> String {
        if extra.lines().any(|l| l.trim() == "[idmap]") {
            return String::new();
        }
        let p = self.dir.path();
        let line = "root:3000000000:1000000000\n";
        std::fs::write(p.join("subuid"), line).unwrap();
        std::fs::write(p.join("subgid"), line).unwrap();
        format!(
            "[idmap]\nsubuid = \"{}\"\nsubgid = \"{}\"\n",
            p.join("subuid").display(),
            p.join("subgid").display()
        )
    }

    /// An installation with no server, `templates_path` = [`templates`] (None: an empty
    /// `tpl` directory of its own), and a `net.toml` beside the config that gives
    /// containers no network.
    pub fn with_templates(templates: Option<&Path>) -> Self {
        let env = Env::new("http://127.0.0.1:9");
        let own = env.dir.path().join("tpl");
        let templates = templates.unwrap_or_else(|| {
            std::fs::create_dir(&own).unwrap();
            &own
        });
        env.write_config(&format!("templates_path = [\"{}\"]", templates.display()));
        std::fs::write(
            env.dir.path().join("net.toml"),
            "[[network]]\ntype = \"empty\"\n",
        )
        .unwrap();
        env
    }

    pub fn lxcpath(&self) -> PathBuf {
        self.dir.path().join("lib")
    }

    pub fn cachepath(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.lxcpath().join(name).join("rootfs")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rlxc"));
        c.args(args)
            .env("RLXC_CONFIG", self.dir.path().join("rlxc.toml"))
            .env("RLXC_RETRY_BACKOFF_MS", "50")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env("NO_PROXY", "127.0.0.1");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run rlxc")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rlxc {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "rlxc {args:?} should have failed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn create(&self, name: &str, dist: &str, release: &str) -> Output {
        self.run(&[
            "create", "-n", name, "-t", "download", "-d", dist, "-r", release,
        ])
    }

    /// Everything under lxcpath except rlxc's lock directory.
    pub fn lxcpath_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.lxcpath())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.retain(|n| n != ".locks");
        v.sort();
        v
    }

    /// Files in the cache tree (relative paths), excluding lock files.
    pub fn cache_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.cachepath(), &self.cachepath(), &mut out);
        out.retain(|p| !p.ends_with(".lock"));
        out.sort();
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            walk(base, &p, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Poll `done` every 50 ms until it holds; panic naming `what` after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "{what} after {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Read a whole file or panic with its path.
pub fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    let mut s = String::new();
    std::fs::File::open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// The fixture mirror built by tests/fixtures/build-mirror.sh (the README's test command
/// builds it); a missing mirror fails the test with what to run.
pub fn fixture_mirror() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("RLXC_FIXTURES").unwrap_or_else(|_| "/var/cache/rlxc-test-fixtures".into()),
    )
    .join("mirror");
    assert!(
        dir.join("meta/1.0/index-system").is_file(),
        "fixture mirror missing at {}: run tests/fixtures/build-mirror.sh (tests/run does)",
        dir.display()
    );
    dir
}

/// The busybox release the fixture mirror publishes.
pub fn busybox_release() -> String {
    let index = read(fixture_mirror().join("meta/1.0/index-system"));
    index
        .lines()
        .find(|l| l.starts_with("busybox;"))
        .and_then(|l| l.split(';').nth(1))
        .expect("busybox in the fixture index")
        .to_string()
}

impl Env {
    /// `rlxc-create -q -n NAME -t download -d DIST -r RELEASE -f FILE` with `config` as
    /// the container defaults (written beside the environment's config).
    pub fn create_with(&self, name: &str, dist: &str, release: &str, config: &str) {
        self.create_with_args(name, dist, release, config, &[]);
    }

    /// `create_with`, with more options (`-B overlay`) before the template's.
    pub fn create_with_args(
        &self,
        name: &str,
        dist: &str,
        release: &str,
        config: &str,
        more: &[&str],
    ) {
        let cfg = self.dir.path().join(format!("{name}.defaults.toml"));
        std::fs::write(&cfg, config).unwrap();
        let mut args = vec!["create", "-q", "-n", name];
        args.extend(more);
        args.extend(["-t", "download", "-d", dist, "-r", release]);
        args.extend(["-f", cfg.to_str().unwrap()]);
        self.ok(&args);
    }
}

/// An installation with the fixture mirror for a network test: its directory
/// searchable, since dnsmasq drops root and must reach RUNPATH/net below it.
pub fn net_env() -> (Env, HttpServer) {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let mut perms = std::fs::metadata(env.dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(env.dir.path(), perms).unwrap();
    (env, server)
}

/// What a network test made with `env`, whatever it did: the containers `names`
/// killed, the managed bridge's work undone, the bridge gone.
pub fn tear_down_net(env: &Env, names: &[String], bridge: &str) {
    for n in names {
        let _ = env.run(&["stop", "-k", "-n", n]);
    }
    let _ = env.run(&["net", "stop", "-f"]);
    let _ = Command::new("ip").args(["link", "del", bridge]).output();
}

/// The names in `dir`, sorted, lock files left out; nothing when it does not exist.
pub fn names_without_locks(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// SIGINT to `child`; it must end as interrupted (130). Its output.
pub fn interrupt(child: std::process::Child) -> Output {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    out
}

/// Machine state a copy or an image of the container at `rootfs` must not carry: a
/// machine-id, a DHCP lease, an SSH host key (and an sshd_config, which it keeps).
pub fn plant_identity(rootfs: &Path) {
    std::fs::write(
        rootfs.join("etc/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::create_dir_all(rootfs.join("var/lib/dhcp")).unwrap();
    std::fs::write(
        rootfs.join("var/lib/dhcp/dhclient.eth0.leases"),
        "lease {}\n",
    )
    .unwrap();
    std::fs::create_dir_all(rootfs.join("etc/ssh")).unwrap();
    std::fs::write(rootfs.join("etc/ssh/ssh_host_ed25519_key"), "secret\n").unwrap();
    std::fs::write(rootfs.join("etc/ssh/sshd_config"), "Port 22\n").unwrap();
}
