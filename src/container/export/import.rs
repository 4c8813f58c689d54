//! Import: a new container from an export archive, treated as hostile input. Bounded
//! reads of its manifest and configs, each config validated like any other (a `dir`
//! tree only: an archive never names a lower), every tree (the rootfs, each snapshot's)
//! through the confined unpack, all of them together held to max_image_size, built
//! hidden and published with one rename.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::archive::{self, ChunkReader};
use super::ImportReport;
use crate::config::{Backend, ContainerConfig, SystemConfig};
use crate::container::copy::make_tree;
use crate::container::own::make_own;
use crate::container::snapshot::{write_meta, MAX_COMMENT};
use crate::container::Container;
use crate::error::{Error, IoContext, Result};
use crate::image::budget::{Bounded, Budget};
use crate::image::fetch::Progress;
use crate::image::{decompress, lxcconf, unpack};
use crate::rootfs::Root;
use crate::{idmap, name, store};

/// A new container from the archive at `path`, named `new_name` or as it was exported.
/// `allow_host_mounts`: keep mounts of host paths its configs have (refused otherwise).
pub fn import(
    sys: &SystemConfig,
    path: &Path,
    new_name: Option<&str>,
    allow_host_mounts: bool,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let t0 = Instant::now();
    let what = path.display().to_string();
    let mut input = decompress::open(path)?;
    let head = archive::read_head(&mut input, &what)?;
    let name = new_name.unwrap_or(&head.manifest.name);
    name::validate(name)?;
    let backend = match head.manifest.backing_store.as_str() {
        "dir" => Backend::Dir,
        // A subvolume again where the lxcpath is on btrfs; elsewhere the files are a dir.
        "btrfs" if store::btrfs::is_btrfs(&sys.lxcpath) => Backend::Btrfs,
        "btrfs" => Backend::Dir,
        other => {
            return Err(Error::Usage(format!(
                "{what} holds a {other:?} backing store; this rlxc imports \"dir\" and \
                 \"btrfs\" only"
            )))
        }
    };
    check_snapshot_names(&head.manifest.snapshots, &what)?;
    let mut cfg = archive_config(&head.config, &what, archive::CONFIG, allow_host_mounts)?;
    cfg.rootfs.backend = backend;
    let c = Container::new(sys, name)?;
    let old_hostname = cfg.hostname.clone();
    // Under another name it is a copy, made its own as rlxc-copy makes one.
    let renamed = name != head.manifest.name;
    if renamed {
        cfg = c.as_new(cfg, &head.manifest.name)?;
    }
    cfg.validate(&c.config_path())?;
    // Before anything is unpacked: a container that could get no ids is refused here.
    idmap::Plan::new(sys, name, cfg.idmap.as_ref(), idmap::Origin::Copy)?;
    let old_host = old_hostname.unwrap_or_else(|| name::hostname_for(&head.manifest.name));
    let new_host = cfg.host_name(name);

    let _cleanup = crate::sys::CleanupGuard::hold();
    store::mkdir_p(&c.lxcpath, 0o755)?;
    let _lock = store::lock_name(&c.lxcpath, name, "importing this container")?;
    if c.dir().exists() {
        return Err(Error::Exists {
            name: name.to_string(),
            lxcpath: c.lxcpath.clone(),
        });
    }
    let swept = store::sweep_stale(&c.lxcpath, name);
    let creating = store::Creating::begin(&c.lxcpath, name)?;
    let rootfs = c.backing(&cfg).create(&creating.dir)?;
    let mut tree = TreeIn {
        input: &mut input,
        what: &what,
        staging: &creating.dir,
        left: sys.max_image_size,
        bytes: 0,
        warnings: Vec::new(),
    };
    let mut snap_cfgs = Vec::new();
    for snap in &head.manifest.snapshots {
        progress.message(&format!("unpacking snapshot {snap} of {what}"));
        let sh = archive::read_snap_head(tree.input, &what, snap, MAX_COMMENT as u64)?;
        let member = archive::snap_member(snap, archive::CONFIG);
        let mut scfg = archive_config(&sh.config, &what, &member, allow_host_mounts)?;
        scfg.rootfs.backend = backend;
        let dir = creating.dir.join("snaps").join(snap);
        store::mkdir_p(&creating.dir.join("snaps"), 0o700)?;
        std::fs::create_dir(&dir).ctx("create", &dir)?;
        let snap_tree = dir.join("rootfs");
        make_tree(backend, &snap_tree)?;
        let root = Root::open(&snap_tree)?;
        tree.unpack(snap, &root)?;
        if renamed {
            make_own(&root, &old_host, &new_host)?;
            scfg = snapshot_as_new(&c, scfg, &head.manifest.name, &cfg)?;
        }
        write_meta(&dir, &sh.ts.to_string(), &sh.comment)?;
        snap_cfgs.push((dir, scfg));
    }
    progress.message(&format!("unpacking {what}"));
    let root = Root::open(&rootfs)?;
    let mut stats = tree.unpack("", &root)?;
    stats.warnings.extend(tree.warnings);
    let tree_bytes = tree.bytes;
    if renamed {
        make_own(&root, &old_host, &new_host)?;
    }
    let mut configs: Vec<&mut ContainerConfig> = vec![&mut cfg];
    configs.extend(snap_cfgs.iter_mut().map(|(_, s)| s));
    let ids = own_ids(sys, name, &mut configs)?;
    for (dir, scfg) in &snap_cfgs {
        scfg.save(&dir.join(archive::CONFIG))?;
    }
    cfg.save(&creating.dir.join(archive::CONFIG))?;
    let dir = creating.publish(&c.lxcpath, name)?;
    drop(ids);
    Ok(ImportReport {
        name: name.to_string(),
        dir,
        snapshots: head.manifest.snapshots.clone(),
        manifest: head.manifest,
        stats,
        tree_bytes,
        elapsed: t0.elapsed(),
        swept,
    })
}

/// The trees of one archive being unpacked in turn, all held to one size budget.
struct TreeIn<'a> {
    input: &'a mut Box<dyn Read>,
    what: &'a str,
    staging: &'a Path,
    /// What the trees still to come may take, decompressed.
    left: u64,
    bytes: u64,
    /// Of the snapshots' unpacks.
    warnings: Vec<String>,
}

impl TreeIn<'_> {
    /// The next tree into `root`: snapshot `snap`'s chunks, or ("") the rest of the
    /// archive; decompressed into a plain file beside the tree first (the unpacker reads
    /// files), removed after.
    fn unpack(&mut self, snap: &str, root: &Root) -> Result<unpack::Stats> {
        let tar = self.staging.join(format!(
            ".import.{}{}{snap}.tar",
            std::process::id(),
            if snap.is_empty() { "" } else { "." }
        ));
        let n = if snap.is_empty() {
            decompress_tree(self.input, &tar, self.what, self.left)?
        } else {
            let mut chunks = ChunkReader::new(self.input, self.what, snap);
            decompress_tree(&mut chunks, &tar, self.what, self.left)?
        };
        self.left -= n;
        self.bytes += n;
        let stats = unpack::unpack_file(&tar, root, &[])?;
        std::fs::remove_file(&tar).ctx("remove", &tar)?;
        if !snap.is_empty() {
            let at = |w: &String| format!("snapshot {snap}: {w}");
            self.warnings.extend(stats.warnings.iter().map(at));
        }
        Ok(stats)
    }
}

/// An archive's host ids are another installation's, or anybody's: each of its configs
/// (the container's, its snapshots') that maps ids gets the new container's own, one
/// slice as large as the largest map, taken under the id lock (held by what is
/// returned until the container is published).
fn own_ids(
    sys: &SystemConfig,
    name: &str,
    configs: &mut [&mut ContainerConfig],
) -> Result<idmap::Taken> {
    let largest = configs
        .iter()
        .filter_map(|c| c.idmap.clone())
        .max_by_key(|m| m.count);
    let (plan, _) = idmap::Plan::new(sys, name, largest.as_ref(), idmap::Origin::Copy)?;
    let taken = plan.take(sys)?;
    if let Some(new) = &taken.idmap {
        for m in configs.iter_mut().filter_map(|c| c.idmap.as_mut()) {
            (m.uid, m.gid) = (new.uid, new.gid);
        }
    }
    Ok(taken)
}

/// Snapshot names become directories: container-name rules, each once.
fn check_snapshot_names(names: &[String], what: &str) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        if name::validate(n).is_err() || names[..i].contains(n) {
            return Err(Error::hostile(format!(
                "{what}: its manifest lists a snapshot {n:?}, not a name a snapshot can \
                 have (or twice); nothing was imported"
            )));
        }
    }
    Ok(())
}

/// A snapshot's config for a copy: its host name when it had the old container's, and
/// the copy's MACs and picked addresses, so a restore gives back the copy's identity.
fn snapshot_as_new(
    c: &Container,
    scfg: ContainerConfig,
    old: &str,
    main: &ContainerConfig,
) -> Result<ContainerConfig> {
    let mut s = c.as_new(scfg, old)?;
    for (n, m) in s.networks.iter_mut().zip(&main.networks) {
        if n.hwaddr.is_some() {
            n.hwaddr.clone_from(&m.hwaddr);
        }
    }
    Ok(s)
}

/// The archive's config (its member `member`), checked as any config is, and refused if
/// it mounts from the host without the sysadmin's say-so (an archive may come from
/// anywhere) or is not of a whole tree.
fn archive_config(
    text: &str,
    what: &str,
    member: &str,
    allow_host_mounts: bool,
) -> Result<ContainerConfig> {
    let file = PathBuf::from(format!("{what}:{member}"));
    let cfg: ContainerConfig = crate::config::parse_toml(&file, text)?;
    cfg.validate(&file)?;
    if cfg.rootfs.backend == Backend::Overlay {
        return Err(Error::hostile(format!(
            "{}: rootfs.backend = {:?}, but an export holds whole trees (backend = \
             \"dir\" or \"btrfs\"); nothing was imported",
            file.display(),
            cfg.rootfs.backend
        )));
    }
    let from_host: Vec<String> = cfg
        .mounts
        .iter()
        .filter(|m| lxcconf::mounts_from_host(m))
        .map(|m| format!("{} on {}", m.source, m.target))
        .collect();
    if !from_host.is_empty() && !allow_host_mounts {
        return Err(Error::hostile(format!(
            "{}: it mounts from the host ({}); nothing was imported. If you trust this \
             archive, import it again with --allow-host-mounts",
            file.display(),
            from_host.join(", ")
        )));
    }
    Ok(cfg)
}

/// A tree's GNU tar stream into the plain file `tar` the unpacker reads, held to `limit`
/// and the file system's free space; its size.
fn decompress_tree(input: &mut dyn Read, tar: &Path, what: &str, limit: u64) -> Result<u64> {
    let budget = Budget {
        what: what.to_string(),
        url: "the local disk".into(),
        limit,
        limit_fix: "raise max_image_size in [download] of rlxc.toml if the container is \
                    really that large"
            .into(),
        fs_dir: tar.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let out = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(tar)
        .ctx("create", tar)?;
    let mut sink = archive::TailCheck::new(Bounded::new(out, limit, crate::sys::interrupted));
    let copied = std::io::copy(input, &mut sink).and_then(|_| sink.flush());
    if let Err(e) = copied {
        return Err(match sink.inner.stopped() {
            Some(stop) => budget.error(stop, sink.inner.written()),
            None => Error::Image {
                what: what.to_string(),
                source: e,
            },
        });
    }
    if !sink.ends_with_end_of_archive() {
        return Err(Error::Image {
            what: what.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive ends before its tar stream does: truncated? nothing was imported",
            ),
        });
    }
    Ok(sink.inner.written())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mounts_in_an_archive_need_the_sysadmins_say_so() {
        let config = "[[mount]]\nsource = \"/\"\ntarget = \"hostroot\"\noptions = \"rbind\"\n";
        let e = archive_config(config, "a.tar.zst", "config.toml", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--allow-host-mounts") && e.contains("/ on hostroot"),
            "{e}"
        );
        assert!(archive_config(config, "a.tar.zst", "config.toml", true).is_ok());
        let outside = "[rootfs]\npath = \"../other\"\n";
        let e = archive_config(outside, "a.tar.zst", "snaps/snap0/config.toml", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.tar.zst:snaps/snap0/config.toml") && e.contains("rootfs.path"),
            "{e}"
        );
    }

    #[test]
    fn an_archive_never_layers_a_container_on_a_host_directory() {
        let config = "[rootfs]\nbackend = \"overlay\"\nlower = \"/\"\n";
        let e = archive_config(config, "a.tar.zst", "config.toml", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rootfs.backend") && e.contains("whole trees"),
            "{e}"
        );
    }

    #[test]
    fn snapshot_names_are_plain_and_unique() {
        let ok = ["snap0".to_string(), "snap1".to_string()];
        assert!(check_snapshot_names(&ok, "a").is_ok());
        for bad in [
            vec!["../x".to_string()],
            vec![".hidden".to_string()],
            vec!["a/b".to_string()],
            vec!["snap0".to_string(), "snap0".to_string()],
            vec![String::new()],
        ] {
            let e = check_snapshot_names(&bad, "a").unwrap_err().to_string();
            assert!(e.contains("nothing was imported"), "{bad:?}: {e}");
        }
    }
}
