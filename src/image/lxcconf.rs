//! Translate an image's LXC config lines (`meta.tar.xz:config`) into rlxc's TOML config.
//! What rlxc covers by its own defaults is noted; anything else is reported as ignored.

use crate::config::{validate, ContainerConfig, MountEntry, Signal};

#[derive(Debug, Default, PartialEq)]
pub struct Translation {
    /// Lines taken over, as "key = value".
    pub applied: Vec<String>,
    /// Lines rlxc already covers by its built-in defaults.
    pub covered: Vec<String>,
    /// Lines with no rlxc equivalent, with the reason.
    pub ignored: Vec<String>,
    /// The mounts the image adds (also in `applied`), for create to report and vet.
    pub mounts: Vec<ImageMount>,
}

#[derive(Debug, PartialEq)]
pub struct ImageMount {
    /// The image's line, as "lxc.mount.entry = …".
    pub line: String,
    /// It mounts something of the host's: a bind of a host path, a device, or any file
    /// system but the kernel's per-container ones (an overlay's lowerdir can name /).
    pub from_host: bool,
}

/// File systems whose source is only a label: mounting one shows the container its own
/// view of the kernel, nothing of the host's directories.
const VIRTUAL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "ramfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "hugetlbfs",
];

fn mounts_from_host(m: &MountEntry) -> bool {
    m.is_bind() || !m.fstype.as_deref().is_some_and(|t| VIRTUAL_FS.contains(&t))
}

/// Apply `text` (LXC config lines) to `cfg`.
pub fn translate(text: &str, cfg: &mut ContainerConfig) -> Translation {
    let mut t = Translation::default();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            t.ignored.push(format!("{line} (not a key = value line)"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let shown = format!("{key} = {value}");
        match key {
            "lxc.include" if value.ends_with("common.conf") || value.ends_with("userns.conf") => {
                t.covered.push(shown)
            }
            "lxc.arch" => {
                cfg.arch = Some(super::arch::to_debian(value));
                t.applied.push(shown);
            }
            "lxc.uts.name" | "lxc.utsname" => match validate::hostname(value) {
                Ok(()) => {
                    cfg.hostname = Some(value.to_string());
                    t.applied.push(shown);
                }
                Err(why) => t
                    .ignored
                    .push(format!("{shown} (not a valid host name: {why})")),
            },
            "lxc.init.cmd" | "lxc.init_cmd" => {
                cfg.init.cmd = value.split_whitespace().map(String::from).collect();
                t.applied.push(shown);
            }
            "lxc.environment" if value.contains('=') => {
                cfg.init.env.push(value.to_string());
                t.applied.push(shown);
            }
            "lxc.signal.halt" | "lxc.haltsignal" => {
                apply_signal(&mut cfg.signals.halt, value, shown, &mut t)
            }
            "lxc.signal.reboot" | "lxc.rebootsignal" => {
                apply_signal(&mut cfg.signals.reboot, value, shown, &mut t)
            }
            "lxc.signal.stop" | "lxc.stopsignal" => {
                apply_signal(&mut cfg.signals.stop, value, shown, &mut t)
            }
            "lxc.mount.entry" => match mount_entry(value) {
                Some(m) => {
                    t.mounts.push(ImageMount {
                        line: shown.clone(),
                        from_host: mounts_from_host(&m),
                    });
                    cfg.mounts.push(m);
                    t.applied.push(shown);
                }
                None => t.ignored.push(format!("{shown} (not a valid mount entry)")),
            },
            _ => t.ignored.push(format!("{shown} (no rlxc equivalent)")),
        }
    }
    t
}

/// An image's bad signal is reported, not fatal: the monitor's default serves.
fn apply_signal(slot: &mut Option<Signal>, value: &str, shown: String, t: &mut Translation) {
    match value.parse::<Signal>() {
        Ok(sig) => {
            *slot = Some(sig);
            t.applied.push(shown);
        }
        Err(why) => t.ignored.push(format!("{shown} ({why})")),
    }
}

/// `src dst fstype options [dump [pass]]`, dst relative to the rootfs.
fn mount_entry(v: &str) -> Option<MountEntry> {
    let f: Vec<&str> = v.split_whitespace().collect();
    if f.len() < 4 {
        return None;
    }
    let target = f[1].trim_start_matches('/').to_string();
    if target.split('/').any(|c| c == "..") {
        return None;
    }
    Some(MountEntry {
        source: f[0].into(),
        target,
        fstype: Some(f[2].into()),
        options: Some(f[3].into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_a_real_image_config() {
        let text = "\
lxc.include = LXC_TEMPLATE_CONFIG/common.conf
lxc.include = LXC_TEMPLATE_CONFIG/debian.common.conf

# For Debian
lxc.arch = x86_64
lxc.mount.entry = /sys/kernel/security sys/kernel/security none bind,optional 0 0
lxc.mount.entry = evil ../../etc none bind 0 0
lxc.apparmor.profile = generated
lxc.signal.halt = SIGRTMIN+3
";
        let mut c = ContainerConfig::default();
        let t = translate(text, &mut c);
        assert_eq!(c.arch.as_deref(), Some("amd64"));
        assert_eq!(c.signals.halt, "SIGRTMIN+3".parse().ok());
        assert_eq!(c.mounts.len(), 1);
        assert_eq!(c.mounts[0].target, "sys/kernel/security");
        assert_eq!(t.covered.len(), 2);
        assert_eq!(t.ignored.len(), 2, "{:?}", t.ignored);
        assert!(t.ignored.iter().any(|l| l.contains("apparmor")));
        assert_eq!(t.mounts.len(), 1);
        assert!(t.mounts[0].from_host, "a bind of a host path");
    }

    #[test]
    fn image_mounts_are_listed_and_host_ones_marked() {
        let text = "\
lxc.mount.entry = / hostroot none rbind,create=dir 0 0
lxc.mount.entry = proc mnt/proc proc nodev,noexec,nosuid 0 0
lxc.mount.entry = tmpfs run tmpfs size=10M 0 0
lxc.mount.entry = /dev/sda1 mnt/disk ext4 defaults 0 0
lxc.mount.entry = overlay mnt/o overlay lowerdir=/,upperdir=/u,workdir=/w 0 0
lxc.mount.entry = proc mnt/p2 proc bind 0 0
";
        let mut c = ContainerConfig::default();
        let t = translate(text, &mut c);
        let marks: Vec<bool> = t.mounts.iter().map(|m| m.from_host).collect();
        assert_eq!(marks, [true, false, false, true, true, true]);
        assert_eq!(
            t.mounts[0].line,
            "lxc.mount.entry = / hostroot none rbind,create=dir 0 0"
        );
        assert_eq!(c.mounts.len(), 6);
    }

    #[test]
    fn bad_host_names_and_signals_from_images_are_ignored_with_the_reason() {
        let text =
            "lxc.uts.name = bad_name\nlxc.signal.halt = SIGBOGUS\nlxc.signal.stop = SIGKILL\n";
        let mut c = ContainerConfig::default();
        let t = translate(text, &mut c);
        assert_eq!(c.hostname, None);
        assert_eq!(c.signals.halt, None);
        assert_eq!(c.signals.stop, "SIGKILL".parse().ok());
        assert_eq!(t.ignored.len(), 2, "{:?}", t.ignored);
        assert!(t.ignored[0].contains("bad_name") && t.ignored[0].contains("'_'"));
        assert!(t.ignored[1].contains("SIGBOGUS") && t.ignored[1].contains("RTMIN+3"));
    }
}
