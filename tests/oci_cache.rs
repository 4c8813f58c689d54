//! The OCI image cache end to end, against the test registry (tests/oci/registry.py):
//! `rlxc-image ls|rm|prune` of images and blobs, and `-B overlay` containers sharing one
//! lower per layer stack (chain id), which the cache keeps while they use it.

mod common;
#[path = "oci/support.rs"]
mod support;

use common::*;
use serde_json::json;
use std::process::Command;
use support::*;

/// `rlxc-image ls --json`'s OCI entries of `kind`.
fn oci_entries(env: &Env, kind: &str) -> Vec<serde_json::Value> {
    let all: serde_json::Value = serde_json::from_str(&env.ok(&["image", "ls", "--json"])).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn image_ls_rm_prune_know_the_oci_blob_cache() {
    // Two images sharing a base layer.
    let layers = three_layers();
    let env = Env::new("http://127.0.0.1:9");
    let repos = Repos::new(env.dir.path());
    repos.image("lib/three", "v1", &layers, json!({"Cmd": ["/x"]}));
    two_on(&repos, &layers[0]);
    let reg = Registry::start(&repos, &[]);
    for (name, r) in [("three", "lib/three:v1"), ("two", "lib/two:v1")] {
        let out = create(&env, name, &reg.url(r), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (three, two) = (reg.url("lib/three:v1"), reg.url("lib/two:v1"));
    let images = oci_entries(&env, "oci");
    let refs: Vec<&str> = images
        .iter()
        .map(|i| i["oci"]["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, [three.as_str(), two.as_str()]);
    assert_eq!(images[0]["oci"]["containers"], json!(["three"]));
    assert_eq!(images[0]["oci"]["blobs"].as_array().unwrap().len(), 5);
    assert!(images[0]["size"].as_u64().unwrap() > 0 && images[0]["last_used"].is_i64());
    // The shared base layer: held by both images and both containers.
    let base = format!("sha256:{}", sha256_hex(&compress(&layers[0].0, GZ)));
    let blobs = oci_entries(&env, "blob");
    assert_eq!(blobs.len(), 5 + 3, "{blobs:#?}");
    let b = blobs
        .iter()
        .find(|b| b["blob"]["digest"] == base.as_str())
        .unwrap();
    assert_eq!(b["blob"]["type"], "layer");
    assert_eq!(b["blob"]["images"], json!([three, two]));
    assert_eq!(b["blob"]["containers"], json!(["three", "two"]));
    let text = env.ok(&["image", "ls"]);
    assert!(
        text.contains("BLOB") && text.contains(&base[..19]),
        "{text}"
    );
    assert!(
        text.contains("lib/three") && text.contains("docker://127.0.0.1:"),
        "{text}"
    );

    // What a killed pull left, and a blob no image holds: prune takes both, not the rest.
    let blob_dir = env.cachepath().join("oci/sha256");
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let partial = blob_dir.join(format!(".{}.tar.partial.{dead}", "c".repeat(64)));
    let orphan = blob_dir.join("d".repeat(64));
    std::fs::write(&partial, vec![0u8; 4096]).unwrap();
    std::fs::write(&orphan, b"{}").unwrap();
    let out = env.ok(&["image", "prune"]);
    assert!(
        out.contains("removed leftover") && out.contains("unreferenced"),
        "{out}"
    );
    assert!(!partial.exists() && !orphan.exists());
    assert_eq!(oci_entries(&env, "blob").len(), 8);

    // A create reading the cache holds its lock shared: rm waits, then says who.
    let lock = env.cachepath().join("oci/.sha256.lock");
    // -F: flock execs sleep itself, so the kill below ends the holder.
    let mut holder = Command::new("flock")
        .args(["-F", "-s", lock.to_str().unwrap(), "sleep", "60"])
        .spawn()
        .unwrap();
    wait_until(
        "the lock holder",
        std::time::Duration::from_secs(10),
        || {
            Command::new("flock")
                .args(["-xn", lock.to_str().unwrap(), "true"])
                .status()
                .is_ok_and(|s| !s.success())
        },
    );
    let e = env.fails(&["image", "rm", "--timeout", "0", &three]);
    assert!(
        e.contains("in use by pid") && e.contains("lib/three"),
        "{e}"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    // rm: the image and the blobs only it held; the shared base layer stays for two.
    let out = env.ok(&["image", "rm", &three]);
    assert!(
        out.contains("removed OCI image") && out.contains("removed layer blob"),
        "{out}"
    );
    let left: Vec<String> = oci_entries(&env, "blob")
        .iter()
        .map(|b| b["blob"]["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.contains(&base));
    // The containers are plain directories: they keep working without the image.
    assert!(env.rootfs("three").join("etc/os-release").is_file());
    let e = env.fails(&["image", "rm", &three]);
    assert!(
        e.contains("no cached image") && e.contains("lib/two"),
        "{e}"
    );
    // prune --all: every image and then every blob.
    env.ok(&["image", "prune", "--all"]);
    assert!(oci_entries(&env, "oci").is_empty() && oci_entries(&env, "blob").is_empty());
    assert_eq!(std::fs::read_dir(&blob_dir).unwrap().count(), 0);
}

/// The chain id of a layer stack (the OCI image spec's ChainID), from its tars.
fn chain_id(tars: &[&[u8]]) -> String {
    let mut ids = tars.iter().map(|t| format!("sha256:{}", sha256_hex(t)));
    let first = ids.next().unwrap();
    ids.fold(first, |chain, diff| {
        format!(
            "sha256:{}",
            sha256_hex(format!("{chain} {diff}").as_bytes())
        )
    })
}

#[test]
fn overlay_containers_share_one_lower_per_layer_stack_and_the_cache_keeps_it() {
    use std::os::unix::fs::MetadataExt;
    let (env, repos, net) = no_network_env();
    let (tar, no_init) = busybox_app_layers();
    let chain = chain_id(&[&tar, &no_init]);
    let layers = [(tar, GZ), (no_init, TAR)];
    // Two manifests (their configs differ) of one layer stack: one lower.
    let run = |greeting: &str| {
        json!({"Cmd": ["/bin/sh", "-c", "echo $GREETING > /written"],
               "Env": [format!("GREETING={greeting}"), "PATH=/bin:/sbin"]})
    };
    repos.image("bb", "1", &layers, run("one"));
    repos.image("bb", "2", &layers, run("two"));
    let reg = Registry::start(&repos, &[]);
    let (a, b, c) = (
        common::rt::unique("ocova"),
        common::rt::unique("ocovb"),
        common::rt::unique("ocovc"),
    );
    let _stop = common::overlay::Stopper(&env, vec![a.clone(), b.clone(), c.clone()]);
    let overlay = ["-B", "overlay", "-f", &net];

    let out = create(&env, &a, &reg.url("bb:1"), &overlay);
    assert!(out.status.success(), "{}", stderr(&out));
    let lower = env.cachepath().join("lowers/oci").join(&chain[7..]);
    let cfg = read(env.lxcpath().join(&a).join("config.toml"));
    assert!(cfg.contains("backend = \"overlay\""), "{cfg}");
    assert!(
        cfg.contains(&format!("lower = \"{}\"", lower.display())),
        "{cfg}"
    );
    // The layers applied in order: the busybox tree, its init whited out.
    assert!(lower.join("bin/busybox").is_file());
    assert!(!lower.join("sbin/init").exists() && lower.join("sbin").is_dir());
    // The container holds no tree of its own: an empty mount point and its upper.
    let own = env.lxcpath().join(&a);
    assert_eq!(std::fs::read_dir(own.join("rootfs")).unwrap().count(), 0);
    assert!(!own.join("upper/bin").exists());
    let ino = std::fs::metadata(&lower).unwrap().ino();
    let pristine = common::overlay::tree_listing(&lower);

    let t0 = std::time::Instant::now();
    let out = create(&env, &b, &reg.url("bb:2"), &overlay);
    eprintln!(
        "second -B overlay create of the same layers: {:?}",
        t0.elapsed()
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("applying layer"),
        "the layers were applied again: {}",
        stderr(&out)
    );
    assert_eq!(std::fs::metadata(&lower).unwrap().ino(), ino);
    let cfg = read(env.lxcpath().join(&b).join("config.toml"));
    assert!(
        cfg.contains(&format!("lower = \"{}\"", lower.display())),
        "{cfg}"
    );
    // -B best takes the overlay for an OCI image too.
    let out = create(&env, &c, &reg.url("bb:1"), &["-B", "best", "-f", &net]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = read(env.lxcpath().join(&c).join("config.toml"));
    assert!(cfg.contains("backend = \"overlay\""), "{cfg}");

    // Each runs its own payload; the writes land in its upper, never in the lower.
    for (n, want) in [(&a, "one\n"), (&b, "two\n")] {
        env.ok(&["start", "-n", n]);
        wait_until(
            "the app to exit",
            std::time::Duration::from_secs(20),
            || env.ok(&["info", "-n", n]).contains("STOPPED"),
        );
        assert_eq!(read(env.lxcpath().join(n).join("upper/written")), want);
    }
    assert_eq!(common::overlay::tree_listing(&lower), pristine);
    env.ok(&["destroy", "-n", &c]);

    // The listing names the chain id and the lower.
    let images = oci_entries(&env, "oci");
    assert_eq!(images.len(), 2, "{images:#?}");
    for i in &images {
        assert_eq!(i["oci"]["chain_id"], chain.as_str(), "{i:#?}");
        assert_eq!(i["oci"]["lower"], lower.to_str().unwrap(), "{i:#?}");
    }

    // prune: a lower no image names and a create's half tree that died go; ours stays.
    let stray = env.cachepath().join("lowers/oci").join("e".repeat(64));
    let dead = {
        let mut p = Command::new("true").spawn().unwrap();
        let pid = p.id();
        p.wait().unwrap();
        pid
    };
    let half = env
        .cachepath()
        .join(format!("lowers/oci/.{}.partial.{dead}", "f".repeat(64)));
    for d in [&stray, &half] {
        std::fs::create_dir_all(d.join("etc")).unwrap();
    }
    let out = env.ok(&["image", "prune"]);
    assert!(out.contains(&stray.display().to_string()), "{out}");
    assert!(!stray.exists() && !half.exists() && lower.is_dir());

    // bb:1 may go: bb:2 names the same layers, so the lower stays for a and b.
    env.ok(&["image", "rm", &reg.url("bb:1")]);
    assert!(lower.is_dir());
    // bb:2 holds it alone now: refused, naming the containers, by rm and prune --all.
    let e = env.fails(&["image", "rm", &reg.url("bb:2")]);
    assert!(
        e.contains(&a) && e.contains(&b) && e.contains("rlxc-destroy"),
        "{e}"
    );
    let out = env.run(&["image", "prune", "--all"]);
    let e = stderr(&out);
    assert!(
        e.contains(&format!("kept {}", reg.url("bb:2")))
            && e.contains(&format!("overlay lower of {a}, {b}")),
        "{e}"
    );
    assert!(lower.is_dir() && oci_entries(&env, "oci").len() == 1);

    env.ok(&["destroy", "-n", &a]);
    let e = env.fails(&["image", "rm", &reg.url("bb:2")]);
    assert!(e.contains(&b) && !e.contains(&a), "{e}");
    env.ok(&["destroy", "-n", &b]);
    let out = env.ok(&["image", "rm", &reg.url("bb:2")]);
    assert!(out.contains(&lower.display().to_string()), "{out}");
    assert!(!lower.exists());
    assert!(oci_entries(&env, "oci").is_empty() && oci_entries(&env, "blob").is_empty());
}
