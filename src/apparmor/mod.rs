//! AppArmor, where the host runs it: one profile (see `profile.rs`), loaded with
//! apparmor_parser when missing, that init and every attached command are confined
//! by from their exec on. It is what stops a container's root from remounting /proc/sys
//! or /sys read-write, binding the host's kernel files elsewhere, or mounting devpts:
//! the mount layout alone cannot, since root may remount.
//! Without AppArmor in the kernel nothing is done, and rlxc-checkconfig says so.

mod profile;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};

const SECURITYFS: &str = "/sys/kernel/security/apparmor";

/// Is AppArmor active in this kernel (and its interface mounted)?
pub fn enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
        && Path::new(SECURITYFS).is_dir()
}

/// The profile's name: versioned by its text, so an upgraded rlxc never runs
/// containers under an older rlxc's rules, nor replaces them under its containers.
pub fn profile_name() -> String {
    let text = profile::text("");
    let h = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("rlxc-container-default-{:08x}", h as u32)
}

/// The profile containers get on this host: None without AppArmor; otherwise loaded
/// (once per boot) and named.
pub fn ensure_loaded() -> Result<Option<String>> {
    if !enabled() {
        return Ok(None);
    }
    let name = profile_name();
    if is_loaded(&name) {
        return Ok(Some(name));
    }
    let parser = find_parser().ok_or_else(|| {
        Error::Other(format!(
            "AppArmor is enabled on this host but apparmor_parser is missing, so the \
             container profile {name} cannot be loaded: install it (apt-get install apparmor)"
        ))
    })?;
    let mut child = Command::new(&parser)
        .args(["--replace", "--skip-cache"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ctx("run", &parser)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(profile::text(&name).as_bytes())
            .ctx("write the profile to", &parser)?;
    }
    let out = child.wait_with_output().ctx("run", &parser)?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "apparmor_parser could not load the container profile {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(Some(name))
}

/// The profile process `pid` runs under, None when unconfined (or without AppArmor):
/// what an attached command gets, so it is held to exactly what init is.
pub fn profile_of(pid: i32) -> Option<String> {
    if !enabled() {
        return None;
    }
    let label = std::fs::read_to_string(format!("/proc/{pid}/attr/apparmor/current"))
        .or_else(|_| std::fs::read_to_string(format!("/proc/{pid}/attr/current")))
        .ok()?;
    let name = label.trim().split(" (").next()?.to_string();
    (name != "unconfined" && !name.is_empty()).then_some(name)
}

/// Is a profile of this name in the kernel?
pub fn is_loaded(name: &str) -> bool {
    std::fs::read_to_string(Path::new(SECURITYFS).join("profiles")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_once(" (").is_some_and(|(n, _)| n == name))
    })
}

pub fn find_parser() -> Option<PathBuf> {
    ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Confine this process from its next exec on by `profile`. Called after the mounts
/// are made, so /proc is a procfs the container cannot yet have tampered with; checked
/// to be one all the same (attach runs it inside a live container).
pub fn confine_on_exec(profile: &str) -> Result<()> {
    let path = [
        "/proc/thread-self/attr/apparmor/exec",
        "/proc/thread-self/attr/exec",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .ok_or_else(|| Error::Other("no AppArmor attribute file in /proc".into()))?;
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::File::options()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ctx("open", path)?
    };
    let fs = nix::sys::statfs::fstatfs(&f).ctx("inspect", path)?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(Error::Other(format!(
            "{path} is not on procfs: refusing to run unconfined"
        )));
    }
    f.write_all(format!("exec {profile}").as_bytes())
        .ctx("set the AppArmor profile through", path)
}
