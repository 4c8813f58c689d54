//! rlxc-copy: a stopped container copied whole (every attribute), with its own identity
//! (MAC, host name, machine-id, no leases or SSH host keys of the source), booting on its
//! own; refusals and planted symlinks leave the host and the source alone.

mod common;

use common::rt::{unique, Rt};
use common::*;
use std::process::Command;

/// Every entry of a tree with what a copy must keep: type, mode, owners, size, mtime,
/// link count, symlink target, device numbers (find), xattrs (getfattr), ACLs (getfacl).
fn tree_metadata(root: &std::path::Path, skip: &[&str]) -> Vec<String> {
    let run = |cmd: &str, args: &[&str]| -> String {
        let out = Command::new(cmd)
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
        stdout(&out)
    };
    let mut lines: Vec<String> = run(
        "find",
        &[".", "-printf", "%P %y %m %U %G %s %T@ %n %l %D\\n"],
    )
    .lines()
    .chain(run("getfattr", &["-R", "-h", "-d", "-m", "-", "."]).lines())
    .chain(run("getfacl", &["-R", "-P", "-n", "-p", "--skip-base", "."]).lines())
    .filter(|l| {
        !skip
            .iter()
            .any(|s| l.starts_with(s) || l.contains(&format!("./{s}")))
    })
    .map(String::from)
    .collect();
    // %D (the device the file is on) differs between trees only if they are on different
    // file systems; drop it, keep device numbers of device nodes via %y + stat below.
    for l in &mut lines {
        if let Some(i) = l.rfind(' ') {
            if l.split(' ').count() == 10 {
                l.truncate(i);
            }
        }
    }
    lines.sort();
    lines
}

fn device_numbers(root: &std::path::Path) -> String {
    let out = Command::new("find")
        .args([
            ".", "(", "-type", "c", "-o", "-type", "b", ")", "-exec", "stat", "-c", "%n %t:%T",
            "{}", "+",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    stdout(&out)
}

#[test]
fn a_copy_keeps_every_attribute_gets_its_own_identity_and_boots() {
    let rt = Rt::new(
        "cpsrc",
        "[[network]]\ntype = \"veth\"\nlink = \"nowhere0\"\nhwaddr = \"00:16:3e:xx:xx:xx\"\n",
    );
    let src = rt.env.rootfs(&rt.name);
    // Machine state of the source that a copy must not carry.
    plant_identity(&src);

    let copy = unique("cpdst");
    let out = rt.env.run(&["copy", "-n", &rt.name, "-N", &copy]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("removed /etc/ssh/ssh_host_ed25519_key"),
        "{err}"
    );
    assert!(err.contains("ssh-keygen -A"), "{err}");
    let dst = rt.env.rootfs(&copy);

    // What the copy changes on purpose (and the directory it removed keys from).
    let changed = [
        "etc/hostname",
        "etc/hosts",
        "etc/machine-id",
        "var/lib/dhcp",
        "etc/ssh/ssh_host",
        "etc/ssh d",
    ];
    let (a, b) = (tree_metadata(&src, &changed), tree_metadata(&dst, &changed));
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter().filter(|l| !y.contains(l)).cloned().collect()
    };
    assert!(
        a == b,
        "only in the source: {:?}\nonly in the copy: {:?}",
        only(&a, &b),
        only(&b, &a)
    );
    assert_eq!(device_numbers(&src), device_numbers(&dst));
    assert!(
        !device_numbers(&dst).is_empty(),
        "the fixture has device nodes"
    );
    // Spot checks of what the fixture is known to hold.
    let caps = stdout(
        &Command::new("getcap")
            .arg(dst.join("usr/bin/ping-test"))
            .output()
            .unwrap(),
    );
    assert!(caps.contains("cap_net_raw"), "{caps}");

    // Its own identity.
    assert_eq!(read(dst.join("etc/machine-id")), "");
    assert!(!dst.join("var/lib/dhcp/dhclient.eth0.leases").exists());
    assert!(!dst.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert_eq!(read(dst.join("etc/ssh/sshd_config")), "Port 22\n");
    assert_eq!(
        read(src.join("etc/ssh/ssh_host_ed25519_key")),
        "secret\n",
        "the source keeps its own"
    );
    let (scfg, dcfg) = (
        read(rt.env.lxcpath().join(&rt.name).join("config.toml")),
        read(rt.env.lxcpath().join(&copy).join("config.toml")),
    );
    let mac = |c: &str| {
        c.lines()
            .find(|l| l.starts_with("hwaddr"))
            .map(String::from)
    };
    assert!(
        mac(&dcfg).is_some() && mac(&scfg) != mac(&dcfg),
        "{scfg}\n{dcfg}"
    );
    assert!(dcfg.contains(&format!("hostname = \"{copy}\"")), "{dcfg}");
    if read(src.join("etc/hostname")).trim() == rt.name {
        assert_eq!(read(dst.join("etc/hostname")).trim(), copy);
    }

    // Both boot, each with its own name; a change in one is not in the other.
    let none = rt.env.dir.path().join("none.toml");
    std::fs::write(&none, "").unwrap();
    for n in [&rt.name, &copy] {
        let cfg = rt.env.lxcpath().join(n).join("config.toml");
        let text = read(&cfg).replace("type = \"veth\"\nlink = \"nowhere0\"", "type = \"empty\"");
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("hwaddr"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&cfg, text).unwrap();
        rt.env.ok(&["start", "-d", "-n", n]);
    }
    let out = rt.env.run(&["attach", "-n", &copy, "--", "hostname"]);
    assert_eq!(stdout(&out).trim(), copy, "{}", stderr(&out));
    rt.env
        .ok(&["attach", "-n", &copy, "--", "touch", "/only-in-the-copy"]);
    assert!(!src.join("only-in-the-copy").exists() && dst.join("only-in-the-copy").exists());
    for n in [&rt.name, &copy] {
        rt.env.ok(&["stop", "-k", "-n", n]);
    }
    rt.env.ok(&["destroy", "-n", &copy]);
}

#[test]
fn copy_refuses_a_running_source_an_existing_name_and_never_writes_through_planted_links() {
    let rt = Rt::new("cprefuse", "");
    let src = rt.env.rootfs(&rt.name);
    // The source's /etc/hostname points at a host file that holds the source's host name:
    // personalising the copy must not rewrite the host's file.
    let canary = rt.env.dir.path().join("canary");
    std::fs::write(&canary, format!("{}\n", rt.name)).unwrap();
    let _ = std::fs::remove_file(src.join("etc/hostname"));
    std::os::unix::fs::symlink(&canary, src.join("etc/hostname")).unwrap();
    let _ = std::fs::remove_file(src.join("etc/machine-id"));
    std::os::unix::fs::symlink(
        "../../../../../../../../etc/machine-id",
        src.join("etc/machine-id"),
    )
    .unwrap();
    let host_machine_id = std::fs::read("/etc/machine-id").ok();

    let copy = unique("cpcopy");
    rt.env.ok(&["copy", "-n", &rt.name, "-N", &copy]);
    assert_eq!(
        read(&canary),
        format!("{}\n", rt.name),
        "a host file was written through a link"
    );
    assert_eq!(std::fs::read("/etc/machine-id").ok(), host_machine_id);

    let err = rt.env.fails(&["copy", "-n", &rt.name, "-N", &copy]);
    assert!(err.contains("already exists"), "{err}");
    rt.env.ok(&["start", "-d", "-n", &rt.name]);
    let other = unique("cpother");
    let err = rt.env.fails(&["copy", "-n", &rt.name, "-N", &other]);
    assert!(
        err.contains("is running") && err.contains("rlxc-stop"),
        "{err}"
    );
    rt.env.ok(&["stop", "-k", "-n", &rt.name]);
    let left: Vec<String> = rt.env.lxcpath_entries();
    assert!(!left.iter().any(|n| n.contains(&other)), "{left:?}");
    let err = rt.env.fails(&["copy", "-n", &rt.name, "-N", "bad/name"]);
    assert!(err.contains("invalid container name"), "{err}");
    rt.env.ok(&["destroy", "-n", &copy]);
}
