//! rlxc-export / rlxc-import: a container to one archive and back, the same tree to the
//! last attribute; a copy under another name boots; a truncated, corrupt or hostile
//! archive, or a Ctrl-C, leaves nothing.

mod common;

use common::rt::*;
use common::tree::{assert_same_tree, snapshot};
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Export `rt`'s container into the test's directory.
fn export(rt: &Rt, file: &str) -> PathBuf {
    let out = rt.env.dir.path().join(file);
    let o = rt
        .env
        .run(&["export", "-n", &rt.name, out.to_str().unwrap()]);
    assert!(o.status.success(), "export: {}", stderr(&o));
    assert!(stderr(&o).contains("MB/s"), "{}", stderr(&o));
    out
}

/// Nothing of a failed import under lxcpath: no container, no staging directory.
fn assert_nothing_imported(env: &Env, keep: &[&str]) {
    let left: Vec<String> = env
        .lxcpath_entries()
        .into_iter()
        .filter(|e| !keep.contains(&e.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn busybox_exported_and_imported_under_a_new_name_is_the_same_tree_and_boots() {
    let rt = Rt::new("exp", "");
    // A running container is refused, and no file is written.
    rt.ok(&["start", "-d"]);
    let refused = rt.env.dir.path().join("running.tar.zst");
    let e = rt
        .env
        .fails(&["export", "-n", &rt.name, refused.to_str().unwrap()]);
    assert!(e.contains("is running") && e.contains("rlxc-stop"), "{e}");
    assert!(!refused.exists());
    rt.ok(&["stop", "-k"]);

    let archive = export(&rt, "bb.tar.zst");
    // One plain tar inside: manifest, config, then the rootfs.
    let listing = std::process::Command::new("tar")
        .args(["--zstd", "-tf", archive.to_str().unwrap()])
        .output()
        .unwrap();
    let names = stdout(&listing);
    let first: Vec<&str> = names.lines().take(3).collect();
    assert_eq!(first, ["manifest.toml", "config.toml", "./"], "{names}");
    // An existing file is never overwritten.
    let e = rt
        .env
        .fails(&["export", "-n", &rt.name, archive.to_str().unwrap()]);
    assert!(e.contains("exists"), "{e}");

    let copy = unique("expcopy");
    let _guard = Made {
        env: &rt.env,
        name: copy.clone(),
    };
    let o = rt
        .env
        .run(&["import", archive.to_str().unwrap(), "-n", &copy]);
    assert!(o.status.success(), "import: {}", stderr(&o));
    assert!(stderr(&o).contains("MB/s"), "{}", stderr(&o));
    // A copy names itself: only its hostname files differ.
    let src = rt.env.rootfs(&rt.name);
    assert_same_tree(
        &src,
        &rt.env.rootfs(&copy),
        &["./etc/hostname", "./etc/hosts"],
    );
    let cfg = read(rt.env.lxcpath().join(&copy).join("config.toml"));
    assert!(cfg.contains(&format!("hostname = \"{copy}\"")), "{cfg}");
    assert_eq!(read(rt.env.rootfs(&copy).join("etc/hostname")).trim(), copy);
    assert!(read(rt.env.rootfs(&copy).join("etc/hosts")).contains(&copy));

    // Restored under its own name on another installation: the very same tree.
    let other = Env::new("http://127.0.0.1:9");
    other.ok(&["import", "-q", archive.to_str().unwrap()]);
    assert_same_tree(&src, &other.rootfs(&rt.name), &[]);
    assert_eq!(
        read(rt.env.lxcpath().join(&rt.name).join("config.toml")),
        read(other.lxcpath().join(&rt.name).join("config.toml")),
        "a restore keeps the config as it was"
    );
    // The same name again is refused and changes nothing.
    let e = rt
        .env
        .fails(&["import", archive.to_str().unwrap(), "-n", &copy]);
    assert!(e.contains("already exists"), "{e}");
    let e = rt.env.fails(&["import", archive.to_str().unwrap()]);
    assert!(e.contains("already exists"), "{e}");

    rt.env.ok(&["start", "-d", "-n", &copy]);
    let out = rt.env.run(&[
        "attach",
        "-n",
        &copy,
        "--",
        "/bin/sh",
        "-c",
        "hostname; ls /etc/acl-test",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{copy}\n/etc/acl-test\n"));
    rt.env.ok(&["stop", "-k", "-n", &copy]);
}

#[test]
fn a_renamed_copy_gets_a_mac_of_its_own() {
    let rt = Rt::new(
        "expmac",
        "[[network]]\ntype = \"veth\"\nlink = \"rlxnone0\"\nhwaddr = \"00:16:3e:xx:xx:xx\"\nipv4 = \"auto\"\n",
    );
    let archive = export(&rt, "mac.tar.zst");
    let copy = unique("expmac2");
    let _guard = Made {
        env: &rt.env,
        name: copy.clone(),
    };
    rt.env
        .ok(&["import", "-q", archive.to_str().unwrap(), "-n", &copy]);
    let mac = |n: &str| {
        let cfg = read(rt.env.lxcpath().join(n).join("config.toml"));
        cfg.lines()
            .find(|l| l.starts_with("hwaddr"))
            .unwrap_or_else(|| panic!("no hwaddr in {cfg}"))
            .to_string()
    };
    assert_ne!(mac(&rt.name), mac(&copy));
    assert!(mac(&copy).contains("00:16:3e:"), "{}", mac(&copy));
}

#[test]
fn debian_exported_and_imported_is_the_same_tree() {
    let rt = Rt::with_image("debian", "bookworm", "expdeb", "");
    let archive = export(&rt, "deb.tar.zst");
    let copy = unique("expdeb2");
    let _guard = Made {
        env: &rt.env,
        name: copy.clone(),
    };
    rt.env
        .ok(&["import", "-q", archive.to_str().unwrap(), "-n", &copy]);
    assert_same_tree(
        &rt.env.rootfs(&rt.name),
        &rt.env.rootfs(&copy),
        &["./etc/hostname", "./etc/hosts"],
    );
    // The fixture's ACLs made it (GNU tar stores them by name; rlxc resolves them).
    let t = snapshot(&rt.env.rootfs(&copy));
    assert!(t.xattrs.contains("system.posix_acl_default"), "no ACLs");
}

#[test]
fn a_truncated_or_corrupt_archive_leaves_nothing() {
    let rt = Rt::new("expbad", "");
    let archive = export(&rt, "good.tar.zst");
    let bytes = std::fs::read(&archive).unwrap();
    let cases = [
        ("half", bytes[..bytes.len() / 2].to_vec()),
        ("head-only", bytes[..200].to_vec()),
        ("corrupt", {
            let mut b = bytes.clone();
            let mid = b.len() / 2;
            for x in &mut b[mid..mid + 64] {
                *x ^= 0x5a;
            }
            b
        }),
        ("empty", Vec::new()),
    ];
    for (what, data) in cases {
        let f = rt.env.dir.path().join(format!("{what}.tar.zst"));
        std::fs::write(&f, data).unwrap();
        let e = rt
            .env
            .fails(&["import", f.to_str().unwrap(), "-n", "victim"]);
        assert!(!e.contains("panicked"), "{what}: {e}");
        assert_nothing_imported(&rt.env, &[&rt.name]);
    }
    // Not an export at all: says so.
    let plain = rt.env.dir.path().join("plain.tar");
    std::fs::write(&plain, small_rootfs().finish()).unwrap();
    let e = rt
        .env
        .fails(&["import", plain.to_str().unwrap(), "-n", "victim"]);
    assert!(e.contains("not an rlxc export"), "{e}");
    assert_nothing_imported(&rt.env, &[&rt.name]);
}

const EVIL_MANIFEST: &[u8] =
    b"format = 1\nname = \"evil\"\nrlxc_version = \"0.1.0\"\nbacking_store = \"dir\"\n";

/// An archive with a valid head and `rootfs` (a tar without its end blocks is fine:
/// `TarBuilder` ends it) as the rest, zstd-compressed.
fn hostile_archive(dir: &Path, config: &str, rootfs: Vec<u8>) -> PathBuf {
    let head = TarBuilder::new()
        .file("manifest.toml", 0o600, EVIL_MANIFEST)
        .file("config.toml", 0o600, config.as_bytes())
        .finish();
    // Drop the head's end-of-archive blocks (and record padding) so the rootfs follows.
    let blocks = |n: usize| 512 + n.div_ceil(512) * 512;
    let mut data = head[..blocks(EVIL_MANIFEST.len()) + blocks(config.len())].to_vec();
    data.extend(rootfs);
    let f = dir.join(format!("evil-{}.tar.zst", data.len()));
    std::fs::write(&f, zstd::encode_all(&data[..], 1).unwrap()).unwrap();
    f
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let env = Env::new("http://127.0.0.1:9");
    let outside = tempfile::Builder::new()
        .prefix("rlxc-outside-")
        .tempdir()
        .unwrap();
    let o = outside.path().display().to_string();
    let climb = format!("./{}{}/pwned", "../".repeat(12), o.trim_start_matches('/'));
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "'..'",
            String::new(),
            small_rootfs().file(&climb, 0o644, b"x").finish(),
        ),
        (
            "absolute path",
            String::new(),
            small_rootfs()
                .file(&format!("{o}/pwned"), 0o644, b"x")
                .finish(),
        ),
        (
            "rootfs.path",
            "[rootfs]\npath = \"../../x\"\n".into(),
            small_rootfs().finish(),
        ),
        (
            "--allow-host-mounts",
            "[[mount]]\nsource = \"/\"\ntarget = \"host\"\noptions = \"rbind\"\n".into(),
            small_rootfs().finish(),
        ),
    ];
    for (what, config, rootfs) in cases {
        let f = hostile_archive(env.dir.path(), &config, rootfs);
        let e = env.fails(&["import", f.to_str().unwrap()]);
        assert!(e.contains(what), "{what}: {e}");
        assert_nothing_imported(&env, &[]);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
    // A symlink planted to the host, then a file through it: lands inside the rootfs.
    let rootfs = small_rootfs()
        // The same path exists inside the rootfs: that is where the link resolves.
        .dir(&format!(".{o}/"), 0o755)
        .symlink("./escape", &o)
        .file("./escape/pwned", 0o644, b"x")
        .finish();
    let f = hostile_archive(env.dir.path(), "", rootfs);
    env.ok(&["import", "-q", f.to_str().unwrap()]);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(env
        .rootfs("evil")
        .join(o.trim_start_matches('/'))
        .join("pwned")
        .is_file());
}

/// SIGINT to `child` once `begun` exists; it must end as interrupted (130).
fn interrupt_once(mut child: std::process::Child, begun: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !begun() {
        assert!(t0.elapsed() < Duration::from_secs(30), "it never began");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted, not finished");
}

#[test]
fn ctrl_c_during_an_export_or_an_import_leaves_nothing() {
    let rt = Rt::with_image("debian", "bookworm", "expint", "");
    let out = rt.env.dir.path().join("cut.tar.zst");
    let child = rt
        .env
        .cmd(&["export", "-n", &rt.name, out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let partial = rt
        .env
        .dir
        .path()
        .join(format!(".cut.tar.zst.partial.{}", child.id()));
    interrupt_once(child, || partial.exists());
    assert!(
        !partial.exists() && !out.exists(),
        "a half archive was left"
    );

    let archive = export(&rt, "int.tar.zst");
    let child = rt
        .env
        .cmd(&["import", archive.to_str().unwrap(), "-n", "interrupted"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has begun to write the staging directory.
    let staging = rt.env.lxcpath().join(".interrupted.creating");
    interrupt_once(child, || staging.exists());
    assert_nothing_imported(&rt.env, &[&rt.name]);
}

#[test]
fn snapshots_travel_with_export_snapshots_and_come_back_exactly() {
    let rt = Rt::new("expsnap", "");
    let r = rt.env.rootfs(&rt.name);
    let dir = rt.env.lxcpath().join(&rt.name);
    rt.ok(&["snapshot", "-c", "first"]);
    std::fs::write(r.join("etc/second"), "2\n").unwrap();
    std::fs::remove_file(r.join("etc/profile")).unwrap();
    rt.ok(&["snapshot"]);
    std::fs::write(r.join("etc/now"), "now\n").unwrap();

    // Without --snapshots the archive has none (format 1, as before).
    let plain = export(&rt, "plain.tar.zst");
    let out = rt.env.dir.path().join("snaps.tar.zst");
    let o = rt.env.run(&[
        "export",
        "-n",
        &rt.name,
        "--snapshots",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("with snapshots snap0, snap1"),
        "{}",
        stderr(&o)
    );

    // Restored on another installation: every snapshot's tree, config, time, comment.
    let other = Env::new("http://127.0.0.1:9");
    other.ok(&["import", "-q", out.to_str().unwrap()]);
    let odir = other.lxcpath().join(&rt.name);
    assert_same_tree(&r, &odir.join("rootfs"), &[]);
    assert_eq!(
        std::fs::read_dir(odir.join("snaps")).unwrap().count(),
        2,
        "no work files left beside the snapshots"
    );
    for s in ["snap0", "snap1"] {
        let (a, b) = (dir.join("snaps").join(s), odir.join("snaps").join(s));
        assert_same_tree(&a.join("rootfs"), &b.join("rootfs"), &[]);
        for f in ["config.toml", "ts", "comment"] {
            assert_eq!(read(a.join(f)), read(b.join(f)), "{s}/{f}");
        }
    }
    assert_eq!(
        rt.env.ok(&["snapshot", "-n", &rt.name, "-L"]),
        other.ok(&["snapshot", "-n", &rt.name, "-L"])
    );
    // They restore there as here.
    other.ok(&["snapshot", "-n", &rt.name, "-r", "snap0"]);
    assert_same_tree(&dir.join("snaps/snap0/rootfs"), &odir.join("rootfs"), &[]);
    let other2 = Env::new("http://127.0.0.1:9");
    other2.ok(&["import", "-q", plain.to_str().unwrap()]);
    assert!(!other2.lxcpath().join(&rt.name).join("snaps").exists());

    // A copy under another name: its snapshots name it too, and carry its MACs.
    let copy = unique("expsnap2");
    let _guard = Made {
        env: &rt.env,
        name: copy.clone(),
    };
    rt.env
        .ok(&["import", "-q", out.to_str().unwrap(), "-n", &copy]);
    let cdir = rt.env.lxcpath().join(&copy);
    for s in ["snap0", "snap1"] {
        let cfg = read(cdir.join("snaps").join(s).join("config.toml"));
        assert!(cfg.contains(&format!("hostname = \"{copy}\"")), "{cfg}");
        let host = read(cdir.join("snaps").join(s).join("rootfs/etc/hostname"));
        assert_eq!(host.trim(), copy);
    }

    // Cut short anywhere, inside a snapshot or after: nothing is left.
    let bytes = std::fs::read(&out).unwrap();
    for cut in [bytes.len() / 5, bytes.len() / 2, bytes.len() - 100] {
        let f = rt.env.dir.path().join(format!("cut{cut}.tar.zst"));
        std::fs::write(&f, &bytes[..cut]).unwrap();
        let e = rt
            .env
            .fails(&["import", f.to_str().unwrap(), "-n", "victim"]);
        assert!(!e.contains("panicked"), "{cut}: {e}");
        assert_nothing_imported(&rt.env, &[&rt.name, &copy]);
    }
}
