//! Hostile images: every path from an image is confined to the container's rootfs.
//! Each test plants a target outside the rootfs and checks it is untouched.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rlxc-outside-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("secret"), "original").unwrap();
        Outside { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn secret(&self) -> PathBuf {
        self.path().join("secret")
    }
    /// Untouched: only the secret, with its content and a single link.
    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["secret"],
            "something was written outside the rootfs"
        );
        assert_eq!(read(self.secret()), "original");
        assert_eq!(
            std::fs::metadata(self.secret()).unwrap().nlink(),
            1,
            "outside file was hard-linked"
        );
    }
}

/// Serve one image with this rootfs (and optional meta) and try to create it.
fn try_create(
    rootfs: Vec<u8>,
    meta: Option<Vec<u8>>,
) -> (Env, std::process::Output, HttpServer, Mirror) {
    let mut m = Mirror::new();
    let mut img = Image::new("evil", "1", "b1");
    img.rootfs_tar = rootfs;
    if let Some(meta) = meta {
        img.meta_tar = meta;
    }
    m.add(&img);
    let s = HttpServer::start(m.dir.path());
    let env = Env::new(&s.url());
    let out = env.create("victim", "evil", "1");
    (env, out, s, m)
}

fn assert_refused(out: &std::process::Output, env: &Env, what: &str) {
    assert!(!out.status.success(), "a hostile image was accepted");
    let e = stderr(out);
    assert!(e.contains("refusing image") && e.contains(what), "{e}");
    assert!(
        env.lxcpath_entries().is_empty(),
        "left behind: {:?}",
        env.lxcpath_entries()
    );
}

#[test]
fn parent_traversal_is_refused() {
    let o = Outside::new();
    let depth = "../".repeat(12);
    let name = format!("./{depth}{}/pwned", o.path().display()).replace("//", "/");
    let tar = small_rootfs().file(&name, 0o644, b"x").finish();
    let (env, out, _s, _m) = try_create(tar, None);
    assert_refused(&out, &env, "'..'");
    o.assert_untouched();
}

#[test]
fn absolute_member_is_refused() {
    let o = Outside::new();
    let name = format!("{}/pwned", o.path().display());
    let tar = small_rootfs().file(&name, 0o644, b"x").finish();
    let (env, out, _s, _m) = try_create(tar, None);
    assert_refused(&out, &env, "absolute path");
    o.assert_untouched();
}

#[test]
fn writes_through_planted_symlinks_stay_inside() {
    let o = Outside::new();
    let abs = o.path().display().to_string();
    let rel = format!("{}{}", "../".repeat(12), abs.trim_start_matches('/'));
    let tar = small_rootfs()
        // The same path exists inside the rootfs: that is where links must resolve.
        .dir(&format!(".{abs}/"), 0o755)
        // Absolute and climbing symlinks to a host directory, then members through them.
        .symlink("./abs", &abs)
        .file("./abs/pwned", 0o644, b"x")
        .symlink("./etc/rel", &rel)
        .file("./etc/rel/pwned2", 0o644, b"x")
        // A symlink to a host file, then a regular member of the same name.
        .symlink("./etc/shadow", &format!("{abs}/secret"))
        .file("./etc/shadow", 0o600, b"container shadow")
        // A directory member where a symlink to the host was planted.
        .symlink("./var", &abs)
        .dir("./var/", 0o755)
        .file("./var/pwned3", 0o644, b"x")
        .finish();
    let (env, out, _s, _m) = try_create(tar, None);
    assert!(out.status.success(), "{}", stderr(&out));
    o.assert_untouched();
    let root = env.rootfs("victim");
    // Resolved as inside the container: under the rootfs.
    assert!(root
        .join(abs.trim_start_matches('/'))
        .join("pwned")
        .is_file());
    assert!(root
        .join(abs.trim_start_matches('/'))
        .join("pwned2")
        .is_file());
    assert_eq!(read(root.join("etc/shadow")), "container shadow");
    assert!(!root.join("etc/shadow").is_symlink());
    assert!(root.join("var").is_dir() && !root.join("var").is_symlink());
    assert!(root.join("var/pwned3").is_file());
}

#[test]
fn hardlink_escapes_are_refused() {
    let o = Outside::new();
    let secret = o.secret().display().to_string();
    for (target, why) in [
        (
            format!("{}{}", "../".repeat(12), secret.trim_start_matches('/')),
            "'..'",
        ),
        (secret.clone(), "absolute path"),
    ] {
        let tar = small_rootfs().hardlink("./etc/stolen", &target).finish();
        let (env, out, _s, _m) = try_create(tar, None);
        assert_refused(&out, &env, why);
        o.assert_untouched();
    }
}

#[test]
fn hardlink_through_a_planted_symlink_stays_inside() {
    let o = Outside::new();
    let abs = o.path().display().to_string();
    // Link target resolves inside the rootfs, where no such file exists: the create fails
    // and the host file gains no link.
    let tar = small_rootfs()
        .symlink("./s", &abs)
        .hardlink("./etc/stolen", "s/secret")
        .finish();
    let (env, out, _s, _m) = try_create(tar, None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("rootfs/s is a symlink"),
        "{}",
        stderr(&out)
    );
    assert!(env.lxcpath_entries().is_empty());
    o.assert_untouched();

    // A hard link to a planted symlink links the symlink itself, not the host file.
    let tar = small_rootfs()
        .symlink("./etc/s", &format!("{abs}/secret"))
        .hardlink("./etc/stolen", "./etc/s")
        .finish();
    let (env, out, _s, _m) = try_create(tar, None);
    assert!(out.status.success(), "{}", stderr(&out));
    o.assert_untouched();
    assert!(env.rootfs("victim").join("etc/stolen").is_symlink());
}

#[test]
fn meta_templates_cannot_reach_outside() {
    let o = Outside::new();
    let abs = o.secret().display().to_string();
    let climbing = format!("/etc/{}{}", "../".repeat(12), abs.trim_start_matches('/'));
    let meta = meta_tar(
        "lxc.arch = x86_64\n",
        &format!("/etc/hostname\n{climbing}\n"),
        &[],
    );
    let (env, out, _s, _m) = try_create(small_rootfs().finish(), Some(meta));
    assert_refused(&out, &env, "templates entry");
    o.assert_untouched();

    // A listed file that is a symlink to the host resolves inside the rootfs (missing: skipped).
    std::fs::write(o.secret(), "LXC_NAME").unwrap();
    let tar = small_rootfs().symlink("./etc/link", &abs).finish();
    let meta = meta_tar(
        "lxc.arch = x86_64\n",
        &format!("/etc/hostname\n/etc/link\n{abs}\n"),
        &[],
    );
    let (env, out, _s, _m) = try_create(tar, Some(meta));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(o.secret()), "LXC_NAME", "host file was rewritten");
    assert_eq!(read(env.rootfs("victim").join("etc/hostname")), "victim\n");
}

#[test]
fn huge_meta_files_are_refused() {
    let big = "x".repeat(2 << 20);
    let meta = TarBuilder::new()
        .file("config", 0o644, big.as_bytes())
        .finish();
    let (env, out, _s, _m) = try_create(small_rootfs().finish(), Some(meta));
    assert_refused(&out, &env, "meta.tar.xz member config");
}

#[test]
fn image_mounts_are_reported_and_host_ones_need_the_flag() {
    let host_bind = "lxc.mount.entry = / hostroot none rbind,create=dir 0 0";
    let proc_mount = "lxc.mount.entry = proc mnt/proc proc nodev,noexec,nosuid 0 0";
    let meta = meta_tar(
        &format!("lxc.arch = x86_64\n{proc_mount}\n{host_bind}\n"),
        "/etc/hostname\n",
        &[],
    );
    let (env, out, _s, _m) = try_create(small_rootfs().finish(), Some(meta));
    assert_refused(&out, &env, host_bind);
    let e = stderr(&out);
    assert!(e.contains("--allow-image-host-mounts"), "{e}");
    assert!(
        !e.contains(proc_mount),
        "only the host mount is refused: {e}"
    );

    // The sysadmin allows it: both mounts are reported and kept.
    let out = env.run(&[
        "create",
        "-n",
        "victim",
        "-t",
        "download",
        "-d",
        "evil",
        "-r",
        "1",
        "--allow-image-host-mounts",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("the image adds a mount: {proc_mount}")),
        "{e}"
    );
    assert!(
        e.contains("warning: the image mounts from the host") && e.contains(host_bind),
        "{e}"
    );
    let cfg = read(env.lxcpath().join("victim/config.toml"));
    assert!(cfg.contains("target = \"hostroot\""), "{cfg}");

    // File-system mounts alone are reported and need no flag.
    let meta = meta_tar(
        &format!("lxc.arch = x86_64\n{proc_mount}\n"),
        "/etc/hostname\n",
        &[],
    );
    let (_env, out, _s, _m) = try_create(small_rootfs().finish(), Some(meta));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("the image adds a mount: {proc_mount}")));
}
