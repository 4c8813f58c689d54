//! The Debian package on a clean Debian 12 in a VM (tests/vm/host.sh with RLXC_VM_DEB,
//! tests/vm/guest-deb.sh): packaging/build-deb.sh packages this build; installed, it
//! enables its units and starts the autostart containers; after a reboot both are running
//! again, in order; a restart of rlxc.service and a reinstall of the same package leave
//! them running; `systemctl stop rlxc` halts them within its timeout; rlxc@.service runs
//! one container with its monitor in the unit; apt-get remove keeps their data and purge
//! removes /etc/rlxc only.

mod common;

use std::process::Command;

#[test]
fn debian_package_autostarts_after_reboot_and_upgrades_stop_nothing() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out_dir = tempfile::tempdir().unwrap();
    let deb = common::deb::build(out_dir.path(), true);
    let out = Command::new("bash")
        .arg(format!("{repo}/tests/vm/host.sh"))
        .arg(env!("CARGO_BIN_EXE_rlxc"))
        .env("RLXC_VM_DEB", &deb)
        .output()
        .expect("run tests/vm/host.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the VM test failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "RLXC-V2 ok dpkg -i the package",
        "RLXC-V2 ok rlxc.service active after install",
        "RLXC-V2 ok postinst gave root host ids",
        "RLXC-V2 ok man pages and completions installed",
        "RLXC-V2 ok first running after the reboot",
        "RLXC-V2 ok second running after the reboot",
        "RLXC-V2 ok first (order 1) started before second (order 2), after its 2 s delay",
        "RLXC-V2 ok monitors live in rlxc's own cgroup, not rlxc.service's",
        "RLXC-V2 ok systemctl restart rlxc keeps them running",
        "RLXC-V2 ok installing the same package again keeps them running",
        "RLXC-V2 ok systemctl stop rlxc halted both within its 60 s timeout",
        "RLXC-V2 ok rlxc@second is active and its container runs",
        "RLXC-V2 ok systemctl stop rlxc@second halts it",
        "RLXC-V2 ok remove keeps the containers and /etc/rlxc",
        "RLXC-V2 ok purge removes /etc/rlxc only",
        "RLXC-V2 DONE",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{stdout}");
    }
}
