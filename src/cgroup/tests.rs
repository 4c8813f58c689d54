//! Creating and configuring a cgroup against temporary directories laid out as a hybrid
//! (v1 controllers and a unified mount) and as a pure cgroup2 host. No root needed: the
//! cgroup2 device filter, the one step that needs a real cgroup2, is not called here
//! (`sys::bpf` tests it against the kernel).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::files::{apply, row, Setting, Write, TABLE};
use super::*;

const KEY: &str = "web1.0123abcd";

fn hierarchy(root: &Path, dir: &str, controllers: &[&str], v2: bool) -> Hierarchy {
    let mountpoint = root.join(dir);
    fs::create_dir(&mountpoint).unwrap();
    Hierarchy {
        mountpoint,
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
        v2,
    }
}

/// v1 memory, cpu+cpuacct, pids, devices, cpuset and an unified cgroup2 without
/// controllers, as systemd's hybrid mode mounts them.
fn hybrid(root: &Path) -> Layout {
    let layout = Layout {
        hierarchies: vec![
            hierarchy(root, "memory", &["memory"], false),
            hierarchy(root, "cpu,cpuacct", &["cpu", "cpuacct"], false),
            hierarchy(root, "pids", &["pids"], false),
            hierarchy(root, "devices", &["devices"], false),
            hierarchy(root, "cpuset", &["cpuset"], false),
            hierarchy(root, "freezer", &["freezer"], false),
            hierarchy(root, "unified", &[], true),
        ],
    };
    fs::write(root.join("cpuset/cpuset.cpus"), "0-3\n").unwrap();
    fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
    fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
    layout
}

fn pure_v2(root: &Path, controllers: &str) -> Layout {
    let h = hierarchy(root, "cgroup2", &[], true);
    fs::write(h.mountpoint.join("cgroup.controllers"), controllers).unwrap();
    Layout {
        hierarchies: vec![h],
    }
}

/// Through TOML, as a container's config gives them.
fn limits(toml_text: &str) -> Limits {
    toml::from_str(toml_text).unwrap()
}

fn all_limits() -> Limits {
    limits("memory = \"512M\"\ncpus = 1.5\npids = 100\n")
}

fn content(p: PathBuf) -> String {
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn dir_of(cg: &Cgroup, mount: &str) -> PathBuf {
    let h = cg
        .layout
        .hierarchies
        .iter()
        .find(|h| h.mountpoint.ends_with(mount))
        .unwrap();
    cg.path_in(h)
}

#[test]
fn every_setting_has_one_row() {
    let all = [
        Setting::MemoryLimit,
        Setting::SwapLimit,
        Setting::CpuQuota,
        Setting::CpuWeight,
        Setting::Cpuset,
        Setting::PidsMax,
        Setting::IoWeight,
        Setting::DevicesDeny,
        Setting::DevicesAllow,
        Setting::CpuUsageNs,
        Setting::MemoryUsage,
        Setting::SwapUsage,
        Setting::PidsCurrent,
        Setting::IoReadBytes,
        Setting::IoWriteBytes,
        Setting::Freeze,
    ];
    for s in all {
        assert_eq!(row(s).setting, s);
    }
    assert_eq!(TABLE.len(), all.len(), "a setting has two rows");
}

#[test]
fn hybrid_create_makes_every_hierarchy_and_copies_the_cpuset() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(hybrid(tmp.path()), KEY);
    assert!(!cg.exists());
    cg.create().unwrap();
    assert!(cg.exists());
    for h in &cg.layout.hierarchies {
        assert!(cg.path_in(h).is_dir(), "{}", cg.path_in(h).display());
    }
    let cpuset = tmp.path().join("cpuset/rlxc");
    for dir in [cpuset.clone(), cpuset.join(KEY)] {
        assert_eq!(content(dir.join("cpuset.cpus")), "0-3");
        assert_eq!(content(dir.join("cpuset.mems")), "0");
    }
    // The unified mount offers no controllers: nothing to enable.
    assert!(!tmp.path().join("unified/cgroup.subtree_control").exists());
    // A second run finds the first one's cgroup.
    let e = cg.create().unwrap_err();
    assert!(
        matches!(e, Error::Busy { ref name, .. } if name == "web1"),
        "{e}"
    );
}

#[test]
fn hybrid_configure_writes_v1_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(hybrid(tmp.path()), KEY);
    cg.create().unwrap();

    let devices = dir_of(&cg, "devices");
    let writes = cg.device_writes(&[]);
    let mut expect = vec![Write {
        path: devices.join("devices.deny"),
        content: "a".into(),
    }];
    expect.extend(DEVICES_ALLOW.iter().map(|r| Write {
        path: devices.join("devices.allow"),
        content: r.to_string(),
    }));
    assert_eq!(writes, expect);
    apply(&writes).unwrap();
    assert_eq!(content(devices.join("devices.deny")), "a");

    cg.apply_limits(&all_limits()).unwrap();
    let memory = dir_of(&cg, "memory");
    let cpu = dir_of(&cg, "cpu,cpuacct");
    assert_eq!(content(memory.join("memory.limit_in_bytes")), "536870912");
    assert_eq!(content(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(content(cpu.join("cpu.cfs_quota_us")), "150000");
    assert_eq!(content(dir_of(&cg, "pids").join("pids.max")), "100");
    // v1 holds the controllers: nothing goes to the unified tree.
    let unified: Vec<_> = fs::read_dir(dir_of(&cg, "unified")).unwrap().collect();
    assert!(unified.is_empty(), "{unified:?}");
}

/// The keys beyond memory, cpus and pids.
fn more_limits() -> Limits {
    limits(
        "memory = \"512M\"\nmemory_swap = \"256M\"\ncpu_weight = 50\ncpuset = \"1\"\nio_weight = 2000\n",
    )
}

#[test]
fn hybrid_writes_swap_weights_and_cpuset_in_v1_terms() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = hybrid(tmp.path());
    layout
        .hierarchies
        .push(hierarchy(tmp.path(), "blkio", &["blkio"], false));
    let cg = Cgroup::new(layout, KEY);
    cg.create().unwrap();
    cg.apply_limits(&more_limits()).unwrap();
    let memory = dir_of(&cg, "memory");
    assert_eq!(content(memory.join("memory.limit_in_bytes")), "536870912");
    // v1 limits memory and swap together.
    assert_eq!(
        content(memory.join("memory.memsw.limit_in_bytes")),
        "805306368"
    );
    // Weight 50 is half the default: 512 of 1024 shares.
    assert_eq!(
        content(dir_of(&cg, "cpu,cpuacct").join("cpu.shares")),
        "512"
    );
    assert_eq!(content(dir_of(&cg, "cpuset").join("cpuset.cpus")), "1");
    // BFQ's scale stops at 1000.
    assert_eq!(
        content(dir_of(&cg, "blkio").join("blkio.bfq.weight")),
        "1000"
    );
}

#[test]
fn v2_writes_swap_weights_and_cpuset_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let (cg, dir) = created_v2(tmp.path(), "cpuset cpu io memory pids\n");
    cg.apply_limits(&more_limits()).unwrap();
    assert_eq!(content(dir.join("memory.swap.max")), "268435456");
    assert_eq!(content(dir.join("cpu.weight")), "50");
    assert_eq!(content(dir.join("cpuset.cpus")), "1");
    assert_eq!(content(dir.join("io.weight")), "default 2000");
}

#[test]
fn a_limit_refused_names_key_value_file_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (cg, dir) = created_v2(tmp.path(), "io\n");
    // Standing in for a value the kernel refuses: a directory cannot be written.
    fs::create_dir(dir.join("io.weight")).unwrap();
    let e = cg.apply_limits(&limits("io_weight = 300\n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "limits.io_weight cannot be set in the container's cgroup: the kernel refused \
         default 300 for io.weight: Is a directory"
    );
}

#[test]
fn hybrid_usage_is_read_from_v1_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(hybrid(tmp.path()), KEY);
    cg.create().unwrap();
    assert_eq!(cg.cpu_ns(), None);
    fs::write(dir_of(&cg, "cpu,cpuacct").join("cpuacct.usage"), "12345\n").unwrap();
    fs::write(
        dir_of(&cg, "memory").join("memory.usage_in_bytes"),
        "4096\n",
    )
    .unwrap();
    assert_eq!(cg.cpu_ns(), Some(12345));
    assert_eq!(cg.memory_bytes(), Some(4096));
}

#[test]
fn v2_create_enables_controllers_down_to_the_container() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(
        pure_v2(tmp.path(), "cpuset cpu io memory hugetlb pids rdma misc\n"),
        KEY,
    );
    cg.create().unwrap();
    let root = tmp.path().join("cgroup2");
    for dir in [root.clone(), root.join("rlxc")] {
        assert_eq!(
            content(dir.join("cgroup.subtree_control")),
            "+cpuset +cpu +io +memory +pids"
        );
    }
    assert!(root.join("rlxc").join(KEY).is_dir());
    assert!(!root.join("rlxc").join(KEY).join("cpuset.cpus").exists());
}

#[test]
fn v2_configure_writes_v2_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(pure_v2(tmp.path(), "cpu memory pids\n"), KEY);
    cg.create().unwrap();
    // No devices files on cgroup2: the BPF filter is its own step.
    assert_eq!(cg.device_writes(&[]), []);
    cg.apply_limits(&all_limits()).unwrap();
    let dir = dir_of(&cg, "cgroup2");
    assert_eq!(content(dir.join("memory.max")), "536870912");
    assert_eq!(content(dir.join("cpu.max")), "150000 100000");
    assert_eq!(content(dir.join("pids.max")), "100");
    assert!(!dir.join("memory.limit_in_bytes").exists());
    assert!(!dir.join("cpu.cfs_quota_us").exists());
}

/// A container's cgroup made on a pure cgroup2 host offering `controllers`, and its directory.
fn created_v2(root: &Path, controllers: &str) -> (Cgroup, PathBuf) {
    let cg = Cgroup::new(pure_v2(root, controllers), KEY);
    cg.create().unwrap();
    let dir = dir_of(&cg, "cgroup2");
    (cg, dir)
}

#[test]
fn v2_usage_is_read_from_v2_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (cg, dir) = created_v2(tmp.path(), "memory\n");
    fs::write(
        dir.join("cpu.stat"),
        "usage_usec 42\nuser_usec 40\nsystem_usec 2\n",
    )
    .unwrap();
    fs::write(dir.join("memory.current"), "8192\n").unwrap();
    // cpu.stat is a core file: read without the cpu controller.
    assert_eq!(cg.cpu_ns(), Some(42_000));
    assert_eq!(cg.memory_bytes(), Some(8192));
}

#[test]
fn a_limit_without_its_controller_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(pure_v2(tmp.path(), "io\n"), KEY);
    cg.create().unwrap();
    for (toml_text, controller, key) in [
        ("memory = \"1G\"", "memory", "limits.memory"),
        ("cpus = 2.0", "cpu", "limits.cpus"),
        ("pids = 10", "pids", "limits.pids"),
    ] {
        let e = cg.apply_limits(&limits(toml_text)).unwrap_err().to_string();
        assert!(
            e.contains(&format!("the {controller} cgroup controller")) && e.contains(key),
            "{e}"
        );
    }
    // No limits: nothing to write, nothing missing.
    cg.apply_limits(&Limits::default()).unwrap();
}

#[test]
fn hybrid_freezes_with_the_v1_freezer() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(hybrid(tmp.path()), KEY);
    cg.create().unwrap();
    let state = dir_of(&cg, "freezer").join("freezer.state");
    // The kernel makes the file; a directory without it has no freezer.
    let e = cg.freeze().unwrap_err().to_string();
    assert!(e.contains("no freezer file"), "{e}");
    fs::write(&state, "THAWED\n").unwrap();
    assert!(!cg.frozen());
    // The fake file reads back what was written at once: FROZEN, as the kernel once done.
    cg.freeze().unwrap();
    assert_eq!(content(state.clone()), "FROZEN");
    assert!(cg.frozen());
    fs::write(&state, "FREEZING\n").unwrap();
    assert!(!cg.frozen(), "only FROZEN is frozen");
    cg.thaw().unwrap();
    assert_eq!(content(state), "THAWED");
    // Nothing of it in the unified tree, whose cgroup.freeze would be a second freezer.
    assert!(!dir_of(&cg, "unified").join("cgroup.freeze").exists());
}

#[test]
fn v2_freeze_waits_for_cgroup_events_and_undoes_a_freeze_that_does_not_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let (cg, dir) = created_v2(tmp.path(), "");
    fs::write(dir.join("cgroup.freeze"), "0\n").unwrap();
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.set_frozen(true, Duration::from_millis(50)).unwrap();
    assert_eq!(content(dir.join("cgroup.freeze")), "1");
    assert!(cg.frozen());

    // A task that never freezes: the freeze is given up and undone.
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    let e = cg
        .set_frozen(true, Duration::from_millis(50))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("web1") && e.contains("froze within") && e.contains("thawed again"),
        "{e}"
    );
    assert_eq!(content(dir.join("cgroup.freeze")), "0");
    assert!(!cg.frozen());
}

#[test]
fn freezing_a_cgroup_that_is_gone_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = Cgroup::new(pure_v2(tmp.path(), ""), KEY);
    let e = cg.freeze().unwrap_err().to_string();
    assert!(e.contains("web1") && e.contains("not running"), "{e}");
    assert!(!cg.frozen());
}
