//! `-B btrfs` end to end, as root, on a btrfs made for each test on a loop device and
//! mounted as the lxcpath: the rootfs is a subvolume, a copy and a snapshot are subvolume
//! snapshots that keep every attribute and stay apart from their origin, restore swaps a
//! subvolume in, destroy leaves no subvolume (nested and read-only ones included) and
//! nothing mounted; on another file system `-B btrfs` is refused and `best` is not btrfs.

mod common;

use common::rt::unique;
use common::tree::{first_difference, snapshot};
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run a host tool, require success, return its stdout.
fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A file system mounted for a test: a fresh btrfs (1 GiB sparse file on a loop device)
/// or a tmpfs. Dropped, even after a failed test: unmounted (lazily if something still
/// holds it), the loop device detached, the file removed.
struct Mounted {
    at: PathBuf,
    dev: Option<String>,
    mounted: bool,
    _img_dir: Option<tempfile::TempDir>,
}

impl Mounted {
    fn btrfs_on(at: &Path) -> Self {
        let img_dir = tempfile::Builder::new()
            .prefix("rlxc-btrfs-img-")
            .tempdir()
            .unwrap();
        let img = img_dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        sh("mkfs.btrfs", &["-q", p(&img)]);
        let mut fs = Mounted {
            at: at.to_path_buf(),
            dev: None,
            mounted: false,
            _img_dir: Some(img_dir),
        };
        fs.dev = Some(sh("losetup", &["--find", "--show", p(&img)]).trim().into());
        std::fs::create_dir_all(at).unwrap();
        sh("mount", &[fs.dev.as_deref().unwrap(), p(at)]);
        fs.mounted = true;
        fs
    }

    fn tmpfs_on(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        sh("mount", &["-t", "tmpfs", "-o", "size=256m", "tmpfs", p(at)]);
        Mounted {
            at: at.to_path_buf(),
            dev: None,
            mounted: true,
            _img_dir: None,
        }
    }

    /// Every subvolume on the (btrfs) file system, as `btrfs subvolume list` prints them.
    fn subvolumes(&self) -> Vec<String> {
        sh("btrfs", &["subvolume", "list", p(&self.at)])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg(&self.at)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.at).status();
            }
        }
        if let Some(dev) = &self.dev {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// An installation whose lxcpath is a fresh btrfs, served the fixture mirror; the file
/// system goes first.
struct OnBtrfs {
    fs: Mounted,
    env: Env,
    _server: HttpServer,
}

impl OnBtrfs {
    fn new() -> Self {
        let server = HttpServer::start(&fixture_mirror());
        let env = Env::new(&server.url());
        OnBtrfs {
            fs: Mounted::btrfs_on(&env.lxcpath()),
            env,
            _server: server,
        }
    }
}

/// Kills the named containers whatever the test did (before the file system goes).
struct Stopper<'a>(&'a Env, Vec<String>);

impl Drop for Stopper<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.run(&["stop", "-k", "-n", n]);
        }
    }
}

const NO_NET: &str = "[[network]]\ntype = \"empty\"\n";

/// A root of a btrfs subvolume: inode 256 on a btrfs.
fn is_subvolume(path: &Path) -> bool {
    let ino = std::fs::symlink_metadata(path).unwrap().ino();
    let fs = sh("stat", &["-f", "-c", "%T", p(path)]);
    ino == 256 && fs.trim() == "btrfs"
}

/// A subvolume's read-only flag, as btrfs-progs reads it.
fn read_only(subvolume: &Path) -> bool {
    let prop = sh("btrfs", &["property", "get", "-ts", p(subvolume), "ro"]);
    match prop.trim() {
        "ro=true" => true,
        "ro=false" => false,
        other => panic!("{}: {other}", subvolume.display()),
    }
}

fn backend(env: &Env, name: &str) -> String {
    let cfg = read(env.lxcpath().join(name).join("config.toml"));
    cfg.lines()
        .find_map(|l| l.strip_prefix("backend = "))
        .unwrap_or_else(|| panic!("no backend in {cfg}"))
        .trim_matches('"')
        .to_string()
}

fn attach(env: &Env, name: &str, script: &str) -> String {
    let out = env.run(&["attach", "-n", name, "--", "/bin/sh", "-c", script]);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    stdout(&out)
}

/// Mounts whose mount point lies under `dir` (the lxcpath's own mount aside).
fn mounts_below(dir: &Path) -> Vec<String> {
    let below = format!("{}/", dir.display());
    read("/proc/self/mountinfo")
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&below)))
        .map(str::to_string)
        .collect()
}

/// Give `root` each kind of metadata a copy must keep: an xattr, a file capability, a
/// setuid file, a hardlink.
fn add_metadata(root: &Path) {
    let f = root.join("meta-file");
    std::fs::write(&f, "x").unwrap();
    sh("setfattr", &["-n", "user.rlxc", "-v", "kept", p(&f)]);
    let cap = root.join("meta-cap");
    std::fs::write(&cap, "#!/bin/sh\n").unwrap();
    sh("setcap", &["cap_net_raw+ep", p(&cap)]);
    let suid = root.join("meta-suid");
    std::fs::write(&suid, "#!/bin/sh\n").unwrap();
    sh("chmod", &["4755", p(&suid)]);
    std::fs::hard_link(&f, root.join("meta-link")).unwrap();
}

/// Both trees alike in every attribute but the files a copy makes its own.
fn assert_same_tree(a: &Path, b: &Path) {
    let (mut ta, mut tb) = (snapshot(a), snapshot(b));
    for t in [&mut ta, &mut tb] {
        for e in ["./etc/hostname", "./etc/hosts", "./etc/machine-id"] {
            t.entries.remove(e);
        }
    }
    assert!(ta.entries.len() > 10, "{} is not a rootfs", a.display());
    for (k, want) in [("./meta-suid", "f 104755"), ("./meta-link", "nlink 2")] {
        let got = tb.entries.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(got.contains(want), "{k}: {got}");
    }
    assert!(tb.xattrs.contains("user.rlxc"), "{}", tb.xattrs);
    assert!(tb.xattrs.contains("security.capability"), "{}", tb.xattrs);
    if let Some(d) = first_difference(&ta, &tb) {
        panic!("{} and {} differ: {d}", a.display(), b.display());
    }
}

#[test]
fn a_btrfs_container_is_a_subvolume_copied_snapshotted_restored_and_destroyed_by_snapshots() {
    let t = OnBtrfs::new();
    let (env, fs) = (&t.env, &t.fs);
    let (a, b, c) = (unique("bta"), unique("btb"), unique("btc"));
    let _stop = Stopper(env, vec![a.clone(), b.clone(), c.clone()]);
    let release = busybox_release();

    env.create_with_args(&a, "busybox", &release, NO_NET, &["-B", "btrfs"]);
    assert_eq!(backend(env, &a), "btrfs");
    let ra = env.rootfs(&a);
    assert!(is_subvolume(&ra), "{} is no subvolume", ra.display());
    assert!(env.ok(&["info", "-n", &a]).contains("(btrfs)"));
    env.ok(&["start", "-d", "-n", &a]);
    assert_eq!(attach(env, &a, "cat /etc/hostname").trim(), a);
    env.ok(&["stop", "-k", "-n", &a]);

    // A copy is a snapshot: a new subvolume with the same tree, and apart from then on.
    add_metadata(&ra);
    let out = env.run(&["copy", "-n", &a, "-N", &b]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("(btrfs)"), "{}", stderr(&out));
    let rb = env.rootfs(&b);
    assert_eq!(backend(env, &b), "btrfs");
    assert!(is_subvolume(&rb));
    assert_ne!(
        std::fs::metadata(&ra).unwrap().dev(),
        std::fs::metadata(&rb).unwrap().dev(),
        "the copy is not a subvolume of its own"
    );
    assert_same_tree(&ra, &rb);
    env.ok(&["start", "-d", "-n", &b]);
    assert_eq!(attach(env, &b, "hostname").trim(), b);
    attach(env, &b, "echo copy > /only-in-b; rm /meta-file");
    env.ok(&["stop", "-k", "-n", &b]);
    std::fs::write(ra.join("only-in-a"), "a").unwrap();
    assert!(!ra.join("only-in-b").exists() && ra.join("meta-file").exists());
    assert!(!rb.join("only-in-a").exists() && rb.join("only-in-b").exists());

    // Snapshot, break, restore: subvolumes all the way.
    let passwd = read(ra.join("etc/passwd"));
    env.ok(&["snapshot", "-n", &a, "-c", "before"]);
    let snap = env.lxcpath().join(&a).join("snaps/snap0/rootfs");
    assert!(is_subvolume(&snap));
    std::fs::remove_file(ra.join("etc/passwd")).unwrap();
    std::fs::write(ra.join("stray"), "x").unwrap();
    env.ok(&["snapshot", "-n", &a, "-r", "snap0"]);
    assert!(is_subvolume(&ra), "the restored rootfs is no subvolume");
    assert_eq!(read(ra.join("etc/passwd")), passwd);
    assert!(!ra.join("stray").exists());
    assert!(!env.lxcpath().join(&a).join(".rootfs.restoring").exists());
    env.ok(&["start", "-d", "-n", &a]);
    assert_eq!(attach(env, &a, "cat /etc/passwd"), passwd);
    env.ok(&["stop", "-k", "-n", &a]);
    // The snapshot did not change with the container.
    std::fs::write(ra.join("after-restore"), "x").unwrap();
    assert!(!snap.join("after-restore").exists());

    // A container from the snapshot is a subvolume too.
    env.ok(&["snapshot", "-n", &a, "-r", "snap0", "-N", &c]);
    assert_eq!(backend(env, &c), "btrfs");
    assert!(is_subvolume(&env.rootfs(&c)));
    assert_eq!(read(env.rootfs(&c).join("etc/passwd")), passwd);

    // a, b, c and snap0: four subvolumes; destroy leaves none and nothing mounted.
    assert_eq!(fs.subvolumes().len(), 4, "{:?}", fs.subvolumes());
    env.ok(&["snapshot", "-n", &a, "-d", "snap0"]);
    assert_eq!(fs.subvolumes().len(), 3, "{:?}", fs.subvolumes());
    for n in [&a, &b, &c] {
        env.ok(&["destroy", "-n", n]);
    }
    assert!(fs.subvolumes().is_empty(), "{:?}", fs.subvolumes());
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );
    assert!(
        mounts_below(&env.lxcpath()).is_empty(),
        "{:?}",
        mounts_below(&env.lxcpath())
    );
}

#[test]
fn subvolumes_a_container_made_inside_its_rootfs_are_copied_and_destroyed() {
    let t = OnBtrfs::new();
    let (env, fs) = (&t.env, &t.fs);
    let (a, b, d) = (unique("bna"), unique("bnb"), unique("bnd"));
    let release = busybox_release();
    env.create_with_args(&a, "busybox", &release, NO_NET, &["-B", "btrfs"]);
    // As systemd-nspawn does with /var/lib/machines, one nested in another, and a
    // read-only snapshot (which unlinking could not remove).
    let ra = env.rootfs(&a);
    let machines = ra.join("var/lib/machines");
    std::fs::create_dir_all(machines.parent().unwrap()).unwrap();
    sh("btrfs", &["subvolume", "create", p(&machines)]);
    std::fs::write(machines.join("in-machines"), "m").unwrap();
    sh(
        "btrfs",
        &["subvolume", "create", p(&machines.join("inner"))],
    );
    std::fs::write(machines.join("inner/deep"), "d").unwrap();
    let ro = ra.join("var/lib/ro-snap");
    sh("btrfs", &["subvolume", "snapshot", "-r", p(&ra), p(&ro)]);
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().mtime();

    env.ok(&["copy", "-n", &a, "-N", &b]);
    let rb = env.rootfs(&b);
    for rel in [
        "var/lib/machines",
        "var/lib/machines/inner",
        "var/lib/ro-snap",
    ] {
        assert!(is_subvolume(&rb.join(rel)), "{rel} in the copy");
    }
    assert_eq!(read(rb.join("var/lib/machines/inner/deep")), "d");
    assert_eq!(read(rb.join("var/lib/machines/in-machines")), "m");
    assert!(rb.join("var/lib/ro-snap/etc/passwd").is_file());
    assert!(read_only(&rb.join("var/lib/ro-snap")));
    assert!(!read_only(&rb.join("var/lib/machines")));
    assert_eq!(mtime(&ra.join("var/lib")), mtime(&rb.join("var/lib")));
    std::fs::write(rb.join("var/lib/machines/inner/deep"), "changed").unwrap();
    assert_eq!(read(machines.join("inner/deep")), "d");

    env.ok(&["snapshot", "-n", &a]);
    // a, b, their snapshot, each with 3 nested.
    assert_eq!(fs.subvolumes().len(), 12, "{:?}", fs.subvolumes());
    env.ok(&["destroy", "-n", &a]);
    env.ok(&["destroy", "-n", &b]);
    assert!(fs.subvolumes().is_empty(), "{:?}", fs.subvolumes());

    // A dir container on btrfs with a read-only subvolume inside goes as well.
    env.create_with_args(&d, "busybox", &release, NO_NET, &["-B", "dir"]);
    assert_eq!(backend(env, &d), "dir");
    let rd = env.rootfs(&d);
    assert!(!is_subvolume(&rd));
    let inside = rd.join("var/lib/inside");
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    sh("btrfs", &["subvolume", "create", p(&inside)]);
    sh(
        "btrfs",
        &["subvolume", "snapshot", "-r", p(&inside), p(&rd.join("ro"))],
    );
    env.ok(&["destroy", "-n", &d]);
    assert!(fs.subvolumes().is_empty(), "{:?}", fs.subvolumes());
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );

    // What a killed copy leaves, a staging directory holding subvolumes (one read-only),
    // goes with the next create's sweep.
    let ghost = env.lxcpath().join(".ghost.creating");
    std::fs::create_dir(&ghost).unwrap();
    sh("btrfs", &["subvolume", "create", p(&ghost.join("rootfs"))]);
    std::fs::write(ghost.join("rootfs/f"), "x").unwrap();
    sh(
        "btrfs",
        &[
            "subvolume",
            "snapshot",
            "-r",
            p(&ghost.join("rootfs")),
            p(&ghost.join("rootfs/ro")),
        ],
    );
    env.create_with_args(&a, "busybox", &release, NO_NET, &["-B", "btrfs"]);
    assert!(!ghost.exists());
    assert_eq!(fs.subvolumes().len(), 1, "{:?}", fs.subvolumes());
    env.ok(&["destroy", "-n", &a]);
    assert!(fs.subvolumes().is_empty(), "{:?}", fs.subvolumes());
}

#[test]
fn copies_between_dir_and_btrfs_and_best_picks_btrfs() {
    let t = OnBtrfs::new();
    let (env, fs) = (&t.env, &t.fs);
    let (best, d, to_b, to_d) = (
        unique("bbest"),
        unique("bdir"),
        unique("btob"),
        unique("btod"),
    );
    let _stop = Stopper(env, vec![to_b.clone()]);
    let release = busybox_release();

    env.create_with_args(&best, "busybox", &release, NO_NET, &["-B", "best"]);
    assert_eq!(backend(env, &best), "btrfs");
    assert!(is_subvolume(&env.rootfs(&best)));

    // A dir source copied to -B btrfs: a new subvolume, the files copied.
    env.create_with_args(&d, "busybox", &release, NO_NET, &["-B", "dir"]);
    add_metadata(&env.rootfs(&d));
    env.ok(&["copy", "-n", &d, "-N", &to_b, "-B", "btrfs"]);
    assert_eq!(backend(env, &to_b), "btrfs");
    assert!(is_subvolume(&env.rootfs(&to_b)));
    assert_same_tree(&env.rootfs(&d), &env.rootfs(&to_b));
    env.ok(&["start", "-d", "-n", &to_b]);
    assert_eq!(attach(env, &to_b, "hostname").trim(), to_b);
    env.ok(&["stop", "-k", "-n", &to_b]);

    // And back to a plain directory.
    env.ok(&["copy", "-n", &to_b, "-N", &to_d, "-B", "dir"]);
    assert_eq!(backend(env, &to_d), "dir");
    assert!(!is_subvolume(&env.rootfs(&to_d)));
    assert_same_tree(&env.rootfs(&to_b), &env.rootfs(&to_d));

    // -s of a btrfs container: the copy is a snapshot already, not an overlay clone.
    let snap = unique("bsnap");
    env.ok(&["copy", "-s", "-n", &to_b, "-N", &snap]);
    assert_eq!(backend(env, &snap), "btrfs");
    assert_eq!(
        backend(env, &to_b),
        "btrfs",
        "the source was left as it was"
    );
    assert!(is_subvolume(&env.rootfs(&snap)));

    // Export and import of a btrfs container with its snapshot: subvolumes again, the
    // same trees, and the snapshot restores there.
    env.ok(&["snapshot", "-n", &to_b]);
    let archive = env.dir.path().join("b.tar.zst");
    env.ok(&["export", "-n", &to_b, "--snapshots", p(&archive)]);
    let imported = unique("bimp");
    env.ok(&["import", p(&archive), "-n", &imported]);
    assert_eq!(backend(env, &imported), "btrfs");
    assert!(is_subvolume(&env.rootfs(&imported)));
    assert_same_tree(&env.rootfs(&to_b), &env.rootfs(&imported));
    let snap_of = |n: &str| env.lxcpath().join(n).join("snaps/snap0/rootfs");
    assert!(is_subvolume(&snap_of(&imported)));
    assert_same_tree(&snap_of(&to_b), &snap_of(&imported));
    env.ok(&["snapshot", "-n", &imported, "-r", "snap0"]);
    assert!(is_subvolume(&env.rootfs(&imported)));
    // Where the lxcpath is not on btrfs, the same archive comes in as a dir.
    let plain = Env::new("http://127.0.0.1:9");
    let _tmpfs = Mounted::tmpfs_on(&plain.lxcpath());
    plain.ok(&["import", p(&archive), "-n", &imported]);
    assert_eq!(backend(&plain, &imported), "dir");
    assert_same_tree(&env.rootfs(&to_b), &plain.rootfs(&imported));
    let psnap = plain.lxcpath().join(&imported).join("snaps/snap0");
    assert!(read(psnap.join("config.toml")).contains("backend = \"dir\""));
    assert_same_tree(&snap_of(&to_b), &psnap.join("rootfs"));

    for n in [&best, &d, &to_b, &to_d, &snap, &imported] {
        env.ok(&["destroy", "-n", n]);
    }
    assert!(fs.subvolumes().is_empty(), "{:?}", fs.subvolumes());
}

#[test]
fn btrfs_off_btrfs_is_refused_naming_the_lxcpath_and_best_is_not_btrfs() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let _fs = Mounted::tmpfs_on(&env.lxcpath());
    let fstype = "tmpfs";
    let release = busybox_release();
    let name = unique("boff");
    let args = [
        "create", "-q", "-n", &name, "-B", "btrfs", "-t", "download", "-d", "busybox", "-r",
        &release,
    ];
    let err = env.fails(&args);
    let lxcpath = env.lxcpath().display().to_string();
    assert!(
        err.contains("-B btrfs") && err.contains(&lxcpath) && err.contains(fstype),
        "{err}"
    );
    assert!(err.contains("-B dir"), "{err}");
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );

    // best: not btrfs here (overlay, as it was).
    env.create_with_args(&name, "busybox", &release, NO_NET, &["-B", "best"]);
    assert_eq!(backend(&env, &name), "overlay");
    env.ok(&["destroy", "-n", &name]);

    env.create_with_args(&name, "busybox", &release, NO_NET, &["-B", "dir"]);
    let copy = unique("boffc");
    let err = env.fails(&["copy", "-n", &name, "-N", &copy, "-B", "btrfs"]);
    assert!(
        err.contains("-B btrfs") && err.contains(&lxcpath) && err.contains(fstype),
        "{err}"
    );
    assert_eq!(env.lxcpath_entries(), std::slice::from_ref(&name));
    env.ok(&["destroy", "-n", &name]);
}

/// Unprivileged on btrfs: the subvolume is a plain tree to the runtime, mounted idmapped
/// like a dir store's, and what the container's root writes is 0's on disk.
#[test]
fn a_btrfs_container_boots_unprivileged_on_an_idmapped_subvolume() {
    use common::userns::{assert_runs_as, base, make_unprivileged, ok_in, owner};
    let t = OnBtrfs::new();
    let env = &t.env;
    let name = unique("btu");
    let _stop = Stopper(env, vec![name.clone()]);
    env.create_with_args(
        &name,
        "busybox",
        &busybox_release(),
        NO_NET,
        &["-B", "btrfs"],
    );
    make_unprivileged(env, &name, base(20));
    env.ok(&["start", "-d", "-n", &name]);
    assert_runs_as(env, &name, base(20));
    ok_in(env, &name, "echo made > /etc/made");
    assert_eq!(owner(&env.rootfs(&name).join("etc/made")), (0, 0));
    env.ok(&["stop", "-k", "-n", &name]);
    assert!(mounts_below(&env.rootfs(&name)).is_empty());
}
