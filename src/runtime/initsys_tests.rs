use super::*;
use crate::cgroup::parse_mountinfo;
use std::path::Path;

/// A rootfs in a temporary directory: `files` are (path, content), `links` (path, target).
fn rootfs(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    for (p, t) in links {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(t, p).unwrap();
    }
    d
}

fn look(d: &Path) -> InitInfo {
    inspect(&Root::open(d).unwrap(), "/sbin/init")
}

#[test]
fn systemd_version_from_the_library_it_links() {
    let d = rootfs(
        &[(
            "usr/lib/systemd/systemd",
            b"\x7fELF..libsystemd-core-262.so\0libsystemd-shared-262.so\0",
        )],
        // Absolute, as distributions ship it: resolved inside the root.
        &[("sbin/init", "/usr/lib/systemd/systemd")],
    );
    let i = look(d.path());
    assert_eq!(i.family, Family::Systemd);
    assert_eq!(i.systemd_version, Some(262));
    assert_eq!(i.signals(), (libc::SIGRTMIN() + 3, libc::SIGINT));
}

#[test]
fn old_systemd_version_from_its_version_string() {
    // CentOS 7: no libsystemd-shared; `systemd --version` prints "systemd 219".
    assert_eq!(
        version_in_binary(b"x systemd 2019 y\0systemd 219\n+PAM +AUDIT"),
        Some(219)
    );
    assert_eq!(
        version_in_binary(b"libsystemd-shared-256.11-1.fc41.so"),
        Some(256)
    );
    assert_eq!(version_in_binary(b"nothing here systemd 5"), None);
}

#[test]
fn systemd_version_from_dpkg_when_the_binary_says_nothing() {
    let status = b"Package: systemd-sysv\nStatus: install ok installed\nVersion: 9\n\n\
Package: systemd\nStatus: install ok installed\nVersion: 1:252.39-1~deb12u2\n";
    let d = rootfs(
        &[
            ("lib/systemd/systemd", b"\x7fELF"),
            ("var/lib/dpkg/status", status),
        ],
        &[("sbin/init", "../lib/systemd/systemd")],
    );
    assert_eq!(look(d.path()).systemd_version, Some(252));
}

#[test]
fn sysvinit_and_its_powerfail_entry() {
    let tab = b"id:2:initdefault:\nca:12345:ctrlaltdel:/sbin/shutdown -t1 -a -r now\n\
1:2345:respawn:/sbin/getty 38400 tty1\n#pf::powerwait:/etc/init.d/powerfail start\n";
    let d = rootfs(&[("sbin/init", b"\x7fELF init"), ("etc/inittab", tab)], &[]);
    let i = look(d.path());
    assert_eq!(i.family, Family::Sysvinit);
    assert!(!i.powerfail, "a commented entry does not count");
    assert_eq!(i.signals(), (libc::SIGPWR, libc::SIGINT));
    assert!(i.halt_hint().unwrap().contains("powerfail"));

    // Debian's stock entries name a script no package ships: SIGPWR does nothing.
    let mut stock = tab.to_vec();
    stock.extend(b"pf::powerwait:/etc/init.d/powerfail start\n");
    let d = rootfs(
        &[("sbin/init", b"\x7fELF init"), ("etc/inittab", &stock)],
        &[],
    );
    assert!(!look(d.path()).powerfail, "its program is missing");

    let mut tab = tab.to_vec();
    tab.extend(b"p0::powerfail:/sbin/init 0\n");
    let d = rootfs(
        &[("sbin/init", b"\x7fELF init"), ("etc/inittab", &tab)],
        &[],
    );
    let i = look(d.path());
    assert!(i.powerfail);
    assert_eq!(i.halt_hint(), None);
}

#[test]
fn busybox_and_others() {
    let d = rootfs(
        &[
            ("bin/busybox", b"BusyBox v1.35"),
            ("etc/inittab", b"::sysinit:/x\n"),
        ],
        &[("sbin/init", "/bin/busybox")],
    );
    let i = look(d.path());
    assert_eq!(i.family, Family::Busybox);
    assert_eq!(i.signals(), (libc::SIGPWR, libc::SIGTERM));
    let d = rootfs(&[("bin/sh", b"#!")], &[]);
    let i = inspect(&Root::open(d.path()).unwrap(), "/bin/sh");
    assert_eq!(i.family, Family::Other);
    // Missing, or a FIFO where init should be: nothing read, nothing hangs.
    let d = rootfs(&[], &[]);
    nix::unistd::mkfifo(&d.path().join("init"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let i = inspect(&Root::open(d.path()).unwrap(), "/init");
    assert_eq!(i.family, Family::Other);
}

const HYBRID: &str = "\
30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
const PURE: &str = "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
const LEGACY: &str = "31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";

fn systemd(v: u32) -> InitInfo {
    InitInfo {
        family: Family::Systemd,
        systemd_version: Some(v),
        powerfail: false,
    }
}

#[test]
fn auto_picks_what_init_needs() {
    let (hybrid, pure, legacy) = (
        parse_mountinfo(HYBRID),
        parse_mountinfo(PURE),
        parse_mountinfo(LEGACY),
    );
    let auto = CgroupLayout::Auto;
    let c = choose(auto, &hybrid, &systemd(262)).unwrap();
    assert_eq!(c.view, View::Unified, "{c:?}");
    assert!(c.describe().contains("systemd 262"), "{c:?}");
    assert_eq!(
        choose(auto, &hybrid, &systemd(252)).unwrap().view,
        View::Hybrid
    );
    assert_eq!(
        choose(auto, &hybrid, &systemd(219)).unwrap().view,
        View::Hybrid
    );
    assert_eq!(
        choose(auto, &pure, &systemd(252)).unwrap().view,
        View::Unified
    );
    let e = choose(auto, &pure, &systemd(219)).unwrap_err().to_string();
    assert!(
        e.contains("systemd 219") && e.contains("systemd.unified_cgroup_hierarchy=0"),
        "{e}"
    );
    let e = choose(auto, &legacy, &systemd(262))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no cgroup2"), "{e}");
    let busybox = InitInfo {
        family: Family::Busybox,
        systemd_version: None,
        powerfail: false,
    };
    assert_eq!(choose(auto, &hybrid, &busybox).unwrap().view, View::Hybrid);
    assert_eq!(choose(auto, &pure, &busybox).unwrap().view, View::Unified);
}

#[test]
fn a_configured_layout_is_taken_where_the_host_has_it() {
    let (hybrid, pure) = (parse_mountinfo(HYBRID), parse_mountinfo(PURE));
    let c = choose(CgroupLayout::Unified, &hybrid, &systemd(252)).unwrap();
    assert_eq!(c.view, View::Unified);
    let c = choose(CgroupLayout::Hybrid, &hybrid, &systemd(262)).unwrap();
    assert_eq!(c.view, View::Hybrid);
    let e = choose(CgroupLayout::Hybrid, &pure, &systemd(252))
        .unwrap_err()
        .to_string();
    assert!(e.contains("only cgroup2"), "{e}");
}

#[test]
fn privileged_systemd_259_and_newer_is_warned_of_credentials() {
    assert!(privileged_warning(&systemd(262), true).is_none());
    assert!(privileged_warning(&systemd(257), false).is_none());
    let w = privileged_warning(&systemd(259), false).unwrap();
    assert!(w.contains("systemd 259") && w.contains("[idmap]"), "{w}");
}
