//! Faults in the storage verbs, end to end as root: Ctrl-C and SIGKILL in the middle of a
//! copy, a snapshot or a restore, a full disk under copy, snapshot, export and import,
//! and a second command racing one that holds the container. Each leaves no half
//! container or snapshot, and the source as it was.

mod common;

use common::rt::{unique, Rt};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A busybox container holding a large file, so a copy of it takes a while.
fn big_source(tag: &str) -> Rt {
    let rt = Rt::new(tag, "");
    let f = std::fs::File::create(rt.env.rootfs(&rt.name).join("big")).unwrap();
    // Written, not sparse: cp must copy every byte.
    let chunk = pseudo_random(1 << 20, 7);
    let mut w = std::io::BufWriter::new(f);
    for _ in 0..600 {
        std::io::Write::write_all(&mut w, &chunk).unwrap();
    }
    std::io::Write::flush(&mut w).unwrap();
    std::fs::write(rt.env.rootfs(&rt.name).join("marker"), "before\n").unwrap();
    rt
}

fn spawn(rt: &Rt, args: &[&str]) -> Child {
    rt.env
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `begun`, give it a moment to be in the middle, then send `sig`.
fn hit(child: &mut Child, sig: nix::sys::signal::Signal, begun: impl Fn() -> bool) -> Option<i32> {
    let t0 = Instant::now();
    while !begun() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before it began"
        );
        assert!(t0.elapsed() < Duration::from_secs(30), "it never began");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        child.try_wait().unwrap().is_none(),
        "it finished before the signal; make the source bigger"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    child.wait().unwrap().code()
}

/// A directory has something in it (a copy under way).
fn filling(p: PathBuf) -> impl Fn() -> bool {
    move || std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_some())
}

fn names(rt: &Rt) -> Vec<String> {
    stdout(&rt.env.run(&["ls", "-1"]))
        .lines()
        .map(String::from)
        .collect()
}

fn snapshots(rt: &Rt) -> String {
    rt.ok(&["snapshot", "-L"])
}

fn hidden_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') && n != ".locks")
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn interrupted_or_killed_copies_snapshots_and_restores_leave_nothing_half_made() {
    use nix::sys::signal::Signal::{SIGINT, SIGKILL};
    let rt = big_source("fltcp");
    let lx = rt.env.lxcpath();
    let new = unique("fltnew");

    // Ctrl-C: the copy says it was interrupted and removes what it made.
    let mut c = spawn(&rt, &["copy", "-n", &rt.name, "-N", &new]);
    let staging = lx.join(format!(".{new}.creating"));
    let code = hit(&mut c, SIGINT, filling(staging.join("rootfs")));
    assert_eq!(code, Some(130));
    assert!(!staging.exists() && !lx.join(&new).exists());
    assert_eq!(names(&rt), [rt.name.as_str()]);

    // SIGKILL: nothing can clean up, but no container appears, and the next copy of
    // that name sweeps the remains.
    let mut c = spawn(&rt, &["copy", "-n", &rt.name, "-N", &new]);
    assert_eq!(hit(&mut c, SIGKILL, filling(staging.join("rootfs"))), None);
    assert_eq!(names(&rt), [rt.name.as_str()]);
    rt.env.ok(&["copy", "-n", &rt.name, "-N", &new]);
    assert!(hidden_in(&lx).is_empty(), "{:?}", hidden_in(&lx));
    rt.env.ok(&["destroy", "-n", &new]);

    // Snapshots, the same two ways.
    let snaps = lx.join(&rt.name).join("snaps");
    let building = snaps.join(".snap0.creating");
    let mut c = spawn(&rt, &["snapshot", "-n", &rt.name]);
    assert_eq!(
        hit(&mut c, SIGINT, filling(building.join("rootfs"))),
        Some(130)
    );
    assert!(!snapshots(&rt).contains("snap0"), "{}", snapshots(&rt));
    assert!(hidden_in(&snaps).is_empty(), "{:?}", hidden_in(&snaps));
    let mut c = spawn(&rt, &["snapshot", "-n", &rt.name]);
    assert_eq!(hit(&mut c, SIGKILL, filling(building.join("rootfs"))), None);
    assert!(!snapshots(&rt).contains("snap0"), "{}", snapshots(&rt));
    rt.ok(&["snapshot"]);
    assert!(snapshots(&rt).contains("snap0"));
    assert!(hidden_in(&snaps).is_empty(), "{:?}", hidden_in(&snaps));

    // A restore cut short leaves the container as it was.
    std::fs::write(rt.env.rootfs(&rt.name).join("marker"), "after\n").unwrap();
    let restoring = lx.join(&rt.name).join(".rootfs.restoring");
    let mut c = spawn(&rt, &["snapshot", "-n", &rt.name, "-r", "snap0"]);
    assert_eq!(hit(&mut c, SIGINT, filling(restoring.clone())), Some(130));
    assert_eq!(read(rt.env.rootfs(&rt.name).join("marker")), "after\n");
    assert!(!restoring.exists());
    rt.ok(&["snapshot", "-r", "snap0"]);
    assert_eq!(read(rt.env.rootfs(&rt.name).join("marker")), "before\n");
}

#[test]
fn a_command_racing_one_that_holds_the_container_is_refused_with_who_holds_it() {
    let rt = big_source("fltrace");
    let new = unique("fltrn");
    let staging = rt.env.lxcpath().join(format!(".{new}.creating"));
    let mut c = spawn(&rt, &["copy", "-n", &rt.name, "-N", &new]);
    let begun = filling(staging.join("rootfs"));
    let t0 = Instant::now();
    while !begun() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the copy never began"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for args in [
        vec!["snapshot", "-n", &rt.name],
        vec!["destroy", "-n", &rt.name],
        vec!["start", "-d", "-n", &rt.name],
        vec!["copy", "-n", &rt.name, "-N", "other1"],
        vec!["export", "-n", &rt.name, "/nonexistent/x.tar.zst"],
    ] {
        let err = rt.env.fails(&args);
        assert!(
            err.contains("copying this container"),
            "{args:?} while a copy runs: {err}"
        );
    }
    assert!(c.wait().unwrap().success());
    assert_eq!(names(&rt).len(), 2);
    rt.env.ok(&["destroy", "-n", &new]);
}

/// Every entry of a tree with size and mode.
fn listing(root: &Path) -> String {
    let out = std::process::Command::new("find")
        .arg(root)
        .args(["-printf", "%P %s %m\\n"])
        .output()
        .unwrap();
    stdout(&out)
}

/// A small tmpfs mounted over a directory, gone at drop whatever happened.
struct SmallFs(TestMount);

impl SmallFs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let size = format!("size={size}");
        SmallFs(TestMount::new(&["-t", "tmpfs", "-o", &size, "tmpfs"], at))
    }

    /// Take all but `leave` bytes of the free space.
    fn fill(&self, leave: u64) -> PathBuf {
        let at = &self.0 .0;
        let st = nix::sys::statvfs::statvfs(at).unwrap();
        let free = st.blocks_available() * st.fragment_size();
        let filler = at.join("filler");
        let f = std::fs::File::create(&filler).unwrap();
        let n = free.saturating_sub(leave) as usize;
        std::io::Write::write_all(&mut &f, &vec![1u8; n]).unwrap();
        filler
    }
}

#[test]
fn a_full_disk_fails_copy_snapshot_export_and_import_cleanly() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let _fs = SmallFs::mount(&env.lxcpath(), "48M");
    let name = unique("fltfull");
    env.create_with(
        &name,
        "busybox",
        &busybox_release(),
        "[[network]]\ntype = \"empty\"\n",
    );
    let rt = Rt { env, server, name };
    let lx = rt.env.lxcpath();
    let archive = rt.env.dir.path().join("ok.tar.zst");
    rt.ok(&["export", archive.to_str().unwrap()]);
    let tree_before = listing(&rt.env.rootfs(&rt.name));
    let filler = _fs.fill(256 << 10);

    let err = rt.env.fails(&["copy", "-n", &rt.name, "-N", "full1"]);
    assert!(
        err.contains("No space left") || err.contains("space"),
        "{err}"
    );
    assert!(
        !lx.join("full1").exists() && hidden_in(&lx).is_empty(),
        "{:?}",
        hidden_in(&lx)
    );

    let err = rt.env.fails(&["snapshot", "-n", &rt.name]);
    assert!(err.contains("space"), "{err}");
    assert!(!snapshots(&rt).contains("snap0"));
    assert!(hidden_in(&lx.join(&rt.name).join("snaps")).is_empty());

    let out = lx.join("out.tar.zst");
    let err = rt
        .env
        .fails(&["export", "-n", &rt.name, out.to_str().unwrap()]);
    assert!(err.contains("space"), "{err}");
    assert!(
        !out.exists() && hidden_in(&lx).is_empty(),
        "{:?}",
        hidden_in(&lx)
    );

    let err = rt
        .env
        .fails(&["import", archive.to_str().unwrap(), "-n", "full2"]);
    assert!(err.contains("space"), "{err}");
    assert!(
        !lx.join("full2").exists() && hidden_in(&lx).is_empty(),
        "{:?}",
        hidden_in(&lx)
    );

    // The source is whole, and with room again every one of them works.
    let tree_after = listing(&rt.env.rootfs(&rt.name));
    assert_eq!(tree_before, tree_after);
    std::fs::remove_file(filler).unwrap();
    rt.env.ok(&["copy", "-n", &rt.name, "-N", "full1"]);
    rt.ok(&["snapshot"]);
    rt.env
        .ok(&["import", archive.to_str().unwrap(), "-n", "full2"]);
    for n in ["full1", "full2"] {
        rt.env.ok(&["destroy", "-n", n]);
    }
    rt.env.ok(&["destroy", "-n", &rt.name]);
}
