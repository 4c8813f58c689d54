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
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

pub struct Unpacker<'a> {
    root: &'a Root,
    excludes: &'a [String],
    /// Last parent directory handle: most members share their predecessor's parent.
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes are set last, deepest first: creating children changes them.
    dir_times: Vec<(Vec<u8>, i64)>,
    stats: Stats,
    buf: Vec<u8>,
}

/// Unpack the tar stream `r` into `root`, skipping members matching `excludes`.
pub fn unpack(r: impl Read, root: &Root, excludes: &[String]) -> Result<Stats> {
    let old_umask = sys::umask(0);
    let res = Unpacker {
        root,
        excludes,
        cached_parent: None,
        dir_times: Vec::new(),
        stats: Stats::default(),
        buf: vec![0u8; 256 * 1024],
    }
    .run(r);
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
    fn run(mut self, r: impl Read) -> Result<Stats> {
        let mut archive = tar::Archive::new(r);
        let entries = archive
            .entries()
            .map_err(|e| bad_data("rootfs tarball", e))?;
        for entry in entries {
            if sys::interrupted() {
                return Err(Error::Interrupted);
            }
            let mut entry = entry.map_err(|e| bad_data("rootfs tarball", e))?;
            self.member(&mut entry)?;
        }
        self.apply_dir_times()?;
        Ok(self.stats)
    }

    fn member<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
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
        let attrs = self.attrs(entry, &name)?;
        self.stats.entries += 1;
        use tar::EntryType as T;
        match kind {
            T::Directory => self.directory(&comps, &attrs),
            T::Regular | T::Continuous | T::GNUSparse => self.regular(&comps, entry, &attrs, &name),
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::hostile(format!("symlink {name:?} has no target")))?
                    .into_owned();
                self.symlink(&comps, &target, &attrs)
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::hostile(format!("hardlink {name:?} has no target")))?
                    .into_owned();
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

    fn attrs<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Attrs> {
        let h = entry.header();
        let field = |r: io::Result<u64>, what: &str| {
            r.map_err(|e| bad_data(&format!("tar member {name:?} ({what})"), e))
        };
        let mut a = Attrs {
            uid: u32::try_from(field(h.uid(), "uid")?).unwrap_or(u32::MAX),
            gid: u32::try_from(field(h.gid(), "gid")?).unwrap_or(u32::MAX),
            mode: field(h.mode().map(u64::from), "mode")? as u32 & 0o7777,
            mtime: i64::try_from(field(h.mtime(), "mtime")?).unwrap_or(0),
            xattrs: Vec::new(),
        };
        let Some(pax) = entry.pax_extensions().map_err(|e| bad_data(name, e))? else {
            return Ok(a);
        };
        for ext in pax {
            let ext = ext.map_err(|e| bad_data(name, e))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let num = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
            };
            match key {
                "uid" => a.uid = num().and_then(|v| u32::try_from(v).ok()).unwrap_or(a.uid),
                "gid" => a.gid = num().and_then(|v| u32::try_from(v).ok()).unwrap_or(a.gid),
                "mtime" => a.mtime = num().unwrap_or(a.mtime),
                "SCHILY.acl.access" | "SCHILY.acl.default" => {
                    let xname = if key.ends_with("access") {
                        "system.posix_acl_access"
                    } else {
                        "system.posix_acl_default"
                    };
                    match acl_text_to_xattr(value) {
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
                        .push((k["SCHILY.xattr.".len()..].to_string(), value.to_vec()));
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
        let (parent, leaf) = self.parent(comps)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let leaf = OsStr::from_bytes(&leaf);
        let fd = match nix::fcntl::openat(parent, leaf, flags, Mode::from_bits_truncate(0o600)) {
            Err(Errno::EEXIST) => {
                remove_existing(parent, leaf).ctx("replace", &disp)?;
                nix::fcntl::openat(parent, leaf, flags, Mode::from_bits_truncate(0o600))
            }
            r => r,
        }
        .ctx("create", &disp)?;
        let mut file = std::fs::File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        let copied = copy(entry, &mut file, &mut buf).map_err(|e| match e {
            CopyError::Read(e) => bad_data(&format!("tar member {name:?}"), e),
            CopyError::Write(e) => Error::io("write", &disp, e),
        });
        self.buf = buf;
        self.stats.bytes += copied?;
        self.set_fd_attrs(file.as_fd(), a, &disp)?;
        nix::sys::stat::futimens(&file, &ts(a.mtime), &ts(a.mtime)).ctx("set times of", &disp)
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

fn ts(secs: i64) -> TimeSpec {
    TimeSpec::new(secs, 0)
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
/// binary `system.posix_acl_*` xattr. Names cannot be resolved reliably on the host
/// (they belong to the image), so only numeric qualifiers are accepted.
pub fn acl_text_to_xattr(text: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
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
        let id = || {
            qual.parse::<u32>()
                .map_err(|_| format!("non-numeric qualifier in {e:?}"))
        };
        let (tag, id) = match (parts[0], qual.is_empty()) {
            ("user" | "u", true) => (0x01, UNDEFINED),
            ("user" | "u", false) => (0x02, id()?),
            ("group" | "g", true) => (0x04, UNDEFINED),
            ("group" | "g", false) => (0x08, id()?),
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
        let bin =
            acl_text_to_xattr(b"user::rw-\nuser:1000:r--\ngroup::r--\nmask::r--\nother::r--\n")
                .unwrap()
                .unwrap();
        assert_eq!(&bin[..4], &2u32.to_le_bytes());
        assert_eq!(bin.len(), 4 + 5 * 8);
        // user:1000 entry second, tag 2, perm 4, id 1000
        assert_eq!(&bin[12..20], &[2, 0, 4, 0, 0xe8, 0x03, 0, 0]);
        assert!(acl_text_to_xattr(b"user:alice:r--").is_err());
        assert_eq!(acl_text_to_xattr(b"\n").unwrap(), None);
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
