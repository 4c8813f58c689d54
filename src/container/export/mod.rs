//! Export and import: a container (config and rootfs, and with `--snapshots` its
//! snapshots) as one zstd-compressed tar, and a new container from one. The format is in
//! `archive.rs`, import in `import.rs`. Export runs GNU tar over each tree of the stopped
//! container (numeric owners, xattrs, ACLs, hardlinks, devices, mtimes): whole trees, an
//! overlay container's (and snapshot's) merged on a detached mount, so the archive holds
//! a `dir` container.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::snapshot::Snapshot;
use super::tree::{whole_tree_config, Tree};
use super::Container;
use crate::config::{Backend, ContainerConfig};
use crate::error::{Error, IoContext, Result};
use crate::image::fetch::Progress;
use crate::image::unpack;
use crate::store;

mod archive;
mod import;
pub(super) mod tree;

pub use archive::Manifest;
pub use import::import;
use tree::TreeSpec;

/// What an export did, for the CLI to report.
pub struct ExportReport {
    pub archive: PathBuf,
    /// The trees' tar streams, uncompressed.
    pub tree_bytes: u64,
    pub archive_bytes: u64,
    pub elapsed: Duration,
    /// The snapshots it holds.
    pub snapshots: Vec<String>,
}

/// What an import did, for the CLI to report.
pub struct ImportReport {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Of the rootfs; the warnings of the snapshots' too.
    pub stats: unpack::Stats,
    /// The decompressed streams.
    pub tree_bytes: u64,
    pub elapsed: Duration,
    /// Work directories of killed creates and destroys that this import removed.
    pub swept: Vec<PathBuf>,
    /// The snapshots it restored.
    pub snapshots: Vec<String>,
}

impl Container {
    /// Write the stopped container's config and rootfs to `out`, a new file that
    /// appears only when complete.
    /// With `snapshots`, every snapshot too.
    pub fn export(
        &self,
        out: &Path,
        snapshots: bool,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
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
        let snaps = if snapshots {
            self.snapshots()?
        } else {
            Vec::new()
        };
        let partial = Partial::create(out)?;
        let tree_bytes = self.write_archive(&cfg, &snaps, &partial, progress)?;
        let archive_bytes = partial.publish()?;
        Ok(ExportReport {
            archive: out.to_path_buf(),
            tree_bytes,
            archive_bytes,
            elapsed: t0.elapsed(),
            snapshots: snaps.into_iter().map(|s| s.name).collect(),
        })
    }

    /// Manifest, config, the snapshots and the rootfs's tar stream into `partial`,
    /// compressed; the trees' size.
    fn write_archive(
        &self,
        cfg: &ContainerConfig,
        snaps: &[Snapshot],
        partial: &Partial,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let manifest = Manifest {
            format: if snaps.is_empty() {
                archive::FORMAT
            } else {
                archive::FORMAT_SNAPSHOTS
            },
            name: self.name.clone(),
            rlxc_version: env!("CARGO_PKG_VERSION").into(),
            // Every tree in it is whole: a btrfs container's comes back as a subvolume
            // where it can, any other's as a dir.
            backing_store: if cfg.rootfs.backend == Backend::Btrfs {
                "btrfs"
            } else {
                "dir"
            }
            .into(),
            snapshots: snaps.iter().map(|s| s.name.clone()).collect(),
        };
        let manifest = toml::to_string(&manifest)
            .map_err(|e| Error::Other(format!("cannot write the manifest: {e}")))?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let config = whole_tree_text(cfg, &self.config_path())?;
        tree::compress_into(&partial.file, &partial.path, |enc| {
            archive::write_member(enc, archive::MANIFEST, manifest.as_bytes(), now)?;
            archive::write_member(enc, archive::CONFIG, config.as_bytes(), now)?;
            let mut tree_bytes = 0;
            for s in snaps {
                tree_bytes += self.write_snapshot(s, enc, &partial.path, now, progress)?;
            }
            let tree = self.tree_for_reading(cfg)?;
            progress.start(&format!("exporting {}", self.name), None);
            let copied = tree::copy_tree(&TreeSpec::whole(&tree), enc, &partial.path, progress);
            progress.finish();
            Ok(tree_bytes + copied?)
        })
    }

    /// Snapshot `s`'s members into `enc` (the archive at `path`); its tree's size.
    fn write_snapshot(
        &self,
        s: &Snapshot,
        enc: &mut tree::Compressor,
        path: &Path,
        now: u64,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let file = s.dir.join(archive::CONFIG);
        let scfg = ContainerConfig::load(&file)?;
        let member = |f: &str| archive::snap_member(&s.name, f);
        let text = whole_tree_text(&scfg, &file)?;
        archive::write_member(enc, &member(archive::CONFIG), text.as_bytes(), now)?;
        for f in ["ts", "comment"] {
            let text = crate::config::read_text(&s.dir.join(f)).unwrap_or_default();
            archive::write_member(enc, &member(f), text.as_bytes(), now)?;
        }
        let tree = Tree::view(self.backing(&scfg).as_ref(), &s.tree)?;
        let mut chunks = archive::ChunkWriter::new(enc, &s.name, now);
        progress.start(
            &format!("exporting {}'s snapshot {}", self.name, s.name),
            None,
        );
        let copied = tree::copy_tree(&TreeSpec::whole(&tree), &mut chunks, path, progress);
        progress.finish();
        let copied = copied?;
        chunks.finish()?;
        Ok(copied)
    }
}

/// The config (read from `file`) of a whole tree: a `dir` or `btrfs` container's as it
/// is written, an overlay one's as the `dir` container its archived tree makes.
fn whole_tree_text(cfg: &ContainerConfig, file: &Path) -> Result<String> {
    if cfg.rootfs.backend == Backend::Overlay {
        whole_tree_config(cfg.clone()).to_text(file)
    } else {
        crate::config::read_text(file)
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
