//! Making a tree copied from another container its own (`make_own`): the source's host
//! name, machine-id, DHCP leases and SSH host keys out of it. Used by copies, clones,
//! imports and publish; `own_upper` writes the same changes straight into an empty upper.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{IoContext, Result};
use crate::rootfs::Root;

/// The copy's files stop naming the source: `/etc/hostname` and `/etc/hosts` get the new
/// name, `/etc/machine-id` is emptied (a new one is made at first boot), DHCP leases and
/// SSH host keys go. Every path resolved inside the copy (it is the source's, so hostile).
pub(super) fn make_own(root: &Root, old_host: &str, new_host: &str) -> Result<Vec<String>> {
    for (rel, f) in own_rewrites(old_host, new_host) {
        rewrite(root, rel, &*f)?;
    }
    let mut removed = Vec::new();
    for (dir, is_machine) in MACHINE_FILES {
        let Some(mut d) = open_dir(root, dir)? else {
            continue;
        };
        for n in names_in(&mut d, is_machine) {
            let rel = [dir, b"/", &n].concat();
            nix::unistd::unlinkat(
                d.as_fd(),
                OsStr::from_bytes(&n),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .ctx("remove", root.display(&rel))?;
            removed.push(format!("/{}", String::from_utf8_lossy(&rel)));
        }
    }
    Ok(removed)
}

/// `old_host` becomes `new_host` in `/etc/hostname` and `/etc/hosts`.
pub(super) fn rename_host(root: &Root, old_host: &str, new_host: &str) -> Result<()> {
    for (rel, f) in host_rewrites(old_host, new_host) {
        rewrite(root, rel, &*f)?;
    }
    Ok(())
}

/// A rewrite of a small file's text: None leaves it as it is.
pub(super) type Rewrite<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// What `make_own` rewrites: the host name's files, then the machine-id.
pub(super) fn own_rewrites<'a>(
    old_host: &'a str,
    new_host: &'a str,
) -> Vec<(&'static [u8], Rewrite<'a>)> {
    let mut v = host_rewrites(old_host, new_host);
    v.push((b"etc/machine-id", Box::new(empty_machine_id)));
    v
}

fn host_rewrites<'a>(old_host: &'a str, new_host: &'a str) -> Vec<(&'static [u8], Rewrite<'a>)> {
    let hostname: Rewrite =
        Box::new(move |t: &str| (t.trim() == old_host).then(|| format!("{new_host}\n")));
    let hosts: Rewrite = Box::new(move |t: &str| {
        let swapped: Vec<String> = t
            .lines()
            .map(|l| {
                l.split_inclusive(char::is_whitespace)
                    .map(|w| {
                        if w.trim() == old_host {
                            w.replacen(old_host, new_host, 1)
                        } else {
                            w.into()
                        }
                    })
                    .collect()
            })
            .collect();
        let out = swapped.join("\n") + if t.ends_with('\n') { "\n" } else { "" };
        (out != t).then_some(out)
    });
    vec![(b"etc/hostname", hostname), (b"etc/hosts", hosts)]
}

/// An empty `/etc/machine-id`: systemd makes a new one at first boot.
pub(super) fn forget_machine_id(root: &Root) -> Result<()> {
    rewrite(root, b"etc/machine-id", &empty_machine_id)
}

fn empty_machine_id(t: &str) -> Option<String> {
    (!t.is_empty()).then(String::new)
}

/// Which names in a directory are the machine's.
type Picker = fn(&str) -> bool;

/// Where a tree keeps files of the machine it ran as, and which files there are such:
/// DHCP leases and SSH host keys.
const MACHINE_FILES: [(&[u8], Picker); 2] = [
    (b"var/lib/dhcp", |n| n.ends_with(".leases")),
    (b"etc/ssh", |n| n.starts_with("ssh_host_")),
];

/// The paths (relative to the root) of the files `make_own` removes.
pub(super) fn machine_files(root: &Root) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (dir, is_machine) in MACHINE_FILES {
        if let Some(mut d) = open_dir(root, dir)? {
            out.extend(
                names_in(&mut d, is_machine)
                    .into_iter()
                    .map(|n| [dir, b"/", &n].concat()),
            );
        }
    }
    Ok(out)
}

/// The most of a file `rewrite` reads: these are a few lines each.
const MAX_REWRITE: u64 = 64 << 10;

/// Replace a small regular file's text with what `f` makes of it (None: leave it). A
/// missing file, a symlink or anything but a small regular file is left alone.
pub(super) fn rewrite(root: &Root, rel: &[u8], f: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    use std::io::{Seek, Write};
    let Some((mut file, text)) = read_small(root, rel, OFlag::O_RDWR)? else {
        return Ok(());
    };
    if let Some(new) = f(&text) {
        file.set_len(0).ctx("truncate", root.display(rel))?;
        file.rewind().ctx("rewind", root.display(rel))?;
        file.write_all(new.as_bytes())
            .ctx("write", root.display(rel))?;
    }
    Ok(())
}

/// A small regular file of the tree (not a symlink), opened with `access`, and its
/// text; None for anything else (missing, a link, too big, not text).
pub(super) fn read_small(
    root: &Root,
    rel: &[u8],
    access: OFlag,
) -> Result<Option<(std::fs::File, String)>> {
    use std::io::Read;
    let flags = access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let fd = match root.openat(rel, flags, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENXIO | Errno::EISDIR) => return Ok(None),
        Err(e) => return Err(e).ctx("open", root.display(rel)),
    };
    let mut file = std::fs::File::from(fd);
    let md = file.metadata().ctx("inspect", root.display(rel))?;
    if !md.is_file() || md.len() > MAX_REWRITE {
        return Ok(None);
    }
    let mut text = String::new();
    if Read::by_ref(&mut file)
        .take(MAX_REWRITE)
        .read_to_string(&mut text)
        .is_err()
    {
        return Ok(None);
    }
    Ok(Some((file, text)))
}

/// The directory `dir` of the tree, if it is one (not a symlink).
fn open_dir(root: &Root, dir: &[u8]) -> Result<Option<nix::dir::Dir>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    let fd = match root.openat(dir, flags, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return Ok(None),
        Err(e) => return Err(e).ctx("open", root.display(dir)),
    };
    nix::dir::Dir::from_fd(fd)
        .ctx("read", root.display(dir))
        .map(Some)
}

/// The names of the regular files and symlinks in `d` that `pick` picks.
fn names_in(d: &mut nix::dir::Dir, pick: Picker) -> Vec<Vec<u8>> {
    d.iter()
        .flatten()
        .filter(|e| {
            matches!(
                e.file_type(),
                Some(nix::dir::Type::File | nix::dir::Type::Symlink)
            )
        })
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| pick(&String::from_utf8_lossy(n)))
        .collect()
}
