//! Checks of single values, shared by the config validators, the CLI (`-P`) and the
//! translation of image configs. Each returns why a value is refused, for the caller to
//! wrap with the file and key.

use std::path::{Component, Path, PathBuf};

pub use super::device::interface_name;
use super::{ContainerConfig, MountEntry};

/// sethostname(2) takes at most HOST_NAME_MAX (64) bytes.
pub const HOSTNAME_MAX: usize = 64;

/// Directories an installation must not be rooted at: rlxc keeps `.locks` and hidden
/// staging directories there and removes directories in it, so it needs one of its own.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/tmp",
];

/// A directory rlxc owns (lxcpath, cachepath, runpath, `-P`): absolute, no `..`, and
/// not a system directory.
pub fn install_dir(p: &Path) -> Result<(), String> {
    let shown = p.display().to_string();
    if !p.is_absolute() {
        return Err(format!("{shown:?} is not an absolute path"));
    }
    // A `..` can hide a system directory (/var/lib/../..), and the same installation
    // must always be named the same way: its path keys run directories and cgroups.
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{shown:?} contains '..': name the directory without it"
        ));
    }
    let normal: PathBuf = p.components().collect();
    if SYSTEM_DIRS.iter().any(|d| normal == Path::new(d)) {
        return Err(format!(
            "{shown:?} is a system directory; rlxc keeps lock files and hidden work \
             directories where it creates containers, so give it a directory of its own \
             (like the defaults /var/lib/rlxc, /var/cache/rlxc, /run/rlxc)"
        ));
    }
    Ok(())
}

/// A host name the kernel and DNS accept: 1-64 bytes of RFC 1123 labels joined by dots.
pub fn hostname(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("it is empty".into());
    }
    if h.len() > HOSTNAME_MAX {
        return Err(format!(
            "it is {} bytes long, the limit is {HOSTNAME_MAX}",
            h.len()
        ));
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
    {
        return Err(format!(
            "it contains {c:?}; a host name has only a-z A-Z 0-9, '-' and '.'"
        ));
    }
    match h.split('.').find(|l| !crate::name::is_dns_label(l)) {
        Some("") => Err("it has an empty label (a leading, trailing or double '.')".into()),
        Some(l) => Err(format!(
            "its label {l:?} starts or ends with '-' or is longer than 63 bytes"
        )),
        None => Ok(()),
    }
}

impl MountEntry {
    /// A bind mount: the source is a path on the host.
    pub fn is_bind(&self) -> bool {
        self.options
            .as_deref()
            .unwrap_or("")
            .split(',')
            .any(|o| o == "bind" || o == "rbind")
    }
}

/// A bind's source is mounted from wherever rlxc-start runs, so only an absolute
/// path means one thing. A file system's source (proc, tmpfs, …) is just a label.
pub fn mount_source(m: &MountEntry) -> Result<(), String> {
    if m.is_bind() && !Path::new(&m.source).is_absolute() {
        return Err(
            "a bind mount's source must be an absolute host path such as \
                    \"/srv/data\" (a relative one would depend on the directory rlxc-start \
                    runs in)"
                .into(),
        );
    }
    Ok(())
}

/// The checks of `ContainerConfig::validate` that are about single values: the message
/// names the key and the value.
pub fn container_values(c: &ContainerConfig) -> Result<(), String> {
    c.rootfs.check()?;
    c.autostart.check()?;
    if let Some(h) = &c.hostname {
        hostname(h).map_err(|why| format!("hostname = {h:?}: {why}"))?;
    }
    for (i, m) in c.mounts.iter().enumerate() {
        mount_source(m).map_err(|why| format!("mount[{i}].source = {:?}: {why}", m.source))?;
    }
    let own_netns = !c.networks.iter().any(|n| n.kind == super::NetKind::None);
    super::device::check(&c.devices, own_netns)?;
    super::publish::check(&c.publish)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> ContainerConfig {
        crate::config::parse_toml(Path::new("c.toml"), toml).unwrap()
    }

    /// Refused at load (a bad value) or by validate (what spans keys).
    fn refused(toml: &str) -> String {
        let e = crate::config::parse_toml::<ContainerConfig>(Path::new("c.toml"), toml)
            .and_then(|c| c.validate(Path::new("c.toml")))
            .expect_err(toml)
            .to_string();
        assert!(e.starts_with("c.toml: "), "{e}");
        e
    }

    #[test]
    fn hostnames() {
        for ok in ["web1", "web-1.example.org", "a", &"h".repeat(63), "a.b.c"] {
            config(&format!("hostname = {ok:?}\n"))
                .validate(Path::new("c.toml"))
                .unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("web\n1", "'\\n'"),
            ("web 1", "' '"),
            ("web_1", "'_'"),
            ("-web", "\"-web\""),
            ("web.", "empty label"),
            ("a..b", "empty label"),
            (&"h".repeat(64), "longer than 63"),
            (
                &format!("{}.{}", "a".repeat(40), "b".repeat(40)),
                "limit is 64",
            ),
        ] {
            let e = refused(&format!("hostname = {bad:?}\n"));
            assert!(
                e.contains("hostname = ") && e.contains(&format!("{bad:?}")),
                "{e}"
            );
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn unknown_signals_are_refused_with_the_accepted_forms() {
        config("[signals]\nhalt = \"SIGPWR\"\nreboot = \"RTMIN+3\"\nstop = \"30\"\n")
            .validate(Path::new("c.toml"))
            .unwrap();
        for key in ["halt", "reboot", "stop"] {
            let e = refused(&format!("[signals]\n{key} = \"SIGBOGUS\"\n"));
            assert!(
                e.contains(&format!(
                    "line 2 (`{key} = \"SIGBOGUS\"`): signals.{key} = \"SIGBOGUS\": "
                )),
                "{e}"
            );
            for form in ["SIGPWR", "RTMIN+3", "30"] {
                assert!(e.contains(form), "{e}");
            }
        }
    }

    #[test]
    fn relative_bind_sources_are_refused() {
        let e = refused("[[mount]]\nsource = \"data\"\ntarget = \"mnt\"\noptions = \"rbind,ro\"\n");
        assert!(
            e.contains("mount[0].source = \"data\"") && e.contains("absolute"),
            "{e}"
        );
        // File systems name their source freely; absolute binds are fine.
        config(
            "[[mount]]\nsource = \"proc\"\ntarget = \"mnt/proc\"\nfstype = \"proc\"\n\n\
             [[mount]]\nsource = \"tmpfs\"\ntarget = \"tmp\"\nfstype = \"tmpfs\"\noptions = \"size=1M\"\n\n\
             [[mount]]\nsource = \"/srv/data\"\ntarget = \"mnt\"\noptions = \"bind\"\n",
        )
        .validate(Path::new("c.toml"))
        .unwrap();
    }

    #[test]
    fn autostart_groups() {
        let c = config(
            "[autostart]\nenabled = true\norder = 10\ndelay = 5\ngroups = [\"onboot\", \"web\"]\n",
        );
        c.validate(Path::new("c.toml")).unwrap();
        assert_eq!(c.autostart.groups, ["onboot", "web"]);
        for bad in ["\"\"", "\"a,b\"", "\"a b\""] {
            let e = refused(&format!("[autostart]\ngroups = [{bad}]\n"));
            assert!(e.contains("autostart.groups"), "{e}");
        }
        assert!(refused("[autostart]\ngroup = [\"x\"]\n").contains("group"));
    }

    #[test]
    fn install_dirs() {
        for ok in [
            "/var/lib/rlxc",
            "/tmp/rlxc-test-x/lib",
            "/srv/containers",
            "/data",
        ] {
            install_dir(Path::new(ok)).unwrap();
        }
        for (bad, why) in [
            ("/", "system directory"),
            ("//", "system directory"),
            ("/var/lib/", "system directory"),
            ("/./etc", "system directory"),
            ("/var/lib/rlxc/../..", "'..'"),
            ("/srv/../x", "'..'"),
            ("relative", "absolute"),
        ] {
            let e = install_dir(Path::new(bad)).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
