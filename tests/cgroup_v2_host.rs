//! rlxc on a pure cgroup v2 host. This machine is hybrid (v1 controllers + a unified
//! mount), so tests/vm/host.sh boots a Debian 12 VM in QEMU, whose systemd mounts cgroup2
//! alone with every controller, and runs tests/vm/guest.sh there against this build:
//! Debian boots to `running` in a delegated subtree, limits land in memory.max, cpu.max
//! and pids.max, rlxc-info reads cgroup2 usage, the BPF device filter is the only thing
//! refusing a mknod'ed /dev/mem, freeze and thaw go through cgroup.freeze, and stop
//! (of a frozen container too) leaves nothing behind; the typed limits beyond memory,
//! cpus and pids land in memory.swap.max, cpu.weight, cpuset.cpus and io.weight;
//! rlxc-cgroup reads and sets cgroup2 files (a memory hog OOM-killed under a live
//! memory.max) and rlxc-top reads its figures there. The distribution kernel
//! runs AppArmor, so the container profile is tested there too: loaded, confining init
//! and attached commands, refusing the remounts and binds that would reach the host.
//! Unprivileged Debian and busybox boot there too, with their cgroup delegated.
//! A running container is a machine systemd-machined lists, and forgets at stop; a
//! second installation's container of the same name is a machine of its own (NAME.TAG).
//! A killed monitor's container, still in its systemd scope, keeps a new start away
//! until rlxc-stop -k ends it.
//! The init fixtures boot there too: trixie and sid (systemd 257, 262) to `running`
//! and sysvinit to runlevel 2 with gettys, each reboots with `-r` and stops.
//! rlxc-device gives a node through the replaced BPF filter and takes it back;
//! rlxc-execute returns the command's status, gives a `[[device]]` of `-f CONFIG` before
//! the command starts, and its init runs confined from a sealed copy of rlxc.

use std::process::Command;

#[test]
fn pure_cgroup_v2_host() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/host.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_rlxc"))
        .output()
        .expect("run tests/vm/host.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the VM test failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "RLXC-V2 ok host is pure cgroup v2",
        "RLXC-V2 ok systemd in the container: is-system-running = running",
        "RLXC-V2 ok machinectl list shows the running container",
        "RLXC-V2 ok machinectl status shows its leader, init",
        "RLXC-V2 ok machinectl list no longer shows the stopped container",
        "RLXC-V2 ok init was born in its cgroup (clone3 CLONE_INTO_CGROUP)",
        "RLXC-V2 ok systemd delegated below the container's cgroup",
        "RLXC-V2 ok limits.memory -> memory.max",
        "RLXC-V2 ok rlxc-info shows CPU and memory use from cgroup2",
        "RLXC-V2 ok device filter refuses other nodes",
        "RLXC-V2 ok AppArmor confines systemd in the container",
        "RLXC-V2 ok nothing left of debian",
        "RLXC-V2 ok checkconfig reports the AppArmor profile",
        "RLXC-V2 ok AppArmor confines init",
        "RLXC-V2 ok AppArmor confines attached commands",
        "RLXC-V2 ok AppArmor refuses binding /proc/sys elsewhere",
        "RLXC-V2 ok AppArmor refuses binding all of /proc elsewhere",
        "RLXC-V2 ok AppArmor refuses a proc instance outside /proc",
        "RLXC-V2 ok AppArmor refuses mounting binfmt_misc",
        "RLXC-V2 ok AppArmor refuses a read-only remount of the root's superblock",
        "RLXC-V2 ok AppArmor refuses a recursive bind of / (and its /proc) elsewhere",
        "RLXC-V2 ok a proc instance inside /proc is held by the path rules",
        "RLXC-V2 ok AppArmor refuses binding /proc/1/root elsewhere",
        "RLXC-V2 ok seccomp refuses a read-only superblock remount with other flags",
        "RLXC-V2 ok AppArmor refuses mounting devpts",
        "RLXC-V2 ok a host sysctl stays the host's",
        "RLXC-V2 ok limits.memory_swap, cpu_weight, cpuset, io_weight -> cgroup2 files",
        "RLXC-V2 ok rlxc-cgroup reads memory.max",
        "RLXC-V2 ok rlxc-cgroup sets pids.max live",
        "RLXC-V2 ok rlxc-cgroup says the kernel's reason",
        "RLXC-V2 ok rlxc-cgroup refuses names outside the cgroup and cgroup.procs",
        "RLXC-V2 ok a memory hog is OOM-killed under a live memory.max, the container runs on",
        "RLXC-V2 ok rlxc-cgroup --persist keeps memory.max in config.toml",
        "RLXC-V2 ok rlxc-top shows the busy container's CPU, memory and tasks from cgroup2",
        "RLXC-V2 ok rlxc-device add: a host node is usable inside (cgroup2 filter replaced)",
        "RLXC-V2 ok rlxc-device del: the node is gone and the filter refuses it again",
        "RLXC-V2 ok rlxc-freeze: cgroup.events says frozen, the counter stands still",
        "RLXC-V2 ok rlxc-unfreeze: the counter goes on",
        "RLXC-V2 ok machinectl lists both bbs, the second one's keyed by its installation",
        "RLXC-V2 ok machinectl forgets the second one's bb, not the first one's",
        "RLXC-V2 ok rlxc-stop -k of a frozen busybox",
        "RLXC-V2 ok nothing left of busybox",
        "RLXC-V2 ok rlxc-execute returns the command's exit status",
        "RLXC-V2 ok rlxc-execute -f: a [[device]] node is there when the command starts",
        "RLXC-V2 ok rlxc-execute's init runs confined, from a sealed copy",
        "RLXC-V2 ok nothing left of busybox after rlxc-execute",
        "RLXC-V2 ok the orphaned init lives on in its scope",
        "RLXC-V2 ok a start is refused while the orphans live, naming rlxc-stop -k",
        "RLXC-V2 ok nothing left of the orphaned busybox",
        "RLXC-V2 ok machinectl forgets the orphaned busybox",
        "RLXC-V2 ok unprivileged systemd: is-system-running = running",
        "RLXC-V2 ok unprivileged init is its host range's root",
        "RLXC-V2 ok unprivileged systemd delegated below its own cgroup",
        "RLXC-V2 ok the delegated cgroup is the container root's",
        "RLXC-V2 ok unprivileged root cannot raise its memory.max",
        "RLXC-V2 ok nothing left of udeb",
        "RLXC-V2 ok unprivileged busybox maps its ids",
        "RLXC-V2 ok nothing left of ubb",
        "RLXC-V2 ok a hybrid cgroup_layout is refused on a pure cgroup2 host",
        "RLXC-V2 ok nothing left of bbh",
        "RLXC-V2 DONE",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    // The newer systemds, where the fixture mirror has them.
    for rel in ["trixie", "sid"] {
        if lines.contains(&format!("RLXC-V2 NOT RUN {rel} (no fixture image)").as_str()) {
            println!("NOT RUN: {rel} on the pure cgroup v2 host (no fixture image)");
            continue;
        }
        for want in [
            format!("RLXC-V2 ok {rel}: is-system-running = running"),
            format!("RLXC-V2 ok {rel} runs on the unified layout"),
            format!("RLXC-V2 ok {rel} came back: a new init pid and boot id"),
            format!("RLXC-V2 ok {rel} is up again after the reboot"),
            format!("RLXC-V2 ok nothing left of {rel}"),
        ] {
            assert!(
                lines.contains(&want.as_str()),
                "missing {want:?} in:\n{stdout}"
            );
        }
    }
    // sysvinit, stock inittab and LXC's powerfail line, where the mirror has them.
    for (c, halt) in [
        (
            "sysv",
            "sysv: the stop says why it killed (no powerfail entry)",
        ),
        ("sysvpf", "sysvpf: halts cleanly on SIGPWR"),
    ] {
        if lines.contains(&format!("RLXC-V2 NOT RUN {c} (no fixture image)").as_str()) {
            println!("NOT RUN: {c} on the pure cgroup v2 host (no fixture image)");
            continue;
        }
        for want in [
            format!("RLXC-V2 ok {c} reaches runlevel 2"),
            format!("RLXC-V2 ok {c} runs gettys on its ttys"),
            format!("RLXC-V2 ok {c} came back: a new init pid and boot id"),
            format!("RLXC-V2 ok {c} is up again after the reboot"),
            format!("RLXC-V2 ok {halt}"),
            format!("RLXC-V2 ok nothing left of {c}"),
        ] {
            assert!(
                lines.contains(&want.as_str()),
                "missing {want:?} in:\n{stdout}"
            );
        }
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("RLXC-V2 FAIL")),
        "{stdout}"
    );
}
