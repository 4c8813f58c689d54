//! Unpack a rootfs tarball into a fresh directory, confined to it.
//!
//! Each member is created relative to a directory handle that was resolved inside the
//! rootfs (see `crate::rootfs`), and the final component is never followed: files are
//! created O_EXCL|O_NOFOLLOW, links with *at calls that do not dereference. Owners are kept
//! numerically; chmod comes after chown (chown clears setuid/setgid and file capabilities)
//! and xattrs, including ACLs and security.capability, after both.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::error::{Error, IoContext, Result};
use crate::rootfs::{self, Root};
use crate::sys;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    pub excluded: u64,
    /// Things that were not applied (unknown member types, unresolvable ACL names).
    pub warnings: Vec<String>,
}

/// Ownership, mode, times and extended attributes of one member.
struct Attrs {
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
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes are set last, deepest first: creating children changes them.
    dir_times: Vec<(Vec<u8>, (i64, i64))>,
    stats: Stats,
    buf: Vec<u8>,
    /// The tarball itself, for in-kernel copies of file data (copy_file_range).
    src: Option<std::fs::File>,
    /// The image's own user and group names, for ACLs stored with names.
    ids: Option<IdMaps>,
}

/// Unpack the tarball at `tar` into `root`, skipping members matching `excludes`.
pub fn unpack_file(tar: &std::path::Path, root: &Root, excludes: &[String]) -> Result<Stats> {
    let f = std::fs::File::open(tar).ctx("open", tar)?;
    let src = f.try_clone().ctx("open", tar)?;
    let old_umask = sys::umask(0);
    let res = Unpacker {
        root,
        excludes,
        cached_parent: None,
        dir_times: Vec::new(),
        stats: Stats::default(),
        buf: vec![0u8; 256 * 1024],
        src: Some(src),
        ids: None,
    }
    .run(SkipReader {
        inner: io::BufReader::with_capacity(256 * 1024, f),
        pos: 0,
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
        let kind = entry.header().entry_type();
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
            T::Regular | T::Continuous => self.regular(&comps, entry, &attrs, &name),
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
    fn parent(&mut self, comps: &[Vec<u8>]) -> Result<(BorrowedFd<'_>, Vec<u8>)> {
        let (leaf, dir) = comps
            .split_last()
            .ok_or_else(|| Error::Other("empty member path".into()))?;
        let key = rootfs::join(dir);
        let hit = matches!(&self.cached_parent, Some((k, _)) if *k == key);
        if !hit {
            let fd = self.root.dir(dir)?;
            self.cached_parent = Some((key, fd));
        }
        let fd = self.cached_parent.as_ref().map(|(_, fd)| fd.as_fd());
        fd.map(|fd| (fd, leaf.clone()))
            .ok_or_else(|| Error::Other("no parent directory".into()))
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
            let (parent, leaf) = self.parent(comps)?;
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
        self.set_fd_attrs(fd.as_fd(), a, &disp)?;
        self.dir_times.push((rootfs::join(comps), a.mtime));
        Ok(())
    }

    fn regular<R: Read>(
        &mut self,
        comps: &[Vec<u8>],
        entry: &mut tar::Entry<'_, R>,
        a: &Attrs,
        name: &str,
    ) -> Result<()> {
        let disp = self.root.display(&rootfs::join(comps));
        let plain = a.is_plain();
        let (parent, leaf) = self.parent(comps)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let leaf = OsStr::from_bytes(&leaf);
        // A plain root-owned file gets its final mode at creation (umask is 0 here) and
        // needs no chown/chmod: two syscalls less per file on a 10k-file rootfs.
        let create_mode = Mode::from_bits_truncate(if plain { a.mode } else { 0o600 });
        let fd = match nix::fcntl::openat(parent, leaf, flags, create_mode) {
            Err(Errno::EEXIST) => {
                remove_existing(parent, leaf).ctx("replace", &disp)?;
                nix::fcntl::openat(parent, leaf, flags, create_mode)
            }
            r => r,
        }
        .ctx("create", &disp)?;
        let mut file = std::fs::File::from(fd);
        let size = entry.header().size().map_err(|e| bad_data(name, e))?;
        let copied = match self.kernel_copy(entry.raw_file_position(), size, &file) {
            Some(r) => r.ctx("write", &disp)?,
            None => {
                let mut buf = std::mem::take(&mut self.buf);
                let r = copy(entry, &mut file, &mut buf).map_err(|e| match e {
                    CopyError::Read(e) => bad_data(&format!("tar member {name:?}"), e),
                    CopyError::Write(e) => Error::io("write", &disp, e),
                });
                self.buf = buf;
                r?
            }
        };
        self.stats.bytes += copied;
        if !plain {
            self.set_fd_attrs(file.as_fd(), a, &disp)?;
        }
        nix::sys::stat::futimens(&file, &ts(a.mtime), &ts(a.mtime)).ctx("set times of", &disp)
    }

    /// Copy `len` bytes at `offset` of the tarball into `out` inside the kernel. None when
    /// not possible (no source file, or a file system that cannot), so the caller reads.
    fn kernel_copy(
        &mut self,
        offset: u64,
        len: u64,
        out: &std::fs::File,
    ) -> Option<io::Result<u64>> {
        let src = self.src.as_ref()?;
        let mut off = i64::try_from(offset).ok()?;
        let mut done = 0u64;
        while done < len {
            let chunk = usize::try_from(len - done)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match nix::fcntl::copy_file_range(src, Some(&mut off), out, None, chunk) {
                Ok(0) => {
                    return Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tarball ends inside a member",
                    )))
                }
                Ok(n) => done += n as u64,
                Err(Errno::EINTR) => {}
                Err(Errno::EXDEV | Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP)
                    if done == 0 =>
                {
                    self.src = None;
                    return None;
                }
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Ok(done))
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
        let (parent, leaf) = self.parent(comps)?;
        let (target, leaf) = (OsStr::from_bytes(target), OsStr::from_bytes(&leaf));
        // The target is stored as text, never followed here: rlxc resolves it only
        // inside the root, as the container would.
        match nix::unistd::symlinkat(target, parent, leaf) {
            Err(Errno::EEXIST) => {
                remove_existing(parent, leaf).ctx("replace", &disp)?;
                nix::unistd::symlinkat(target, parent, leaf)
            }
            r => r,
        }
        .ctx("create symlink", &disp)?;
        nix::unistd::fchownat(
            parent,
            leaf,
            Some(Uid::from_raw(a.uid)),
            Some(Gid::from_raw(a.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx("set owner of", &disp)?;
        for (k, v) in &a.xattrs {
            sys::lsetxattr_at(parent, leaf.as_bytes(), k, v).ctx("set xattr on", &disp)?;
        }
        nix::sys::stat::utimensat(
            parent,
            leaf,
            &ts(a.mtime),
            &ts(a.mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .ctx("set times of", &disp)
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
        let (parent, leaf) = self.parent(comps)?;
        let (tleaf, leaf) = (OsStr::from_bytes(tleaf), OsStr::from_bytes(&leaf));
        // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself, so a
        // planted link to a host file cannot be turned into a hard link to that file.
        match nix::unistd::linkat(tparent.as_fd(), tleaf, parent, leaf, AtFlags::empty()) {
            Err(Errno::EEXIST) => {
                remove_existing(parent, leaf).ctx("replace", &disp)?;
                nix::unistd::linkat(tparent.as_fd(), tleaf, parent, leaf, AtFlags::empty())
            }
            r => r,
        }
        .ctx("create hardlink", &disp)
    }

    fn node(&mut self, comps: &[Vec<u8>], kind: SFlag, dev: u64, a: &Attrs) -> Result<()> {
        let disp = self.root.display(&rootfs::join(comps));
        self.forget_parent_if_prefix(comps);
        let (parent, leaf) = self.parent(comps)?;
        let leaf = OsStr::from_bytes(&leaf);
        let perm = Mode::from_bits_truncate(a.mode);
        match nix::sys::stat::mknodat(parent, leaf, kind, perm, dev) {
            Err(Errno::EEXIST) => {
                remove_existing(parent, leaf).ctx("replace", &disp)?;
                nix::sys::stat::mknodat(parent, leaf, kind, perm, dev)
            }
            r => r,
        }
        .ctx("create device node", &disp)?;
        nix::unistd::fchownat(
            parent,
            leaf,
            Some(Uid::from_raw(a.uid)),
            Some(Gid::from_raw(a.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx("set owner of", &disp)?;
        nix::sys::stat::utimensat(
            parent,
            leaf,
            &ts(a.mtime),
            &ts(a.mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .ctx("set times of", &disp)
    }

    fn forget_parent_if_prefix(&mut self, comps: &[Vec<u8>]) {
        let p = rootfs::join(comps);
        if let Some((k, _)) = &self.cached_parent {
            if k.starts_with(&p) {
                self.forget_parent();
            }
        }
    }

    fn set_fd_attrs(&self, fd: BorrowedFd<'_>, a: &Attrs, disp: &std::path::Path) -> Result<()> {
        nix::unistd::fchown(fd, Some(Uid::from_raw(a.uid)), Some(Gid::from_raw(a.gid)))
            .ctx("set owner of", disp)?;
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(a.mode)).ctx("set mode of", disp)?;
        for (k, v) in &a.xattrs {
            sys::fsetxattr(fd, k, v).ctx("set extended attribute on", disp)?;
        }
        Ok(())
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

/// A buffered reader whose relative seeks (tar skipping data that was copied in the
/// kernel) stay inside the buffer when they can, instead of discarding it. It tracks its
/// position itself: tar needs it after every seek, and lseek per member costs.
struct SkipReader {
    inner: io::BufReader<std::fs::File>,
    pos: u64,
}

impl Read for SkipReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for SkipReader {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        match pos {
            io::SeekFrom::Current(n) => {
                self.inner.seek_relative(n)?;
                self.pos = self.pos.checked_add_signed(n).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before start")
                })?;
            }
            other => self.pos = self.inner.seek(other)?,
        }
        Ok(self.pos)
    }
}

/// Pax records and GNU long names that apply to the next member.
#[derive(Default)]
struct Extended {
    pax: Vec<(String, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Extended {
    fn get(&self, key: &str) -> Option<&[u8]> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

const MAX_EXTENDED_HEADER: u64 = 1 << 20;

fn read_small<R: Read>(entry: &mut tar::Entry<'_, R>, what: &str) -> Result<Vec<u8>> {
    let size = entry.header().size().map_err(|e| bad_data(what, e))?;
    if size > MAX_EXTENDED_HEADER {
        return Err(Error::hostile(format!("{what} of {size} bytes")));
    }
    let mut v = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut v).map_err(|e| bad_data(what, e))?;
    Ok(v)
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Pax records: `LEN KEY=VALUE\n`, where LEN counts the whole record, so values may hold
/// newlines (ACL texts do).
pub fn parse_pax(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = || Error::hostile("malformed pax extended header");
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let kv = &rest[sp + 1..len - 1];
        let eq = kv.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        let key = String::from_utf8(kv[..eq].to_vec()).map_err(|_| bad())?;
        out.push((key, kv[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

impl Attrs {
    /// Owned by us (root), no setuid/setgid/sticky bits, no xattrs: the mode given at
    /// creation is final and nothing else needs setting.
    fn is_plain(&self) -> bool {
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

/// User and group names of the image (its /etc/passwd and /etc/group, read inside the
/// rootfs): GNU tar stores ACL qualifiers as names.
#[derive(Default)]
struct IdMaps {
    users: std::collections::HashMap<String, u32>,
    groups: std::collections::HashMap<String, u32>,
}

impl IdMaps {
    fn load(root: &Root) -> Self {
        let read = |rel: &[u8]| -> std::collections::HashMap<String, u32> {
            let Ok(fd) = root.openat(rel, OFlag::O_RDONLY, 0) else {
                return Default::default();
            };
            let mut text = String::new();
            let _ = std::fs::File::from(fd)
                .take(4 << 20)
                .read_to_string(&mut text);
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?.to_string();
                    let id = f.nth(1)?.parse().ok()?;
                    Some((name, id))
                })
                .collect()
        };
        IdMaps {
            users: read(b"etc/passwd"),
            groups: read(b"etc/group"),
        }
    }

    fn lookup(&self, group: bool, name: &str) -> Option<u32> {
        if group { &self.groups } else { &self.users }
            .get(name)
            .copied()
    }
}

fn ts((secs, nsecs): (i64, i64)) -> TimeSpec {
    TimeSpec::new(secs, nsecs)
}

/// A pax time, "SECONDS[.FRACTION]", to (seconds, nanoseconds).
fn pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let v = std::str::from_utf8(v).ok()?;
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsecs = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    // Negative times with a fraction count back from the second.
    Some(if secs < 0 && nsecs > 0 {
        (secs - 1, 1_000_000_000 - nsecs)
    } else {
        (secs, nsecs)
    })
}

/// Remove whatever is at `leaf` (a later tar member replaces an earlier one, like tar).
fn remove_existing(dir: BorrowedFd<'_>, leaf: &OsStr) -> nix::Result<()> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    match unlinkat(dir, leaf, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => unlinkat(dir, leaf, UnlinkatFlags::RemoveDir),
        r => r,
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy(
    r: &mut impl Read,
    w: &mut std::fs::File,
    buf: &mut [u8],
) -> std::result::Result<u64, CopyError> {
    use std::io::Write;
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// Convert a POSIX.1e ACL in text form (what GNU tar stores in SCHILY.acl.*) to the
/// binary `system.posix_acl_*` xattr. Named qualifiers are resolved with `resolve`
/// (is_group, name) against the image's own user database, never the host's.
pub fn acl_text_to_xattr(
    text: &[u8],
    resolve: &dyn Fn(bool, &str) -> Option<u32>,
) -> std::result::Result<Option<Vec<u8>>, String> {
    const UNDEFINED: u32 = u32::MAX;
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string())?;
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for raw in text.split(['\n', ',']) {
        let e = raw.split('#').next().unwrap_or("").trim();
        if e.is_empty() {
            continue;
        }
        let parts: Vec<&str> = e.split(':').collect();
        if parts.len() != 3 {
            return Err(format!("bad entry {e:?}"));
        }
        let perm = parse_perm(parts[2]).ok_or_else(|| format!("bad permissions in {e:?}"))?;
        let qual = parts[1];
        let id = |group: bool| {
            qual.parse::<u32>()
                .ok()
                .or_else(|| resolve(group, qual))
                .ok_or_else(|| {
                    format!(
                        "unknown {} {qual:?} in {e:?}",
                        if group { "group" } else { "user" }
                    )
                })
        };
        let (tag, id) = match (parts[0], qual.is_empty()) {
            ("user" | "u", true) => (0x01, UNDEFINED),
            ("user" | "u", false) => (0x02, id(false)?),
            ("group" | "g", true) => (0x04, UNDEFINED),
            ("group" | "g", false) => (0x08, id(true)?),
            ("mask" | "m", _) => (0x10, UNDEFINED),
            ("other" | "o", _) => (0x20, UNDEFINED),
            _ => return Err(format!("bad tag in {e:?}")),
        };
        entries.push((tag, perm, id));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_by_key(|(tag, _, id)| (*tag, *id));
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(Some(out))
}

fn parse_perm(p: &str) -> Option<u16> {
    let mut v = 0;
    for c in p.chars() {
        match c {
            'r' => v |= 4,
            'w' => v |= 2,
            'x' => v |= 1,
            '-' => {}
            _ => return None,
        }
    }
    Some(v)
}

/// tar-style glob: `*` and `?` (matching `/` too, as GNU tar's --exclude does), against
/// the member path with or without its leading "./".
pub fn glob_match(pat: &[u8], path: &[u8]) -> bool {
    let pat = pat.strip_prefix(b"./").unwrap_or(pat);
    let pat = pat.strip_prefix(b"/").unwrap_or(pat);
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pat, path)
}

/// Parse an `excludes-user` list: blank lines dropped, `..` refused.
pub fn parse_excludes(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.split('/').any(|c| c == "..") {
            return Err(Error::hostile(format!(
                "excludes entry {line:?} leaves the rootfs"
            )));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_text_converts_to_xattr() {
        let none = |_: bool, _: &str| None;
        let text = b"user::rw-\nuser:1000:r--\ngroup::r--\nmask::r--\nother::r--\n";
        let bin = acl_text_to_xattr(text, &none).unwrap().unwrap();
        assert_eq!(&bin[..4], &2u32.to_le_bytes());
        assert_eq!(bin.len(), 4 + 5 * 8);
        // user:1000 entry second, tag 2, perm 4, id 1000
        assert_eq!(&bin[12..20], &[2, 0, 4, 0, 0xe8, 0x03, 0, 0]);
        assert!(acl_text_to_xattr(b"user:alice:r--", &none).is_err());
        assert_eq!(acl_text_to_xattr(b"\n", &none).unwrap(), None);
        let adm = |g: bool, n: &str| (g && n == "adm").then_some(4);
        let text = b"user::rwx\ngroup::r-x\ngroup:adm:r-x\nmask::r-x\nother::r-x";
        let bin = acl_text_to_xattr(text, &adm).unwrap().unwrap();
        assert_eq!(&bin[20..28], &[8, 0, 5, 0, 4, 0, 0, 0]);
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        let acl = "SCHILY.acl.default=user::rwx\ngroup::r-x\nother::r-x\n";
        let rec = format!("{} {acl}\n", acl.len() + 2 + 1 + 1);
        let rec = if rec.len() == rec.split(' ').next().unwrap().parse::<usize>().unwrap() {
            rec
        } else {
            format!("{} {acl}\n", acl.len() + 4)
        };
        let data = format!("{rec}20 path=./a/b/c.txt\n");
        let recs = parse_pax(data.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0, "SCHILY.acl.default");
        assert_eq!(recs[0].1, b"user::rwx\ngroup::r-x\nother::r-x\n");
        assert_eq!(recs[1], ("path".to_string(), b"./a/b/c.txt".to_vec()));
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"5 a\n").is_err());
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(
            pax_time(b"1700000000.268890854"),
            Some((1_700_000_000, 268_890_854))
        );
        assert_eq!(
            pax_time(b"1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(pax_time(b"981173106"), Some((981_173_106, 0)));
        assert_eq!(pax_time(b"x"), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"./dev/*", b"dev/null"));
        assert!(glob_match(b"dev/tty?", b"dev/tty1"));
        assert!(!glob_match(b"dev/tty?", b"dev/tty10"));
        assert!(!glob_match(b"./dev/*", b"etc/dev"));
    }

    #[test]
    fn excludes_refuse_escapes() {
        assert_eq!(
            parse_excludes("\n./dev/*\n\n").unwrap(),
            vec!["./dev/*".to_string()]
        );
        assert!(parse_excludes("../../etc/passwd").is_err());
    }
}
