//! D-Bus calls to systemd and systemd-machined through `busctl` (part of systemd, so
//! present wherever there is anything to call): rlxc links no D-Bus library, and these
//! are a few calls per container start and stop on systemd hosts only.

use std::process::Command;

/// Whether systemd is PID 1 (sd_booted(3): it makes this directory early at boot).
pub fn systemd_booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// Call `method` of `iface` on `dest` `path` on the system bus with the busctl
/// signature `sig` and `args`. The reply as busctl prints it, or what it said on error.
pub fn call(
    dest: &str,
    path: &str,
    iface: &str,
    method: &str,
    sig: &str,
    args: &[String],
) -> std::result::Result<String, String> {
    let out = Command::new("busctl")
        .args([
            "--system", "--quiet", "call", dest, path, iface, method, sig,
        ])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run busctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            format!("busctl {method} failed ({})", out.status)
        } else {
            err
        })
    }
}
