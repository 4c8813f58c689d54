//! Publish: a stopped container becomes an image in LXC's format (a meta tarball and a
//! rootfs tarball, see `image::published`) that `rlxc-create -t image ALIAS` makes new
//! containers from, as it would from a downloaded one. The tree is archived as
//! rlxc-export archives it (every attribute kept), less what made it that machine: its
//! `/etc/hostname` and `/etc/hosts` go in with the host name as `LXC_NAME` (the meta's
//! `templates` list has both, so each new container gets its own), `/etc/machine-id`
//! empty, DHCP leases and SSH host keys left out. The container itself is not touched.
//! The image is written hidden beside its final name and renamed into place, so an
//! interrupted or failed publish leaves no image and no alias taken.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::export::tree::{self, TreeSpec};
use super::own::{forget_machine_id, machine_files, rename_host, rewrite};
use super::tree::Tree;
use super::Container;
use crate::config::{ContainerConfig, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::image::catalog::{self, Catalog};
use crate::image::fetch::Progress;
use crate::image::meta;
use crate::image::published::{self, Info, Store};
use crate::rootfs::Root;
use crate::store;

pub struct PublishOptions<'a> {
    pub alias: &'a str,
    pub description: Option<&'a str>,
    /// Replace an image published under this alias.
    pub replace: bool,
}

/// What a publish did, for the CLI to report.
pub struct PublishReport {
    pub dir: PathBuf,
    /// The rootfs's tar stream, uncompressed.
    pub tree_bytes: u64,
    /// Both archives.
    pub image_bytes: u64,
    pub elapsed: Duration,
    /// Files of the container's that the image leaves out (leases, SSH host keys).
    pub left_out: Vec<String>,
    /// An image of this alias was replaced.
    pub replaced: bool,
    /// Work directories of killed publishes and removals that this one removed.
    pub swept: Vec<PathBuf>,
}

/// How long a replace waits for creates that read the image it replaces.
const REPLACE_WAIT: Duration = Duration::from_secs(10);
/// Files that name the machine, archived from the image's own copies.
const RENAMED: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/machine-id"];
/// The most of one of those copied: a few lines each.
const MAX_RENAMED: u64 = 64 << 10;
/// More files than any machine has to leave out: a tree planting thousands of
/// `ssh_host_*` names is refused rather than handed to GNU tar's command line.
const MAX_LEFT_OUT: usize = 4096;

impl Container {
    /// Make this (stopped) container the image `o.alias`, all or nothing.
    pub fn publish(
        &self,
        sys: &SystemConfig,
        o: &PublishOptions,
        progress: &dyn Progress,
    ) -> Result<PublishReport> {
        let t0 = Instant::now();
        published::validate_alias(o.alias)?;
        if let Some(d) = o.description {
            published::validate_description(d)?;
        }
        let cfg = self.config()?;
        let store = Store::new(&sys.cachepath);
        if !o.replace && store.entry(o.alias).is_dir() {
            return Err(store.exists(o.alias));
        }
        let _cleanup = crate::sys::CleanupGuard::hold();
        let _lock = self.lock_stopped("publishing this container", "an image")?;
        // An overlay container's merged tree, on a detached mount.
        let tree = self.tree_for_reading(&cfg)?;
        let swept = Catalog::new(&sys.cachepath)
            .sweep()
            .into_iter()
            .map(|l| l.path)
            .collect();
        let staging = store.stage(o.alias)?;
        let info = Info {
            alias: o.alias.to_string(),
            container: self.name.clone(),
            created: catalog::now(),
            arch: cfg.arch.clone().unwrap_or_else(crate::image::arch::host),
            description: o
                .description
                .filter(|d| !d.trim().is_empty())
                .map(String::from),
            image: cfg.image.clone(),
            rlxc_version: env!("CARGO_PKG_VERSION").into(),
        };
        let old_host = cfg.host_name(&self.name);
        let identity = Identity::prepare(tree.root(), &staging.dir.join("identity"), &old_host)?;
        let tree_bytes = write_rootfs(&tree, &identity, &staging.dir, &self.name, progress)?;
        store::remove_tree(&identity.dir)?;
        meta::write(
            &staging.dir.join(published::META),
            &meta_files(&cfg, &info),
            info.created.max(0) as u64,
        )?;
        published::write_info(&staging.dir, &info)?;
        let image_bytes = catalog::disk_usage(&staging.dir);
        let replaced = store.commit(staging, o.replace, REPLACE_WAIT)?;
        if replaced {
            // The trees creates decompressed from the image replaced serve no one now.
            Catalog::new(&sys.cachepath).remove_derived(o.alias);
        }
        Ok(PublishReport {
            dir: store.entry(o.alias),
            tree_bytes,
            image_bytes,
            elapsed: t0.elapsed(),
            left_out: identity.left_out,
            replaced,
            swept,
        })
    }
}

/// `rootfs.tar.zst` in `dir`: the tree less the machine's files, the image's own copies
/// of the renamed ones after it. Its uncompressed size.
fn write_rootfs(
    tree: &Tree,
    identity: &Identity,
    dir: &Path,
    name: &str,
    progress: &dyn Progress,
) -> Result<u64> {
    let path = dir.join(published::ROOTFS);
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx("create", &path)?;
    let spec = TreeSpec {
        tree,
        exclude: &identity.exclude,
        append: Some((&identity.dir, &identity.names)),
    };
    tree::compress_into(&file, &path, |enc| {
        progress.start(&format!("publishing {name}"), None);
        let copied = tree::copy_tree(&spec, enc, &path, progress);
        progress.finish();
        copied
    })
}

/// The files that named the source, as the image has them.
struct Identity {
    /// Copies of the renamed files, made the image's: `dir/etc/hostname`, …
    dir: PathBuf,
    /// Those of `RENAMED` that were copied (small regular files; anything else there
    /// goes in as it is).
    names: Vec<&'static str>,
    /// Left out of the tree: the copied files' originals and the machine's files.
    exclude: Vec<Vec<u8>>,
    /// The machine's files, as paths inside the container.
    left_out: Vec<String>,
}

impl Identity {
    fn prepare(root: &Root, dir: &Path, old_host: &str) -> Result<Self> {
        store::mkdir_p(&dir.join("etc"), 0o700)?;
        let mut names = Vec::new();
        let mut times = Vec::new();
        for rel in RENAMED {
            if let Some(mtime) = copy_small_file(root, rel, &dir.join(rel))? {
                names.push(rel);
                times.push((rel, mtime));
            }
        }
        let own = Root::open(dir)?;
        // The name the tree itself was given, when it is not the config's.
        let tree_host = std::fs::read_to_string(dir.join("etc/hostname"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        rewrite(&own, b"etc/hostname", &|_| Some("LXC_NAME\n".into()))?;
        for old in [old_host, tree_host.as_str()] {
            if !old.is_empty() && !old.contains(char::is_whitespace) {
                rename_host(&own, old, "LXC_NAME")?;
            }
        }
        forget_machine_id(&own)?;
        for (rel, mtime) in times {
            let f = File::options()
                .write(true)
                .open(dir.join(rel))
                .ctx("open", dir.join(rel))?;
            f.set_modified(mtime)
                .ctx("set the time of", dir.join(rel))?;
        }
        let machine = machine_files(root)?;
        if machine.len() > MAX_LEFT_OUT {
            return Err(Error::Other(format!(
                "{} has {} SSH host keys and DHCP leases, more than {MAX_LEFT_OUT}; remove \
                 them and publish again",
                root.display(b"").display(),
                machine.len()
            )));
        }
        let left_out = machine
            .iter()
            .map(|m| format!("/{}", String::from_utf8_lossy(m)))
            .collect();
        let exclude = names
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .chain(machine)
            .collect();
        Ok(Identity {
            dir: dir.to_path_buf(),
            names,
            exclude,
            left_out,
        })
    }
}

/// Copy `rel` of the tree to `to` with its owner and mode, if it is a small regular
/// file (resolved inside the tree, the last component not followed); its mtime.
fn copy_small_file(root: &Root, rel: &str, to: &Path) -> Result<Option<std::time::SystemTime>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let fd = match root.openat(rel.as_bytes(), flags, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENXIO | Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err(e).ctx("open", root.display(rel.as_bytes())),
    };
    let from = File::from(fd);
    let md = from
        .metadata()
        .ctx("inspect", root.display(rel.as_bytes()))?;
    if !md.is_file() || md.len() > MAX_RENAMED {
        return Ok(None);
    }
    let mut data = Vec::new();
    from.take(MAX_RENAMED)
        .read_to_end(&mut data)
        .ctx("read", root.display(rel.as_bytes()))?;
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(to)
        .ctx("create", to)?;
    std::io::Write::write_all(&mut &out, &data).ctx("write", to)?;
    nix::unistd::fchown(out.as_fd(), Some(md.uid().into()), Some(md.gid().into()))
        .ctx("set the owner of", to)?;
    out.set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))
        .ctx("set the mode of", to)?;
    Ok(Some(
        md.modified().ctx("inspect", root.display(rel.as_bytes()))?,
    ))
}

/// The meta tarball's files: LXC config lines for what the image needs to run (its
/// architecture, init and signals; the source's networks, limits and mounts are its
/// own, a new container takes the defaults), the files to substitute, a message.
fn meta_files(cfg: &ContainerConfig, info: &Info) -> Vec<(&'static str, String)> {
    let mut config = format!(
        "# Published by rlxc from container {} on {} UTC\n\
         lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = {}\n",
        info.container,
        crate::config::format_utc(info.created),
        info.arch
    );
    let mut line = |key: &str, value: String| {
        // A value that would break the line format stays out (the defaults serve).
        if !value.is_empty() && !value.chars().any(char::is_control) {
            config.push_str(&format!("{key} = {value}\n"));
        }
    };
    line("lxc.init.cmd", cfg.init.cmd.join(" "));
    for e in &cfg.init.env {
        line("lxc.environment", e.clone());
    }
    let signals = &cfg.signals;
    for (key, sig) in [
        ("lxc.signal.halt", &signals.halt),
        ("lxc.signal.reboot", &signals.reboot),
        ("lxc.signal.stop", &signals.stop),
    ] {
        if let Some(s) = sig {
            line(key, s.to_string());
        }
    }
    let config_user = format!("{config}lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\n");
    let described = info
        .description
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let message = format!(
        "Made from image {} (container {}, published {} UTC){described}\n",
        info.alias,
        info.container,
        crate::config::format_utc(info.created)
    );
    vec![
        ("config", config),
        ("config-user", config_user),
        ("templates", "/etc/hostname\n/etc/hosts\n".into()),
        ("create-message", message),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_goes_and_the_container_keeps_its_own() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("rootfs");
        for d in ["etc/ssh", "var/lib/dhcp"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        let files = [
            ("etc/hostname", "myhost\n"),
            ("etc/hosts", "127.0.0.1 localhost\n127.0.1.1 web1 myhost\n"),
            ("etc/machine-id", "0123456789abcdef\n"),
            ("etc/ssh/ssh_host_ed25519_key", "secret"),
            ("etc/ssh/sshd_config", "Port 22\n"),
            ("var/lib/dhcp/dhclient.eth0.leases", "lease {}\n"),
        ];
        for (f, text) in files {
            std::fs::write(src.join(f), text).unwrap();
        }
        let id =
            Identity::prepare(&Root::open(&src).unwrap(), &t.path().join("id"), "web1").unwrap();
        let got = |f: &str| std::fs::read_to_string(id.dir.join(f)).unwrap();
        assert_eq!(got("etc/hostname"), "LXC_NAME\n");
        assert_eq!(
            got("etc/hosts"),
            "127.0.0.1 localhost\n127.0.1.1 LXC_NAME LXC_NAME\n"
        );
        assert_eq!(got("etc/machine-id"), "");
        assert_eq!(id.names, RENAMED);
        let mut left = id.left_out.clone();
        left.sort();
        assert_eq!(
            left,
            [
                "/etc/ssh/ssh_host_ed25519_key",
                "/var/lib/dhcp/dhclient.eth0.leases"
            ]
        );
        assert_eq!(id.exclude.len(), 5);
        for (f, text) in files {
            assert_eq!(std::fs::read_to_string(src.join(f)).unwrap(), text, "{f}");
        }
    }

    #[test]
    fn links_and_missing_files_are_not_copied() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("rootfs");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, "web1\n").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("etc/hostname")).unwrap();
        let id =
            Identity::prepare(&Root::open(&src).unwrap(), &t.path().join("id"), "web1").unwrap();
        assert!(id.names.is_empty() && id.exclude.is_empty());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "web1\n");
    }

    #[test]
    fn the_config_carries_what_the_image_needs_to_run() {
        let mut cfg = ContainerConfig::default();
        cfg.init.cmd = vec!["/sbin/init".into(), "--log-level=info".into()];
        cfg.init.env = vec![
            "A=1".into(),
            "B=x\nlxc.mount.entry = / host none rbind".into(),
        ];
        cfg.signals.halt = "SIGRTMIN+3".parse().ok();
        let info = Info {
            alias: "web".into(),
            container: "web1".into(),
            created: 0,
            arch: "amd64".into(),
            description: Some("tuned".into()),
            image: None,
            rlxc_version: "0".into(),
        };
        let files = meta_files(&cfg, &info);
        let config = &files[0].1;
        assert!(config.contains("lxc.arch = amd64\n"), "{config}");
        assert!(
            config.contains("lxc.init.cmd = /sbin/init --log-level=info\n"),
            "{config}"
        );
        assert!(config.contains("lxc.environment = A=1\n"), "{config}");
        assert!(!config.contains("rbind"), "{config}");
        assert!(config.contains("lxc.signal.halt = SIGRTMIN+3"), "{config}");
        let mut translated = ContainerConfig::default();
        let t = crate::image::lxcconf::translate(config, &mut translated);
        assert!(t.ignored.is_empty(), "{:?}", t.ignored);
        assert_eq!(translated.init.cmd, cfg.init.cmd);
        assert_eq!(translated.init.env, ["A=1"]);
        assert_eq!(translated.signals.halt, cfg.signals.halt);
        assert_eq!(translated.arch.as_deref(), Some("amd64"));
    }
}
