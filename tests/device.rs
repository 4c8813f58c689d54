//! rlxc-device end to end: a block device (a loop device the test made, with known
//! bytes) given at run time is readable inside under the path asked for, and after del
//! it is gone and a node made again by the container's root is refused by the device
//! cgroup; an unprivileged container gets the host's node bound in; a host interface (a
//! dummy the test made) moved in is there with its MAC, and comes back at del, at the
//! stop and when init dies; absent devices are clear errors.

mod common;

use common::rt::Rt;
use common::userns::{base, make_unprivileged};
use common::*;
use std::process::Command;
use std::time::Duration;

const MAGIC: &str = "HELLO-RLXC";

/// A loop device over a small file starting with `MAGIC`; detached on drop.
struct Loop {
    dev: String,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        let mut data = MAGIC.as_bytes().to_vec();
        data.resize(1 << 20, 0);
        std::fs::write(&img, data).unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {}", stderr(&out));
        Loop {
            dev: stdout(&out).trim().to_string(),
            _dir: dir,
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// A veth end on the host with a name no real setup uses (its peer stays on the host:
/// a virtual interface dies with a network namespace, so it comes back only if rlxc
/// brings it back before the namespace goes); deleted on drop.
struct Dummy {
    name: String,
}

impl Dummy {
    fn new(tag: &str) -> Self {
        let name = format!("rlxd{}{tag}", std::process::id() % 100_000);
        let st = Command::new("ip")
            .args(["link", "add", &name, "type", "veth", "peer", "name"])
            .arg(format!("{name}p"))
            .status()
            .unwrap();
        assert!(st.success(), "cannot create {name}");
        Dummy { name }
    }

    fn mac(&self) -> Option<String> {
        std::fs::read_to_string(format!("/sys/class/net/{}/address", self.name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Wait for it to be back on the host (the monitor's teardown runs after the stop
    /// returns only for a killed init).
    fn wait_back(&self) -> String {
        let what = format!("{} is not back on the host", self.name);
        wait_until(&what, Duration::from_secs(10), || self.mac().is_some());
        self.mac().unwrap_or_default()
    }
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

fn sh(rt: &Rt, script: &str) -> std::process::Output {
    rt.attach(&["/bin/sh", "-c", script])
}

#[test]
fn a_block_device_added_at_run_time_is_usable_and_gone_after_del() {
    let lo = Loop::new();
    let rt = Rt::new("devblk", "");
    rt.ok(&["start", "-d"]);
    let out = sh(&rt, "head -c 10 /dev/data");
    assert!(!out.status.success(), "no /dev/data before the add");

    rt.ok(&["device", "add", &lo.dev, "/dev/data"]);
    let out = sh(&rt, "ls -l /dev/data; head -c 10 /dev/data");
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(o.starts_with('b'), "a block node: {o}");
    assert!(o.ends_with(MAGIC), "its bytes: {o}");
    // Twice at one path is refused.
    let e = rt
        .env
        .fails(&["device", "-n", &rt.name, "add", &lo.dev, "/dev/data"]);
    assert!(e.contains("exists already"), "{e}");

    rt.ok(&["device", "del", "/dev/data"]);
    let out = sh(&rt, "test -e /dev/data && echo THERE");
    assert_eq!(stdout(&out), "", "gone after del");
    // The grant is gone too: a node made again inside cannot be read.
    let (maj, min) = major_minor(&lo.dev);
    let out = sh(
        &rt,
        &format!("mknod /dev/again b {maj} {min} && head -c 10 /dev/again"),
    );
    assert!(!out.status.success(), "read after del: {}", stdout(&out));
    assert!(
        stderr(&out).contains("not permitted"),
        "refused by the device cgroup: {}",
        stderr(&out)
    );
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

fn major_minor(dev: &str) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(dev).unwrap().rdev();
    (rdev >> 8 & 0xfff, (rdev & 0xff) | (rdev >> 12 & 0xfff00))
}

/// `rlxc-device -n NAME ARGS` fails, saying `why`.
fn refused(rt: &Rt, args: &[&str], why: &str) {
    let mut v = vec!["device", "-n", &rt.name];
    v.extend(args);
    let e = rt.env.fails(&v);
    assert!(e.contains(why), "{args:?}: {e}");
}

#[test]
fn absent_devices_and_interfaces_are_clear_errors() {
    let rt = Rt::new("devbad", "");
    refused(&rt, &["add", "/dev/null"], "not running");
    rt.ok(&["start", "-d"]);
    for (args, why) in [
        (
            &["add", "/dev/rlxc-no-such-node"][..],
            "there is no device /dev/rlxc-no-such-node on the host",
        ),
        (&["add", "/etc/passwd"], "not a device node"),
        (
            &["add", "rlxcnoif0"],
            "there is no network interface rlxcnoif0 on the host",
        ),
        (
            &["del", "/dev/nothing"],
            "there is no /dev/nothing in the container",
        ),
        (&["del", "eth9"], "eth9 is not an interface"),
        (&["add", "/dev/null", "/../escape"], ".."),
    ] {
        refused(&rt, args, why);
    }
}

/// A node of `lo` readable by anyone (an unprivileged container's root is nobody on
/// the host), in a directory of its own.
fn open_node(lo: &Loop) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("blk");
    let (maj, min) = major_minor(&lo.dev);
    let st = Command::new("mknod")
        .args(["-m", "0666"])
        .arg(&node)
        .args(["b", &maj.to_string(), &min.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    (dir, node)
}

#[test]
fn an_unprivileged_container_gets_the_hosts_node_bound_in() {
    let lo = Loop::new();
    let (_dir, node) = open_node(&lo);
    let rt = Rt::new("devuns", "");
    make_unprivileged(&rt.env, &rt.name, base(30));
    rt.ok(&["start", "-d"]);
    rt.ok(&["device", "add", node.to_str().unwrap(), "/dev/disk1"]);
    let out = sh(&rt, "head -c 10 /dev/disk1");
    assert_eq!(stdout(&out), MAGIC, "{}", stderr(&out));
    rt.ok(&["device", "del", "/dev/disk1"]);
    let out = sh(&rt, "test -e /dev/disk1 && echo THERE");
    assert_eq!(stdout(&out), "");
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn an_interface_moved_in_comes_back_at_del_at_stop_and_when_init_dies() {
    let d = Dummy::new("a");
    let mac = d.mac().unwrap();
    let rt = Rt::new("devnic", "");
    rt.ok(&["start", "-d"]);

    // In under another name, with its MAC; gone from the host; back at del.
    rt.ok(&["device", "add", &d.name, "eth1"]);
    assert_eq!(d.mac(), None, "gone from the host");
    let out = sh(&rt, "cat /sys/class/net/eth1/address");
    assert_eq!(stdout(&out).trim(), mac, "{}", stderr(&out));
    rt.ok(&["device", "del", "eth1"]);
    assert_eq!(d.mac().as_deref(), Some(mac.as_str()), "back after del");

    // Back at a clean stop.
    rt.ok(&["device", "add", &d.name]);
    assert_eq!(d.mac(), None);
    rt.ok(&["stop", "-k"]);
    assert_eq!(d.wait_back(), mac, "back after the stop");
    rt.assert_clean();

    // Back when init dies (killed from the host, no rlxc-stop).
    rt.ok(&["start", "-d"]);
    rt.ok(&["device", "add", &d.name, "eth1"]);
    let pid = rt.init_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(d.wait_back(), mac, "back after init died");
    rt.assert_clean();
}

/// Append `text` to the container's config.toml.
fn add_config(rt: &Rt, text: &str) {
    let cfg = rt.env.lxcpath().join(&rt.name).join("config.toml");
    let mut all = read(&cfg);
    all.push('\n');
    all.push_str(text);
    std::fs::write(&cfg, all).unwrap();
}

#[test]
fn config_devices_are_there_before_init_runs_and_interfaces_come_back() {
    let lo = Loop::new();
    let d = Dummy::new("b");
    let mac = d.mac().unwrap();
    let rt = Rt::new("devcfg", "");
    add_config(
        &rt,
        &format!(
            "[[device]]\nsource = {:?}\ntarget = \"/dev/data\"\n\n\
             [[device]]\nsource = {:?}\ntarget = \"eth1\"\n",
            lo.dev, d.name
        ),
    );
    // rlxc-execute's command is init's first child: both are there when it starts.
    let script = "head -c 10 /dev/data; echo; cat /sys/class/net/eth1/address";
    let out = rt
        .env
        .run(&["execute", "-n", &rt.name, "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{MAGIC}\n{mac}\n"));
    assert_eq!(d.wait_back(), mac, "back after the run");
    rt.assert_clean();

    // A system container: the same, and the config's node can be taken away live.
    rt.ok(&["start", "-d"]);
    assert_eq!(d.mac(), None, "lent at the start");
    let out = sh(&rt, "head -c 10 /dev/data");
    assert_eq!(stdout(&out), MAGIC, "{}", stderr(&out));
    rt.ok(&["device", "del", "/dev/data"]);
    let (maj, min) = major_minor(&lo.dev);
    let out = sh(
        &rt,
        &format!("mknod /dev/again b {maj} {min} && head -c 10 /dev/again"),
    );
    assert!(!out.status.success(), "read after del: {}", stdout(&out));
    rt.ok(&["stop", "-k"]);
    assert_eq!(d.wait_back(), mac, "back after the stop");
    rt.assert_clean();
}

#[test]
fn an_unprivileged_container_gets_its_config_node_bound_in() {
    let lo = Loop::new();
    let (_dir, node) = open_node(&lo);
    let rt = Rt::new("devcfgu", "");
    make_unprivileged(&rt.env, &rt.name, base(31));
    add_config(
        &rt,
        &format!("[[device]]\nsource = {node:?}\ntarget = \"/dev/disk1\"\n"),
    );
    rt.ok(&["start", "-d"]);
    let out = sh(&rt, "head -c 10 /dev/disk1");
    assert_eq!(stdout(&out), MAGIC, "{}", stderr(&out));
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();
}

#[test]
fn an_absent_config_device_is_a_start_error_naming_the_entry() {
    let rt = Rt::new("devcfgx", "");
    let cfg = rt.env.lxcpath().join(&rt.name).join("config.toml");
    let plain = read(&cfg);
    for (entry, why) in [
        (
            "[[device]]\nsource = \"/dev/null\"\n\n[[device]]\nsource = \"/dev/rlxc-no-such-node\"\n",
            "[[device]] device[1] (\"/dev/rlxc-no-such-node\") in config.toml: there is no \
             device /dev/rlxc-no-such-node on the host",
        ),
        (
            "[[device]]\nsource = \"rlxcnoif0\"\ntarget = \"eth1\"\n",
            "[[device]] device[0] (\"rlxcnoif0\" as \"eth1\") in config.toml: there is no \
             network interface rlxcnoif0 on the host",
        ),
        (
            "[[device]]\nsource = \"/etc/passwd\"\n",
            "/etc/passwd is not a device node on the host",
        ),
        // Refused at load, with the key.
        ("[[device]]\nsource = \"dev/fuse\"\n", "absolute path"),
    ] {
        std::fs::write(&cfg, format!("{plain}\n{entry}")).unwrap();
        let e = rt.env.fails(&["start", "-d", "-n", &rt.name]);
        assert!(e.contains(why), "{entry}: {e}");
        rt.assert_clean();
    }
}
