//! Translate an image's LXC config lines (`meta.tar.xz:config`), or the `config` a
//! template script wrote, into rlxc's TOML config. What rlxc covers by its own defaults
//! is noted; anything else is reported as ignored. `lxc.include` of LXC's shipped config
//! files (`/usr/share/lxc/config/*.conf`) is followed: what they set that means
//! something to rlxc is applied, and their policy (capabilities, devices, seccomp, the
//! host binds LXC adds) is rlxc's own built-in policy's to decide, so it is covered.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::{validate, ContainerConfig, MountEntry, Signal};

/// Where LXC installs the config files its templates and images include.
pub const LXC_CONFIG_DIR: &str = "/usr/share/lxc/config";

/// Includes nest this deep at most (LXC's own go two deep).
const MAX_INCLUDE_DEPTH: usize = 8;

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

pub fn mounts_from_host(m: &MountEntry) -> bool {
    m.is_bind() || !m.fstype.as_deref().is_some_and(|t| VIRTUAL_FS.contains(&t))
}

impl Translation {
    pub fn extend(&mut self, other: Translation) {
        self.applied.extend(other.applied);
        self.covered.extend(other.covered);
        self.ignored.extend(other.ignored);
        self.mounts.extend(other.mounts);
    }
}

/// One line of an LXC config that is neither blank nor a comment, read as LXC reads it.
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    /// 1-based, for messages.
    pub number: usize,
    /// The line, trimmed.
    pub text: &'a str,
    /// `KEY = VALUE` with both trimmed and VALUE's matching quotes taken off; None for a
    /// line without `=` (LXC refuses it, rlxc reports it).
    pub entry: Option<(&'a str, &'a str)>,
}

/// The config lines of `text`: the one parser for images', templates' and LXC
/// containers' configs.
pub fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        let entry = text
            .split_once('=')
            .map(|(k, v)| (k.trim(), unquote(v.trim())));
        Some(Line {
            number: i + 1,
            text,
            entry,
        })
    })
}

/// The first line of `text` that is neither blank, a comment nor `lxc.KEY = VALUE`:
/// (line number, line). A template's config is held to that; an image's bad lines are
/// only reported.
pub fn first_malformed(text: &str) -> Option<(usize, String)> {
    lines(text)
        .find(|l| {
            !l.entry
                .is_some_and(|(k, _)| k.starts_with("lxc.") && !k.contains(' '))
        })
        .map(|l| (l.number, l.text.to_string()))
}

/// Apply `text` (LXC config lines) to `cfg`.
pub fn translate(text: &str, cfg: &mut ContainerConfig) -> Translation {
    let mut t = Translation::default();
    let seen = RefCell::new(BTreeSet::new());
    translate_into(
        text,
        cfg,
        &mut t,
        &Includes::new(Path::new(LXC_CONFIG_DIR), &seen),
    );
    t
}

/// How `lxc.include` is followed: only into LXC's shipped config directory, each file
/// once.
struct Includes<'a> {
    dir: &'a Path,
    depth: usize,
    /// Lines come from one of LXC's common policy files (common.conf, userns.conf, a
    /// distribution's *.common.conf …), whose policy rlxc's own built-in one replaces.
    policy: bool,
    /// Files already read: an include named twice (or a config repeating one include
    /// thousands of times) is read once.
    seen: &'a RefCell<BTreeSet<PathBuf>>,
}

impl<'a> Includes<'a> {
    fn new(dir: &'a Path, seen: &'a RefCell<BTreeSet<PathBuf>>) -> Self {
        Includes {
            dir,
            depth: 0,
            policy: false,
            seen,
        }
    }

    fn for_file(&self, file: &Path) -> Includes<'a> {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_policy_dir = file
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|d| d == "common.conf.d" || d == "userns.conf.d");
        Includes {
            dir: self.dir,
            depth: self.depth + 1,
            policy: in_policy_dir
                || matches!(name, "common.conf" | "userns.conf")
                || name.ends_with(".common.conf")
                || name.ends_with(".userns.conf"),
            seen: self.seen,
        }
    }

    /// The files an include names, if it names LXC's shipped config: a file, or a
    /// directory's `*.conf` files in order (as LXC reads `common.conf.d/`). The name is
    /// checked as text before anything of it is looked up on the host.
    fn files(&self, value: &str) -> Option<Vec<PathBuf>> {
        let named = value.replace("LXC_TEMPLATE_CONFIG", &self.dir.to_string_lossy());
        let path = Path::new(&named);
        if !path.starts_with(self.dir) || path.components().any(|c| c.as_os_str() == "..") {
            return None;
        }
        let real = std::fs::canonicalize(path).ok()?;
        if !real.starts_with(std::fs::canonicalize(self.dir).ok()?) {
            return None;
        }
        if real.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&real)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            v.sort();
            Some(v)
        } else {
            Some(vec![real])
        }
    }
}

/// `lxc.include = VALUE`: follow it into LXC's shipped files, or say why not.
fn include(
    value: &str,
    shown: String,
    cfg: &mut ContainerConfig,
    t: &mut Translation,
    inc: &Includes,
) {
    let files = match inc.files(value) {
        Some(files) if inc.depth < MAX_INCLUDE_DEPTH => files,
        Some(_) => {
            t.ignored.push(format!("{shown} (includes nest too deep)"));
            return;
        }
        // LXC not installed: its common files hold LXC's policy, which rlxc's covers.
        None if value.ends_with("common.conf") || value.ends_with("userns.conf") => {
            t.covered.push(shown);
            return;
        }
        None => {
            t.ignored.push(format!(
                "{shown} (rlxc follows includes of LXC's own config files in {} only)",
                inc.dir.display()
            ));
            return;
        }
    };
    t.covered.push(shown);
    for f in files {
        if !inc.seen.borrow_mut().insert(f.clone()) {
            continue;
        }
        match crate::config::read_text(&f) {
            Ok(text) => translate_into(&text, cfg, t, &inc.for_file(&f)),
            Err(e) => t
                .ignored
                .push(format!("lxc.include = {} ({e})", f.display())),
        }
    }
}

fn translate_into(text: &str, cfg: &mut ContainerConfig, t: &mut Translation, inc: &Includes) {
    for line in lines(text) {
        let Some((key, value)) = line.entry else {
            t.ignored
                .push(format!("{} (not a key = value line)", line.text));
            continue;
        };
        let shown = format!("{key} = {value}");
        match key {
            "lxc.include" => include(value, shown, cfg, t, inc),
            // rlxc records the rootfs itself, always builds /dev, mounts proc, sys and
            // the cgroup view its own way and hands out at most 1024 ptys.
            "lxc.rootfs.path" | "lxc.rootfs" | "lxc.autodev" | "lxc.mount.auto" | "lxc.pty.max"
            | "lxc.tty.dir" => t.covered.push(shown),
            // LXC's common.conf has 4, rlxc's default: the image's own line counts.
            "lxc.tty.max" | "lxc.tty" if inc.policy => t.covered.push(shown),
            "lxc.tty.max" | "lxc.tty" => match value.parse::<u32>() {
                Ok(n) if n <= crate::config::TTY_MAX_LIMIT => {
                    cfg.tty_max = Some(n);
                    t.applied.push(shown);
                }
                _ => t.ignored.push(format!(
                    "{shown} (not a count of 0-{})",
                    crate::config::TTY_MAX_LIMIT
                )),
            },
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
                apply_signal(&mut cfg.signals.halt, value, shown, t)
            }
            "lxc.signal.reboot" | "lxc.rebootsignal" => {
                apply_signal(&mut cfg.signals.reboot, value, shown, t)
            }
            "lxc.signal.stop" | "lxc.stopsignal" => {
                apply_signal(&mut cfg.signals.stop, value, shown, t)
            }
            // LXC's own default binds (fuse connections, securityfs, debugfs): rlxc
            // decides what of /sys a container sees.
            "lxc.mount.entry" if inc.policy => t.covered.push(shown),
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
            _ if inc.policy => t.covered.push(shown),
            _ => t.ignored.push(format!("{shown} (no rlxc equivalent)")),
        }
    }
}

/// LXC takes a value in matching double or single quotes without them
/// (`lxc.uts.name = "web1"`, as lxc-busybox writes it).
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
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

    /// Translation on a host without LXC's config files, whatever this one has.
    fn translate(text: &str, cfg: &mut ContainerConfig) -> Translation {
        let mut t = Translation::default();
        let seen = RefCell::new(BTreeSet::new());
        let inc = Includes::new(Path::new("/nonexistent/lxc/config"), &seen);
        translate_into(text, cfg, &mut t, &inc);
        t
    }

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
    fn includes_of_lxcs_shipped_files_are_followed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("config");
        std::fs::create_dir_all(conf.join("common.conf.d")).unwrap();
        std::fs::write(
            conf.join("common.conf"),
            "lxc.cap.drop = sys_module\nlxc.mount.entry = /sys/fs/fuse/connections sys/fs/fuse/connections none bind,optional 0 0\nlxc.include = LXC_TEMPLATE_CONFIG/common.conf.d/\n",
        )
        .unwrap();
        std::fs::write(
            conf.join("common.conf.d/10-x.conf"),
            "lxc.signal.halt = SIGUSR1\n",
        )
        .unwrap();
        std::fs::write(
            conf.join("loop.conf"),
            format!("lxc.include = {}/loop.conf\n", conf.display()),
        )
        .unwrap();
        std::fs::write(
            conf.join("nesting.conf"),
            "lxc.apparmor.profile = nesting\nlxc.mount.entry = proc dev/.lxc/proc proc create=dir,optional 0 0\n",
        )
        .unwrap();
        std::fs::write(d.path().join("outside.conf"), "lxc.signal.stop = SIGKILL\n").unwrap();
        let text = format!(
            "lxc.include = {0}/common.conf\nlxc.include = {0}/../outside.conf\nlxc.include = {0}/loop.conf\nlxc.rootfs.path = dir:/x\nlxc.include = {0}/nesting.conf\n{1}",
            conf.display(),
            format!("lxc.include = {}/common.conf\n", conf.display()).repeat(1000),
        );
        let mut c = ContainerConfig::default();
        let mut t = Translation::default();
        let seen = RefCell::new(BTreeSet::new());
        translate_into(&text, &mut c, &mut t, &Includes::new(&conf, &seen));
        assert_eq!(
            t.covered
                .iter()
                .filter(|l| l.starts_with("lxc.cap.drop"))
                .count(),
            1,
            "a file included a thousand times is read once"
        );
        assert_eq!(c.signals.halt, "SIGUSR1".parse().ok(), "from common.conf.d");
        assert_eq!(
            c.signals.stop, None,
            "nothing outside LXC's directory is read"
        );
        assert_eq!(
            c.mounts.len(),
            1,
            "LXC's default host binds are not taken over; nesting.conf's proc is"
        );
        assert_eq!(c.mounts[0].target, "dev/.lxc/proc");
        assert!(
            t.covered.iter().any(|l| l.starts_with("lxc.cap.drop")),
            "{:?}",
            t.covered
        );
        assert!(t.covered.iter().any(|l| l.starts_with("lxc.rootfs.path")));
        assert_eq!(t.ignored.len(), 2, "{:?}", t.ignored);
        assert!(t.ignored[0].contains("outside.conf") && t.ignored[0].contains("only"));
        assert!(
            t.ignored[1].starts_with("lxc.apparmor.profile = nesting (no rlxc equivalent)"),
            "a file that is not LXC's common policy is not silently covered: {:?}",
            t.ignored
        );
    }

    #[test]
    fn quoted_values_lose_their_quotes() {
        let mut c = ContainerConfig::default();
        let t = translate(
            "lxc.uts.name = \"web1\"\nlxc.signal.halt = 'SIGUSR1'\n",
            &mut c,
        );
        assert_eq!(c.hostname.as_deref(), Some("web1"));
        assert_eq!(c.signals.halt, "SIGUSR1".parse().ok());
        assert!(t.ignored.is_empty(), "{:?}", t.ignored);
    }

    #[test]
    fn a_templates_malformed_line_is_found_with_its_number() {
        assert_eq!(first_malformed("# c\n\nlxc.arch = amd64\n"), None);
        assert_eq!(
            first_malformed("lxc.arch = amd64\ngarbage\n"),
            Some((2, "garbage".into()))
        );
        assert_eq!(
            first_malformed("foo = bar\n"),
            Some((1, "foo = bar".into()))
        );
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
    fn an_images_tty_count_is_taken_within_bounds() {
        let mut c = ContainerConfig::default();
        translate("lxc.tty.max = 2\n", &mut c);
        assert_eq!((c.tty_max, c.ttys()), (Some(2), 2));
        let mut c = ContainerConfig::default();
        let t = translate("lxc.tty.max = 4000\n", &mut c);
        assert_eq!((c.tty_max, c.ttys()), (None, 4));
        assert!(t.ignored.iter().any(|l| l.contains("lxc.tty.max")), "{t:?}");
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
