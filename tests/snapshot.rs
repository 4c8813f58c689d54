//! rlxc-snapshot: take, list, break the container, restore, boot; a new container from a
//! snapshot; refusals while running; destroy. Laid out as LXC does (snaps/snapN).

mod common;

use common::rt::{unique, Rt};
use common::*;

#[test]
fn snapshot_break_restore_boot_and_a_new_container_from_a_snapshot() {
    let rt = Rt::new("snap", "");
    let r = rt.env.rootfs(&rt.name);
    let out = rt
        .env
        .run(&["snapshot", "-n", &rt.name, "-c", "before upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Took snapshot snap0"),
        "{}",
        stderr(&out)
    );
    let snap = rt.env.lxcpath().join(&rt.name).join("snaps/snap0");
    assert!(snap.join("rootfs/bin/busybox").is_file() && snap.join("config.toml").is_file());
    let list = rt.env.ok(&["snapshot", "-n", &rt.name, "-L"]);
    assert!(
        list.contains("snap0") && list.contains("before upgrade"),
        "{list}"
    );

    // Break it: init gone, a stray file.
    let passwd = read(r.join("etc/passwd"));
    std::fs::remove_file(r.join("etc/passwd")).unwrap();
    std::fs::write(r.join("stray"), "x").unwrap();
    let second = rt.env.run(&["snapshot", "-n", &rt.name]);
    assert!(stderr(&second).contains("snap1"), "{}", stderr(&second));
    let info = rt.info();
    let row = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {info}"))
            .trim()
            .to_string()
    };
    assert!(row("Backing store:").ends_with("/rootfs (dir)"), "{info}");
    let usage = row("Disk use:");
    assert!(
        usage.contains(" own files, ") && usage.ends_with(" snapshots)"),
        "{info}"
    );
    assert!(!usage.contains(" 0 bytes snapshots"), "{info}");
    let snaps = row("Snapshots:");
    assert!(
        snaps.starts_with("2: snap0 (20") && snaps.contains(" UTC), snap1 (20"),
        "{info}"
    );

    rt.env.ok(&["start", "-d", "-n", &rt.name]);
    let err = rt.env.fails(&["snapshot", "-n", &rt.name, "-r", "snap0"]);
    assert!(
        err.contains("is running") && err.contains("rlxc-stop"),
        "{err}"
    );
    // A snapshot of it running is taken frozen: tests/freeze.rs.
    rt.env.ok(&["stop", "-k", "-n", &rt.name]);

    rt.env.ok(&["snapshot", "-n", &rt.name, "-r", "snap0"]);
    assert_eq!(read(r.join("etc/passwd")), passwd);
    assert!(!r.join("stray").exists());
    assert!(
        !rt.env
            .lxcpath()
            .join(&rt.name)
            .join(".rootfs.restoring")
            .exists(),
        "the old tree is gone"
    );
    rt.env.ok(&["start", "-d", "-n", &rt.name]);
    let out = rt
        .env
        .run(&["attach", "-n", &rt.name, "--", "cat", "/etc/passwd"]);
    assert_eq!(stdout(&out), passwd, "{}", stderr(&out));
    rt.env.ok(&["stop", "-k", "-n", &rt.name]);

    let err = rt.env.fails(&["snapshot", "-n", &rt.name, "-r", "snap9"]);
    assert!(
        err.contains("no snapshot \"snap9\"") && err.contains("snap0, snap1"),
        "{err}"
    );

    // snap1 (the broken one) as a container of its own.
    let new = unique("fromsnap");
    rt.env
        .ok(&["snapshot", "-n", &rt.name, "-r", "snap1", "-N", &new]);
    let nr = rt.env.rootfs(&new);
    assert!(nr.join("stray").exists() && !nr.join("etc/passwd").exists());
    let cfg = read(rt.env.lxcpath().join(&new).join("config.toml"));
    assert!(cfg.contains(&format!("hostname = \"{new}\"")), "{cfg}");
    rt.env.ok(&["destroy", "-n", &new]);

    rt.env.ok(&["snapshot", "-n", &rt.name, "-d", "snap1"]);
    let list = rt.env.ok(&["snapshot", "-n", &rt.name, "-L"]);
    assert!(list.contains("snap0") && !list.contains("snap1"), "{list}");
    let left: Vec<_> = std::fs::read_dir(rt.env.lxcpath().join(&rt.name).join("snaps"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["snap0"], "no work directories left");
}
