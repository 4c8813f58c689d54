//! An overlay container through every verb that reads or writes its files while it is
//! stopped, end to end as root on the busybox fixture: rlxc-file (into the upper), a
//! copy (a whole `dir` copy of the merged tree), a snapshot (its upper only), a restore
//! (the upper swapped back, it boots), a container of the snapshot (on the same lower),
//! export --snapshots and import (`dir` trees equal to the merged ones, snapshots and
//! all), rlxc-info (store, disk use, snapshots). The lower never changes and nothing
//! stays mounted.

mod common;

use common::overlay::*;
use common::rt::*;
use common::tree::{assert_same_tree, snapshot};
use common::*;
use std::path::Path;
use std::process::Command;

fn attach(env: &Env, name: &str, script: &str) -> String {
    let out = env.run(&["attach", "-n", name, "--", "/bin/sh", "-c", script]);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    stdout(&out)
}

/// What `du -sx` says the tree takes, in bytes.
fn du(p: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-sx", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success(), "du: {}", stderr(&out));
    stdout(&out)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// A size as rlxc-info writes it ("123 bytes", "1.23 MiB") in bytes, and how far off
/// its rounding may be.
fn parse_size(text: &str) -> (f64, f64) {
    let (v, unit) = text.trim().split_once(' ').unwrap();
    let exp = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or_else(|| panic!("unit of {text:?}"));
    let scale = 1024f64.powi(exp as i32);
    (v.parse::<f64>().unwrap() * scale, 0.005 * scale)
}

/// rlxc-info's `Disk use` says `want` (total, own files, snapshots) in its way.
fn assert_disk_use(info: &str, want: [u64; 3]) {
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("Disk use:"))
        .unwrap_or_else(|| panic!("no disk use in {info}"));
    let (total, rest) = line.split_once(" (").unwrap();
    let (own, rest) = rest.split_once(" own files, ").unwrap();
    let (snaps, rest) = rest.split_once(" snapshots").unwrap();
    assert_eq!(
        rest, "; shared layers outside its directory not counted)",
        "{line}"
    );
    for (shown, want) in [total, own, snaps].into_iter().zip(want) {
        let (v, slack) = parse_size(shown);
        assert!(
            (v - want as f64).abs() <= slack,
            "{shown} is not {want}: {line}"
        );
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_nothing_mounted(env: &Env) {
    let watched = [env.lxcpath(), env.cachepath()];
    let left = mounts_under(&watched);
    assert!(left.is_empty(), "still mounted: {left:?}");
}

#[test]
fn an_overlay_container_is_copied_snapshotted_restored_exported_and_imported() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let other = Env::new("http://127.0.0.1:9");
    let release = busybox_release();
    let (name, copy, fromsnap) = (unique("ovo"), unique("ovocp"), unique("ovosn"));
    let _stop = Stopper(&env, vec![name.clone(), copy.clone(), fromsnap.clone()]);
    let _stop_other = Stopper(&other, vec![name.clone()]);
    create_overlay(&env, &name, "busybox", &release);
    let lower = the_lower(&env, "busybox", &release);
    let pristine = tree_listing(&lower);
    let dir = env.lxcpath().join(&name);
    let upper = dir.join("upper");

    // rlxc-file on the stopped container: a push lands in the upper, a pull reads
    // the lower through the merged tree.
    let pushed = env.dir.path().join("pushed");
    std::fs::write(&pushed, "pushed\n").unwrap();
    let to = format!("{name}:/etc/pushed");
    env.ok(&["file", "push", pushed.to_str().unwrap(), &to]);
    assert_eq!(read(upper.join("etc/pushed")), "pushed\n");
    let pulled = env.dir.path().join("pulled");
    let from = format!("{name}:/etc/passwd");
    env.ok(&["file", "pull", &from, pulled.to_str().unwrap()]);
    assert_eq!(read(&pulled), read(lower.join("etc/passwd")));
    assert_nothing_mounted(&env);

    // Written to as it runs: a new file, a file of the lower removed (a whiteout), a
    // directory replaced (opaque), one renamed (a redirect), modes changed.
    env.ok(&["start", "-d", "-n", &name]);
    let out = attach(
        &env,
        &name,
        "echo hello > /written && rm /bin/true && rm -r /usr/share/udhcpc && \
         mkdir /usr/share/udhcpc && echo new > /usr/share/udhcpc/only && \
         mv /home/user /home/moved && echo s > /setuid && chmod 4755 /setuid && \
         chmod 600 /etc/profile && echo ok",
    );
    assert_eq!(out.trim(), "ok");
    env.ok(&["stop", "-k", "-n", &name]);
    let upper_before = snapshot(&upper);

    // A full copy: a dir container of the merged tree with its own name; the source
    // and the lower unchanged.
    env.ok(&["copy", "-n", &name, "-N", &copy]);
    let ccfg = read(env.lxcpath().join(&copy).join("config.toml"));
    assert!(
        ccfg.contains("backend = \"dir\"") && !ccfg.contains("lower"),
        "{ccfg}"
    );
    let crootfs = env.rootfs(&copy);
    assert_eq!(read(crootfs.join("written")), "hello\n");
    assert!(!crootfs.join("bin/true").exists() && crootfs.join("bin/busybox").is_file());
    assert_eq!(names_in(&crootfs.join("usr/share/udhcpc")), ["only"]);
    assert!(crootfs.join("home/moved/owned-by-1000").is_file());
    assert!(!crootfs.join("home/user").exists());
    assert_eq!(read(crootfs.join("etc/hostname")).trim(), copy);
    {
        let merged = Merged::mount(&[&upper, &lower], env.dir.path().join("merged"));
        assert_same_tree(&merged.at, &crootfs, &["./etc/hostname", "./etc/hosts"]);
    }
    assert_eq!(
        snapshot(&upper),
        upper_before,
        "the copy changed the source"
    );
    assert_nothing_mounted(&env);

    // A snapshot holds the upper only, the very upper.
    env.ok(&["snapshot", "-n", &name, "-c", "before breaking"]);
    let snap = dir.join("snaps/snap0");
    assert_eq!(names_in(&snap), ["comment", "config.toml", "ts", "upper"]);
    assert_eq!(snapshot(&snap.join("upper")), upper_before);
    let list = env.ok(&["snapshot", "-n", &name, "-L"]);
    assert!(
        list.contains("snap0") && list.contains("before breaking"),
        "{list}"
    );

    // Broken, restored: the upper is back on the same lower, and it boots.
    env.ok(&["start", "-d", "-n", &name]);
    attach(&env, &name, "rm /etc/passwd; echo broken > /written");
    env.ok(&["stop", "-k", "-n", &name]);
    env.ok(&["snapshot", "-n", &name, "-r", "snap0"]);
    assert_eq!(snapshot(&upper), upper_before);
    assert!(
        names_in(&dir.join("work")).is_empty(),
        "a fresh work directory"
    );
    assert!(!dir.join(".upper.restoring").exists());
    assert!(read(dir.join("config.toml")).contains(&format!("lower = \"{}\"", lower.display())));
    env.ok(&["start", "-d", "-n", &name]);
    let out = attach(
        &env,
        &name,
        "cat /written /etc/pushed; test -e /etc/passwd && echo PASSWD; \
         test -e /bin/true || echo NOTRUE",
    );
    assert_eq!(out, "hello\npushed\nPASSWD\nNOTRUE\n");
    env.ok(&["stop", "-k", "-n", &name]);

    // A container of the snapshot: on the same lower, a copy of its upper, its name.
    env.ok(&["snapshot", "-n", &name, "-r", "snap0", "-N", &fromsnap]);
    let fdir = env.lxcpath().join(&fromsnap);
    let fcfg = read(fdir.join("config.toml"));
    assert!(fcfg.contains("backend = \"overlay\""), "{fcfg}");
    assert!(
        fcfg.contains(&format!("lower = \"{}\"", lower.display())),
        "{fcfg}"
    );
    assert_eq!(read(fdir.join("upper/written")), "hello\n");
    assert_eq!(read(fdir.join("upper/etc/hostname")).trim(), fromsnap);
    assert_eq!(
        snapshot(&snap.join("upper")),
        upper_before,
        "the snapshot changed"
    );

    // rlxc-info: the store, what its own files and snapshots take, the snapshots.
    let info = env.ok(&["info", "-n", &name]);
    let store = format!("{} (overlay on {})", upper.display(), lower.display());
    assert!(info.contains(&format!("Backing store:  {store}")), "{info}");
    let (total, snaps) = (du(&dir), du(&dir.join("snaps")));
    assert_disk_use(&info, [total, total - snaps, snaps]);
    assert!(total < du(&lower), "the lower was counted: {info}");
    assert!(info.contains("Snapshots:      1: snap0 (20"), "{info}");

    // Exported with its snapshots, imported on another installation: dir trees equal
    // to the merged ones, the snapshot's time and comment kept.
    let archive = env.dir.path().join("ovo.tar.zst");
    let a = archive.to_str().unwrap();
    let out = env.run(&["export", "-n", &name, "--snapshots", a]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("with snapshots snap0"),
        "{}",
        stderr(&out)
    );
    let listing = Command::new("tar")
        .args(["--zstd", "-tf", a])
        .output()
        .unwrap();
    let names = stdout(&listing);
    let first: Vec<&str> = names.lines().take(7).collect();
    assert_eq!(
        first,
        [
            "manifest.toml",
            "config.toml",
            "snaps/snap0/config.toml",
            "snaps/snap0/ts",
            "snaps/snap0/comment",
            "snaps/snap0/rootfs.tar.000000",
            "./"
        ],
        "{names}"
    );
    other.ok(&["import", "-q", a]);
    let odir = other.lxcpath().join(&name);
    for cfg in [
        odir.join("config.toml"),
        odir.join("snaps/snap0/config.toml"),
    ] {
        let text = read(&cfg);
        assert!(
            text.contains("backend = \"dir\"") && !text.contains("lower"),
            "{}: {text}",
            cfg.display()
        );
    }
    {
        let merged = Merged::mount(&[&upper, &lower], env.dir.path().join("merged"));
        assert_same_tree(&merged.at, &odir.join("rootfs"), &[]);
        let merged = Merged::mount(
            &[&snap.join("upper"), &lower],
            env.dir.path().join("merged-snap"),
        );
        assert_same_tree(&merged.at, &odir.join("snaps/snap0/rootfs"), &[]);
    }
    for f in ["ts", "comment"] {
        assert_eq!(
            read(snap.join(f)),
            read(odir.join("snaps/snap0").join(f)),
            "{f}"
        );
    }
    let list = other.ok(&["snapshot", "-n", &name, "-L"]);
    assert!(
        list.contains("snap0") && list.contains("before breaking"),
        "{list}"
    );
    other.ok(&["start", "-d", "-n", &name]);
    assert_eq!(attach(&other, &name, "cat /written"), "hello\n");
    other.ok(&["stop", "-k", "-n", &name]);

    for e in [&env, &other] {
        assert_nothing_mounted(e);
    }
    assert_eq!(tree_listing(&lower), pristine, "the lower changed");
}

/// The processes `pid` started (its threads' children).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let list = std::fs::read_to_string(t.unwrap().path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

/// Gone, or a zombie waiting for its new parent to reap it.
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_killed_copy_or_export_of_an_overlay_container_leaves_no_mount_and_no_process() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let name = unique("ovkill");
    let _stop = Stopper(&env, vec![name.clone()]);
    create_overlay(&env, &name, "debian", "bookworm");
    let lower = the_lower(&env, "debian", "bookworm");
    let pristine = tree_listing(&lower);
    let archive = env.dir.path().join("killed.tar.zst");
    let dst = unique("ovkilled");
    for (tool, args) in [
        ("cp", vec!["copy", "-n", &name, "-N", &dst]),
        (
            "tar",
            vec!["export", "-n", &name, archive.to_str().unwrap()],
        ),
    ] {
        let mut rlxc = env
            .cmd(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        let kids = loop {
            let kids = children(rlxc.id());
            if !kids.is_empty() {
                break kids;
            }
            assert!(t0.elapsed().as_secs() < 60, "{tool} never started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            rlxc.try_wait().unwrap().is_none(),
            "{tool} finished too soon to be killed"
        );
        // While it reads the merged tree, no mount of it is to be seen.
        assert_nothing_mounted(&env);
        rlxc.kill().unwrap();
        rlxc.wait().unwrap();
        // The tool reading the merged tree dies with rlxc, and the detached mount with it
        // (it was never attached anywhere to see).
        let t0 = std::time::Instant::now();
        while !kids.iter().all(|k| ended(*k)) {
            assert!(
                t0.elapsed().as_secs() < 10,
                "{tool} ({kids:?}) outlived rlxc"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_nothing_mounted(&env);
    }
    assert!(!archive.exists() && !env.lxcpath().join(&dst).exists());
    // What the killed copy staged goes with the next one.
    env.ok(&["copy", "-n", &name, "-N", &dst]);
    assert_eq!(
        env.lxcpath_entries().len(),
        2,
        "{:?}",
        env.lxcpath_entries()
    );
    assert_eq!(tree_listing(&lower), pristine, "the lower changed");
    assert_nothing_mounted(&env);
}

#[test]
fn a_clone_on_frozen_layers_is_snapshotted_and_exported_with_its_layers_merged() {
    let rt = Rt::new("ovlay", "");
    let clone = unique("ovlayc");
    let _made = Made {
        env: &rt.env,
        name: clone.clone(),
    };
    rt.env.ok(&["copy", "-s", "-n", &rt.name, "-N", &clone]);
    let push = |file: &str| {
        let host = rt.env.dir.path().join(file);
        std::fs::write(&host, format!("{file}\n")).unwrap();
        let to = format!("{clone}:/etc/{file}");
        rt.env.ok(&["file", "push", host.to_str().unwrap(), &to]);
    };
    push("before");
    rt.env.ok(&["snapshot", "-n", &clone]);
    push("after");
    let dir = rt.env.lxcpath().join(&clone);
    assert_eq!(
        names_in(&dir.join("snaps/snap0/upper/etc")),
        ["before", "hostname", "hosts"]
    );

    let archive = rt.env.dir.path().join("clone.tar.zst");
    let a = archive.to_str().unwrap();
    rt.env.ok(&["export", "-q", "-n", &clone, "--snapshots", a]);
    let other = Env::new("http://127.0.0.1:9");
    other.ok(&["import", "-q", a]);
    let odir = other.lxcpath().join(&clone);
    let (tree, snap) = (odir.join("rootfs"), odir.join("snaps/snap0/rootfs"));
    assert_eq!(
        read(tree.join("etc/before")) + &read(tree.join("etc/after")),
        "before\nafter\n"
    );
    assert_eq!(read(snap.join("etc/before")), "before\n");
    assert!(!snap.join("etc/after").exists());
    for t in [&tree, &snap] {
        assert!(
            t.join("bin/busybox").is_file(),
            "the frozen layer is in {}",
            t.display()
        );
    }
    // Restored there, it is the snapshot's tree.
    other.ok(&["snapshot", "-n", &clone, "-r", "snap0"]);
    assert!(!tree.join("etc/after").exists() && tree.join("etc/before").is_file());
    for e in [&rt.env, &other] {
        assert_nothing_mounted(e);
    }
}
