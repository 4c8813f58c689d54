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

#[test]
fn an_unprivileged_container_gets_the_hosts_node_bound_in() {
    let lo = Loop::new();
    // A node of the loop device readable by anyone (the container's root is nobody here).
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
