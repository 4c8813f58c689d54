//! A copy-on-write clone made its own (`copy::make_own`) without a writable overlay
//! mount: its upper is still empty, so what make_own changes is written straight into
//! it, as overlay's copy-up would leave it — the parent directories with the lower's
//! owner, mode and times, the rewritten files with the originals' owner and mode, and a
//! whiteout (a 0:0 character device) for each file it removes. The mount's set-up, its
//! copy-ups and its release were most of a clone's time.
//!
//! The merged lower is read through a read-only view (hostile: every lookup confined,
//! no link followed): a single lower as it is, several merged by a read-only overlay. Anything unusual — a parent that is not a plain directory, a file
//! with extended attributes, one that is not a small regular file — makes it decline
//! (None) before anything is written, and the caller takes the mounted way.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use super::own::{machine_files, own_rewrites, read_small};
use crate::config::Backend;
use crate::error::{IoContext, Result};
use crate::rootfs::Root;
use crate::store::backing::BackingStore;

/// One change to write into the upper.
enum Change {
    /// A file of the lower with new text, written with the lower file's owner and mode.
    Text {
        rel: Vec<u8>,
        text: String,
        meta: std::fs::Metadata,
    },
    /// A file of the lower that goes.
    Whiteout { rel: Vec<u8> },
}

/// An overlay container whose upper is still empty (a `-s` clone) made its own without
/// a writable mount (see `own_upper`); None where that way does not fit.
pub(super) fn own_in_empty_upper(
    backing: &dyn BackingStore,
    staging: &Path,
    old_host: &str,
    new_host: &str,
) -> Result<Option<Vec<String>>> {
    if backing.kind() != Backend::Overlay {
        return Ok(None);
    }
    let upper = backing.own_files(staging);
    if !std::fs::read_dir(&upper).is_ok_and(|mut d| d.next().is_none()) {
        return Ok(None);
    }
    // Over one lower, the empty upper shows that lower as it is: it is read directly,
    // without mounting (and, on release, unmounting) an overlay. What overlay alone
    // would hide or interpret is nothing `plan` takes: a whiteout is no regular file
    // (the mounted way is taken) nor listed as a machine's file, an xattr declines.
    let direct = match backing.lowers() {
        [only] => Root::open(only).ok(),
        _ => None,
    };
    let view = match direct {
        Some(v) => v,
        None => backing.open_view(&upper)?,
    };
    make_own_in_upper(&view, &upper, old_host, new_host)
}

/// make_own's changes written into the empty `upper` of the tree `view` shows (the
/// lowers merged); the removed paths, or None where this way does not fit.
fn make_own_in_upper(
    view: &Root,
    upper: &Path,
    old_host: &str,
    new_host: &str,
) -> Result<Option<Vec<String>>> {
    let Some(changes) = plan(view, old_host, new_host)? else {
        return Ok(None);
    };
    let up = Root::open(upper)?;
    let mut removed = Vec::new();
    for c in &changes {
        match c {
            Change::Text { rel, text, meta } => {
                make_parents(view, &up, rel)?;
                write_text(&up, rel, text, meta)?;
            }
            Change::Whiteout { rel } => {
                make_parents(view, &up, rel)?;
                nix::sys::stat::mknodat(
                    up.as_fd(),
                    OsStr::from_bytes(rel),
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    0,
                )
                .ctx("make a whiteout at", up.display(rel))?;
                removed.push(format!("/{}", String::from_utf8_lossy(rel)));
            }
        }
    }
    Ok(Some(removed))
}

/// What changes, read through the view; None if anything is out of the ordinary.
fn plan(view: &Root, old_host: &str, new_host: &str) -> Result<Option<Vec<Change>>> {
    let mut changes = Vec::new();
    for (rel, f) in own_rewrites(old_host, new_host) {
        if !parents_are_dirs(view, rel)? {
            return Ok(None);
        }
        let Some((file, text)) = read_small(view, rel, OFlag::O_RDONLY)? else {
            // Missing: nothing to change. A link or an odd file: the mounted way.
            match view.openat(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW, 0) {
                Err(Errno::ENOENT) => continue,
                _ => return Ok(None),
            }
        };
        if crate::sys::has_xattrs(file.as_fd()).unwrap_or(true) {
            return Ok(None);
        }
        if let Some(new) = f(&text) {
            let meta = file.metadata().ctx("inspect", view.display(rel))?;
            changes.push(Change::Text {
                rel: rel.to_vec(),
                text: new,
                meta,
            });
        }
    }
    for rel in machine_files(view)? {
        if !parents_are_dirs(view, &rel)? {
            return Ok(None);
        }
        changes.push(Change::Whiteout { rel });
    }
    Ok(Some(changes))
}

/// Every parent of `rel` is a directory in the view (not a link to one).
fn parents_are_dirs(view: &Root, rel: &[u8]) -> Result<bool> {
    for prefix in parents(rel) {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY;
        match view.openat(prefix, flags, 0) {
            Ok(_) => {}
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(false),
            Err(e) => return Err(e).ctx("open", view.display(prefix)),
        }
    }
    Ok(true)
}

/// `a`, `a/b` for `a/b/c`.
fn parents(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &rel[..i])
}

/// The parents of `rel` in the upper, as copy-up makes them: the lower's owner, mode
/// and times.
fn make_parents(view: &Root, up: &Root, rel: &[u8]) -> Result<()> {
    for prefix in parents(rel) {
        let name = OsStr::from_bytes(prefix);
        let lower = view
            .openat(
                prefix,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                0,
            )
            .ctx("open", view.display(prefix))?;
        let md = std::fs::File::from(lower)
            .metadata()
            .ctx("inspect", view.display(prefix))?;
        match nix::sys::stat::mkdirat(up.as_fd(), name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e).ctx("create", up.display(prefix)),
        }
        let dir = up
            .openat(
                prefix,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                0,
            )
            .ctx("open", up.display(prefix))?;
        own_like(&dir, &md).ctx("set the owner and mode of", up.display(prefix))?;
        let times = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
        nix::sys::stat::futimens(
            dir.as_fd(),
            &times(md.atime(), md.atime_nsec()),
            &times(md.mtime(), md.mtime_nsec()),
        )
        .ctx("set the times of", up.display(prefix))?;
    }
    Ok(())
}

/// `rel` made in the upper with `text`, owned and moded as the lower's file.
fn write_text(up: &Root, rel: &[u8], text: &str, meta: &std::fs::Metadata) -> Result<()> {
    use std::io::Write;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    let fd = up
        .openat(rel, flags, 0o600)
        .ctx("create", up.display(rel))?;
    own_like(&fd, meta).ctx("set the owner and mode of", up.display(rel))?;
    std::fs::File::from(fd)
        .write_all(text.as_bytes())
        .ctx("write", up.display(rel))
}

/// Owner, then mode (a chown clears set-id bits).
fn own_like(fd: &OwnedFd, md: &std::fs::Metadata) -> nix::Result<()> {
    nix::unistd::fchown(fd.as_fd(), Some(md.uid().into()), Some(md.gid().into()))?;
    nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(md.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rootfs;

    /// The staging directory `staging` of a `-s` clone over `lower`, its layers made as
    /// a create makes them.
    fn staged(lower: &Path, staging: &Path) -> Box<dyn BackingStore> {
        std::fs::create_dir(staging).unwrap();
        let store = crate::store::select::open(&Rootfs::overlay(lower.to_path_buf()));
        store.create(staging).unwrap();
        store
    }

    #[test]
    fn one_lower_is_read_as_it_is_and_a_whiteout_in_it_takes_the_mounted_way() {
        if !nix::unistd::geteuid().is_root() {
            return; // a whiteout is a device node: root makes it
        }
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/hostname"), "old\n").unwrap();
        let a = t.path().join("a");
        let store = staged(&lower, &a);
        let removed = own_in_empty_upper(&*store, &a, "old", "new").unwrap();
        assert_eq!(removed, Some(Vec::new()));
        let written = std::fs::read_to_string(a.join("upper/etc/hostname")).unwrap();
        assert_eq!(written, "new\n");

        // A whiteout there: an overlay hides the name, the lower read as it is shows a
        // device: declined (nothing written) for the mounted way, which sees no file.
        std::fs::remove_file(lower.join("etc/hostname")).unwrap();
        nix::sys::stat::mknod(
            &lower.join("etc/hostname"),
            SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .unwrap();
        let b = t.path().join("b");
        let store = staged(&lower, &b);
        assert_eq!(own_in_empty_upper(&*store, &b, "old", "new").unwrap(), None);
        assert_eq!(std::fs::read_dir(b.join("upper")).unwrap().count(), 0);
    }
}
