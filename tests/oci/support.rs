//! What the OCI tests share (tests/oci.rs, tests/oci_cache.rs): layouts written by the
//! test, the registry serving them (registry.py), creates against it, and the images
//! the tests build from in-memory tars and the fixture rootfs.
#![allow(dead_code)]

use crate::common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// OCI layouts, one per repository, under one root the registry serves.
pub struct Repos {
    pub root: PathBuf,
}

pub fn put_blob(repo: &Path, data: &[u8]) -> (String, u64) {
    let hex = sha256_hex(data);
    let dir = repo.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), data).unwrap();
    (format!("sha256:{hex}"), data.len() as u64)
}

pub fn compress(tar: &[u8], media: &str) -> Vec<u8> {
    use std::io::Write;
    match media {
        GZ => {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            g.write_all(tar).unwrap();
            g.finish().unwrap()
        }
        ZST => zstd::stream::encode_all(tar, 1).unwrap(),
        _ => tar.to_vec(),
    }
}

impl Repos {
    pub fn new(dir: &Path) -> Self {
        Repos {
            root: dir.join("registry"),
        }
    }

    pub fn repo(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        p
    }

    /// A manifest of `layers` (tar, media type) with `run` as its config's `config`.
    pub fn manifest(
        &self,
        repo: &str,
        arch: &str,
        layers: &[(Vec<u8>, &str)],
        run: serde_json::Value,
    ) -> (String, u64) {
        let r = self.repo(repo);
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, media) in layers {
            diff_ids.push(format!("sha256:{}", sha256_hex(tar)));
            let (d, size) = put_blob(&r, &compress(tar, media));
            descs.push(json!({"mediaType": media, "digest": d, "size": size}));
        }
        let config = json!({"architecture": arch, "os": "linux", "config": run,
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let (cd, cs) = put_blob(&r, config.to_string().as_bytes());
        let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs});
        put_blob(&r, m.to_string().as_bytes())
    }

    /// Tag `top` (a manifest, or an index when `media` says) in the repo's index.json.
    pub fn tag(&self, repo: &str, tag: &str, top: (String, u64), media: &str) {
        let r = self.repo(repo);
        let p = r.join("index.json");
        let mut idx: serde_json::Value = std::fs::read(&p)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(json!({"schemaVersion": 2, "manifests": []}));
        idx["manifests"]
            .as_array_mut()
            .unwrap()
            .push(json!({"mediaType": media,
            "digest": top.0, "size": top.1,
            "annotations": {"org.opencontainers.image.ref.name": tag}}));
        std::fs::write(p, idx.to_string()).unwrap();
    }

    pub fn image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[(Vec<u8>, &str)],
        run: serde_json::Value,
    ) -> String {
        let m = self.manifest(repo, "amd64", layers, run);
        self.tag(
            repo,
            tag,
            m.clone(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        m.0
    }
}

/// The registry process, killed at the end of the test.
pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Registry {
    pub fn start(repos: &Repos, args: &[&str]) -> Self {
        let portfile = repos.root.with_extension(format!("port{}", args.len()));
        let _ = std::fs::remove_file(&portfile);
        std::fs::create_dir_all(&repos.root).unwrap();
        let child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oci/registry.py"))
            .arg(&repos.root)
            .arg(&portfile)
            .args(args)
            .spawn()
            .expect("python3 runs the test registry");
        wait_until("the registry", std::time::Duration::from_secs(10), || {
            portfile.exists()
        });
        let port = read(&portfile).trim().parse().unwrap();
        Registry { child, port }
    }

    pub fn url(&self, repo_tag: &str) -> String {
        format!("docker://127.0.0.1:{}/{repo_tag}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn create(env: &Env, name: &str, url: &str, more: &[&str]) -> std::process::Output {
    let mut args = vec!["create", "-t", "oci", "-n", name];
    args.extend(more);
    args.extend(["--", "-u", url, "--plain-http"]);
    env.run(&args)
}

/// The one account of the registries started with authentication (registry.py's
/// `--user`/`--password`, docker-registry's htpasswd).
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret";

/// registry.py's arguments for the bearer-token handshake with USER's account.
pub const TOKEN_AUTH: [&str; 6] = ["--auth", "token", "--user", USER, "--password", PASSWORD];

/// `rlxc-create -t oci -n NAME -- -u URL MORE`; `ca`: trusted through SSL_CERT_FILE;
/// `password`: USER's (`--username USER --password-stdin`, the password on stdin);
/// None: no credentials.
pub fn create_as(
    env: &Env,
    name: &str,
    url: &str,
    more: &[&str],
    ca: Option<&Path>,
    password: Option<&str>,
) -> std::process::Output {
    let mut args = vec!["create", "-t", "oci", "-n", name, "--", "-u", url];
    args.extend(more);
    if password.is_some() {
        args.extend(["--username", USER, "--password-stdin"]);
    }
    let mut c = env.cmd(&args);
    if let Some(ca) = ca {
        c.env("SSL_CERT_FILE", ca);
    }
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = password {
        stdin.write_all(format!("{p}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// lib/two:v1: `base` and a layer of its own (`more`).
pub fn two_on(repos: &Repos, base: &(Vec<u8>, &'static str)) {
    let extra = TarBuilder::new().file("more", 0o644, b"more").finish();
    repos.image(
        "lib/two",
        "v1",
        &[base.clone(), (extra, GZ)],
        json!({"Cmd": ["/x"]}),
    );
}

pub fn three_layers() -> Vec<(Vec<u8>, &'static str)> {
    let base = TarBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os-release", 0o644, b"ID=test\n")
        .dir("old", 0o755)
        .file("old/a", 0o644, b"a")
        .file("old/b", 0o644, b"b")
        .dir("keep", 0o755)
        .file("keep/x", 0o600, b"x")
        .file("gone", 0o644, b"bye")
        .file("shared", 0o755, b"#!/bin/sh\n")
        .finish();
    let middle = TarBuilder::new()
        .file(".wh.gone", 0o644, b"")
        .dir("old", 0o755)
        .file("old/new", 0o644, b"new")
        .file("old/.wh..wh..opq", 0o644, b"")
        .hardlink("keep/y", "shared")
        .finish();
    let top = TarBuilder::new()
        .dir("keep", 0o755)
        .file("keep/.wh.x", 0o644, b"")
        .symlink("keep/link", "../etc/os-release")
        .finish();
    vec![(base, GZ), (middle, ZST), (top, TAR)]
}

/// The fixture mirror's rootfs tar of `dist` `release`, decompressed: the default
/// variant's, as the mirror's index names it (the mirror also has sysvinit variants).
pub fn fixture_rootfs_tar(dist: &str, release: &str) -> Vec<u8> {
    let mirror = fixture_mirror();
    let index = read(mirror.join("meta/1.0/index-system"));
    let path = index
        .lines()
        .map(|l| l.split(';').collect::<Vec<_>>())
        .find(|f| f.len() == 6 && f[..4] == [dist, release, host_arch(), "default"])
        .map(|f| f[5].trim_matches('/').to_string())
        .unwrap_or_else(|| panic!("no {dist} {release} default in the fixture mirror's index"));
    let tarxz = mirror.join(path).join("rootfs.tar.xz");
    let mut tar = Vec::new();
    use std::io::Read;
    xz2::read::XzDecoder::new(std::fs::File::open(tarxz).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

/// The busybox fixture's rootfs, and a layer that whites out its init.
pub fn busybox_app_layers() -> (Vec<u8>, Vec<u8>) {
    let no_init = TarBuilder::new().file("sbin/.wh.init", 0o644, b"").finish();
    (fixture_rootfs_tar("busybox", &busybox_release()), no_init)
}

/// An installation, its repos with `repo_tag` ("REPO:TAG") the three layers of
/// `three_layers`, and a test CA (for the TLS tests).
pub fn three_layer_env(repo_tag: &str) -> (Env, Repos, TestCa) {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    let (repo, tag) = repo_tag.rsplit_once(':').unwrap();
    repos.image(repo, tag, &three_layers(), json!({"Cmd": ["/x"]}));
    (env, repos, TestCa::new())
}

/// An installation whose containers have no network (`-f` the returned config).
pub fn no_network_env() -> (Env, Repos, String) {
    let env = Env::new("http://127.0.0.1:9");
    let net = env.dir.path().join("net.toml");
    std::fs::write(&net, "[[network]]\ntype = \"empty\"\n").unwrap();
    let repos = Repos::new(env.dir.path());
    (env, repos, net.to_str().unwrap().to_string())
}
