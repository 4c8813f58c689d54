//! Copy-on-write clones (`rlxc-copy -s`) and ephemeral ones (`-e`), end to end as root
//! on the busybox fixture: the source's tree is frozen as a shared layer, both boot,
//! neither sees the other's later writes, the source cannot be destroyed under its
//! clones, an ephemeral clone's writes stay in memory and it is gone once it stops.

mod common;

use common::rt::{unique, Rt};
use common::*;
use std::path::Path;

/// Kills and destroys the named containers whatever the test did (clones first).
struct Cleanup<'a>(&'a Rt, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in self.1.iter().rev() {
            let _ = self.0.env.run(&["stop", "-k", "-n", n]);
            let _ = self.0.env.run(&["destroy", "-f", "-n", n]);
        }
    }
}

fn sh(rt: &Rt, name: &str, script: &str) -> String {
    let out = rt
        .env
        .run(&["attach", "-n", name, "--", "/bin/sh", "-c", script]);
    assert!(out.status.success(), "{name}: {script}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn config(rt: &Rt, name: &str) -> String {
    read(rt.env.lxcpath().join(name).join("config.toml"))
}

/// Mounts of the host that mention `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    read("/proc/self/mountinfo")
        .lines()
        .filter(|l| l.contains(&d))
        .map(String::from)
        .collect()
}

#[test]
fn a_clone_shares_the_frozen_tree_both_boot_and_neither_sees_the_others_writes() {
    let rt = Rt::new("clsrc", "");
    let src_tree = rt.env.rootfs(&rt.name);
    std::fs::write(src_tree.join("etc/marker"), "base\n").unwrap();
    // The source's machine state, which the clone must not keep.
    std::fs::create_dir_all(src_tree.join("etc/ssh")).unwrap();
    std::fs::create_dir_all(src_tree.join("var/lib/dhcp")).unwrap();
    std::fs::write(src_tree.join("etc/ssh/ssh_host_test_key"), "secret\n").unwrap();
    std::fs::write(src_tree.join("var/lib/dhcp/eth0.leases"), "lease\n").unwrap();
    let c1 = unique("cl1");
    let c2 = unique("cl2");
    let _g = Cleanup(&rt, vec![rt.name.clone(), c1.clone(), c2.clone()]);

    let out = rt.env.run(&["copy", "-s", "-n", &rt.name, "-N", &c1]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("frozen layer"), "{}", stderr(&out));
    // The source keeps its files where they were, now its read-only lower.
    let scfg = config(&rt, &rt.name);
    assert!(scfg.contains("backend = \"overlay\""), "{scfg}");
    assert!(scfg.contains("path = \"merged\""), "{scfg}");
    let frozen = std::fs::canonicalize(&src_tree).unwrap();
    assert!(
        scfg.contains(&format!("lower = \"{}\"", frozen.display())),
        "{scfg}"
    );
    let ccfg = config(&rt, &c1);
    assert!(
        ccfg.contains(&format!("lower = \"{}\"", frozen.display())),
        "{ccfg}"
    );
    assert!(ccfg.contains(&format!("hostname = \"{c1}\"")), "{ccfg}");
    // Nothing was copied: the clone's own layer holds only what made it its own.
    let upper = rt.env.lxcpath().join(&c1).join("upper");
    assert!(!upper.join("bin").exists() && !upper.join("etc/marker").exists());
    // What it removed are whiteouts there, under directories owned and moded as below.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for f in ["etc/ssh/ssh_host_test_key", "var/lib/dhcp/eth0.leases"] {
        let md = std::fs::symlink_metadata(upper.join(f)).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0, "{f}");
    }
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().mode();
    assert_eq!(mode(upper.join("etc/ssh")), mode(src_tree.join("etc/ssh")));
    assert_eq!(read(upper.join("etc/hostname")), format!("{c1}\n"));

    for n in [&rt.name, &c1] {
        rt.env.ok(&["start", "-d", "-n", n]);
    }
    assert_eq!(sh(&rt, &c1, "cat /etc/marker"), "base");
    assert_eq!(sh(&rt, &c1, "hostname"), c1);
    assert_eq!(
        sh(&rt, &c1, "ls /etc/ssh /var/lib/dhcp | grep -c key; true"),
        "0"
    );
    assert_eq!(
        sh(&rt, &rt.name, "cat /etc/ssh/ssh_host_test_key"),
        "secret"
    );
    sh(&rt, &c1, "echo clone > /etc/marker; touch /only-in-clone");
    sh(&rt, &rt.name, "touch /only-in-source");
    assert_eq!(sh(&rt, &rt.name, "cat /etc/marker"), "base");
    assert_eq!(
        sh(
            &rt,
            &rt.name,
            "test -e /only-in-clone && echo yes || echo no"
        ),
        "no"
    );
    assert_eq!(
        sh(&rt, &c1, "test -e /only-in-source && echo yes || echo no"),
        "no"
    );
    assert_eq!(
        read(src_tree.join("etc/marker")),
        "base\n",
        "the frozen layer is never written"
    );
    for n in [&rt.name, &c1] {
        rt.env.ok(&["stop", "-k", "-n", n]);
    }

    // A clone of the clone: c1's writes so far are frozen into c2's stack, later ones not.
    rt.env.ok(&["copy", "-s", "-n", &c1, "-N", &c2]);
    let c1cfg = config(&rt, &c1);
    assert!(c1cfg.contains("upper = \"upper.1\""), "{c1cfg}");
    rt.env.ok(&["start", "-d", "-n", &c1]);
    rt.env.ok(&["start", "-d", "-n", &c2]);
    sh(&rt, &c1, "touch /after-c2");
    assert_eq!(sh(&rt, &c2, "cat /etc/marker"), "clone");
    assert_eq!(
        sh(&rt, &c2, "test -e /only-in-clone && echo yes || echo no"),
        "yes"
    );
    assert_eq!(
        sh(&rt, &c2, "test -e /after-c2 && echo yes || echo no"),
        "no"
    );
    assert_eq!(sh(&rt, &c1, "cat /etc/marker"), "clone");
    for n in [&c1, &c2] {
        rt.env.ok(&["stop", "-k", "-n", n]);
    }

    // The source cannot go while clones stack on it; it loses nothing by trying.
    let err = rt.env.fails(&["destroy", "-n", &rt.name]);
    assert!(err.contains(&c1) && err.contains(&c2), "{err}");
    let err = rt.env.fails(&["destroy", "-n", &c1]);
    assert!(err.contains(&c2) && !err.contains(&rt.name), "{err}");
    assert_eq!(read(src_tree.join("etc/marker")), "base\n");
    rt.env.ok(&["start", "-d", "-n", &rt.name]);
    assert_eq!(
        sh(
            &rt,
            &rt.name,
            "test -e /only-in-source && echo yes || echo no"
        ),
        "yes"
    );
    rt.env.ok(&["stop", "-k", "-n", &rt.name]);
    for n in [&c2, &c1, &rt.name] {
        rt.env.ok(&["destroy", "-n", n]);
    }
    assert!(mounts_under(&rt.env.lxcpath()).is_empty());
    assert!(rt.env.lxcpath_entries().iter().all(|e| e.starts_with('.')));
    rt.assert_clean();
}

#[test]
fn an_ephemeral_clone_writes_to_memory_and_is_gone_when_it_stops() {
    let rt = Rt::new("ephsrc", "");
    let _g = Cleanup(&rt, vec![rt.name.clone()]);

    // Named for us, started at once; its name is the one line on stdout.
    let out = rt.env.run(&["copy", "-e", "-n", &rt.name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eph = stdout(&out).trim().to_string();
    assert!(eph.starts_with(&format!("{}-", rt.name)), "{eph}");
    let _g2 = Cleanup(&rt, vec![eph.clone()]);
    let info = rt.env.ok(&["info", "-n", &eph]);
    assert!(info.contains("RUNNING"), "{info}");
    let cfg = config(&rt, &eph);
    assert!(
        cfg.contains("ephemeral = true") && cfg.contains("tmpfs = true"),
        "{cfg}"
    );

    sh(
        &rt,
        &eph,
        "dd if=/dev/zero of=/scratch bs=1k count=64 2>/dev/null",
    );
    assert_eq!(sh(&rt, &eph, "hostname"), eph);
    let dir = rt.env.lxcpath().join(&eph);
    assert!(
        !dir.join("upper/scratch").exists() && !dir.join("work/upper/scratch").exists(),
        "its writes are on the tmpfs, never on disk"
    );
    assert!(
        mounts_under(&dir).is_empty(),
        "the tmpfs is in the container's mount namespace only"
    );
    let err = rt.env.fails(&["destroy", "-n", &rt.name]);
    assert!(err.contains(&eph), "{err}");

    rt.env.ok(&["stop", "-n", &eph, "-t", "5"]);
    // Gone by the time the stop returns: directory, lock, run directory.
    assert!(!dir.exists(), "{:?}", rt.env.lxcpath_entries());
    let err = rt.env.fails(&["info", "-n", &eph]);
    assert!(err.contains(&eph), "{err}");
    assert!(rt.env.run(&["ls", "-1"]).status.success());
    assert!(!stdout(&rt.env.run(&["ls", "-1"])).contains(&eph));
    rt.env.ok(&["destroy", "-n", &rt.name]);
    assert!(mounts_under(&rt.env.lxcpath()).is_empty());
    rt.assert_clean();
}

#[test]
fn an_ephemeral_clone_that_cannot_start_is_not_left_behind() {
    let rt = Rt::new("ephbad", "");
    let _g = Cleanup(&rt, vec![rt.name.clone()]);
    let cfgp = rt.env.lxcpath().join(&rt.name).join("config.toml");
    let cfg = read(&cfgp);
    std::fs::write(&cfgp, format!("{cfg}\n[init]\ncmd = [\"/no/such/init\"]\n")).unwrap();
    let eph = unique("ephbadc");
    let err = rt.env.fails(&["copy", "-e", "-n", &rt.name, "-N", &eph]);
    assert!(err.contains("/no/such/init"), "{err}");
    assert!(!rt.env.lxcpath().join(&eph).exists());
    // Its source is frozen but whole, and can go now that nothing stacks on it.
    rt.env.ok(&["destroy", "-n", &rt.name]);
    rt.assert_clean();
}

#[test]
fn a_clone_refuses_a_running_source_and_a_taken_name_and_changes_nothing() {
    let rt = Rt::new("clref", "");
    let other = unique("clother");
    let _g = Cleanup(&rt, vec![rt.name.clone(), other.clone()]);
    rt.env.ok(&["copy", "-n", &rt.name, "-N", &other]);
    let before = config(&rt, &rt.name);
    let listing = |n: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(rt.env.lxcpath().join(n))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let entries = listing(&rt.name);

    let err = rt.env.fails(&["copy", "-s", "-n", &rt.name, "-N", &other]);
    assert!(err.contains(&other) && err.contains("exists"), "{err}");
    rt.env.ok(&["start", "-d", "-n", &rt.name]);
    let err = rt
        .env
        .fails(&["copy", "-s", "-n", &rt.name, "-N", "fresh1"]);
    assert!(
        err.contains("running") && err.contains("rlxc-stop"),
        "{err}"
    );
    rt.env.ok(&["stop", "-k", "-n", &rt.name]);
    let err = rt.env.fails(&["copy", "-n", &rt.name]);
    assert!(err.contains("-N"), "{err}");
    assert!(!rt.env.lxcpath().join("fresh1").exists());
    assert_eq!(config(&rt, &rt.name), before);
    assert_eq!(listing(&rt.name), entries);
}
