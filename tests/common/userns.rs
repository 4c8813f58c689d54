//! Unprivileged containers in tests: ids written into a container's config (or allocated
//! from the test's own subuid file), commands run inside, and what the host sees of
//! their ids.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Host ids far from any other user of the machine, one range per test.
pub fn base(k: u32) -> u32 {
    2_000_000_000 + k * 65536
}

/// Make container `name` unprivileged: its ids 0.. are the host's `uid`.. (what
/// rlxc-create allocates, written by hand here; an `[idmap]` already there is replaced).
pub fn make_unprivileged(env: &Env, name: &str, uid: u32) {
    let cfg = env.lxcpath().join(name).join("config.toml");
    let text = read(&cfg);
    let mut kept = String::new();
    let mut in_idmap = false;
    for l in text.lines() {
        if l.trim_start().starts_with('[') {
            in_idmap = l.trim() == "[idmap]";
        }
        if !in_idmap {
            kept.push_str(l);
            kept.push('\n');
        }
    }
    kept.push_str(&format!("\n[idmap]\nuid = {uid}\ngid = {uid}\n"));
    std::fs::write(&cfg, kept).unwrap();
}

pub fn sh_in(env: &Env, name: &str, script: &str) -> std::process::Output {
    env.run(&["attach", "-n", name, "--", "/bin/sh", "-c", script])
}

/// Run `script` in the container; it must succeed; its stdout.
pub fn ok_in(env: &Env, name: &str, script: &str) -> String {
    let out = sh_in(env, name, script);
    assert!(
        out.status.success(),
        "{name}: {script}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Run `script` in the container; it must succeed; the words of its stdout.
pub fn words_in(env: &Env, name: &str, script: &str) -> Vec<String> {
    let o = ok_in(env, name, script);
    o.split_whitespace().map(String::from).collect()
}

/// The real, effective, saved and file-system ids of process `pid`, as the host sees them.
pub fn host_ids(pid: i32, key: &str) -> Vec<u32> {
    read(format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// What every unprivileged boot shows: init and an attached shell are the container's
/// root, which is the host's `uid`.
pub fn assert_runs_as(env: &Env, name: &str, uid: u32) {
    let info = env.ok(&["info", "-n", name]);
    assert!(info.contains(&format!("no, ids {uid}-")), "{info}");
    let pid: i32 = info
        .lines()
        .find_map(|l| l.strip_prefix("PID:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("PID in info");
    assert_eq!(host_ids(pid, "Uid:"), vec![uid; 4], "init's host uids");
    assert_eq!(host_ids(pid, "Gid:"), vec![uid; 4], "init's host gids");
    let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g";
    let map = ["0".to_string(), uid.to_string(), "65536".into()];
    let want = [&map[..], &map[..], &["0".into(), "0".into()]].concat();
    assert_eq!(words_in(env, name, script), want);
    assert_eq!(ok_in(env, name, "cat /proc/1/comm").trim(), "init");
}

/// Owner and group on disk.
pub fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// A host directory any id may write to, removed on drop.
pub struct HostDir(pub tempfile::TempDir);

impl HostDir {
    pub fn new() -> Self {
        let d = tempfile::Builder::new()
            .prefix("rlxc-userns-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        HostDir(d)
    }
}

/// A host process the container must not reach; killed on drop.
pub struct HostSleep(pub std::process::Child);

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `MAJOR:MINOR` of the host's root file system.
pub fn host_root_device() -> String {
    read("/proc/self/mountinfo")
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .and_then(|l| l.split_whitespace().nth(2))
        .map(|d| d.replace(':', " "))
        .expect("the root mount")
}

/// Root's ranges for the installation's allocations: a range of its own, in files of
/// the test (the host's /etc/subuid is never touched), around the hand-written maps.
pub fn give_root_ranges(env: &Env) {
    let p = env.dir.path();
    let line = format!("root:{}:{}\n", base(0), 64 * 65536);
    std::fs::write(p.join("subuid"), &line).unwrap();
    std::fs::write(p.join("subgid"), &line).unwrap();
    env.write_config(&format!(
        "[idmap]\nsubuid = \"{}\"\nsubgid = \"{}\"\n",
        p.join("subuid").display(),
        p.join("subgid").display()
    ));
}

/// The host uid of container `name`'s root, from its config.
pub fn mapped_uid(env: &Env, name: &str) -> u32 {
    let text = read(env.lxcpath().join(name).join("config.toml"));
    let v: toml::Value = toml::from_str(&text).unwrap();
    let uid = v
        .get("idmap")
        .and_then(|m| m.get("uid"))
        .and_then(|u| u.as_integer());
    uid.unwrap_or_else(|| panic!("no [idmap] uid in {text}")) as u32
}

/// Kills and destroys the named containers whatever the test did (last first).
pub struct Destroyer<'a>(pub &'a Env, pub Vec<String>);

impl Drop for Destroyer<'_> {
    fn drop(&mut self) {
        for n in self.1.iter().rev() {
            let _ = self.0.run(&["stop", "-k", "-n", n]);
            let _ = self.0.run(&["destroy", "-f", "-n", n]);
        }
    }
}

/// A directory bound onto itself and made shared, unmounted on drop.
pub fn shared_bind(dir: &Path) -> TestMount {
    let d = dir.to_str().unwrap();
    let bind = TestMount::new(&["--bind", d], dir);
    let ok = std::process::Command::new("mount")
        .args(["--make-shared", d])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount --make-shared {d}");
    bind
}
