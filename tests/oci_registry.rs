//! rlxc-create -t oci from a real registry on 127.0.0.1: Debian's docker-registry, started
//! by each test with its own config and storage (tests/oci/docker_registry.rs), images
//! pushed to it with skopeo from OCI layouts the test writes (and converted by skopeo to
//! Docker schema 2 where said): layers with whiteouts, opaque directories and hardlinks
//! to earlier layers (the tree compared file by file), gzip/zstd/plain layers, blobs
//! shared by digest, a multi-arch index, TLS from a test CA with basic auth, a Debian
//! image with systemd that boots to running, application images (exit status 3 kept,
//! the StopSignal sent). What the real registry will not serve (hostile layers, faults,
//! the token handshake) is in tests/oci.rs.

mod common;

#[path = "oci/support.rs"]
mod support;

#[path = "oci/docker_registry.rs"]
mod docker_registry;

use common::*;
use docker_registry::DockerRegistry;
use serde_json::json;
use std::path::Path;
use support::*;

#[test]
fn layers_whiteouts_hardlinks_and_shared_blobs() {
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    let digest = repos.image(
        "lib/three",
        "v1",
        &three_layers(),
        json!({"Cmd": ["/bin/true"]}),
    );
    let reg = DockerRegistry::start(None, false);
    reg.push(&repos, "lib/three:v1");
    // By digest: the manifest the registry serves is the one written (gzip, zstd and
    // plain layers as they were, not recompressed by the push).
    let out = create(&env, "three", &reg.url(&format!("lib/three@{digest}")), &[]);
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
    // The hardlink to an earlier layer's file is that file, not a copy.
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::symlink_metadata(r.join(p)).unwrap().ino();
    assert_eq!(ino("keep/y"), ino("shared"));
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
    reg.push(&repos, "lib/two:v1");
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
    let reg = DockerRegistry::start(None, false);
    // The index as pushed (OCI), and converted by skopeo to a Docker manifest list of
    // Docker schema 2 manifests.
    reg.push(&repos, "multi:1");
    reg.push_as(&repos, "multi:1", "multi:docker", &["--format", "v2s2"]);
    let out = create(&env, "m-arm", &reg.url("multi:1"), &["-a", "arm64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(env.rootfs("m-arm").join("arch")), "arm64");
    assert!(read(env.lxcpath().join("m-arm/config.toml")).contains("arch = \"arm64\""));
    let out = create(&env, "m-docker", &reg.url("multi:docker"), &["-a", "arm64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(env.rootfs("m-docker").join("arch")), "arm64");
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
    let reg = DockerRegistry::start(None, false);
    // As Docker schema 2 (skopeo converts), what most registries serve.
    reg.push_as(&repos, "app:3", "app:3", &["--format", "v2s2"]);
    let out = create(&env, "app3", &reg.url("app:3"), &["-f", &net]);
    assert!(out.status.success(), "{}", stderr(&out));
    let _stop = common::overlay::Stopper(&env, vec!["app3".into()]);
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

/// A registry with `repo_tag` of `repos` pushed, and a container of a unique name
/// (`prefix`) created from it with no network (`net`): the registry, the name, and the
/// create's output.
fn pushed_and_created(
    env: &Env,
    repos: &Repos,
    repo_tag: &str,
    prefix: &str,
    net: &str,
) -> (DockerRegistry, String, std::process::Output) {
    let reg = DockerRegistry::start(None, false);
    reg.push(repos, repo_tag);
    let name = common::rt::unique(prefix);
    let out = create(env, &name, &reg.url(repo_tag), &["-f", net]);
    assert!(out.status.success(), "{}", stderr(&out));
    (reg, name, out)
}

#[test]
fn debian_systemd_image_boots_as_a_system_container() {
    let (env, repos, net) = no_network_env();
    // The fixture's bookworm rootfs as an image of two layers: the tree, and a layer
    // of changes on top (a file added, one whited out).
    let base = fixture_rootfs_tar("debian", "bookworm");
    let top = TarBuilder::new()
        .dir("etc", 0o755)
        .file("etc/oci-layer", 0o644, b"top\n")
        .file("etc/.wh.issue.net", 0o644, b"")
        .finish();
    let run = json!({"Cmd": ["/sbin/init"], "StopSignal": "SIGRTMIN+3"});
    repos.image("debian-systemd", "12", &[(base, TAR), (top, GZ)], run);
    let (_reg, name, out) = pushed_and_created(&env, &repos, "debian-systemd:12", "ocideb", &net);
    // Killed whatever the test does: a failed boot leaves nothing running.
    let _stop = common::overlay::Stopper(&env, vec![name.clone()]);
    assert!(
        stderr(&out).contains("system container"),
        "{}",
        stderr(&out)
    );
    let r = env.rootfs(&name);
    assert_eq!(read(r.join("etc/oci-layer")), "top\n");
    assert!(!r.join("etc/issue.net").exists() && r.join("etc/issue").exists());
    assert!(
        r.join("usr/bin/systemctl").is_file(),
        "the default variant's systemd"
    );
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
    let (_reg, name, _) = pushed_and_created(&env, &repos, "sig:1", "ocisig", &net);
    let _stop = common::overlay::Stopper(&env, vec![name.clone()]);
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

#[test]
fn tls_from_a_test_ca_and_basic_auth() {
    let (env, repos, ca) = three_layer_env("t/ok:1");
    let reg = DockerRegistry::start(Some(&ca), true);
    reg.push(&repos, "t/ok:1");
    let url = reg.url("t/ok:1");
    let refused = |name: &str, out: std::process::Output, what: &[&str]| {
        let e = stderr(&out);
        assert!(!out.status.success(), "{name}: {e}");
        for w in what {
            assert!(e.contains(w), "{name}: {w:?} not in {e}");
        }
        assert!(
            env.lxcpath_entries().iter().all(|n| !n.contains(name)),
            "{name}: {:?}",
            env.lxcpath_entries()
        );
    };
    // A CA rlxc does not trust: a clear error at once, naming the fix.
    let out = create_as(&env, "untrusted", &url, &[], None, Some(PASSWORD));
    assert!(!stderr(&out).contains("retrying"), "{}", stderr(&out));
    refused("untrusted", out, &["certificate", "SSL_CERT_FILE"]);
    // Trusted through the CA store's override; no credentials, then wrong ones: 401 and
    // how to give them.
    let out = create_as(&env, "anon", &url, &[], Some(&ca.ca), None);
    refused("anon", out, &["401", "--username", "--password-stdin"]);
    let out = create_as(&env, "wrong", &url, &[], Some(&ca.ca), Some("not-it"));
    refused("wrong", out, &["401"]);
    // An unknown tag (the registry's tag list said) and an unknown repository.
    let alice = Some(PASSWORD);
    for (name, repo_tag, what) in [
        (
            "unknown",
            "t/ok:nope",
            &["no manifest \"nope\"", "has tags: 1"][..],
        ),
        ("noname", "t/missing:1", &["no manifest"][..]),
    ] {
        let out = create_as(&env, name, &reg.url(repo_tag), &[], Some(&ca.ca), alice);
        let said = stderr(&out);
        assert!(
            !said.contains("-t local"),
            "the download template's hint: {said}"
        );
        refused(name, out, what);
    }
    // alice's image.
    let out = create_as(&env, "tls", &url, &[], Some(&ca.ca), alice);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(env.rootfs("tls").join("etc/os-release")), "ID=test\n");
}
