//! The real fixture images (tests/fixtures/build-mirror.sh: busybox-static and a
//! debootstrapped Debian bookworm, packed with GNU tar --xattrs --acls) served over
//! HTTP and unpacked by rlxc-create: every attribute a system container needs survives.

mod common;

use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

fn fixture_release(dist: &str) -> String {
    let index = read(fixture_mirror().join("meta/1.0/index-system"));
    index
        .lines()
        .find(|l| l.starts_with(&format!("{dist};")))
        .and_then(|l| l.split(';').nth(1))
        .unwrap_or_else(|| panic!("no {dist} in the fixture index"))
        .to_string()
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn busybox_image_keeps_every_attribute() {
    let s = HttpServer::start(&fixture_mirror());
    let env = Env::new(&s.url());
    let release = fixture_release("busybox");
    let out = env.create("bb", "busybox", &release);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = env.rootfs("bb");
    let meta =
        |p: &str| std::fs::symlink_metadata(r.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    assert_eq!(meta("usr/bin/setuid-test").mode() & 0o7777, 0o4755);
    assert_eq!(
        (
            meta("usr/bin/setuid-test").uid(),
            meta("usr/bin/setuid-test").gid()
        ),
        (0, 0)
    );
    let caps = tool("getcap", &[r.join("usr/bin/ping-test").to_str().unwrap()]);
    assert!(
        caps.contains("cap_net_raw") && caps.contains("ep"),
        "{caps}"
    );
    let acl = tool(
        "getfacl",
        &["-n", "-p", r.join("etc/acl-test").to_str().unwrap()],
    );
    assert!(acl.contains("user:1000:r--"), "{acl}");
    let dacl = tool(
        "getfacl",
        &["-n", "-p", r.join("etc/acl-dir-test").to_str().unwrap()],
    );
    assert!(dacl.contains("default:user:1000:r-x"), "{dacl}");
    let x = tool(
        "getfattr",
        &[
            "-n",
            "user.rlxc",
            "--only-values",
            r.join("etc/xattr-test").to_str().unwrap(),
        ],
    );
    assert_eq!(x, "fixture");
    assert_eq!(meta("usr/bin/hl-a").ino(), meta("usr/bin/hl-b").ino());
    assert_eq!(meta("usr/bin/hl-a").nlink(), 2);
    assert_eq!(
        std::fs::read_link(r.join("etc/symlink-test"))
            .unwrap()
            .to_str(),
        Some("hostname")
    );
    assert_eq!(
        std::fs::read_link(r.join("sbin/init")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(r.join("var/run")).unwrap().to_str(),
        Some("../run")
    );
    assert!(meta("var/test.fifo").file_type().is_fifo());
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (nix::sys::stat::makedev(1, 3), 0o666)
    );
    let console = meta("dev/console");
    assert_eq!(
        (console.rdev(), console.mode() & 0o7777),
        (nix::sys::stat::makedev(5, 1), 0o600)
    );
    let owned = meta("home/user/owned-by-1000");
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    assert_eq!(
        (meta("home/user").uid(), meta("home/user").gid()),
        (1000, 1000)
    );
    assert_eq!(meta("etc/mtime-test").mtime(), 981_173_106);
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(meta("root").mode() & 0o7777, 0o700);
    assert_eq!(meta("etc/shadow").mode() & 0o7777, 0o600);
    let long = format!(
        "usr/share/rlxc-test/long-{}/long-{}",
        "0".repeat(100),
        "0".repeat(100)
    );
    assert!(r.join(long).is_file(), "GNU long names survive");
    assert_eq!(read(r.join("etc/hostname")).trim(), "bb");
    assert!(read(r.join("etc/hosts")).contains("bb"));
    // Directory mtimes are restored after their contents were written.
    let tar = format!(
        "{}{}rootfs.tar.xz",
        fixture_mirror().display(),
        index_path("busybox")
    );
    let out = Command::new("tar")
        .args(["--full-time", "-tvJf", &tar])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let listing = stdout(&out);
    let etc = listing
        .lines()
        .find(|l| l.ends_with(" ./etc/"))
        .expect("./etc/ in the listing");
    let f: Vec<&str> = etc.split_whitespace().collect();
    let when = format!("{} {}", f[3], f[4]);
    let (secs, nsecs) = (meta("etc").mtime(), meta("etc").mtime_nsec());
    let stamp = format!("@{secs}.{nsecs:09}");
    let fmt = if when.contains('.') {
        "+%Y-%m-%d %H:%M:%S.%N"
    } else {
        "+%Y-%m-%d %H:%M:%S"
    };
    let ours = Command::new("date")
        .args(["-u", "-d", &stamp, fmt])
        .output()
        .unwrap();
    // tar prints the fraction without trailing zeros (.90954687), date with (.909546870).
    let fraction_trimmed = |t: &str| -> String {
        match t.split_once('.') {
            Some((whole, frac)) => format!("{whole}.{}", frac.trim_end_matches('0')),
            None => t.to_string(),
        }
    };
    assert_eq!(
        fraction_trimmed(stdout(&ours).trim()),
        fraction_trimmed(&when)
    );
}

fn index_path(dist: &str) -> String {
    let index = read(fixture_mirror().join("meta/1.0/index-system"));
    index
        .lines()
        .find(|l| l.starts_with(&format!("{dist};")))
        .and_then(|l| l.split(';').nth(5))
        .unwrap()
        .to_string()
}

#[test]
fn debian_image_is_a_plain_editable_rootfs() {
    let s = HttpServer::start(&fixture_mirror());
    let env = Env::new(&s.url());
    let out = env.create("deb", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    let r = env.rootfs("deb");
    assert!(read(r.join("etc/os-release")).contains("bookworm"));
    assert_eq!(read(r.join("etc/hostname")).trim(), "deb");
    // GNU tar stores ACL qualifiers by name; they resolve against the image's own groups.
    let acl = tool(
        "getfacl",
        &["-n", "-p", r.join("var/log/journal").to_str().unwrap()],
    );
    let adm_gid = read(r.join("etc/group"))
        .lines()
        .find(|l| l.starts_with("adm:"))
        .and_then(|l| l.split(':').nth(2))
        .unwrap()
        .to_string();
    assert!(
        acl.contains(&format!("default:group:{adm_gid}:r-x")),
        "{acl}"
    );
    assert!(!stderr(&out).contains("not applied"), "{}", stderr(&out));
    // The sysadmin can edit the container before its first start.
    let before = read(r.join("etc/shadow"));
    let st = Command::new("chroot")
        .arg(&r)
        .args(["passwd", "-d", "root"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", stderr(&st));
    let after = read(r.join("etc/shadow"));
    assert_ne!(before, after);
    assert!(after.starts_with("root::"), "{after}");
    // Same tree as GNU tar would make: compare a listing of types, modes and owners.
    assert_eq!(
        tree_listing(&r).len(),
        tree_count_in_tar("debian"),
        "member count"
    );
}

fn tree_listing(root: &std::path::Path) -> Vec<String> {
    let out = tool(
        "find",
        &[
            root.to_str().unwrap(),
            "-mindepth",
            "1",
            "-printf",
            "%y %m %U %G %P\n",
        ],
    );
    out.lines().map(String::from).collect()
}

fn tree_count_in_tar(dist: &str) -> usize {
    let tar = format!(
        "{}{}rootfs.tar.xz",
        fixture_mirror().display(),
        index_path(dist)
    );
    tool("tar", &["-tJf", &tar])
        .lines()
        .filter(|l| *l != "./")
        .count()
}
