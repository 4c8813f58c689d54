//! Export and import: a container (config and rootfs) as one zstd-compressed tar, and a
//! new container from one. The format is in `archive.rs`. Export runs GNU tar over the
//! stopped container's rootfs (numeric owners, xattrs, ACLs, hardlinks, devices,
//! mtimes); import treats the archive as hostile input: bounded reads of its manifest
//! and config, the config validated like any other, the rootfs through the confined
//! unpack, held to max_image_size, built hidden and published with one rename.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::Container;
use crate::config::{Backend, ContainerConfig, SystemConfig};
use crate::error::{Error, IoContext, Result};
use crate::image::budget::{Bounded, Budget};
use crate::image::fetch::Progress;
use crate::image::{decompress, lxcconf, unpack};
use crate::rootfs::Root;
use crate::{name, store};

mod archive;
pub(super) mod tree;

pub use archive::Manifest;
use tree::TreeSpec;

/// What an export did, for the CLI to report.
pub struct ExportReport {
    pub archive: PathBuf,
    /// The rootfs's tar stream, uncompressed.
    pub tree_bytes: u64,
    pub archive_bytes: u64,
    pub elapsed: Duration,
}

/// What an import did, for the CLI to report.
pub struct ImportReport {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub stats: unpack::Stats,
    /// The decompressed stream.
    pub tree_bytes: u64,
    pub elapsed: Duration,
    /// Work directories of killed creates and destroys that this import removed.
    pub swept: Vec<PathBuf>,
}

impl Container {
    /// Write the stopped container's config and rootfs to `out`, a new file that
    /// appears only when complete.
    pub fn export(&self, out: &Path, progress: &dyn Progress) -> Result<ExportReport> {
        let t0 = Instant::now();
        let cfg = self.config()?;
        let _cleanup = crate::sys::CleanupGuard::hold();
        let _lock = store::lock_name(&self.lxcpath, &self.name, "exporting this container")?;
        if self.state().is_running() {
            return Err(Error::Busy {
                name: self.name.clone(),
                what: format!(
                    "it is running, and an archive of a running container is not \
                     consistent; stop it first (rlxc-stop -n {}) and export again",
                    self.name
                ),
            });
        }
        if out.symlink_metadata().is_ok() {
            return Err(Error::Usage(format!(
                "{} exists; remove it or name another file",
                out.display()
            )));
        }
        let partial = Partial::create(out)?;
        let tree_bytes = self.write_archive(&cfg, &partial, progress)?;
        let archive_bytes = partial.publish()?;
        Ok(ExportReport {
            archive: out.to_path_buf(),
            tree_bytes,
            archive_bytes,
            elapsed: t0.elapsed(),
        })
    }

    /// Manifest, config and the rootfs's tar stream into `partial`, compressed.
    fn write_archive(
        &self,
        cfg: &ContainerConfig,
        partial: &Partial,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let manifest = Manifest {
            format: archive::FORMAT,
            name: self.name.clone(),
            rlxc_version: env!("CARGO_PKG_VERSION").into(),
            backing_store: backend_name(cfg.rootfs.backend).into(),
        };
        let manifest = toml::to_string(&manifest)
            .map_err(|e| Error::Other(format!("cannot write the manifest: {e}")))?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let config = crate::config::read_text(&self.config_path())?;
        let rootfs = self.rootfs(cfg)?;
        tree::compress_into(&partial.file, &partial.path, |enc| {
            archive::write_member(enc, archive::MANIFEST, manifest.as_bytes(), now)?;
            archive::write_member(enc, archive::CONFIG, config.as_bytes(), now)?;
            progress.start(&format!("exporting {}", self.name), None);
            let copied = tree::copy_tree(&TreeSpec::whole(&rootfs), enc, &partial.path, progress);
            progress.finish();
            copied
        })
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Dir => "dir",
        Backend::Overlay => "overlay",
        Backend::Btrfs => "btrfs",
    }
}

/// The archive being written, as a hidden file beside its final name; removed on drop
/// unless published.
struct Partial {
    path: PathBuf,
    dest: PathBuf,
    file: std::fs::File,
    published: bool,
}

impl Partial {
    fn create(dest: &Path) -> Result<Self> {
        let file_name = dest.file_name().ok_or_else(|| {
            Error::Usage(format!(
                "{}: name the archive file to write, like web1.tar.zst",
                dest.display()
            ))
        })?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let path = dir.join(format!(
            ".{}.partial.{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create", &path)?;
        Ok(Partial {
            path,
            dest: dest.to_path_buf(),
            file,
            published: false,
        })
    }

    /// Rename into place (never over a file that appeared meanwhile); its size.
    fn publish(mut self) -> Result<u64> {
        let size = self.file.metadata().ctx("inspect", &self.path)?.len();
        match store::rename_noreplace(&self.path, &self.dest) {
            Ok(()) => {
                self.published = true;
                Ok(size)
            }
            Err(nix::errno::Errno::EEXIST) => Err(Error::Usage(format!(
                "{} appeared while the export ran; nothing was written: remove it or \
                 name another file",
                self.dest.display()
            ))),
            Err(e) => Err(Error::io("rename into place", &self.dest, e.into())),
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A new container from the archive at `path`, named `new_name` or as it was exported.
/// `allow_host_mounts`: keep mounts of host paths its config has (refused otherwise).
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
    let mut cfg = archive_config(&head, &what, allow_host_mounts)?;
    if matches!(cfg.rootfs.backend, Backend::Dir | Backend::Btrfs) {
        cfg.rootfs.backend = backend;
    }
    let c = Container::new(sys, name)?;
    let old_hostname = cfg.hostname.clone();
    // Under another name it is a copy, made its own as rlxc-copy makes one.
    let renamed = name != head.manifest.name;
    if renamed {
        cfg = c.as_new(cfg, &head.manifest.name)?;
    }
    cfg.validate(&c.config_path())?;

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
    let tar = creating
        .dir
        .join(format!(".import.{}.tar", std::process::id()));
    progress.message(&format!("decompressing {what}"));
    let tree_bytes = decompress_tree(&mut input, &tar, &what, sys.max_image_size)?;
    progress.message(&format!("unpacking {what}"));
    let root = Root::open(&rootfs)?;
    let stats = unpack::unpack_file(&tar, &root, &[])?;
    std::fs::remove_file(&tar).ctx("remove", &tar)?;
    if renamed {
        let old = old_hostname.unwrap_or_else(|| name::hostname_for(&head.manifest.name));
        let new = cfg
            .hostname
            .clone()
            .unwrap_or_else(|| name::hostname_for(name));
        super::copy::make_own(&root, &old, &new)?;
    }
    cfg.save(&creating.dir.join("config.toml"))?;
    let dir = creating.publish(&c.lxcpath, name)?;
    Ok(ImportReport {
        name: name.to_string(),
        dir,
        manifest: head.manifest,
        stats,
        tree_bytes,
        elapsed: t0.elapsed(),
        swept,
    })
}

/// The archive's config, checked as any config is, and refused if it mounts from the
/// host without the sysadmin's say-so: an archive may come from anywhere.
fn archive_config(
    head: &archive::Head,
    what: &str,
    allow_host_mounts: bool,
) -> Result<ContainerConfig> {
    let file = PathBuf::from(format!("{what}:{}", archive::CONFIG));
    let cfg: ContainerConfig = crate::config::parse_toml(&file, &head.config)?;
    cfg.validate(&file)?;
    let from_host: Vec<String> = cfg
        .mounts
        .iter()
        .filter(|m| lxcconf::mounts_from_host(m))
        .map(|m| format!("{} on {}", m.source, m.target))
        .collect();
    if !from_host.is_empty() && !allow_host_mounts {
        return Err(Error::hostile(format!(
            "{what}: its config mounts from the host ({}); nothing was imported. If you \
             trust this archive, import it again with --allow-host-mounts",
            from_host.join(", ")
        )));
    }
    Ok(cfg)
}

/// The rest of the archive (GNU tar's stream) into the plain file `tar` the unpacker
/// reads, held to `limit` and the file system's free space; its size.
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
        let head = archive::Head {
            manifest: Manifest {
                format: archive::FORMAT,
                name: "web1".into(),
                rlxc_version: "0".into(),
                backing_store: "dir".into(),
            },
            config: "[[mount]]\nsource = \"/\"\ntarget = \"hostroot\"\noptions = \"rbind\"\n"
                .into(),
        };
        let e = archive_config(&head, "a.tar.zst", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--allow-host-mounts") && e.contains("/ on hostroot"),
            "{e}"
        );
        assert!(archive_config(&head, "a.tar.zst", true).is_ok());
        let outside = archive::Head {
            config: "[rootfs]\npath = \"../other\"\n".into(),
            ..head
        };
        let e = archive_config(&outside, "a.tar.zst", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.tar.zst:config.toml") && e.contains("rootfs.path"),
            "{e}"
        );
    }
}
