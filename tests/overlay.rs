//! `-B overlay` end to end, as root, on the fixture images: two containers share one
//! lower unpacked once, each writes only its own upper, nothing stays mounted, and the
//! image cache keeps a lower while a container is layered on it.

mod common;

use common::overlay::*;
use common::rt::*;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

fn attach(env: &Env, name: &str, script: &str) -> std::process::Output {
    env.run(&["attach", "-n", name, "--", "/bin/sh", "-c", script])
}

#[test]
fn two_busybox_containers_share_one_lower_and_keep_their_writes_apart() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let release = busybox_release();
    let (a, b) = (unique("ova"), unique("ovb"));
    let _stop = Stopper(&env, vec![a.clone(), b.clone()]);

    create_overlay(&env, &a, "busybox", &release);
    let lower = the_lower(&env, "busybox", &release);
    let ino = std::fs::metadata(&lower).unwrap().ino();
    let second = create_overlay(&env, &b, "busybox", &release);
    eprintln!("second -B overlay create (cached image, lower there): {second:?}");
    assert_eq!(the_lower(&env, "busybox", &release), lower);
    assert_eq!(
        std::fs::metadata(&lower).unwrap().ino(),
        ino,
        "the lower was unpacked again"
    );
    assert!(
        !lower.to_string_lossy().contains(':'),
        "the build id's ':' must not reach lowerdir: {}",
        lower.display()
    );
    let pristine = tree_listing(&lower);

    // What the create wrote (the image's templates) is in each upper, not the lower.
    for n in [&a, &b] {
        let dir = env.lxcpath().join(n);
        let cfg = read(dir.join("config.toml"));
        assert!(cfg.contains("backend = \"overlay\""), "{cfg}");
        assert!(
            cfg.contains(&format!("lower = \"{}\"", lower.display())),
            "{cfg}"
        );
        assert_eq!(read(dir.join("upper/etc/hostname")).trim(), n.as_str());
        let info = env.ok(&["info", "-n", n]);
        let want = format!(
            "{} (overlay on {})",
            dir.join("upper").display(),
            lower.display()
        );
        assert!(info.contains(&want), "{info}");
    }
    assert_ne!(read(lower.join("etc/hostname")).trim(), a.as_str());

    env.ok(&["start", "-d", "-n", &a]);
    let out = attach(&env, &a, "echo from-a > /written; cat /etc/hostname");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), a.as_str());
    env.ok(&["start", "-d", "-n", &b]);
    let out = attach(
        &env,
        &b,
        "cat /written || echo ABSENT; rm /bin/true; echo ok",
    );
    assert_eq!(
        stdout(&out).trim().lines().last(),
        Some("ok"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("ABSENT"), "b sees a's file");
    let out = attach(&env, &a, "cat /written; test -e /bin/true && echo TRUE");
    assert_eq!(stdout(&out), "from-a\nTRUE\n", "a sees b's removal");
    assert_eq!(
        read(env.lxcpath().join(&a).join("upper/written")),
        "from-a\n"
    );
    assert!(!env.lxcpath().join(&b).join("upper/written").exists());

    for n in [&a, &b] {
        env.ok(&["stop", "-k", "-n", n]);
    }
    let watched = [env.lxcpath(), env.cachepath()];
    assert!(
        mounts_under(&watched).is_empty(),
        "{:?}",
        mounts_under(&watched)
    );
    assert_eq!(tree_listing(&lower), pristine, "the lower changed");

    // The image is kept while a container is layered on it, naming them.
    let image = format!("busybox/{release}");
    let err = env.fails(&["image", "rm", &image]);
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert!(err.contains("rlxc-destroy"), "{err}");
    let out = env.run(&["image", "prune", "--all"]);
    let err = stderr(&out);
    assert!(err.contains("kept download:busybox/"), "{err}");
    assert!(err.contains(&format!("overlay lower of {a}, {b}")), "{err}");
    assert!(lower.is_dir());
    assert!(env.ok(&["image", "ls"]).contains("busybox"));

    env.ok(&["destroy", "-n", &a]);
    assert!(!env.lxcpath().join(&a).exists());
    assert_eq!(tree_listing(&lower), pristine, "destroy touched the lower");
    let err = env.fails(&["image", "rm", &image]);
    assert!(err.contains(&b) && !err.contains(&a), "{err}");

    env.ok(&["destroy", "-n", &b]);
    env.ok(&["image", "rm", &image]);
    assert!(!lower.exists());
    assert!(!lower.parent().unwrap().exists());
    assert!(!env.ok(&["image", "ls"]).contains("busybox"));
    assert!(
        mounts_under(&watched).is_empty(),
        "{:?}",
        mounts_under(&watched)
    );
}

#[test]
fn overlay_needs_a_template_that_shares_and_best_falls_back_to_dir() {
    let env = Env::with_templates(None);
    let tpl = env.dir.path().join("tpl/rlxc-mini");
    // LXC's protocol: --path DIR --name NAME --rootfs ROOTFS.
    std::fs::write(&tpl, "#!/bin/sh\necho made > \"$6/made\"\n").unwrap();
    std::fs::set_permissions(&tpl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = env.fails(&["create", "-n", "o1", "-t", "mini", "-B", "overlay"]);
    assert!(
        err.contains("-B overlay") && err.contains("-B dir"),
        "{err}"
    );
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );
    let err = env.fails(&["create", "-n", "o1", "-t", "mini", "-B", "zfs"]);
    assert!(err.contains("\"zfs\"") && err.contains("overlay"), "{err}");

    env.ok(&["create", "-q", "-n", "o2", "-t", "mini", "-B", "best"]);
    let cfg = read(env.lxcpath().join("o2/config.toml"));
    assert!(cfg.contains("backend = \"dir\""), "{cfg}");
    assert_eq!(read(env.lxcpath().join("o2/rootfs/made")), "made\n");
}

#[test]
fn debian_on_overlay_boots_systemd_to_running() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let name = unique("ovdeb");
    create_overlay(&env, &name, "debian", "bookworm");
    let rt = Rt { env, server, name };
    rt.ok(&["start", "-d"]);
    let state = rt.wait_system_running(Duration::from_secs(120));
    let failed = stdout(&rt.attach(&["systemctl", "--failed", "--no-legend", "--plain"]));
    assert_eq!(state, "running", "failed units:\n{failed}");
    let root_fs = stdout(&rt.attach(&["stat", "-f", "-c", "%T", "/"]));
    assert_eq!(root_fs.trim(), "overlayfs");
    rt.ok(&["stop", "-t", "60"]);
    rt.assert_clean();
    let watched = [rt.env.lxcpath(), rt.env.cachepath()];
    assert!(
        mounts_under(&watched).is_empty(),
        "{:?}",
        mounts_under(&watched)
    );
}
