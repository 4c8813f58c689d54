//! Unprivileged containers end to end, as root, on the fixture images: each runs in a
//! user namespace of its own, its ids 0-65535 being a host range (`[idmap]`), its root
//! an idmapped mount of the store's files (nothing chowned). Boots on dir, overlay, a
//! copy-on-write clone and an ephemeral one; what container root can and cannot do to
//! the host; console, attach, reboot, rlxc-file; systemd to running.

mod common;

use common::overlay::{create_overlay, the_lower, tree_listing};
use common::rt::*;
use common::userns::*;
use common::*;
use std::path::Path;

#[test]
fn busybox_boots_unprivileged_and_its_root_is_nobody_on_the_host() {
    let shared = HostDir::new();
    let config = format!(
        "[limits]\nmemory = \"128M\"\npids = 100\n\n[[network]]\ntype = \"empty\"\n\n\
         [[mount]]\nsource = \"{0}\"\ntarget = \"mnt/shared\"\noptions = \"bind,create=dir\"\n\n\
         [[mount]]\nsource = \"{0}\"\ntarget = \"mnt/ro\"\noptions = \"bind,ro,create=dir\"\n",
        shared.0.path().display()
    );
    let rt = Rt::new("ubb", &config);
    let uid = base(1);
    make_unprivileged(&rt.env, &rt.name, uid);
    rt.ok(&["start", "-d"]);
    assert_runs_as(&rt.env, &rt.name, uid);
    let (env, name) = (&rt.env, rt.name.as_str());
    let rootfs = env.rootfs(name);

    // The image's ids are the container's: on disk 1000 is its 1000, 0 its root.
    assert_eq!(
        words_in(
            env,
            name,
            "stat -c %u:%g /home/user/owned-by-1000 /etc/passwd"
        ),
        ["1000:1000", "0:0"]
    );
    // What its root makes in the rootfs is on disk as the container's ids, not the
    // host range: the idmapped mount shifts them back (the file is the same for a
    // privileged run, and nothing of the tree was ever chowned).
    ok_in(
        env,
        name,
        "echo made > /etc/made; touch /home/user/by-1000; chown 1000:1000 /home/user/by-1000",
    );
    assert_eq!(owner(&rootfs.join("etc/made")), (0, 0));
    assert_eq!(owner(&rootfs.join("home/user/by-1000")), (1000, 1000));
    assert_eq!(owner(&rootfs.join("etc/passwd")), (0, 0));
    // On a host directory bound in (not idmapped) it is the host range's.
    ok_in(env, name, "touch /mnt/shared/from-root");
    assert_eq!(owner(&shared.0.path().join("from-root")), (uid, uid));
    // The same directory bound read-only (`ro`, a flag of the monitor's detached mount).
    let out = sh_in(env, name, "ls /mnt/ro/from-root && touch /mnt/ro/not-here");
    assert!(
        !out.status.success() && stderr(&out).contains("Read-only"),
        "{}",
        stderr(&out)
    );
    assert!(!shared.0.path().join("not-here").exists());

    // Container root is root of nothing on the host.
    let sleeper = HostSleep(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap(),
    );
    let host_pid = sleeper.0.id();
    let vda = host_root_device();
    let checks: Vec<(&str, String)> = vec![
        ("mknod of a block device", "mknod /tmp/sda b 8 0".into()),
        (
            "reading a block device",
            format!("mknod /tmp/root b {vda} 2>/dev/null; head -c1 /tmp/root >/dev/null"),
        ),
        (
            "mounting the host's root device",
            format!(
                "mkdir -p /tmp/m; mknod /tmp/rootdev b {vda} 2>/dev/null; \
                 mount -t ext4 /tmp/rootdev /tmp/m"
            ),
        ),
        (
            "writing /proc/sysrq-trigger",
            "echo h > /proc/sysrq-trigger".into(),
        ),
        (
            "writing /proc/sys/kernel/panic",
            "echo 7 > /proc/sys/kernel/panic".into(),
        ),
        (
            "writing /proc/sys/vm/drop_caches",
            "echo 3 > /proc/sys/vm/drop_caches".into(),
        ),
        (
            "setting the module loader",
            "echo /tmp/evil > /proc/sys/kernel/modprobe".into(),
        ),
        (
            "loading a module",
            "printf '\\177ELF' > /tmp/m.ko; insmod /tmp/m.ko".into(),
        ),
        (
            "raising its pids limit",
            "f=/sys/fs/cgroup/pids/pids.max; [ -e $f ] || f=/sys/fs/cgroup/pids.max; \
             echo max > $f"
                .into(),
        ),
        (
            "raising its memory limit",
            "f=/sys/fs/cgroup/memory/memory.limit_in_bytes; [ -e $f ] || \
             f=/sys/fs/cgroup/memory.max; echo 9999999999 > $f"
                .into(),
        ),
        ("killing a host process", format!("kill -9 {host_pid}")),
    ];
    for (what, script) in &checks {
        let out = sh_in(env, name, script);
        assert!(
            !out.status.success(),
            "{what} succeeded as container root: {script}\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let out = sh_in(env, name, "printf '\\177ELF' > /tmp/m.ko; insmod /tmp/m.ko");
    assert!(
        stderr(&out).contains("not permitted"),
        "insmod: {}",
        stderr(&out)
    );
    assert!(
        Path::new(&format!("/proc/{host_pid}")).exists(),
        "the host's sleep was killed"
    );
    // The limits are what the host set.
    let o = ok_in(
        env,
        name,
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    );
    assert_eq!(o.trim(), "100");

    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
    assert!(shared.0.path().join("from-root").exists());
}

#[test]
fn an_overlay_container_boots_unprivileged_and_its_lower_stays_as_it_was() {
    let server = HttpServer::start(&fixture_mirror());
    let env = Env::new(&server.url());
    let release = busybox_release();
    let name = unique("uov");
    let _stop = common::overlay::Stopper(&env, vec![name.clone()]);
    create_overlay(&env, &name, "busybox", &release);
    let lower = the_lower(&env, "busybox", &release);
    let pristine = tree_listing(&lower);
    let uid = base(2);
    make_unprivileged(&env, &name, uid);
    env.ok(&["start", "-d", "-n", &name]);
    assert_runs_as(&env, &name, uid);

    // Writes, a copy-up of a file of 1000's, a whiteout and an opaque directory: the
    // overlay works through idmapped layers and its upper holds the container's ids.
    ok_in(
        &env,
        &name,
        "echo new > /etc/made && echo more >> /home/user/owned-by-1000 && rm /etc/fstab \
         && rm -r /etc/acl-dir-test && mkdir /etc/acl-dir-test && mv /usr/share/udhcpc /usr/share/moved",
    );
    let upper = env.lxcpath().join(&name).join("upper");
    assert_eq!(owner(&upper.join("etc/made")), (0, 0));
    assert_eq!(owner(&upper.join("home/user/owned-by-1000")), (1000, 1000));
    let script = "stat -c %u /home/user/owned-by-1000; ls /etc/fstab 2>&1 | grep -c 'No such'; \
                  ls /usr/share/moved";
    assert_eq!(
        words_in(&env, &name, script),
        ["1000", "1", "default.script"]
    );
    env.ok(&["stop", "-k", "-n", &name]);
    // A privileged run sees the same files as the unprivileged one wrote them.
    let cfg = env.lxcpath().join(&name).join("config.toml");
    let text = read(&cfg);
    let cut = text.find("\n[idmap]").unwrap();
    std::fs::write(&cfg, &text[..cut]).unwrap();
    env.ok(&["start", "-d", "-n", &name]);
    assert_eq!(
        words_in(
            &env,
            &name,
            "cat /etc/made; stat -c %u:%g /etc/made /home/user/owned-by-1000"
        ),
        ["new", "0:0", "1000:1000"]
    );
    env.ok(&["stop", "-k", "-n", &name]);

    assert_eq!(
        tree_listing(&lower),
        pristine,
        "the shared lower was changed"
    );
    let mounts = read("/proc/self/mountinfo");
    assert!(
        !mounts.contains(&*env.lxcpath().to_string_lossy()),
        "{mounts}"
    );
}

#[test]
fn a_snapshot_clone_and_an_ephemeral_one_boot_unprivileged() {
    let rt = Rt::new("usrc", "");
    let (env, src) = (&rt.env, rt.name.clone());
    let clone = unique("ucl");
    let _g = Destroyer(env, vec![src.clone(), clone.clone()]);
    give_root_ranges(env);
    make_unprivileged(env, &src, base(3));
    // The source boots unprivileged and writes its tree (then frozen as the clone's lower).
    env.ok(&["start", "-d", "-n", &src]);
    ok_in(env, &src, "echo before > /etc/before");
    env.ok(&["stop", "-k", "-n", &src]);

    // The clone gets host ids of its own (rlxc-copy allocates them).
    env.ok(&["copy", "-s", "-n", &src, "-N", &clone]);
    let ids = mapped_uid(env, &clone);
    assert_ne!(ids, base(3));
    let frozen = env.rootfs(&src);
    let pristine = tree_listing(&frozen);
    env.ok(&["start", "-d", "-n", &clone]);
    assert_runs_as(env, &clone, ids);
    assert_eq!(
        words_in(
            env,
            &clone,
            "cat /etc/before; echo after > /etc/after; stat -c %u /etc/after"
        ),
        ["before", "0"]
    );
    env.ok(&["stop", "-k", "-n", &clone]);
    assert_eq!(
        owner(&env.lxcpath().join(&clone).join("upper/etc/after")),
        (0, 0)
    );
    assert_eq!(
        tree_listing(&frozen),
        pristine,
        "the frozen layer was changed"
    );

    // An ephemeral clone: writes on a tmpfs, unprivileged as its source.
    let out = env.run(&["copy", "-e", "-n", &src]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eph = stdout(&out).trim().to_string();
    let _g2 = Destroyer(env, vec![eph.clone()]);
    let ids = mapped_uid(env, &eph);
    assert!(ids != base(3) && ids != mapped_uid(env, &clone));
    assert_runs_as(env, &eph, ids);
    assert_eq!(
        words_in(
            env,
            &eph,
            "echo mem > /etc/mem; stat -c %u /etc/mem; cat /etc/before"
        ),
        ["0", "before"]
    );
    env.ok(&["stop", "-n", &eph, "-t", "10"]);
    assert!(!env.lxcpath().join(&eph).exists());
    assert_eq!(
        tree_listing(&frozen),
        pristine,
        "the frozen layer was changed"
    );
    rt.assert_clean();
}

#[test]
fn console_attach_file_and_reboot_of_an_unprivileged_container() {
    let rt = Rt::new("ucon", "");
    let uid = base(5);
    make_unprivileged(&rt.env, &rt.name, uid);
    let t = rt.tmux(&format!("start -n {}", rt.name));
    rt.log_in(&t);
    t.keys(&["id -u; echo the-answer-is-$((6*7))", "Enter"]);
    t.wait_for("the-answer-is-42");
    t.keys(&["C-a", "q"]);
    t.wait_for("EXIT=0");
    drop(t);
    assert_runs_as(&rt.env, &rt.name, uid);

    // An attached terminal is a pty of the container's own devpts.
    let t = rt.tmux(&format!("attach -n {} -- /bin/sh", rt.name));
    t.keys(&["tty; id -u; echo pty-$((2+3))", "Enter"]);
    let screen = t.wait_for("pty-5");
    assert!(screen.contains("/dev/pts/"), "{screen}");
    t.keys(&["exit", "Enter"]);
    t.wait_for("EXIT=0");
    drop(t);

    // rlxc-file into the running container: owned as asked, inside and on disk.
    let src = rt.env.dir.path().join("pushed");
    std::fs::write(&src, "pushed\n").unwrap();
    let dest = format!("{}:/root/pushed", rt.name);
    rt.env.ok(&["file", "push", src.to_str().unwrap(), &dest]);
    let dest1000 = format!("{}:/home/user/pushed", rt.name);
    rt.env.ok(&[
        "file",
        "push",
        "--uid",
        "1000",
        "--gid",
        "1000",
        src.to_str().unwrap(),
        &dest1000,
    ]);
    assert_eq!(
        words_in(
            &rt.env,
            &rt.name,
            "cat /root/pushed; stat -c %u:%g /root/pushed /home/user/pushed"
        ),
        ["pushed", "0:0", "1000:1000"]
    );
    let rootfs = rt.env.rootfs(&rt.name);
    assert_eq!(owner(&rootfs.join("root/pushed")), (0, 0));
    assert_eq!(owner(&rootfs.join("home/user/pushed")), (1000, 1000));
    let pulled = rt.env.dir.path().join("pulled");
    rt.env.ok(&[
        "file",
        "pull",
        &format!("{}:/etc/hostname", rt.name),
        pulled.to_str().unwrap(),
    ]);
    assert_eq!(read(&pulled).trim(), rt.name);

    // A reboot is a new unprivileged boot.
    let (first, second) = rt.reboot();
    assert_ne!(first, second);
    assert_runs_as(&rt.env, &rt.name, uid);
    rt.ok(&["stop", "-t", "20"]);
    rt.assert_clean();
}

#[test]
fn an_unprivileged_container_gets_its_veth_or_the_hosts_network() {
    let br = Bridge::new();
    let rt = Rt::new(
        "unet",
        &format!(
            "[[network]]\ntype = \"veth\"\nlink = \"{}\"\nname = \"eth0\"\n\
             hwaddr = \"00:16:3e:12:34:57\"\n",
            br.name
        ),
    );
    make_unprivileged(&rt.env, &rt.name, base(8));
    rt.ok(&["start", "-d"]);
    // The host made the veth and moved its end in; the container's root configures it.
    assert_eq!(br.ports().len(), 1, "{:?}", br.ports());
    let script = "cat /sys/class/net/eth0/address; ip link set eth0 mtu 1400 && \
                  cat /sys/class/net/eth0/mtu; echo 1 > /proc/sys/net/ipv4/conf/eth0/forwarding \
                  && echo NETSYSCTL";
    assert_eq!(
        words_in(&rt.env, &rt.name, script),
        ["00:16:3e:12:34:57", "1400", "NETSYSCTL"]
    );
    rt.ok(&["stop", "-k"]);
    assert!(br.ports().is_empty(), "{:?}", br.ports());
    rt.assert_clean();

    // With the host's network (type "none") it owns no network namespace: /sys is the
    // host's, bound read-only, and the host's network knobs stay the host's.
    let host = Rt::new("unone", "[[network]]\ntype = \"none\"\n");
    make_unprivileged(&host.env, &host.name, base(9));
    host.ok(&["start", "-d"]);
    assert_runs_as(&host.env, &host.name, base(9));
    let seen = ok_in(&host.env, &host.name, "ls /sys/class/net");
    assert!(seen.lines().any(|l| l == br.name), "{seen}");
    let forwarding = read("/proc/sys/net/ipv4/ip_forward");
    for script in [
        "echo $((1 - $(cat /proc/sys/net/ipv4/ip_forward))) > /proc/sys/net/ipv4/ip_forward",
        "touch /sys/x",
    ] {
        let out = sh_in(&host.env, &host.name, script);
        assert!(!out.status.success(), "{script} succeeded");
    }
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), forwarding);
    host.ok(&["stop", "-k"]);
    host.assert_clean();
}

#[test]
fn on_a_shared_mount_it_boots_and_its_mounts_stay_its_own() {
    // systemd makes / shared: the container's files are on a mount of a peer group.
    let rt = Rt::new("ushr", "");
    make_unprivileged(&rt.env, &rt.name, base(10));
    let lxcpath = rt.env.lxcpath();
    let shared = shared_bind(&lxcpath);
    rt.ok(&["start", "-d"]);
    assert_runs_as(&rt.env, &rt.name, base(10));
    ok_in(
        &rt.env,
        &rt.name,
        "mount -t tmpfs inside /mnt && touch /mnt/x",
    );
    let mounts = read("/proc/self/mountinfo");
    let rootfs = rt.env.rootfs(&rt.name);
    assert!(
        !mounts.contains(&*rootfs.to_string_lossy()),
        "a mount of the container reached the host:\n{mounts}"
    );
    rt.ok(&["stop", "-k"]);
    drop(shared);
    rt.assert_clean();
}

#[test]
fn a_root_that_cannot_be_idmapped_fails_the_start_naming_its_file_system() {
    let rt = Rt::new("uram", "");
    make_unprivileged(&rt.env, &rt.name, base(6));
    let rootfs = rt.env.rootfs(&rt.name);
    // ramfs has no idmapped mounts: the container's files copied onto one.
    let saved = rt.env.dir.path().join("saved-rootfs");
    assert!(std::process::Command::new("cp")
        .args(["-a", rootfs.to_str().unwrap(), saved.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let ramfs = TestMount::new(&["-t", "ramfs", "ramfs"], &rootfs);
    // Extended attributes and ACLs of the image do not fit on a ramfs: cp says so.
    let _ = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", saved.display()),
            rootfs.to_str().unwrap(),
        ])
        .status();
    assert!(rootfs.join("sbin/init").exists());
    let e = rt.env.fails(&["start", "-d", "-n", &rt.name]);
    assert!(e.contains(&rt.name) && e.contains("ramfs"), "{e}");
    assert!(e.contains("idmapped") && e.contains("[idmap]"), "{e}");
    drop(ramfs);
    rt.assert_clean();
}

#[test]
fn debian_boots_systemd_to_running_unprivileged() {
    let rt = Rt::with_image("debian", "bookworm", "udeb", "");
    let uid = base(7);
    make_unprivileged(&rt.env, &rt.name, uid);
    rt.ok(&["start", "-d"]);
    rt.assert_system_running();
    assert_runs_as_systemd(&rt, uid);
    // Its getty takes the console (init left it free): a login there works.
    rt.console_login_sees_running();
    rt.halt_systemd();
}

/// systemd's view: it knows it is in a user namespace, and its services run as the
/// container's users, which are the host range's.
fn assert_runs_as_systemd(rt: &Rt, uid: u32) {
    let map = words_in(&rt.env, &rt.name, "cat /proc/self/uid_map");
    assert_eq!(map, ["0", &uid.to_string(), "65536"]);
    let pid = rt.init_pid().unwrap();
    assert_eq!(host_ids(pid, "Uid:"), vec![uid; 4]);
    let virt = stdout(&rt.attach(&["systemd-detect-virt", "--container"]));
    assert_eq!(virt.trim(), "lxc");
}
