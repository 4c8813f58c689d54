//! rlxc-publish: a stopped container becomes an image that `rlxc-create -t image` makes
//! new containers from, each with its own identity, the source untouched; listed and
//! removed by rlxc-image; a running source, a taken or hostile alias, and a publish
//! interrupted or killed half-way leave no image and change nothing; Debian booted from
//! its own published image.

mod common;

use common::rt::*;
use common::tree::{assert_same_tree, snapshot};
use common::*;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

fn published_dir(env: &Env) -> PathBuf {
    env.cachepath().join("published")
}

/// What is in the published images' directory, lock files aside.
fn published_entries(env: &Env) -> Vec<String> {
    names_without_locks(&published_dir(env))
}

/// `hostname; cat /marker` inside the running container `name`.
fn hostname_and_marker(env: &Env, name: &str) -> String {
    let out = env.run(&[
        "attach",
        "-n",
        name,
        "--",
        "/bin/sh",
        "-c",
        "hostname; cat /marker",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// `rlxc-create -t image -n NAME ALIAS`, with no network.
fn create_from<'a>(env: &'a Env, alias: &str, tag: &str) -> (Made<'a>, Output) {
    let net = env.dir.path().join("net.toml");
    std::fs::write(&net, "[[network]]\ntype = \"empty\"\n").unwrap();
    let name = unique(tag);
    let out = env.run(&[
        "create",
        "-t",
        "image",
        "-n",
        &name,
        alias,
        "-f",
        net.to_str().unwrap(),
    ]);
    (Made { env, name }, out)
}

#[test]
fn a_published_container_makes_new_ones_of_their_own_and_is_left_as_it_was() {
    let rt = Rt::new("pubsrc", "");
    let src = rt.env.rootfs(&rt.name);
    std::fs::write(src.join("marker"), "made in the source\n").unwrap();
    plant_identity(&src);
    let config = rt.env.lxcpath().join(&rt.name).join("config.toml");
    let (tree_before, config_before) = (snapshot(&src), read(&config));

    let out = rt.run(&[
        "publish",
        "--alias",
        "bb-base",
        "--description",
        "busybox with a marker",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Published") && err.contains("MB/s"), "{err}");
    assert!(
        err.contains("left /etc/ssh/ssh_host_ed25519_key out"),
        "{err}"
    );
    // The source is exactly as it was.
    assert_eq!(snapshot(&src), tree_before);
    assert_eq!(read(&config), config_before);
    // An LXC image pair: meta with config, templates and message; the rootfs.
    let image = published_dir(&rt.env).join("bb-base");
    let meta = std::process::Command::new("tar")
        .args([
            "-xJOf",
            image.join("meta.tar.xz").to_str().unwrap(),
            "templates",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&meta), "/etc/hostname\n/etc/hosts\n");
    let members = std::process::Command::new("tar")
        .args([
            "--zstd",
            "-tf",
            image.join("rootfs.tar.zst").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let members = stdout(&members);
    assert!(members.contains("./marker\n"), "{members}");
    assert!(!members.contains("ssh_host_ed25519_key"), "{members}");
    assert!(!members.contains("dhclient.eth0.leases"), "{members}");

    let list = rt.env.ok(&["image", "ls"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("bb-base "))
        .unwrap_or_else(|| panic!("no bb-base in:\n{list}"));
    assert!(
        row.contains(&rt.name) && row.contains("busybox with a marker"),
        "{row}"
    );
    let json = rt.env.ok(&["image", "ls", "--json"]);
    assert!(json.contains("\"kind\": \"published\""), "{json}");

    // A new container from it: the source's files, its own identity.
    let (new, out) = create_from(&rt.env, "bb-base", "pubnew");
    assert!(out.status.success(), "{}", stderr(&out));
    // The fixture's ACLs name uid 1000, which the host may call something the image
    // does not know: the numeric copy GNU tar also stores is what counts, no warning.
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("Made from image bb-base (container {}", rt.name)),
        "{}",
        stdout(&out)
    );
    let dst = rt.env.rootfs(&new.name);
    assert_eq!(read(dst.join("marker")), "made in the source\n");
    assert_eq!(read(dst.join("etc/hostname")).trim(), new.name);
    let hosts = read(dst.join("etc/hosts"));
    assert!(
        hosts.contains(&new.name) && !hosts.contains(&rt.name),
        "{hosts}"
    );
    assert_eq!(read(dst.join("etc/machine-id")), "");
    assert!(!dst.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!dst.join("var/lib/dhcp/dhclient.eth0.leases").exists());
    // Every other file as the source has it: owners, modes, xattrs, links, times.
    assert_same_tree(
        &src,
        &dst,
        &[
            "./etc/hostname",
            "./etc/hosts",
            "./etc/machine-id",
            "./etc/ssh/ssh_host_ed25519_key",
            "./var/lib/dhcp/dhclient.eth0.leases",
        ],
    );
    let cfg = read(rt.env.lxcpath().join(&new.name).join("config.toml"));
    assert!(cfg.contains("server = \"published:bb-base\""), "{cfg}");

    rt.env.ok(&["start", "-d", "-n", &new.name]);
    assert_eq!(
        hostname_and_marker(&rt.env, &new.name),
        format!("{}\nmade in the source\n", new.name)
    );
    rt.env.ok(&["stop", "-k", "-n", &new.name]);

    // Removed by its alias, with the tree the create decompressed from it.
    rt.env.ok(&["image", "rm", "bb-base"]);
    assert!(published_entries(&rt.env).is_empty());
    let list = rt.env.ok(&["image", "ls"]);
    assert!(!list.contains("bb-base"), "{list}");
    let e = rt
        .env
        .fails(&["create", "-t", "image", "-n", "again", "bb-base"]);
    assert!(e.contains("no published image \"bb-base\""), "{e}");
    assert!(rt.env.rootfs(&new.name).join("marker").is_file());
}

#[test]
fn publish_refuses_a_running_container_a_taken_alias_and_hostile_aliases() {
    let rt = Rt::new("pubref", "");
    let src = rt.env.rootfs(&rt.name);
    std::fs::write(src.join("marker"), "one\n").unwrap();
    rt.ok(&["start", "-d"]);
    let e = rt.env.fails(&["publish", "-n", &rt.name, "--alias", "web"]);
    assert!(e.contains("is running") && e.contains("rlxc-stop"), "{e}");
    assert!(published_entries(&rt.env).is_empty());
    rt.ok(&["stop", "-k"]);

    rt.env
        .ok(&["publish", "-q", "-n", &rt.name, "--alias", "web"]);
    let image = published_dir(&rt.env).join("web");
    let before = std::fs::read(image.join("rootfs.tar.zst")).unwrap();
    std::fs::write(src.join("marker"), "two\n").unwrap();
    let e = rt.env.fails(&["publish", "-n", &rt.name, "--alias", "web"]);
    assert!(e.contains("exists") && e.contains("-f"), "{e}");
    assert_eq!(std::fs::read(image.join("rootfs.tar.zst")).unwrap(), before);
    assert_eq!(published_entries(&rt.env), ["web"]);

    // -f swaps the new image in.
    let out = rt.run(&["publish", "--alias", "web", "-f"]);
    assert!(stderr(&out).contains("replacing"), "{}", stderr(&out));
    let (new, out) = create_from(&rt.env, "web", "pubref2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(rt.env.rootfs(&new.name).join("marker")), "two\n");
    assert_eq!(published_entries(&rt.env), ["web"]);

    for bad in ["../x", "a/b", "..", "", ".hidden", &"x".repeat(65)] {
        let e = rt.env.fails(&["publish", "-n", &rt.name, "--alias", bad]);
        assert!(e.contains("invalid image alias"), "{bad}: {e}");
        let e = rt
            .env
            .fails(&["create", "-t", "image", "-n", "x1", "--", bad]);
        assert!(e.contains("invalid image alias"), "{bad}: {e}");
    }
    assert_eq!(published_entries(&rt.env), ["web"]);
    assert!(!rt.env.cachepath().join("x").exists());
    let e = rt.env.fails(&[
        "publish",
        "-n",
        &rt.name,
        "--alias",
        "ok",
        "--description",
        "a\nb",
    ]);
    assert!(e.contains("one line"), "{e}");

    // An unknown alias names the ones there are; prune never takes a published image.
    let e = rt
        .env
        .fails(&["create", "-t", "image", "-n", "x2", "nosuch"]);
    assert!(e.contains("published: web"), "{e}");
    rt.env.ok(&["image", "prune", "--all"]);
    assert_eq!(published_entries(&rt.env), ["web"]);
    assert!(rt.env.lxcpath_entries().iter().all(|n| !n.starts_with('x')));
}

/// Start `publish -f` of `rt` under `alias`, with a tree large enough to catch it
/// half-way; returns the child and its staging directory.
fn start_publish(rt: &Rt, alias: &str) -> (std::process::Child, PathBuf) {
    let child = rt
        .env
        .cmd(&["publish", "-n", &rt.name, "--alias", alias, "-f"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let staging = published_dir(&rt.env).join(format!(".{alias}.staging.{}", child.id()));
    let rootfs = staging.join("rootfs.tar.zst");
    let t0 = Instant::now();
    while std::fs::metadata(&rootfs).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(t0.elapsed() < Duration::from_secs(30), "it never began");
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, staging)
}

#[test]
fn a_publish_interrupted_or_killed_half_way_leaves_no_image() {
    let rt = Rt::new("pubint", "");
    let src = rt.env.rootfs(&rt.name);
    std::fs::write(src.join("marker"), "old\n").unwrap();
    rt.ok(&["publish", "-q", "--alias", "kept"]);
    let kept = std::fs::read(published_dir(&rt.env).join("kept/rootfs.tar.zst")).unwrap();
    // Incompressible, so the archive takes a while to write.
    let status = std::process::Command::new("head")
        .args(["-c", "400000000", "/dev/urandom"])
        .stdout(std::fs::File::create(src.join("big")).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(src.join("marker"), "new\n").unwrap();

    // Ctrl-C: it unwinds, the image it was to replace stays.
    let (child, staging) = start_publish(&rt, "kept");
    interrupt(child);
    assert!(!staging.exists(), "a half image was left");
    assert_eq!(published_entries(&rt.env), ["kept"]);
    assert_eq!(
        std::fs::read(published_dir(&rt.env).join("kept/rootfs.tar.zst")).unwrap(),
        kept
    );

    // SIGKILL: the half image is hidden, never listed or used, and goes at the next publish.
    let (mut child, staging) = start_publish(&rt, "fresh");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staging.exists(), "the kill came after the publish was done");
    let list = rt.env.ok(&["image", "ls"]);
    assert!(!list.contains("fresh"), "{list}");
    let e = rt
        .env
        .fails(&["create", "-t", "image", "-n", "x3", "fresh"]);
    assert!(e.contains("published: kept"), "{e}");
    std::fs::remove_file(src.join("big")).unwrap();
    let out = rt.run(&["publish", "--alias", "fresh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
    assert_eq!(published_entries(&rt.env), ["fresh", "kept"]);
}

/// `cat /etc/machine-id` inside the running container `name`, once systemd settled.
fn booted_machine_id(env: &Env, name: &str) -> String {
    let state = wait_system_running_of(env, name, Duration::from_secs(120));
    assert!(matches!(state.as_str(), "running" | "degraded"), "{state}");
    let out = env.run(&["attach", "-n", name, "--", "cat", "/etc/machine-id"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn debian_published_and_created_again_boots() {
    let rt = Rt::with_image("debian", "bookworm", "pubdeb", "");
    // Booted once, so it has a machine-id of its own to leave behind.
    rt.ok(&["start", "-d"]);
    let source_id = booted_machine_id(&rt.env, &rt.name);
    rt.ok(&["stop", "-t", "60"]);
    std::fs::write(rt.env.rootfs(&rt.name).join("marker"), "tuned\n").unwrap();
    rt.ok(&["publish", "-q", "--alias", "deb-base"]);

    let (new, out) = create_from(&rt.env, "deb-base", "pubdeb2");
    assert!(out.status.success(), "{}", stderr(&out));
    rt.env.ok(&["start", "-d", "-n", &new.name]);
    let new_id = booted_machine_id(&rt.env, &new.name);
    assert!(
        !new_id.is_empty() && new_id != source_id,
        "{new_id} vs {source_id}"
    );
    assert_eq!(
        hostname_and_marker(&rt.env, &new.name),
        format!("{}\ntuned\n", new.name)
    );
    rt.env.ok(&["stop", "-k", "-n", &new.name]);
}
