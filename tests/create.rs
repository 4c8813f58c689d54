//! rlxc-create -t download against a real HTTP server on 127.0.0.1 serving LXC-format
//! mirrors built in memory: the happy path, the cache, the network's failure modes.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn create_list_info_destroy() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let out = env.create("web1", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("You just created a test container."));
    let err = stderr(&out);
    assert!(
        err.contains("lxc.apparmor.profile"),
        "ignored lines are reported: {err}"
    );

    let root = env.rootfs("web1");
    assert_eq!(read(root.join("etc/hostname")), "web1\n");
    assert!(read(root.join("etc/hosts")).contains("127.0.1.1 web1"));
    assert_eq!(
        std::fs::read_link(root.join("sbin/init")).unwrap().to_str(),
        Some("/bin/init")
    );
    assert_eq!(
        std::fs::metadata(root.join("root")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(root.join("etc/passwd")).unwrap().mtime(),
        1_600_000_000
    );

    let cfg = read(env.lxcpath().join("web1/config.toml"));
    assert!(cfg.contains("hostname = \"web1\""), "{cfg}");
    assert!(
        cfg.contains(&format!("arch = \"{}\"", host_arch())),
        "{cfg}"
    );
    assert!(cfg.contains("link = \"virbr0\""), "{cfg}");
    assert!(cfg.contains("build = \"20261120_05:24\""), "{cfg}");
    let mac = cfg
        .lines()
        .find(|l| l.starts_with("hwaddr"))
        .expect("hwaddr");
    assert!(mac.contains("00:16:3e:") && !mac.contains('x'), "{mac}");

    assert_eq!(env.ok(&["ls", "-1"]), "web1\n");
    let table = env.ok(&["ls", "-f"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "STATE", "AUTOSTART", "IPV4", "IPV6"]
    );
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["web1", "STOPPED", "0", "-", "-"]
    );
    let info = env.ok(&["info", "-n", "web1"]);
    assert!(
        info.contains("State:") && info.contains("STOPPED"),
        "{info}"
    );
    assert!(info.contains("debian bookworm"), "{info}");

    let dup = env.create("web1", "debian", "bookworm");
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));

    env.ok(&["destroy", "-n", "web1"]);
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );
    assert_eq!(env.ok(&["ls"]), "");
    let e = env.fails(&["info", "-n", "web1"]);
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn multicall_names_and_lxc_style_template_args() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new("http://127.0.0.1:9");
    let link = env.dir.path().join("rlxc-create");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlxc"), &link).unwrap();
    let server = s.url();
    let out = std::process::Command::new(&link)
        .args([
            "-n", "c1", "-t", "download", "--", "--server", &server, "-d", "debian", "-r",
            "bookworm",
        ])
        .env("RLXC_CONFIG", env.dir.path().join("rlxc.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.rootfs("c1").join("etc/passwd").is_file());
    // The -P override applies to every command.
    let other = env.dir.path().join("other");
    env.ok(&[
        "create",
        "-P",
        other.to_str().unwrap(),
        "-n",
        "c2",
        "-t",
        "download",
        "--server",
        &server,
        "-d",
        "debian",
        "-r",
        "bookworm",
    ]);
    assert!(other.join("c2/rootfs/etc/passwd").is_file());
    assert_eq!(env.ok(&["ls", "-P", other.to_str().unwrap()]), "c2\n");
    assert_eq!(env.ok(&["ls"]), "c1\n");
}

#[test]
fn name_defaults_to_dist_release() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    env.ok(&["create", "-t", "download", "-d", "centos", "-r", "9-Stream"]);
    assert_eq!(env.ok(&["ls", "-1"]), "centos-9-Stream\n");
}

#[test]
fn bad_names_touch_nothing() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    for bad in [
        "../evil",
        "a/b",
        "-x",
        ".hidden",
        "sp ace",
        "tab\tname",
        &"n".repeat(65),
    ] {
        let arg = format!("--name={bad}");
        let e = env.fails(&[
            "create", &arg, "-t", "download", "-d", "debian", "-r", "bookworm",
        ]);
        assert!(e.contains("invalid container name"), "{bad:?}: {e}");
    }
    // Each refusal gives its own reason, and the hint states the rule the check enforces.
    for (bad, why) in [
        (".", "it is '.', the directory itself"),
        ("..", "it contains '..'"),
        ("_x", "it starts with '_', not a letter or digit"),
    ] {
        let arg = format!("--name={bad}");
        let e = env.fails(&[
            "create", &arg, "-t", "download", "-d", "debian", "-r", "bookworm",
        ]);
        assert!(e.contains(why), "{bad:?}: {e}");
        assert!(e.contains("starting with a letter or digit"), "{e}");
    }
    assert!(!env.lxcpath().exists());
    assert!(
        s.log().is_empty(),
        "no request before the name is checked: {:?}",
        s.log()
    );
}

#[test]
fn bad_values_in_the_defaults_are_refused_before_anything() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let file = env.dir.path().join("bad.toml");
    for (toml, named) in [
        ("hostname = \"web\\n1\"\n", "hostname = \"web\\n1\""),
        ("hostname = \"\"\n", "hostname = \"\": it is empty"),
        (
            "[signals]\nhalt = \"SIGBOGUS\"\n",
            "signals.halt = \"SIGBOGUS\"",
        ),
        (
            "[[mount]]\nsource = \"data\"\ntarget = \"mnt\"\noptions = \"bind\"\n",
            "mount[0].source = \"data\"",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let f = file.to_str().unwrap();
        let e = env.fails(&[
            "create", "-n", "x", "-t", "download", "-d", "debian", "-r", "bookworm", "-f", f,
        ]);
        assert!(e.contains("bad.toml") && e.contains(named), "{toml:?}: {e}");
    }
    assert!(
        env.lxcpath_entries().is_empty(),
        "{:?}",
        env.lxcpath_entries()
    );
}

#[test]
fn system_directories_are_refused_as_installation_paths() {
    let env = Env::new("http://127.0.0.1:9");
    let cfg = env.dir.path().join("rlxc.toml");
    for (text, key) in [
        ("lxcpath = \"/\"\n", "lxcpath"),
        ("cachepath = \"/var/\"\n", "cachepath"),
        ("runpath = \"/run/rlxc/../..\"\n", "runpath"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let e = env.fails(&["ls"]);
        assert!(
            e.contains("rlxc.toml") && e.contains(&format!("key `{key}`")),
            "{e}"
        );
        assert!(e.contains("system directory") || e.contains("'..'"), "{e}");
    }
    env.write_config("");
    // -P too, before anything is touched (--list only reads the server).
    let e = env.fails(&["create", "-P", "/", "-t", "download", "--list"]);
    assert!(e.contains("-P /") && e.contains("system directory"), "{e}");
    let e = env.fails(&["ls", "-P", "/var/lib/rlxc/../.."]);
    assert!(e.contains("'..'"), "{e}");
}

#[test]
fn work_dirs_of_killed_creates_are_swept_by_the_next_create() {
    let mut m = Mirror::new();
    // Enough members that the unpack takes a while: the create is killed in the middle.
    let mut t = small_rootfs();
    for i in 0..500 {
        t = t.file(&format!("./usr/share/f{i}"), 0o644, b"data");
    }
    let mut img = Image::new("debian", "bookworm", "b1");
    img.rootfs_tar = t.finish();
    m.add(&img);
    let s = HttpServer::start(m.dir.path());
    let env = Env::new(&s.url());
    let mut child = env
        .cmd(&[
            "create", "-q", "-n", "killed", "-t", "download", "-d", "debian", "-r", "bookworm",
        ])
        .spawn()
        .unwrap();
    let staging = env.lxcpath().join(".killed.creating");
    let t0 = std::time::Instant::now();
    while !staging.join("rootfs/usr/share").exists() {
        assert!(
            t0.elapsed().as_secs() < 30 && child.try_wait().unwrap().is_none(),
            "the create ended before it could be killed mid-unpack"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staging.is_dir(), "SIGKILL leaves the staging directory");

    // A create in progress (its lock held) and a destroy that was killed.
    let held = env.lxcpath().join(".busy.creating");
    std::fs::create_dir_all(held.join("rootfs")).unwrap();
    let lock = std::fs::File::create(env.lxcpath().join(".locks/busy")).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let doomed = env.lxcpath().join(".old.destroying");
    std::fs::create_dir_all(doomed.join("rootfs/etc")).unwrap();

    let out = env.create("other", "debian", "bookworm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!staging.exists(), "stale staging directory left");
    assert!(!doomed.exists(), "stale destroying directory left");
    assert!(held.is_dir(), "a create in progress was touched");
    let e = stderr(&out);
    assert!(
        e.contains(".killed.creating") && e.contains(".old.destroying"),
        "{e}"
    );
    assert_eq!(env.lxcpath_entries(), [".busy.creating", "other"]);
    // The killed name is free again.
    assert!(env.create("killed", "debian", "bookworm").status.success());
}

#[test]
fn no_match_lists_what_the_index_has_and_leaves_nothing() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let e = env.fails(&[
        "create", "-n", "c7", "-t", "download", "-d", "centos", "-r", "7",
    ]);
    assert!(e.contains("no image for centos 7"), "{e}");
    assert!(e.contains("9-Stream") && e.contains("10-Stream"), "{e}");
    assert!(e.contains("-t local") && e.contains("--fstree"), "{e}");
    let e = env.fails(&[
        "create", "-n", "x", "-t", "download", "-d", "debain", "-r", "bookworm",
    ]);
    assert!(e.contains("did you mean debian"), "{e}");
    assert!(env.lxcpath_entries().is_empty());
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[test]
fn list_prints_the_index_as_a_table() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let out = env.ok(&["create", "-t", "download", "--list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["DIST", "RELEASE", "ARCH", "VARIANT", "BUILD"]
    );
    assert_eq!(lines.len(), 4, "{out}");
    let out = env.ok(&["create", "-t", "download", "--list", "-d", "centos"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(!out.contains("debian"));
}

#[test]
fn not_on_a_terminal_missing_dist_points_at_list() {
    let (_m, s) = mirror_with_debian();
    let env = Env::new(&s.url());
    let e = env.fails(&["create", "-n", "x", "-t", "download"]);
    assert!(e.contains("--list"), "{e}");
}
