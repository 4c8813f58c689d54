//! lxcfs's views: without an lxcfs on the host a start says nothing about it and
//! rlxc-info says the views are off; with one (started here on a mountpoint of the
//! test's own when none runs), /proc/meminfo and /proc/uptime inside are the
//! container's, `free -m` in a Debian container shows its memory limit, and info says
//! the views are on. One test: an lxcfs the test starts is seen by every start
//! on the host.

mod common;

use common::rt::Rt;
use common::*;
use std::process::{Child, Command};
use std::time::Duration;

fn lxcfs_running() -> bool {
    read("/proc/self/mountinfo").contains(" - fuse.lxcfs ")
}

/// An lxcfs in the foreground on a temporary mountpoint; stopped and unmounted on drop.
struct Lxcfs {
    child: Child,
    dir: tempfile::TempDir,
}

impl Lxcfs {
    fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("lxcfs").arg(dir.path()).spawn().ok()?;
        let l = Lxcfs { child, dir };
        wait_until("no lxcfs mount", Duration::from_secs(10), lxcfs_running);
        Some(l)
    }
}

impl Drop for Lxcfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn views_off_without_lxcfs_and_free_shows_the_limit_with_it() {
    let rt = Rt::new(
        "views",
        "[limits]\nmemory = \"256M\"\n\n[[network]]\ntype = \"empty\"\n",
    );
    if !lxcfs_running() {
        let out = rt.run(&["start", "-d"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let said = stderr(&out);
        assert!(
            !said.to_lowercase().contains("lxcfs") && !said.contains("warning"),
            "a start without lxcfs says nothing of it: {said}"
        );
        let info = rt.info();
        assert!(
            info.contains("lxcfs views:") && info.contains("off"),
            "{info}"
        );
        rt.ok(&["stop", "-k"]);
    }
    let _ours = if lxcfs_running() {
        None
    } else {
        // Not installed is a failure, never a pass: packaging/setup.sh --deps installs it.
        Some(Lxcfs::start().expect("lxcfs is not installed: run packaging/setup.sh --deps"))
    };
    rt.ok(&["start", "-d"]);
    let info = rt.info();
    assert!(
        info.contains("lxcfs views:") && info.contains("on"),
        "{info}"
    );
    // busybox's free asks sysinfo(2), which no FUSE view can answer: the view itself
    // must show the limit.
    let meminfo = stdout(&rt.attach(&["head", "-1", "/proc/meminfo"]));
    assert_eq!(
        meminfo.split_whitespace().nth(1),
        Some("262144"),
        "/proc/meminfo inside: {meminfo}"
    );
    let uptime = stdout(&rt.attach(&["cat", "/proc/uptime"]));
    let up: f64 = uptime
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::MAX);
    assert!(
        up < 60.0,
        "/proc/uptime inside is the container's lifetime: {uptime}"
    );
    rt.ok(&["stop", "-k"]);
    rt.assert_clean();

    // procps' free (a Debian container) reads /proc/meminfo: it shows the limit.
    let deb = Rt::with_image(
        "debian",
        "bookworm",
        "views-deb",
        "[limits]\nmemory = \"256M\"\n\n[[network]]\ntype = \"empty\"\n",
    );
    deb.ok(&["start", "-d"]);
    let out = deb.attach(&["free", "-m"]);
    let total: Option<u64> = stdout(&out)
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|t| t.parse().ok());
    assert_eq!(total, Some(256), "free -m inside:\n{}", stdout(&out));
    deb.ok(&["stop", "-k"]);
    deb.assert_clean();
}
