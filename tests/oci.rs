//! rlxc-create -t oci end to end, against a registry on 127.0.0.1 (tests/oci/registry.py,
//! the distribution API over OCI layouts the test writes, with basic or token auth and
//! faults on request) and against the layouts themselves: layers with whiteouts, opaque
//! directories and hardlinks to earlier layers (the tree compared file by file),
//! gzip/zstd/plain layers, a multi-arch index, blobs shared by digest, an application
//! image exiting 3 (rlxc-info shows 3), hostile layers, and each error of issue 17. The
//! cache (`rlxc-image`, `-B overlay` lowers) is tested in tests/oci_cache.rs.

mod common;

#[path = "oci/support.rs"]
mod support;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use support::*;

#[test]
fn layers_whiteouts_hardlinks_and_shared_blobs() {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    repos.image(
        "lib/three",
        "v1",
        &three_layers(),
        json!({"Cmd": ["/bin/true"]}),
    );
    let reg = Registry::start(&repos, &[]);
    let out = create(&env, "three", &reg.url("lib/three:v1"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = env.rootfs("three");
    // Expected tree: built by hand from what the layers say.
    let want = env.dir.path().join("want");
    std::fs::create_dir_all(want.join("etc")).unwrap();
    std::fs::create_dir_all(want.join("old")).unwrap();
    std::fs::create_dir_all(want.join("keep")).unwrap();
    std::fs::write(want.join("etc/os-release"), "ID=test\n").unwrap();
    std::fs::write(want.join("old/new"), "new").unwrap();
    std::fs::write(want.join("shared"), "#!/bin/sh\n").unwrap();
    std::fs::hard_link(want.join("shared"), want.join("keep/y")).unwrap();
    std::os::unix::fs::symlink("../etc/os-release", want.join("keep/link")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(want.join("shared"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in ["etc", "old", "keep", ""] {
        std::fs::set_permissions(want.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let list = |root: &Path| -> Vec<String> {
        let mut v = Vec::new();
        fn walk(root: &Path, rel: &Path, v: &mut Vec<String>) {
            let mut es: Vec<_> = std::fs::read_dir(root.join(rel))
                .unwrap()
                .flatten()
                .collect();
            es.sort_by_key(|e| e.file_name());
            for e in es {
                let rp = rel.join(e.file_name());
                let md = std::fs::symlink_metadata(root.join(&rp)).unwrap();
                use std::os::unix::fs::MetadataExt;
                let what = if md.is_dir() {
                    "dir".to_string()
                } else if md.file_type().is_symlink() {
                    format!(
                        "-> {}",
                        std::fs::read_link(root.join(&rp)).unwrap().display()
                    )
                } else {
                    format!(
                        "{:?} links {}",
                        std::fs::read(root.join(&rp)).unwrap(),
                        md.nlink()
                    )
                };
                v.push(format!("{} {:o} {what}", rp.display(), md.mode() & 0o7777));
                if md.is_dir() {
                    walk(root, &rp, v);
                }
            }
        }
        walk(root, Path::new(""), &mut v);
        v
    };
    assert_eq!(list(&r), list(&want));
    // Its config: an application container (no /sbin/init), the image recorded.
    let cfg = read(env.lxcpath().join("three/config.toml"));
    assert!(
        cfg.contains("app = true") && cfg.contains("/bin/true"),
        "{cfg}"
    );
    assert!(cfg.contains("variant = \"oci\""), "{cfg}");

    // A second image sharing the base layer fetches only its own.
    let layers = three_layers();
    two_on(&repos, &layers[0]);
    let out = create(&env, "two", &reg.url("lib/two:v1"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("layer 1/2") && stderr(&out).contains("cached"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read(env.rootfs("two").join("more")), "more");
    // The same image from the layout on disk: every blob cached, nothing fetched.
    let layout = format!("oci:{}:v1", repos.root.join("lib/three").display());
    let out = env.run(&[
        "create",
        "-t",
        "oci",
        "-n",
        "three-again",
        "--",
        "-u",
        &layout,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 B fetched") || stderr(&out).contains(" 0 "),
        "{}",
        stderr(&out)
    );
    assert_eq!(list(&env.rootfs("three-again")), list(&want));
}

#[test]
fn multi_arch_index_and_platform_errors() {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    let l = |s: &[u8]| vec![(TarBuilder::new().file("arch", 0o644, s).finish(), GZ)];
    let amd = repos.manifest("multi", "amd64", &l(b"amd64"), json!({"Cmd": ["/x"]}));
    let arm = repos.manifest("multi", "arm64", &l(b"arm64"), json!({"Cmd": ["/x"]}));
    let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.0, "size": amd.1, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.0, "size": arm.1, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]});
    let top = put_blob(&repos.repo("multi"), idx.to_string().as_bytes());
    repos.tag("multi", "1", top, "application/vnd.oci.image.index.v1+json");
    let reg = Registry::start(&repos, &[]);
    let out = create(&env, "m-arm", &reg.url("multi:1"), &["-a", "arm64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(env.rootfs("m-arm").join("arch")), "arm64");
    assert!(read(env.lxcpath().join("m-arm/config.toml")).contains("arch = \"arm64\""));
    if host_arch() == "amd64" {
        let out = create(&env, "m-host", &reg.url("multi:1"), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(read(env.rootfs("m-host").join("arch")), "amd64");
    }
    let out = create(&env, "m-s390", &reg.url("multi:1"), &["-a", "s390x"]);
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("linux/amd64") && e.contains("linux/arm64/v8") && e.contains("-a"),
        "{e}"
    );
    assert!(!env.lxcpath().join("m-s390").exists());
}

#[test]
fn application_image_exit_status_is_kept() {
    let (env, repos, net) = no_network_env();
    // The busybox fixture's rootfs without its init: an application image.
    let (tar, no_init) = busybox_app_layers();
    repos.image(
        "app",
        "3",
        &[(tar, GZ), (no_init, TAR)],
        json!({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["cd; pwd; echo $GREETING; id -u; exit 3"],
               "Env": ["GREETING=hello", "PATH=/bin:/sbin"], "WorkingDir": "/tmp", "User": "65534:65534",
               "ExposedPorts": {"80/tcp": {}}}),
    );
    let reg = Registry::start(&repos, &[]);
    let out = create(&env, "app3", &reg.url("app:3"), &["-f", &net]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("application container"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("80/tcp"), "{}", stderr(&out));
    env.ok(&["start", "-n", "app3"]);
    wait_until(
        "the app to exit",
        std::time::Duration::from_secs(20),
        || env.ok(&["info", "-n", "app3"]).contains("STOPPED"),
    );
    let info = env.ok(&["info", "-n", "app3"]);
    assert!(info.contains("Exit status:    3"), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["info", "-n", "app3", "--json"])).unwrap();
    assert_eq!(json["exit_status"], 3);
}

#[test]
fn errors_leave_nothing_behind() {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    let layers = three_layers();
    repos.image("e/ok", "1", &layers, json!({"Cmd": ["/x"]}));
    let bad_hex = sha256_hex(&compress(&layers[0].0, GZ));
    let cut_hex = sha256_hex(&compress(&layers[1].0, ZST));
    let reg = Registry::start(&repos, &["--corrupt", &bad_hex, "--schema1", "e/ok:old"]);
    let fail = |name: &str, url: &str, what: &[&str]| {
        let out = create(&env, name, url, &[]);
        let e = stderr(&out);
        assert!(!out.status.success(), "{name}: {e}");
        for w in what {
            assert!(e.contains(w), "{name}: {w:?} not in {e}");
        }
        assert!(!env.lxcpath().join(name).exists());
        assert!(
            env.lxcpath_entries().iter().all(|n| !n.contains(name)),
            "{:?}",
            env.lxcpath_entries()
        );
    };
    fail(
        "unknown",
        &reg.url("e/ok:nope"),
        &["no manifest \"nope\"", "has tags: 1"],
    );
    fail("noname", &reg.url("e/missing:1"), &["no manifest"]);
    fail("schema1", &reg.url("e/ok:old"), &["schema 1"]);
    fail("corrupt", &reg.url("e/ok:1"), &["digest mismatch"]);
    // Nothing of the corrupt blob was cached.
    let cached: Vec<String> = std::fs::read_dir(env.cachepath().join("oci/sha256"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(cached.iter().all(|n| !n.contains(&bad_hex)), "{cached:?}");
    drop(reg);
    let reg = Registry::start(&repos, &["--truncate", &cut_hex]);
    fail("cut", &reg.url("e/ok:1"), &["broke off"]);
    drop(reg);
    // A malformed manifest.
    let r = repos.repo("e/bad");
    let junk = put_blob(&r, b"{\"schemaVersion\":2,\"config\":5}");
    repos.tag(
        "e/bad",
        "1",
        junk,
        "application/vnd.oci.image.manifest.v1+json",
    );
    let reg = Registry::start(&repos, &[]);
    fail("malformed", &reg.url("e/bad:1"), &["malformed manifest"]);
    drop(reg);
    // Auth: basic, and the bearer-token handshake; without credentials, how to give them.
    for mode in ["basic", "token"] {
        let reg = Registry::start(
            &repos,
            &["--auth", mode, "--user", "alice", "--password", "s3cret"],
        );
        fail(
            &format!("anon-{mode}"),
            &reg.url("e/ok:1"),
            &["401", "--username", "--password-stdin"],
        );
        let out = create_as_alice(
            &env,
            &format!("auth-{mode}"),
            &reg.url("e/ok:1"),
            &["--plain-http"],
            None,
        );
        // The corrupt layer is served only by the first registry: this one is whole.
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
    }
}

/// An installation and its registry's repos, and a host directory `outside` with a
/// file `victim` ("safe") that hostile layers aim at.
fn with_victim() -> (Env, Repos, PathBuf) {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "safe").unwrap();
    (env, repos, outside)
}

#[test]
fn hostile_layers_cannot_reach_outside() {
    let (env, repos, outside) = with_victim();
    // An earlier layer plants a symlink to the host dir; later ones whiteout and write
    // through it: both land inside the rootfs.
    let plant = TarBuilder::new()
        .symlink("esc", outside.to_str().unwrap())
        .finish();
    let through = TarBuilder::new()
        .file("esc/.wh.victim", 0o644, b"")
        .file("esc/new", 0o644, b"x")
        .finish();
    repos.image(
        "h/sym",
        "1",
        &[(plant, GZ), (through, GZ)],
        json!({"Cmd": ["/x"]}),
    );
    let climb = TarBuilder::new()
        .file("../.wh.outside", 0o644, b"")
        .finish();
    repos.image("h/climb", "1", &[(climb, TAR)], json!({"Cmd": ["/x"]}));
    let reg = Registry::start(&repos, &[]);
    let _ = create(&env, "sym", &reg.url("h/sym:1"), &[]);
    let _ = create(&env, "climb", &reg.url("h/climb:1"), &[]);
    assert_eq!(read(outside.join("victim")), "safe");
    assert!(!outside.join("new").exists());
    let out = create(&env, "climb2", &reg.url("h/climb:1"), &[]);
    assert!(stderr(&out).contains("refusing image"), "{}", stderr(&out));
}

#[test]
fn a_layer_replaces_a_directory_with_a_file_confined() {
    let (env, repos, outside) = with_victim();
    // The lower layer: non-empty directories, one holding a link to a host directory.
    let lower = TarBuilder::new()
        .dir("d", 0o755)
        .dir("d/sub", 0o755)
        .file("d/sub/deep", 0o644, b"deep")
        .file("d/a", 0o644, b"a")
        .symlink("d/esc", outside.to_str().unwrap())
        .dir("l", 0o755)
        .file("l/x", 0o644, b"x")
        .dir("n", 0o755)
        .file("n/y", 0o644, b"y")
        .file("target", 0o644, b"t")
        .finish();
    // The upper one: a file, a symlink and a hardlink where those directories were.
    let upper = TarBuilder::new()
        .file("d", 0o600, b"now a file")
        .symlink("l", "target")
        .hardlink("n", "target")
        .finish();
    let layers = [(lower, GZ), (upper, GZ)];
    repos.image("r/dir2file", "1", &layers, json!({"Cmd": ["/x"]}));
    let reg = Registry::start(&repos, &[]);
    let out = create(&env, "d2f", &reg.url("r/dir2file:1"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = env.rootfs("d2f");
    assert_eq!(read(r.join("d")), "now a file");
    assert_eq!(
        std::fs::read_link(r.join("l")).unwrap(),
        Path::new("target")
    );
    assert_eq!(read(r.join("n")), "t");
    // Removing the directory removed the link in it, not what it points at.
    assert_eq!(read(outside.join("victim")), "safe");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn tls_registry_trusted_by_the_ca_store_with_basic_and_token_auth() {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    repos.image("t/ok", "1", &three_layers(), json!({"Cmd": ["/x"]}));
    let ca = TestCa::new();
    let (cert, key) = (ca.cert.to_str().unwrap(), ca.key.to_str().unwrap());
    for mode in ["basic", "token"] {
        let reg = Registry::start(
            &repos,
            &[
                "--tls",
                cert,
                key,
                "--auth",
                mode,
                "--user",
                "alice",
                "--password",
                "s3cret",
            ],
        );
        // A CA rlxc does not trust: a clear error at once, naming the fix; nothing left.
        let name = format!("untrusted-{mode}");
        let out = create_as_alice(&env, &name, &reg.url("t/ok:1"), &[], None);
        let e = stderr(&out);
        assert!(!out.status.success(), "{e}");
        assert!(
            e.contains("certificate") && e.contains("SSL_CERT_FILE"),
            "{e}"
        );
        assert!(!e.contains("retrying"), "not retried: {e}");
        assert!(!env.lxcpath().join(&name).exists());
        // Trusted through the CA store's override, as the download template is.
        let name = format!("tls-{mode}");
        let out = create_as_alice(&env, &name, &reg.url("t/ok:1"), &[], Some(&ca.ca));
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert_eq!(read(env.rootfs(&name).join("etc/os-release")), "ID=test\n");
        // Wrong credentials over TLS: refused, with how to give them.
        let out = env
            .cmd(&[
                "create",
                "-t",
                "oci",
                "-n",
                "wrong",
                "--",
                "-u",
                &reg.url("t/ok:1"),
                "--username",
                "alice",
                "--password-stdin",
            ])
            .env("SSL_CERT_FILE", &ca.ca)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    }
}

#[test]
fn debian_systemd_image_boots_as_a_system_container() {
    let (env, repos, net) = no_network_env();
    // The fixture's bookworm rootfs as an image of two layers: the tree, and a layer
    // of changes on top (a file added, one whited out).
    let base = fixture_rootfs_tar("debian");
    let top = TarBuilder::new()
        .dir("etc", 0o755)
        .file("etc/oci-layer", 0o644, b"top\n")
        .file("etc/.wh.issue.net", 0o644, b"")
        .finish();
    let run = json!({"Cmd": ["/sbin/init"], "StopSignal": "SIGRTMIN+3"});
    repos.image("debian-systemd", "12", &[(base, TAR), (top, GZ)], run);
    let reg = Registry::start(&repos, &[]);
    let name = common::rt::unique("ocideb");
    let out = create(&env, &name, &reg.url("debian-systemd:12"), &["-f", &net]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("system container"),
        "{}",
        stderr(&out)
    );
    let r = env.rootfs(&name);
    assert_eq!(read(r.join("etc/oci-layer")), "top\n");
    assert!(!r.join("etc/issue.net").exists() && r.join("etc/issue").exists());
    env.ok(&["start", "-d", "-n", &name]);
    let state =
        common::rt::wait_system_running_of(&env, &name, std::time::Duration::from_secs(120));
    let stop = env.run(&["stop", "-n", &name, "-t", "60"]);
    assert_eq!(state, "running");
    // Halted by systemd's own signal, not killed at the timeout.
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(!stderr(&stop).contains("kill"), "{}", stderr(&stop));
    assert!(env.ok(&["info", "-n", &name]).contains("STOPPED"));
}

#[test]
fn rlxc_stop_sends_an_application_image_its_stop_signal() {
    let (env, repos, net) = no_network_env();
    let (tar, no_init) = busybox_app_layers();
    // The payload says which signal reached it, in a file of its rootfs.
    let script =
        "for s in TERM USR1 USR2 INT HUP QUIT; do trap \"echo $s > /tmp/got; exit 0\" $s; done; \
                  echo ready > /tmp/ready; while :; do sleep 1; done";
    repos.image(
        "sig",
        "1",
        &[(tar, GZ), (no_init, TAR)],
        json!({"Entrypoint": ["/bin/sh", "-c", script], "StopSignal": "SIGUSR1",
               "Env": ["PATH=/bin:/sbin"]}),
    );
    let reg = Registry::start(&repos, &[]);
    let name = common::rt::unique("ocisig");
    let out = create(&env, &name, &reg.url("sig:1"), &["-f", &net]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = read(env.lxcpath().join(&name).join("config.toml"));
    assert!(cfg.contains("SIGUSR1"), "{cfg}");
    env.ok(&["start", "-d", "-n", &name]);
    let r = env.rootfs(&name);
    wait_until(
        "the payload's traps",
        std::time::Duration::from_secs(20),
        || r.join("tmp/ready").exists(),
    );
    env.ok(&["stop", "-n", &name, "-t", "30"]);
    assert_eq!(read(r.join("tmp/got")), "USR1\n");
    let info = env.ok(&["info", "-n", &name]);
    assert!(
        info.contains("STOPPED") && info.contains("Exit status:    0"),
        "{info}"
    );
}
