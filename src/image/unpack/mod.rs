//! Unpack a rootfs tarball into a fresh directory, confined to it.
//!
//! Each member is created relative to a directory handle that was resolved inside the
//! rootfs (see `crate::rootfs`), and the final component is never followed: files are
//! created O_EXCL|O_NOFOLLOW, links with *at calls that do not dereference. Owners are kept
//! numerically; chmod comes after chown (chown clears setuid/setgid and file capabilities)
//! and xattrs, including ACLs and security.capability, after both.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, IoContext, Result};
use crate::rootfs::{self, Root};
use crate::sys;

mod acl;
mod excludes;
mod ops;
mod pax;
mod whiteout;
mod writer;

pub use excludes::{glob_match, parse_excludes};

use acl::{acl_text_to_xattr, IdMaps};
use ops::{create_replacing, set_owner_and_times_at};
use ops::{set_fd_attrs, ts};
use pax::{parse_pax, pax_time, read_small, trim_nul, Extended, SkipReader};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    pub excluded: u64,
    /// Things that were not applied (unknown member types, unresolvable ACL names).
    pub warnings: Vec<String>,
}

/// Ownership, mode, times and extended attributes of one member.
pub(super) struct Attrs {
    uid: u32,
    gid: u32,
    mode: u32,
    /// Seconds and nanoseconds (pax headers carry fractions).
    mtime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

pub struct Unpacker<'a> {
    root: &'a Root,
    excludes: &'a [String],
    /// Last parent directory handle: most members share their predecessor's parent.
    cached_parent: Option<(Vec<u8>, Arc<OwnedFd>)>,
    /// Directory mtimes are set last, deepest first: creating children changes them.
    dir_times: Vec<(Vec<u8>, (i64, i64))>,
    stats: Stats,
    /// Writers of regular files.
    pool: writer::Pool,
    /// The image's own user and group names, for ACLs stored with names.
    ids: Option<IdMaps>,
    /// Unpacking an OCI layer over the ones below: whiteouts apply.
    layer: Option<whiteout::Layer>,
}

/// Unpack the tarball at `tar` into `root`, skipping members matching `excludes`.
pub fn unpack_file(tar: &std::path::Path, root: &Root, excludes: &[String]) -> Result<Stats> {
    unpack(tar, root, excludes, None)
}

/// Unpack the OCI layer tarball `tar` over what `root` holds: `.wh.` whiteouts and
/// opaque directories remove what the layers below put there.
pub fn unpack_layer(tar: &std::path::Path, root: &Root) -> Result<Stats> {
    unpack(tar, root, &[], Some(whiteout::Layer::default()))
}

fn unpack(
    tar: &std::path::Path,
    root: &Root,
    excludes: &[String],
    layer: Option<whiteout::Layer>,
) -> Result<Stats> {
    let f = std::fs::File::open(tar).ctx("open", tar)?;
    let src = f.try_clone().ctx("open", tar)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let old_umask = sys::umask(0);
    let res = std::thread::scope(|scope| {
        Unpacker {
            root,
            excludes,
            cached_parent: None,
            dir_times: Vec::new(),
            stats: Stats::default(),
            pool: writer::Pool::start(scope, &src, threads),
            ids: None,
            layer,
        }
        .run(SkipReader {
            inner: io::BufReader::with_capacity(256 * 1024, f),
            pos: 0,
        })
    });
    sys::umask(old_umask);
    res
}

fn bad_data(what: &str, e: io::Error) -> Error {
    Error::Image {
        what: what.to_string(),
        source: e,
    }
}

impl Unpacker<'_> {
    fn run(mut self, r: impl Read + io::Seek) -> Result<Stats> {
        let mut archive = tar::Archive::new(r);
        // Raw entries: tar's own pax reader splits records on newlines, which breaks on
        // multi-line values such as the ACLs GNU tar writes. Extended headers and GNU long
        // names are read here instead.
        // With seek, data copied in the kernel is skipped rather than read.
        let entries = archive
            .entries_with_seek()
            .map_err(|e| bad_data("rootfs tarball", e))?
            .raw(true);
        let mut ext = Extended::default();
        for entry in entries {
            if sys::interrupted() {
                return Err(Error::Interrupted);
            }
            let mut entry = entry.map_err(|e| bad_data("rootfs tarball", e))?;
            use tar::EntryType as T;
            match entry.header().entry_type() {
                T::XHeader => ext.pax = parse_pax(&read_small(&mut entry, "pax header")?)?,
                T::XGlobalHeader => {
                    read_small(&mut entry, "pax global header")?;
                }
                T::GNULongName => {
                    ext.long_name = Some(trim_nul(read_small(&mut entry, "GNU long name")?))
                }
                T::GNULongLink => {
                    ext.long_link = Some(trim_nul(read_small(&mut entry, "GNU long link")?))
                }
                _ => {
                    let ext = std::mem::take(&mut ext);
                    self.member(&mut entry, ext)?;
                }
            }
        }
        self.stats.bytes = self.pool.finish()?;
        self.apply_dir_times()?;
        Ok(self.stats)
    }

    fn member<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, ext: Extended) -> Result<()> {
        let raw_path = match ext
            .get("path")
            .map(<[u8]>::to_vec)
            .or(ext.long_name.clone())
        {
            Some(p) => p,
            None => entry.header().path_bytes().into_owned(),
        };
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        if let Some(size) = ext.get("size") {
            if std::str::from_utf8(size)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                != entry.header().size().ok()
            {
                return Err(Error::hostile(format!(
                    "tar member {name:?} has a pax size rlxc does not support"
                )));
            }
        }
        if raw_path.starts_with(b"/") {
            return Err(Error::hostile(format!(
                "tar member {name:?} has an absolute path"
            )));
        }
        let comps = rootfs::components(&raw_path, "tar member")?;
        if self.is_excluded(&comps) {
            self.stats.excluded += 1;
            return Ok(());
        }
        if self.layer.is_some() && whiteout::is_whiteout(&comps) {
            // Removals wait for every file being written, and drop the cached handle.
            self.pool.barrier()?;
            self.forget_parent();
        }
        if let Some(layer) = self.layer.as_mut() {
            if whiteout::is_whiteout(&comps) {
                return whiteout::apply(self.root, &comps, layer, &name);
            }
            layer.created.insert(rootfs::join(&comps));
        }
        let kind = entry.header().entry_type();
        // Anything touching a path a writer thread has not finished waits for it; hard
        // links wait for everything (their target may be any earlier file).
        if self.pool.conflicts(&comps) || kind == tar::EntryType::Link {
            self.pool.barrier()?;
        }
        if self.layer.is_some() && kind != tar::EntryType::Directory {
            self.clear_dir_in_the_way(&comps)?;
        }
        let attrs = self.attrs(entry.header(), &ext, &name)?;
        let link_target = || -> Result<Vec<u8>> {
            let t = match ext
                .get("linkpath")
                .map(<[u8]>::to_vec)
                .or(ext.long_link.clone())
            {
                Some(t) => t,
                None => entry
                    .header()
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default(),
            };
            if t.is_empty() {
                return Err(Error::hostile(format!("link {name:?} has no target")));
            }
            Ok(t)
        };
        self.stats.entries += 1;
        use tar::EntryType as T;
        match kind {
            T::Directory => self.directory(&comps, &attrs),
            T::Regular | T::Continuous => self.regular(comps, entry, attrs, &name),
            T::GNUSparse => Err(Error::Image {
                what: format!("tar member {name:?}"),
                source: io::Error::other(
                    "GNU sparse files are not supported; repack the image without --sparse",
                ),
            }),
            T::Symlink => {
                let target = link_target()?;
                self.symlink(&comps, &target, &attrs)
            }
            T::Link => {
                let target = link_target()?;
                self.hardlink(&comps, &target, &name)
            }
            T::Char | T::Block | T::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let kind = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                self.node(
                    &comps,
                    kind,
                    nix::sys::stat::makedev(major.into(), minor.into()),
                    &attrs,
                )
            }
            other => {
                self.stats.warnings.push(format!(
                    "skipped {name:?}: unsupported tar member type {other:?}"
                ));
                Ok(())
            }
        }
    }

    fn is_excluded(&self, comps: &[Vec<u8>]) -> bool {
        if self.excludes.is_empty() {
            return false;
        }
        let p = String::from_utf8_lossy(&rootfs::join(comps)).into_owned();
        self.excludes
            .iter()
            .any(|pat| glob_match(pat.as_bytes(), p.as_bytes()))
    }

    fn attrs(&mut self, h: &tar::Header, ext: &Extended, name: &str) -> Result<Attrs> {
        let field = |r: io::Result<u64>, what: &str| {
            r.map_err(|e| bad_data(&format!("tar member {name:?} ({what})"), e))
        };
        let mut a = Attrs {
            uid: u32::try_from(field(h.uid(), "uid")?).unwrap_or(u32::MAX),
            gid: u32::try_from(field(h.gid(), "gid")?).unwrap_or(u32::MAX),
            mode: field(h.mode().map(u64::from), "mode")? as u32 & 0o7777,
            mtime: (i64::try_from(field(h.mtime(), "mtime")?).unwrap_or(0), 0),
            xattrs: Vec::new(),
        };
        let num = |v: &[u8]| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
        };
        // GNU tar (--xattrs) stores an ACL also as its raw xattr, with numeric ids:
        // exact where the text's names (the writer's host's) may mean nothing here.
        let raw = |x: &str| {
            ext.pax
                .iter()
                .any(|(k, _)| k.strip_prefix("SCHILY.xattr.") == Some(x))
        };
        for (key, value) in &ext.pax {
            match key.as_str() {
                "uid" => {
                    a.uid = num(value)
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(a.uid)
                }
                "gid" => {
                    a.gid = num(value)
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(a.gid)
                }
                "mtime" => a.mtime = pax_time(value).unwrap_or(a.mtime),
                "SCHILY.acl.access" | "SCHILY.acl.default" => {
                    let xname = if key.ends_with("access") {
                        "system.posix_acl_access"
                    } else {
                        "system.posix_acl_default"
                    };
                    if raw(xname) {
                        continue;
                    }
                    if self.ids.is_none() {
                        // The image's passwd and group may still be in a writer's hands.
                        self.pool.barrier()?;
                    }
                    let ids = self.ids.get_or_insert_with(|| IdMaps::load(self.root));
                    match acl_text_to_xattr(value, &|group, n| ids.lookup(group, n)) {
                        Ok(Some(bin)) => a.xattrs.push((xname.into(), bin)),
                        Ok(None) => {}
                        Err(why) => self
                            .stats
                            .warnings
                            .push(format!("ACL of {name:?} not applied: {why}")),
                    }
                }
                k if k.starts_with("SCHILY.xattr.") => {
                    a.xattrs
                        .push((k["SCHILY.xattr.".len()..].to_string(), value.clone()));
                }
                _ => {}
            }
        }
        Ok(a)
    }

    /// The parent directory handle and leaf name of `comps`.
    fn parent(&mut self, comps: &[Vec<u8>]) -> Result<(Arc<OwnedFd>, Vec<u8>)> {
        let (leaf, dir) = comps
            .split_last()
            .ok_or_else(|| Error::Other("empty member path".into()))?;
        let key = rootfs::join(dir);
        match &self.cached_parent {
            Some((k, fd)) if *k == key => Ok((fd.clone(), leaf.clone())),
            _ => {
                let fd = Arc::new(self.root.dir(dir)?);
                self.cached_parent = Some((key, fd.clone()));
                Ok((fd, leaf.clone()))
            }
        }
    }

    /// OCI semantics: a layer's non-directory member replaces a directory of the layers
    /// below with everything in it (tar would refuse a non-empty one). Removed by
    /// handle, links never followed, so a planted symlink inside cannot reach out.
    fn clear_dir_in_the_way(&mut self, comps: &[Vec<u8>]) -> Result<()> {
        let (parent_fd, leaf) = self.parent(comps)?;
        let leaf = OsStr::from_bytes(&leaf);
        let is_dir = nix::sys::stat::fstatat(parent_fd.as_fd(), leaf, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
            });
        if !is_dir {
            return Ok(());
        }
        // Writers may still be filling files under it, and the cached handle may be it.
        self.pool.barrier()?;
        self.forget_parent();
        let disp = self.root.display(&rootfs::join(comps));
        whiteout::remove_tree_at(parent_fd.as_fd(), leaf).ctx("replace the directory", &disp)
    }

    /// Links and nodes may replace a directory we have a handle on: drop the cache.
    fn forget_parent(&mut self) {
        self.cached_parent = None;
    }

    fn directory(&mut self, comps: &[Vec<u8>], a: &Attrs) -> Result<()> {
        let disp = self.root.display(&rootfs::join(comps));
        let fd = if comps.is_empty() {
            self.root
                .openat(b"", OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                .ctx("open", &disp)?
        } else {
            let (parent_fd, leaf) = self.parent(comps)?;
            let parent = parent_fd.as_fd();
            let leaf = OsStr::from_bytes(&leaf);
            match nix::sys::stat::mkdirat(parent, leaf, Mode::from_bits_truncate(0o700)) {
                Ok(()) => {}
                Err(Errno::EEXIST) => {
                    // An existing directory is reused; anything else is replaced.
                    let st = nix::sys::stat::fstatat(parent, leaf, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .ctx("inspect", &disp)?;
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
                        nix::unistd::unlinkat(
                            parent,
                            leaf,
                            nix::unistd::UnlinkatFlags::NoRemoveDir,
                        )
                        .ctx("replace", &disp)?;
                        nix::sys::stat::mkdirat(parent, leaf, Mode::from_bits_truncate(0o700))
                            .ctx("create directory", &disp)?;
                    }
                }
                Err(e) => return Err(e).ctx("create directory", &disp),
            }
            if a.is_plain() {
                // mkdirat left it root-owned; only the mode remains (umask is 0).
                nix::sys::stat::fchmodat(
                    parent,
                    leaf,
                    Mode::from_bits_truncate(a.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .ctx("set mode of", &disp)?;
                self.dir_times.push((rootfs::join(comps), a.mtime));
                return Ok(());
            }
            nix::fcntl::openat(
                parent,
                leaf,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx("open directory", &disp)?
        };
        set_fd_attrs(fd.as_fd(), a, &disp)?;
        self.dir_times.push((rootfs::join(comps), a.mtime));
        Ok(())
    }

    /// Hand the file to a writer thread; its data is skipped in the stream.
    fn regular<R: Read>(
        &mut self,
        comps: Vec<Vec<u8>>,
        entry: &tar::Entry<'_, R>,
        attrs: Attrs,
        name: &str,
    ) -> Result<()> {
        let path = rootfs::join(&comps);
        let disp = self.root.display(&path);
        let (parent, leaf) = self.parent(&comps)?;
        let size = entry.header().size().map_err(|e| bad_data(name, e))?;
        let job = writer::FileJob {
            parent,
            leaf,
            attrs,
            offset: entry.raw_file_position(),
            size,
            disp,
        };
        self.pool.submit(path, job)
    }

    fn symlink(&mut self, comps: &[Vec<u8>], target: &[u8], a: &Attrs) -> Result<()> {
        let disp = self.root.display(&rootfs::join(comps));
        if target.is_empty() {
            return Err(Error::hostile(format!(
                "symlink {} has an empty target",
                disp.display()
            )));
        }
        self.forget_parent_if_prefix(comps);
        let (parent_fd, leaf) = self.parent(comps)?;
        let parent = parent_fd.as_fd();
        let (target, leaf) = (OsStr::from_bytes(target), OsStr::from_bytes(&leaf));
        // The target is stored as text, never followed here: rlxc resolves it only
        // inside the root, as the container would.
        create_replacing(parent, leaf, &disp, "create symlink", || {
            nix::unistd::symlinkat(target, parent, leaf)
        })?;
        for (k, v) in &a.xattrs {
            sys::lsetxattr_at(parent, leaf.as_bytes(), k, v).ctx("set xattr on", &disp)?;
        }
        set_owner_and_times_at(parent, leaf, a, &disp)
    }

    fn hardlink(&mut self, comps: &[Vec<u8>], target: &[u8], name: &str) -> Result<()> {
        let disp = self.root.display(&rootfs::join(comps));
        if target.starts_with(b"/") {
            return Err(Error::hostile(format!(
                "hardlink {name:?} points at the absolute path {:?}",
                String::from_utf8_lossy(target)
            )));
        }
        let tcomps = rootfs::components(target, "hardlink target")?;
        let (tleaf, tdir) = tcomps.split_last().ok_or_else(|| {
            Error::hostile(format!("hardlink {name:?} points at the rootfs itself"))
        })?;
        let tparent = self.root.dir(tdir)?;
        self.forget_parent_if_prefix(comps);
        let (parent_fd, leaf) = self.parent(comps)?;
        let parent = parent_fd.as_fd();
        let (tleaf, leaf) = (OsStr::from_bytes(tleaf), OsStr::from_bytes(&leaf));
        // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself, so a
        // planted link to a host file cannot be turned into a hard link to that file.
        create_replacing(parent, leaf, &disp, "create hardlink", || {
            nix::unistd::linkat(tparent.as_fd(), tleaf, parent, leaf, AtFlags::empty())
        })
    }

    fn node(&mut self, comps: &[Vec<u8>], kind: SFlag, dev: u64, a: &Attrs) -> Result<()> {
        let disp = self.root.display(&rootfs::join(comps));
        self.forget_parent_if_prefix(comps);
        let (parent_fd, leaf) = self.parent(comps)?;
        let parent = parent_fd.as_fd();
        let leaf = OsStr::from_bytes(&leaf);
        let perm = Mode::from_bits_truncate(a.mode);
        create_replacing(parent, leaf, &disp, "create device node", || {
            nix::sys::stat::mknodat(parent, leaf, kind, perm, dev)
        })?;
        set_owner_and_times_at(parent, leaf, a, &disp)
    }

    fn forget_parent_if_prefix(&mut self, comps: &[Vec<u8>]) {
        let p = rootfs::join(comps);
        if let Some((k, _)) = &self.cached_parent {
            if k.starts_with(&p) {
                self.forget_parent();
            }
        }
    }

    fn apply_dir_times(&mut self) -> Result<()> {
        self.forget_parent();
        for (path, mtime) in self.dir_times.iter().rev() {
            let disp = self.root.display(path);
            let fd = self.root.openat(
                path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                0,
            );
            // A directory later replaced by another member type has no time to restore.
            let Ok(fd) = fd else { continue };
            nix::sys::stat::futimens(&fd, &ts(*mtime), &ts(*mtime)).ctx("set times of", &disp)?;
        }
        Ok(())
    }
}

impl Attrs {
    /// Owned by us (root), no setuid/setgid/sticky bits, no xattrs: the mode given at
    /// creation is final and nothing else needs setting.
    pub(super) fn is_plain(&self) -> bool {
        static ME: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
        let me = ME.get_or_init(|| {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        });
        (self.uid, self.gid) == *me && self.mode & 0o7000 == 0 && self.xattrs.is_empty()
    }
}
