//! rlxc-migrate: a container made by LXC's own `lxc-create -t busybox` becomes an rlxc
//! container that boots; its keys translated (start.*, memory, host name), the rest
//! reported; the LXC container untouched, or removed with --move.

mod common;

use common::rt::Made;
use common::*;
use std::path::Path;
use std::process::Command;

const LXC_CONF: &str = "lxc.net.0.type = empty
lxc.start.auto = 1
lxc.start.order = 7
lxc.group = web
lxc.cgroup2.memory.max = 256M
lxc.apparmor.profile = generated
";

fn lxc_create(lxcpath: &Path, name: &str) {
    let conf = lxcpath.with_extension("conf");
    std::fs::write(&conf, LXC_CONF).unwrap();
    let out = Command::new("lxc-create")
        .arg("-P")
        .arg(lxcpath)
        .args(["-n", name, "-t", "busybox", "-f"])
        .arg(&conf)
        .output()
        .expect("lxc-create (apt-get install lxc)");
    assert!(out.status.success(), "lxc-create: {}", stderr(&out));
}

#[test]
fn an_lxc_busybox_container_migrates_and_boots() {
    let env = Env::new("http://127.0.0.1:9");
    let lxc = env.dir.path().join("lxc");
    let name = common::rt::unique("mig");
    let made = Made {
        env: &env,
        name: name.clone(),
    };
    lxc_create(&lxc, &name);
    let lxc_config = std::fs::read_to_string(lxc.join(&name).join("config")).unwrap();

    let out = env.run(&["migrate", "-n", &name, "-P", lxc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stderr(&out);
    assert!(
        report.contains("translated: lxc.start.order = 7"),
        "{report}"
    );
    assert!(
        report.contains("not translated: lxc.group = web"),
        "{report}"
    );
    assert!(
        report.contains("covered by rlxc: lxc.apparmor.profile = generated"),
        "{report}"
    );
    assert!(stdout(&out).contains("untouched"), "{}", stdout(&out));
    // LXC's container is as it was.
    assert_eq!(
        std::fs::read_to_string(lxc.join(&name).join("config")).unwrap(),
        lxc_config
    );
    assert!(lxc.join(&name).join("rootfs/bin/busybox").exists());

    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["info", "--json", "-n", &name])).unwrap();
    assert_eq!(info["hostname"], name.as_str());
    assert_eq!(info["autostart"]["enabled"], true);
    assert_eq!(info["autostart"]["order"], 7);
    assert_eq!(info["limits"]["memory"], "256M");
    assert_eq!(info["networks"][0]["type"], "empty");
    assert_eq!(info["backing_store"], "dir");

    // It boots under rlxc.
    env.ok(&["start", "-d", "-n", &name]);
    let out = env.run(&["attach", "-n", &name, "--", "hostname"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), name);
    env.ok(&["stop", "-k", "-n", &name]);

    // Once is enough: the name is taken.
    let e = env.fails(&["migrate", "-n", &name, "-P", lxc.to_str().unwrap()]);
    assert!(e.contains("exists"), "{e}");
    drop(made);
}

#[test]
fn move_removes_the_lxc_container_and_what_cannot_be_migrated_is_refused() {
    let env = Env::new("http://127.0.0.1:9");
    let lxc = env.dir.path().join("lxc");
    let name = common::rt::unique("migm");
    let _made = Made {
        env: &env,
        name: name.clone(),
    };
    lxc_create(&lxc, &name);
    env.ok(&[
        "migrate",
        "-n",
        &name,
        "-P",
        lxc.to_str().unwrap(),
        "--move",
    ]);
    assert!(!lxc.join(&name).exists());
    assert!(env
        .lxcpath()
        .join(&name)
        .join("rootfs/bin/busybox")
        .exists());

    // An unprivileged one, and one on another storage: nothing is made.
    let other = common::rt::unique("migu");
    lxc_create(&lxc, &other);
    let cfg = lxc.join(&other).join("config");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}lxc.idmap = u 0 100000 65536\n")).unwrap();
    let e = env.fails(&["migrate", "-n", &other, "-P", lxc.to_str().unwrap()]);
    assert!(
        e.contains("unprivileged") && e.contains("nothing was migrated"),
        "{e}"
    );
    std::fs::write(&cfg, text.replace("dir:", "overlay:/x:")).unwrap();
    let e = env.fails(&["migrate", "-n", &other, "-P", lxc.to_str().unwrap()]);
    assert!(e.contains("only a directory"), "{e}");
    assert!(!env.lxcpath().join(&other).exists());
}
