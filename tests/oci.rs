//! rlxc-create -t oci against what Debian's docker-registry will not serve, so a small
//! registry of the test's own does (tests/oci/registry.py: the distribution API's GET
//! side over OCI layouts the test writes, faults on request): hostile layers, a layer
//! that turns directories into files, schema 1, a corrupt and a cut blob, a malformed
//! manifest, and the bearer-token handshake (plain and over TLS). Pulls from the real
//! registry (layers, index, TLS and basic auth, system and application images) are in
//! tests/oci_registry.rs; the cache (`rlxc-image`, `-B overlay` lowers) in
//! tests/oci_cache.rs.

mod common;

#[path = "oci/support.rs"]
mod support;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use support::*;

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
    // The bearer-token handshake (basic auth is tested on the real registry); without
    // credentials, how to give them.
    let reg = Registry::start(&repos, &TOKEN_AUTH);
    fail(
        "anon-token",
        &reg.url("e/ok:1"),
        &["401", "--username", "--password-stdin"],
    );
    let out = create_as(
        &env,
        "auth-token",
        &reg.url("e/ok:1"),
        &["--plain-http"],
        None,
        Some(PASSWORD),
    );
    // The corrupt layer is served only by the first registry: this one is whole.
    assert!(out.status.success(), "{}", stderr(&out));
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
fn token_handshake_over_tls_trusted_by_the_ca_store() {
    let (env, repos, ca) = three_layer_env("t/ok:1");
    let (cert, key) = (ca.cert.to_str().unwrap(), ca.key.to_str().unwrap());
    let reg = Registry::start(&repos, &[&["--tls", cert, key][..], &TOKEN_AUTH].concat());
    // The registry and its https token realm trusted through the CA store's override.
    let url = reg.url("t/ok:1");
    let out = create_as(&env, "tls-token", &url, &[], Some(&ca.ca), Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read(env.rootfs("tls-token").join("etc/os-release")),
        "ID=test\n"
    );
    // Credentials the realm refuses: 401, nothing left.
    let out = create_as(&env, "wrong", &url, &[], Some(&ca.ca), Some("not-it"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert!(!env.lxcpath().join("wrong").exists());
}
