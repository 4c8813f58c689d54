//! rlxc-file push/pull on the busybox fixture container, stopped and running: files and
//! trees with their modes and owners, -p, special files skipped (a FIFO never hangs a
//! pull), and symlinks the container planted (absolute host paths, `../..` climbs) that
//! must never make rlxc read or write a host file.

mod common;

use common::rt::*;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn write(p: &Path, text: &str, mode: u32) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

/// `rlxc file ARGS`, failing the test if it runs longer than 60 s.
fn file(rt: &Rt, args: &[&str]) -> std::process::Output {
    let mut v = vec!["file"];
    v.extend(args);
    let (out, late) = run_bounded(&rt.env.cmd(&v), Duration::from_secs(60));
    assert!(!late, "rlxc file {args:?} hung");
    out
}

fn file_ok(rt: &Rt, args: &[&str]) -> String {
    let out = file(rt, args);
    assert!(out.status.success(), "rlxc file {args:?}: {}", stderr(&out));
    stderr(&out)
}

fn file_fails(rt: &Rt, args: &[&str]) -> String {
    let out = file(rt, args);
    assert!(
        !out.status.success(),
        "rlxc file {args:?} should have failed"
    );
    stderr(&out)
}

fn target(rt: &Rt, path: &str) -> String {
    format!("{}:{path}", rt.name)
}

/// A host tree to push: a file, an executable in a subdirectory, a symlink, a FIFO.
fn site(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    write(&site.join("index.html"), "<h1>hi</h1>\n", 0o644);
    write(&site.join("sub/run.sh"), "#!/bin/sh\necho run\n", 0o750);
    std::fs::set_permissions(site.join("sub"), std::fs::Permissions::from_mode(0o710)).unwrap();
    std::os::unix::fs::symlink("index.html", site.join("home")).unwrap();
    mkfifo(&site.join("pipe"));
    site
}

fn push_and_pull(rt: &Rt, running: bool) {
    let host = rt
        .env
        .dir
        .path()
        .join(if running { "host-run" } else { "host-stop" });
    std::fs::create_dir_all(&host).unwrap();
    let rootfs = rt.env.rootfs(&rt.name);
    let conf = host.join("app.conf");
    write(&conf, "key = value\n", 0o640);

    // A file: the source's mode, root's; into an existing directory under its name.
    file_ok(rt, &["push", conf.to_str().unwrap(), &target(rt, "/etc/")]);
    assert_eq!(read(rootfs.join("etc/app.conf")), "key = value\n");
    assert_eq!(
        (
            mode(&rootfs.join("etc/app.conf")),
            owner(&rootfs.join("etc/app.conf"))
        ),
        (0o640, (0, 0))
    );
    // Owner, mode and -p.
    let deep = target(rt, "/opt/app/conf.d/main.conf");
    let err = file_fails(rt, &["push", conf.to_str().unwrap(), &deep]);
    assert!(
        err.contains("/opt/app/conf.d") && err.contains("-p"),
        "{err}"
    );
    assert!(!rootfs.join("opt/app").exists());
    file_ok(
        rt,
        &[
            "push",
            "-p",
            "--uid",
            "1000",
            "--gid",
            "1001",
            "--mode",
            "0600",
            conf.to_str().unwrap(),
            &deep,
        ],
    );
    let pushed = rootfs.join("opt/app/conf.d/main.conf");
    assert_eq!((mode(&pushed), owner(&pushed)), (0o600, (1000, 1001)));
    assert_eq!(
        (
            mode(&rootfs.join("opt/app")),
            owner(&rootfs.join("opt/app"))
        ),
        (0o755, (0, 0))
    );
    // Inside the container, it is there too.
    if running {
        let out = rt.attach(&["cat", "/opt/app/conf.d/main.conf"]);
        assert_eq!(stdout(&out), "key = value\n");
    }

    // A tree: -r needed; modes kept, symlinks as symlinks, the FIFO skipped.
    let site = site(&host);
    let err = file_fails(
        rt,
        &["push", site.to_str().unwrap(), &target(rt, "/srv/site")],
    );
    assert!(err.contains("-r"), "{err}");
    let err = file_ok(
        rt,
        &[
            "push",
            "-r",
            "-p",
            "--uid",
            "33",
            "--gid",
            "33",
            site.to_str().unwrap(),
            &target(rt, "/srv/site"),
        ],
    );
    assert!(
        err.contains("warning: skipped") && err.contains("pipe") && err.contains("FIFO"),
        "{err}"
    );
    let srv = rootfs.join("srv/site");
    assert_eq!(read(srv.join("index.html")), "<h1>hi</h1>\n");
    assert_eq!(
        (
            mode(&srv.join("sub/run.sh")),
            owner(&srv.join("sub/run.sh"))
        ),
        (0o750, (33, 33))
    );
    assert_eq!(
        (mode(&srv.join("sub")), owner(&srv.join("sub"))),
        (0o710, (33, 33))
    );
    assert_eq!(
        std::fs::read_link(srv.join("home")).unwrap(),
        Path::new("index.html")
    );
    assert!(!srv.join("pipe").exists());

    // Pull a file (the caller's, the mode kept) and the tree back.
    let back = host.join("back");
    std::fs::create_dir(&back).unwrap();
    file_ok(
        rt,
        &[
            "pull",
            &target(rt, "/opt/app/conf.d/main.conf"),
            back.join("main.conf").to_str().unwrap(),
        ],
    );
    assert_eq!(read(back.join("main.conf")), "key = value\n");
    assert_eq!(
        (
            mode(&back.join("main.conf")),
            owner(&back.join("main.conf"))
        ),
        (0o600, (0, 0))
    );
    let err = file_fails(
        rt,
        &["pull", &target(rt, "/srv/site"), back.to_str().unwrap()],
    );
    assert!(err.contains("-r"), "{err}");
    file_ok(
        rt,
        &[
            "pull",
            "-r",
            &target(rt, "/srv/site"),
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(read(back.join("site/sub/run.sh")), "#!/bin/sh\necho run\n");
    assert_eq!(mode(&back.join("site/sub/run.sh")), 0o750);
    assert_eq!(owner(&back.join("site/sub/run.sh")), (0, 0));
    assert_eq!(
        std::fs::read_link(back.join("site/home")).unwrap(),
        Path::new("index.html")
    );

    // A FIFO in the container: skipped with a warning, not opened (which would hang).
    mkfifo(&rootfs.join("srv/fifo"));
    let err = file_ok(
        rt,
        &[
            "pull",
            &target(rt, "/srv/fifo"),
            back.join("fifo").to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("warning: skipped") && err.contains("FIFO"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(back.join("fifo")).is_err());
    // No temporary file left anywhere.
    let leftovers = Command::new("find")
        .args([&rootfs, &back])
        .args(["-name", ".rlxc-file.*"])
        .output()
        .unwrap();
    assert_eq!(stdout(&leftovers), "");
}

#[test]
fn push_and_pull_in_a_stopped_container() {
    let rt = Rt::new("file-stopped", "");
    push_and_pull(&rt, false);
}

#[test]
fn push_and_pull_in_a_running_container_go_through_its_mount_namespace() {
    let rt = Rt::new("file-running", "");
    rt.ok(&["start", "-d"]);
    push_and_pull(&rt, true);
    // /dev is the container's own tmpfs: a push there is seen inside, not on the disk,
    // and its device nodes are skipped on pull.
    let host = rt.env.dir.path().join("devtest");
    write(&host, "in dev\n", 0o644);
    file_ok(
        &rt,
        &["push", host.to_str().unwrap(), &target(&rt, "/dev/pushed")],
    );
    assert_eq!(stdout(&rt.attach(&["cat", "/dev/pushed"])), "in dev\n");
    assert!(!rt.env.rootfs(&rt.name).join("dev/pushed").exists());
    let err = file_ok(
        &rt,
        &[
            "pull",
            &target(&rt, "/dev/null"),
            rt.env.dir.path().join("null").to_str().unwrap(),
        ],
    );
    assert!(err.contains("character device"), "{err}");
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

/// Plants symlinks in the rootfs aimed at a host directory (absolute, and climbing with
/// `..`), pushes and pulls through them, and checks the host file was neither written
/// nor copied.
fn escapes(rt: &Rt) {
    let secret_dir = rt.env.dir.path().join("hostdir");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret = secret_dir.join("secret");
    write(&secret, "host secret\n", 0o600);
    let abs = secret_dir.display().to_string();
    let rootfs = rt.env.rootfs(&rt.name);
    let plant = |link: &str, to: &str| {
        let p = rootfs.join(link);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(to, p).unwrap();
    };
    let climb = format!("../../../../../../../../..{abs}");
    let payload = rt.env.dir.path().join("payload");
    write(&payload, "pwned\n", 0o644);
    let payload = payload.to_str().unwrap();
    let out = rt.env.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let host_untouched = || {
        assert_eq!(read(&secret), "host secret\n");
        assert_eq!(mode(&secret), 0o600);
        let names: Vec<_> = std::fs::read_dir(&secret_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["secret"],
            "something was created beside the host file"
        );
        let grep = Command::new("grep")
            .args(["-r", "host secret"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(stdout(&grep), "", "the host file was copied out");
    };

    for (link, to) in [
        ("abs", format!("{abs}/secret")),
        ("climb", format!("{climb}/secret")),
    ] {
        // Pushed onto the link: the link is replaced, the host file stays.
        plant(&format!("etc/{link}"), &to);
        file_ok(rt, &["push", payload, &target(rt, &format!("/etc/{link}"))]);
        host_untouched();
        assert_eq!(read(rootfs.join("etc").join(link)), "pwned\n");
        // Pulled: recreated as a link on the host, its target's content never read.
        plant(&format!("etc/{link}"), &to);
        let dest = out.join(link);
        file_ok(
            rt,
            &[
                "pull",
                &target(rt, &format!("/etc/{link}")),
                dest.to_str().unwrap(),
            ],
        );
        assert_eq!(std::fs::read_link(&dest).unwrap(), Path::new(&to));
        std::fs::remove_file(&dest).unwrap();
        host_untouched();
    }
    for (link, to) in [("absdir", abs.clone()), ("climbdir", climb.clone())] {
        plant(link, &to);
        let through = target(rt, &format!("/{link}/secret"));
        // Through a directory link: resolved inside the rootfs, where that path is not.
        let err = file_fails(rt, &["push", payload, &through]);
        assert!(err.contains("-p"), "{err}");
        let err = file_fails(rt, &["pull", &through, out.join("s").to_str().unwrap()]);
        assert!(err.contains("does not exist in the container"), "{err}");
        let err = file_fails(
            rt,
            &[
                "pull",
                "-r",
                &target(rt, &format!("/{link}/")),
                out.join("d").to_str().unwrap(),
            ],
        );
        assert!(err.contains("does not exist in the container"), "{err}");
        host_untouched();
        // -p does not create through a link whose target is missing inside the rootfs.
        let err = file_fails(rt, &["push", "-p", payload, &through]);
        assert!(
            err.contains("symlink to a directory that does not exist"),
            "{err}"
        );
        host_untouched();
    }
    // A whole tree of such links pulled: links recreated, nothing behind them copied.
    std::fs::create_dir_all(rootfs.join("trap")).unwrap();
    plant("trap/a", &format!("{abs}/secret"));
    plant("trap/b", &abs);
    plant("trap/c", &climb);
    file_ok(
        rt,
        &["pull", "-r", &target(rt, "/trap"), out.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_link(out.join("trap/b")).unwrap(),
        Path::new(&abs)
    );
    host_untouched();
    // And pushed into: a tree landing on links replaces them or stops, never follows.
    let tree = rt.env.dir.path().join("pushtree/trap");
    std::fs::create_dir_all(tree.join("b")).unwrap();
    write(&tree.join("a"), "pwned\n", 0o644);
    write(&tree.join("b/secret"), "pwned\n", 0o644);
    // Onto / it merges into the existing /trap: a (a link) is replaced, b stops it.
    let err = file_fails(
        rt,
        &["push", "-r", tree.to_str().unwrap(), &target(rt, "/")],
    );
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(read(rootfs.join("trap/a")), "pwned\n");
    host_untouched();
}

#[test]
fn planted_symlinks_never_reach_the_host_stopped_or_running() {
    let rt = Rt::new("file-escape", "");
    escapes(&rt);
    rt.ok(&["start", "-d"]);
    escapes(&rt);
    rt.ok(&["stop", "-k"]);
}

#[test]
fn bad_targets_say_what_to_write() {
    let rt = Rt::new("file-usage", "");
    let f = rt.env.dir.path().join("f");
    write(&f, "x", 0o644);
    let err = file_fails(&rt, &["push", f.to_str().unwrap(), "/etc/x"]);
    assert!(err.contains("NAME:/PATH"), "{err}");
    let err = file_fails(&rt, &["push", f.to_str().unwrap(), &target(&rt, "etc/x")]);
    assert!(err.contains("absolute"), "{err}");
    let err = file_fails(&rt, &["push", f.to_str().unwrap(), "nosuch:/etc/x"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = file_fails(&rt, &["pull", &target(&rt, "/etc/x/../passwd"), "/tmp/x"]);
    assert!(err.contains(".."), "{err}");
}
