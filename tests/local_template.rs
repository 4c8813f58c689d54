//! `-t local`: an image's archives from the local disk (xz, gzip, zstd or plain tar),
//! through the same confined unpack and translation as a download, with no server.

mod common;

use common::rt::unique;
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The fixture's busybox image files (meta.tar.xz, rootfs.tar.xz).
fn busybox_files() -> (PathBuf, PathBuf) {
    let index = read(fixture_mirror().join("meta/1.0/index-system"));
    let path = index
        .lines()
        .find(|l| l.starts_with("busybox;"))
        .and_then(|l| l.split(';').nth(5))
        .expect("busybox in the fixture index")
        .trim_matches('/')
        .to_string();
    let dir = fixture_mirror().join(path);
    (dir.join("meta.tar.xz"), dir.join("rootfs.tar.xz"))
}

fn create_local(env: &Env, name: &str, meta: &Path, fstree: &Path) -> std::process::Output {
    env.run(&[
        "create",
        "-n",
        name,
        "-t",
        "local",
        "-f",
        env.dir.path().join("net.toml").to_str().unwrap(),
        "--",
        "--metadata",
        meta.to_str().unwrap(),
        "--fstree",
        fstree.to_str().unwrap(),
    ])
}

/// An installation whose download server does not exist: nothing may reach it.
fn offline_env() -> Env {
    let env = Env::new("http://127.0.0.1:9");
    std::fs::write(
        env.dir.path().join("net.toml"),
        "[[network]]\ntype = \"empty\"\n",
    )
    .unwrap();
    env
}

fn decompressed(xz_file: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let f = std::fs::File::open(xz_file).unwrap();
    std::io::Read::read_to_end(&mut xz2::read::XzDecoder::new_multi_decoder(f), &mut out).unwrap();
    out
}

/// Nothing of a failed create: no container, no staging directory, no work files.
fn assert_nothing_left(env: &Env) {
    assert!(
        env.lxcpath_entries().is_empty(),
        "left: {:?}",
        env.lxcpath_entries()
    );
    let local = env.cachepath().join("local");
    let left: Vec<_> = std::fs::read_dir(&local)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "work files left: {left:?}");
    assert!(
        local_entries(env).is_empty(),
        "cached: {:?}",
        local_entries(env)
    );
}

#[test]
fn the_fixture_image_from_local_files_boots() {
    let env = offline_env();
    let (meta, fstree) = busybox_files();
    let name = unique("local");
    let out = create_local(&env, &name, &meta, &fstree);
    assert!(out.status.success(), "{}", stderr(&out));
    // The image's create message, its templates substituted, its config translated.
    assert!(stdout(&out).contains("root password"), "{}", stdout(&out));
    assert_eq!(read(env.rootfs(&name).join("etc/hostname")).trim(), name);
    let cfg = read(env.lxcpath().join(&name).join("config.toml"));
    assert!(
        cfg.contains("[rootfs]") && cfg.contains("backend = \"dir\""),
        "{cfg}"
    );
    env.ok(&["start", "-d", "-n", &name]);
    let out = env.run(&["attach", "-n", &name, "--", "cat", "/etc/hostname"]);
    assert_eq!(stdout(&out).trim(), name, "{}", stderr(&out));
    env.ok(&["stop", "-k", "-n", &name]);
    assert!(
        std::fs::read_dir(env.cachepath().join("local"))
            .unwrap()
            .next()
            .is_none(),
        "the create's work files are left"
    );
    // The decompressed tree is kept by the archive's hash: the next create from the same
    // file only unpacks, and rlxc-image lists (and removes) it.
    assert_eq!(local_entries(&env).len(), 1, "{:?}", local_entries(&env));
    let again = unique("local2");
    let out = create_local(&env, &again, &meta, &fstree);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("decompressed earlier"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read(env.rootfs(&again).join("etc/hostname")).trim(), again);
    let ls = env.ok(&["image", "ls"]);
    assert!(ls.lines().any(|l| l.starts_with("local ")), "{ls}");
    env.ok(&["image", "rm", "local:local/rootfs.tar.xz"]);
    assert!(local_entries(&env).is_empty(), "{:?}", local_entries(&env));
}

/// Entries (not locks) of -t local's cache.
fn local_entries(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.cachepath().join("template/local"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn gzip_zstd_and_plain_archives_work_too() {
    let env = offline_env();
    let (meta, fstree) = busybox_files();
    let tar = decompressed(&fstree);
    let meta_tar = decompressed(&meta);
    let d = env.dir.path();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let forms = [
        ("gz", gz.finish().unwrap()),
        ("zst", zstd::stream::encode_all(&tar[..], 1).unwrap()),
        ("plain", tar.clone()),
    ];
    std::fs::write(d.join("meta.tar"), &meta_tar).unwrap();
    for (i, (ext, bytes)) in forms.into_iter().enumerate() {
        // Told apart by content, not by name.
        let f = d.join(format!("rootfs-{i}.archive"));
        std::fs::write(&f, bytes).unwrap();
        let name = unique(&format!("local{ext}"));
        let out = create_local(&env, &name, &d.join("meta.tar"), &f);
        assert!(out.status.success(), "{ext}: {}", stderr(&out));
        assert!(env.rootfs(&name).join("bin/busybox").is_file(), "{ext}");
    }
}

#[test]
fn hostile_and_wrong_archives_are_refused_and_leave_nothing() {
    let env = offline_env();
    let (meta, fstree) = busybox_files();
    let d = env.dir.path();

    // A member that climbs out of the rootfs.
    let evil = small_rootfs()
        .file("./../../../../../tmp/rlxc-local-pwned", 0o644, b"x")
        .finish();
    std::fs::write(d.join("evil.tar.xz"), xz(&evil)).unwrap();
    let out = create_local(&env, "evil", &meta, &d.join("evil.tar.xz"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing image"), "{}", stderr(&out));
    assert!(!Path::new("/tmp/rlxc-local-pwned").exists());
    assert_nothing_left(&env);

    // A file that is not there, a FIFO (must not hang), a rootfs given as metadata.
    let missing = d.join("nope.tar.xz");
    let out = create_local(&env, "x", &meta, &missing);
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    let fifo = d.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = create_local(&env, "x", &meta, &fifo);
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    let out = create_local(&env, "x", &fstree, &fstree);
    assert!(stderr(&out).contains("metadata"), "{}", stderr(&out));
    assert_nothing_left(&env);

    // A tree that expands past max_image_size.
    env.write_config_with("", "max_image_size = \"1M\"\n");
    let out = create_local(&env, "big", &meta, &fstree);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("max_image_size"), "{}", stderr(&out));
    assert_nothing_left(&env);

    // Without -n: the archives do not name the container.
    let out = env.run(&[
        "create",
        "-t",
        "local",
        "--",
        "--metadata",
        meta.to_str().unwrap(),
        "--fstree",
        fstree.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("needs -n"), "{}", stderr(&out));
}
