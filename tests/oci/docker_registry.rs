//! Debian's docker-registry (distribution 2.8) on 127.0.0.1 for the OCI tests: its own
//! config, storage and log in a temp dir, a free port, TLS from a test CA and htpasswd
//! basic auth on request. Images reach it the way users push them: skopeo copies the
//! OCI layouts `Repos` writes. Dropping it (also when the test panics) kills the
//! registry and removes its directory.

use crate::common::TestCa;
use crate::support::{Repos, PASSWORD, USER};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DockerRegistry {
    child: Child,
    pub port: u16,
    tls: bool,
    basic: bool,
    dir: tempfile::TempDir,
}

/// A port free a moment ago. Another process may take it before the registry binds it:
/// `start` then sees the registry exit and tries another.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An htpasswd line for `support::USER`. The registry reads bcrypt only; perl's crypt is libcrypt's,
/// which makes it (perl-base is Essential on Debian: no package to add). Cost 4, the
/// least: the registry checks the hash on every request, and cost 12 made a tiny push
/// take seconds. A fixed salt: the hash only has to match.
fn htpasswd_line() -> String {
    let out = Command::new("perl")
        .args([
            "-e",
            r#"print crypt($ARGV[0], '$2b$04$YVsIS2N3FkR2NL7HIx40Le')"#,
            PASSWORD,
        ])
        .output()
        .expect("perl runs");
    let hash = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && hash.starts_with("$2b$04$") && hash.len() == 60,
        "libcrypt made no bcrypt hash: {hash:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{USER}:{hash}")
}

impl DockerRegistry {
    /// Started and answering; `tls`: serves https with the CA's server certificate;
    /// `basic_auth`: refuses anyone but USER/PASSWORD.
    pub fn start(tls: Option<&TestCa>, basic_auth: bool) -> Self {
        for _ in 0..5 {
            let reg = Self::spawn(tls, basic_auth);
            if let Some(reg) = reg.wait_listening() {
                return reg;
            }
        }
        panic!("docker-registry did not start on any of 5 free ports");
    }

    fn spawn(tls: Option<&TestCa>, basic: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rlxc-registry-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let port = free_port();
        // Info level for the "listening on" line readiness waits for; no access log.
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: rlxc-test-{port}\n",
            d.join("storage").display()
        );
        if let Some(ca) = tls {
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.cert.display(),
                ca.key.display()
            );
            // skopeo trusts the CAs of a directory's *.crt.
            std::fs::create_dir(d.join("certs")).unwrap();
            std::fs::copy(&ca.ca, d.join("certs/ca.crt")).unwrap();
        }
        if basic {
            std::fs::write(d.join("htpasswd"), htpasswd_line() + "\n").unwrap();
            cfg += &format!(
                "auth:\n  htpasswd:\n    realm: rlxc-test\n    path: {}\n",
                d.join("htpasswd").display()
            );
        }
        std::fs::write(d.join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(d.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry runs (packaging/setup.sh --deps installs it)");
        DockerRegistry {
            child,
            port,
            tls: tls.is_some(),
            basic,
            dir,
        }
    }

    /// Self once it listens; None when it exited first (its port was taken).
    fn wait_listening(mut self) -> Option<Self> {
        let want = format!("listening on 127.0.0.1:{}", self.port);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if self.log().contains(&want) {
                return Some(self);
            }
            if self.child.try_wait().unwrap().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen in 20 s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn url(&self, repo_tag: &str) -> String {
        format!("docker://127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// skopeo copies `src` ("REPO:TAG" of `repos`' layouts) to `dest` ("REPO:TAG") here,
    /// every image of an index (`--all`); `extra`: more skopeo options (`--format v2s2`).
    pub fn push_as(&self, repos: &Repos, src: &str, dest: &str, extra: &[&str]) {
        let (repo, tag) = src.rsplit_once(':').unwrap();
        let layout = format!("oci:{}:{tag}", repos.root.join(repo).display());
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy", "copy", "--quiet", "--all"]);
        if self.tls {
            c.arg("--dest-cert-dir").arg(self.dir.path().join("certs"));
        } else {
            // Plain http (skopeo falls back to it when TLS is not verified).
            c.arg("--dest-tls-verify=false");
        }
        if self.basic {
            c.args(["--dest-creds", &format!("{USER}:{PASSWORD}")]);
        }
        let out = c
            .args(extra)
            .arg(&layout)
            .arg(self.url(dest))
            .output()
            .expect("skopeo runs (packaging/setup.sh --deps installs it)");
        assert!(
            out.status.success(),
            "skopeo copy {layout} {}: {}\nregistry log:\n{}",
            self.url(dest),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `push_as` under the same name, byte for byte: skopeo would otherwise gzip plain
    /// layers (and so change the manifest) on the way to a registry.
    pub fn push(&self, repos: &Repos, repo_tag: &str) {
        self.push_as(repos, repo_tag, repo_tag, &["--preserve-digests"]);
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        // The temp dir goes after this, with the registry no longer writing to it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
